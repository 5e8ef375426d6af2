// `switchboard doctor`: checks what a start would depend on and prints one line per finding,
// saying what to fix. It reads; it never migrates or writes. The database and DATA_DIR checks
// are in storage.ts; the configuration, LiveKit and webhook checks are here.
import { SipClient } from "livekit-server-sdk";
import { firstLine, operatingErrorLine } from "../cli/errors";
import { assertServable, type Config, ConfigError } from "../config";
import { HOLD_MS } from "../livekit/event-lease";
import { databaseFindings, dataDirFindings } from "./storage";

export type Status = "ok" | "warn" | "FAIL" | "skip";

export interface Finding {
  status: Status;
  /** What was checked: "config", "data dir", "database", "livekit", "webhooks". */
  check: string;
  /** What was found and, when something is wrong, what to do about it. */
  text: string;
}

export const finding = (status: Status, check: string, text: string): Finding => ({ status, check, text });

/** Fixed-width status first, so that a column of statuses can be read (or grepped) at a glance. */
export const formatFinding = (f: Finding) => `${f.status.padEnd(6)}${f.check}: ${f.text}`;

/** LiveKit's API has this long to answer the doctor's one list call. */
const LIVEKIT_TIMEOUT_S = 5;

/**
 * Runs every check in order, printing each finding as it is made (a slow check shows which one
 * is slow). 0 when nothing failed (warnings allowed), 1 otherwise.
 */
export async function runDoctor(config: Config, print: (line: string) => void): Promise<number> {
  const say = redacting(print, secretsOf(config));
  const found: Finding[] = [];
  const report = (findings: Finding[]) => {
    for (const f of findings) {
      found.push(f);
      say(formatFinding(f));
    }
  };
  report(configFindings(config));
  const dataDir = dataDirFindings(config);
  report(dataDir.findings);
  // LiveKit is asked while the database is: two timeouts in a row would double the wait.
  const asking = checkLiveKit(config).catch((error: unknown) => ({ findings: [unexpected("livekit", error)], keys: "unknown" as const }));
  report(await guarded("database", () => databaseFindings(config, dataDir.state)));
  const livekit = await asking;
  report(livekit.findings);
  report(webhookFindings(config, livekit.keys));
  const failed = found.filter((f) => f.status === "FAIL").length;
  const warned = found.filter((f) => f.status === "warn").length;
  say(failed || warned ? `doctor: ${failed} failed, ${warned} ${warned === 1 ? "warning" : "warnings"}` : "doctor: everything checked is in order");
  return failed ? 1 : 0;
}

/** A check that throws something unforeseen still ends in one line, never a stack trace. */
async function guarded(check: string, run: () => Promise<Finding[]>): Promise<Finding[]> {
  try {
    return await run();
  } catch (error) {
    return [unexpected(check, error)];
  }
}

const unexpected = (check: string, error: unknown) => finding("FAIL", check, `could not be checked: ${firstLine(error)}`);

/**
 * The doctor prints no secret, but a driver's message might echo one: every line is scrubbed of
 * the values it must never show. Short values are left alone (they would blank ordinary words).
 */
function redacting(print: (line: string) => void, secrets: string[]): (line: string) => void {
  const hidden = secrets.filter((secret) => secret.length >= 6);
  return (line) => print(hidden.reduce((text, secret) => text.replaceAll(secret, "***"), line));
}

function secretsOf(config: Config): string[] {
  const secrets = [config.livekit.apiSecret, config.metricsToken];
  if (config.databaseUrl) {
    try {
      const password = new URL(config.databaseUrl).password;
      secrets.push(password, decodeURIComponent(password));
    } catch {
      // Not a URL the doctor can read: nothing prints it anyway.
    }
  }
  return secrets.filter((secret): secret is string => Boolean(secret));
}

const isLoopback = (host: string) => host === "localhost" || host === "::1" || /^127\./.test(host);

