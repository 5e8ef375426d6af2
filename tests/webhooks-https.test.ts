// Outbound webhooks as they go out in production: a server process with NODE_ENV=production
// refuses http endpoints and delivers to an https one whose certificate is signed by an authority
// the operator trusts through NODE_EXTRA_CA_CERTS (a private CA, as on a company network), and to
// nothing whose certificate it cannot check. The receiver verifies with `standardwebhooks`.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";
import { createAdminKey, killAllServers, type ServerProcess, seedDirectory, startServer } from "./support/server-process";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook-receiver";

const NUMBER = "+14155550142";

let dir: string;
let trusted: WebhookReceiver;
let untrusted: WebhookReceiver;
let server: ServerProcess;
let adminKey: string;

/** A self-signed certificate for localhost, which can serve as its own authority. */
function certificate(name: string) {
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}-cert.pem`);
  const made = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
      "-days", "1", "-keyout", key, "-out", cert],
    { stderr: "pipe" },
  );
  if (made.exitCode !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
  return { certPath: cert, tls: { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") } };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-webhooks-https-"));
  const authority = certificate("trusted");
  trusted = startWebhookReceiver("/hooks", authority.tls);
  untrusted = startWebhookReceiver("/hooks", certificate("untrusted").tls);
  // The embedded database in a directory of its own, whatever DATABASE_URL the suite runs on.
  const env = { DATA_DIR: join(dir, "data"), LOG_LEVEL: "warn" };
  const directory = join(dir, "directory.json");
  writeFileSync(directory, JSON.stringify({ tenants: [{ name: "Acme", agents: [{ name: "acme-agent", default: true }], phone_numbers: [{ number: NUMBER }] }] }));
  await seedDirectory(env, directory);
  adminKey = createAdminKey(env, "webhooks-https");
  server = await startServer({
    ...env,
    NODE_ENV: "production",
    // No LiveKit in this test: the decision endpoint alone, as a deployment using LiveKit's own dispatch.
    LIVEKIT_WEBHOOK_VERIFY: "false",
    LIVEKIT_DISPATCH: "false",
    SYSTEM_DEFAULT_AGENT,
    NODE_EXTRA_CA_CERTS: authority.certPath,
    WEBHOOK_DELIVERY: "true",
    // The receivers are on loopback; the check of the address is not what this test is about.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOK_POLL_INTERVAL: "50ms",
    WEBHOOK_RETRY_SCHEDULE: "1h",
  });
}, 60_000);

afterAll(async () => {
  await killAllServers();
  await Promise.all([trusted?.close(), untrusted?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const admin = (method: string, path: string, body?: unknown) =>
  fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));

async function tenantId(): Promise<string> {
  const tenants = await admin("GET", "/tenants");
  return tenants.body.data.find((t: { name: string }) => t.name === "Acme").id;
}

test("in production an http endpoint is refused, naming url", async () => {
  const res = await admin("POST", "/webhook-endpoints", { tenant_id: await tenantId(), url: "http://localhost:9/hooks" });
  expect(res.status).toBe(400);
  expect(JSON.stringify(res.body)).toContain("url");
  expect(JSON.stringify(res.body)).toContain("must be https:// in production");
});

test("an https receiver whose certificate a trusted private authority signed gets the call's events, signed; one the server cannot check gets nothing", async () => {
  const tenant = await tenantId();
  const good = await admin("POST", "/webhook-endpoints", { tenant_id: tenant, url: trusted.url });
  const bad = await admin("POST", "/webhook-endpoints", { tenant_id: tenant, url: untrusted.url });
  expect([good.status, bad.status]).toEqual([201, 201]);

  const call = await server.post(SIP_INBOUND_PATH, { call_id: "https-1", from_number: "+12125550199", to_number: NUMBER });
  expect(call.status).toBe(200);

  await trusted.waitFor((received) => received.length >= 2);
  expect(trusted.received.map((w) => w.payload.type).sort()).toEqual(["call.started", "lead.created"]);
  expect(trusted.verifies(good.body.secret)).toBe(true);
  expect(trusted.ofType("call.started")[0]!.payload.data.provider_call_id).toBe("https-1");

  // The other endpoint's attempts failed on the certificate, before a byte of the event was sent.
  let failed: any[] = [];
  for (let i = 0; i < 400 && failed.length < 2; i++) {
    failed = (await admin("GET", `/webhook-endpoints/${bad.body.id}/deliveries`)).body.data.filter((d: any) => d.attempts > 0);
    if (failed.length < 2) await Bun.sleep(25);
  }
  expect(failed.map((d) => ({ status: d.status, code: d.last_status_code, certificate: /certificate/i.test(d.last_error ?? "") }))).toEqual([
    { status: "pending", code: null, certificate: true },
    { status: "pending", code: null, certificate: true },
  ]);
  expect(untrusted.received).toEqual([]);
}, 30_000);