/** Settings loadConfig accepts that a production run would regret. */
export function configFindings(config: Config): Finding[] {
  const found = [servability(config)];
  const exposed = !isLoopback(config.host);
  // The test endpoint records calls and leads for anyone who can reach the port, without a key.
  if (config.testEndpointEnabled && (config.production || exposed)) {
    const why = config.production ? "ENABLE_TEST_ENDPOINT=true" : "NODE_ENV is not production";
    const fix = config.production ? "unset ENABLE_TEST_ENDPOINT" : "set NODE_ENV=production or ENABLE_TEST_ENDPOINT=false";
    found.push(
      finding("warn", "config", `the test endpoint (POST /api/v1/webhooks/test) is served on ${config.host}:${config.port} (${why}): anyone reaching it can create calls and leads; ${fix}`),
    );
  }
  if (!config.metricsToken && exposed) {
    found.push(
      finding("warn", "config", `METRICS_TOKEN is not set and HOST is ${config.host}: GET /metrics (tenant ids, call volumes) is open to anyone reaching port ${config.port}; set METRICS_TOKEN (16 characters or more) or HOST to a private address`),
    );
  }
  // The same bound the server warns about at start (see serve in main.ts).
  const worstJoinMs = 3 * config.statementTimeoutMs + config.livekit.dispatchBudgetMs;
  if (worstJoinMs > HOLD_MS) {
    found.push(
      finding("warn", "config", `DB_STATEMENT_TIMEOUT_MS x3 + LIVEKIT_DISPATCH_BUDGET_MS (${worstJoinMs} ms) exceeds the event hold (${HOLD_MS} ms): a slow delivery may overlap its redelivery; lower either`),
    );
  }
  return found;
}

/** `switchboard serve` runs checks of its own past loadConfig's (assertServable): they are the rule. */
function servability(config: Config): Finding {
  try {
    assertServable(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return finding("FAIL", "config", `\`switchboard serve\` would refuse to start: ${error.message}`);
  }
  const mode = config.production ? "production" : "not production (NODE_ENV)";
  return finding("ok", "config", `every variable is valid; ${mode}, listening on ${config.host}:${config.port}`);
}

/** What LiveKit made of LIVEKIT_API_KEY/LIVEKIT_API_SECRET, for the webhook check. */
type KeyVerdict = "accepted" | "rejected" | "unknown";

/**
 * LIVEKIT_URL and the keys: whether they are all there, and whether LiveKit takes them, by one
 * harmless list call (the SIP inbound trunks, which provisioning needs anyway).
 */
async function checkLiveKit(config: Config): Promise<{ findings: Finding[]; keys: KeyVerdict }> {
  const { url, apiKey, apiSecret, dispatch } = config.livekit;
  if (!url || !apiKey || !apiSecret) return { findings: [missingLiveKitSettings(config)], keys: "unknown" };
  const host = new URL(url).host;
  // No failover: the doctor asks the LiveKit that LIVEKIT_URL names, once.
  const sip = new SipClient(url, apiKey, apiSecret, { requestTimeout: LIVEKIT_TIMEOUT_S, failover: false });
  let trunks: { name: string }[];
  try {
    trunks = await sip.listSipInboundTrunk();
  } catch (error) {
    return liveKitFailure(error, config, host);
  }
  const findings = [finding("ok", "livekit", `LiveKit at ${host} accepted LIVEKIT_API_KEY/LIVEKIT_API_SECRET (${trunks.length} SIP inbound trunks)${dispatch ? "; agents are dispatched" : ""}`)];
  const trunkName = config.livekit.trunkName;
  if (!trunks.some((trunk) => trunk.name === trunkName)) {
    findings.push(
      finding("warn", "livekit", `no SIP inbound trunk named "${trunkName}" (LIVEKIT_TRUNK_NAME) at ${host}: run \`switchboard livekit provision\`, unless you manage trunks yourself`),
    );
  }
  return { findings, keys: "accepted" };
}

/** What it means that LIVEKIT_URL or the keys are missing, worded as the server logs it at start. */
function missingLiveKitSettings(config: Config): Finding {
  const { url, apiKey, dispatch } = config.livekit;
  const routedOnly = "calls are routed and logged, agents are not dispatched";
  if (!dispatch) {
    return finding("skip", "livekit", `${url ? "no LIVEKIT_API_KEY/LIVEKIT_API_SECRET" : "no LIVEKIT_URL"}, and LIVEKIT_DISPATCH=false (LiveKit's dispatch rules place agents); \`switchboard livekit provision\` needs LIVEKIT_URL and both keys`);
  }
  if (url) return finding("warn", "livekit", `LIVEKIT_URL is set without LIVEKIT_API_KEY/LIVEKIT_API_SECRET: ${routedOnly}; set both keys`);
  if (apiKey) return finding("warn", "livekit", `LIVEKIT_API_KEY/LIVEKIT_API_SECRET are set without LIVEKIT_URL: ${routedOnly}; set LIVEKIT_URL (or LIVEKIT_DISPATCH=false if LiveKit's dispatch rules place agents)`);
  return finding("warn", "livekit", `LiveKit API not configured (LIVEKIT_URL and keys): ${routedOnly}; set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET`);
}

/** A failed list call: refused keys, LiveKit out of reach, or an answer that is not LiveKit's. */
function liveKitFailure(error: unknown, config: Config, host: string): { findings: Finding[]; keys: KeyVerdict } {
  const e = error as { status?: number; code?: string; name?: string; message?: string };
  if (e.status === 401 || e.code === "unauthenticated") {
    const text = `LIVEKIT_API_KEY/LIVEKIT_API_SECRET rejected by LiveKit at ${host} (${e.code ?? e.status}): use an API key and its secret from that LiveKit project`;
    return { findings: [finding("FAIL", "livekit", text)], keys: "rejected" };
  }
  if (typeof e.status === "number") {
    const code = e.code ? ` ${e.code}` : "";
    const text = `LiveKit at ${host} answered ${e.status}${code} (${firstLine(error)}): check that LIVEKIT_URL is the LiveKit server's URL and that the key may manage SIP`;
    return { findings: [finding("FAIL", "livekit", text)], keys: "unknown" };
  }
  const timedOut = e.name === "TimeoutError" || e.name === "AbortError";
  const text = timedOut
    ? `no answer from LiveKit at ${host} within ${LIVEKIT_TIMEOUT_S} s: check LIVEKIT_URL and that the server is up`
    : (operatingErrorLine(error, { port: config.port, liveKitUrl: config.livekit.url }) ?? `cannot reach LiveKit at ${host} (${firstLine(error)}): check LIVEKIT_URL`);
  return { findings: [finding("FAIL", "livekit", text)], keys: "unknown" };
}

/**
 * Signed webhooks (and sip-inbound) are checked with LIVEKIT_API_KEY/SECRET whenever both are set
 * and LIVEKIT_WEBHOOK_VERIFY is not false (src/livekit/webhook.ts); LiveKit signs with the key its
 * webhook settings name, which must be the same. The list call tells whether LiveKit knows the key.
 */
export function webhookFindings(config: Config, keys: KeyVerdict): Finding[] {
  const { apiKey, verifyWebhooks } = config.livekit;
  const unsigned = "anyone who reaches the port can post call events";
  if (apiKey && verifyWebhooks) {
    if (keys === "rejected") {
      return [finding("warn", "webhooks", "signatures are checked with the key LiveKit rejected above: its webhooks would be refused (401) until the keys are fixed")];
    }
    const known = keys === "accepted" ? ", a key LiveKit accepted" : "";
    return [finding("ok", "webhooks", `webhooks and sip-inbound must be signed with LIVEKIT_API_KEY${known}; LiveKit's webhook settings must name that same key`)];
  }
  if (apiKey) {
    return [finding("warn", "webhooks", `LIVEKIT_WEBHOOK_VERIFY=false: webhooks and sip-inbound are accepted unsigned although the keys are set; ${unsigned}; remove LIVEKIT_WEBHOOK_VERIFY=false`)];
  }
  const fix = verifyWebhooks ? "set LIVEKIT_API_KEY/LIVEKIT_API_SECRET to the key LiveKit signs webhooks with" : "set the keys and remove LIVEKIT_WEBHOOK_VERIFY=false";
  return [finding("warn", "webhooks", `no LIVEKIT_API_KEY/LIVEKIT_API_SECRET: webhooks and sip-inbound are accepted unsigned; ${unsigned}; ${fix}`)];
}
