// The scale benchmark (issue 14): Switchboard with a big directory and a long history. It loads
// 1,000 tenants, 10,000 campaigns, 100,000 numbers, 200,000 leads and 1,000,000 call logs (200,000
// with --quick) with one SQL statement per table, then measures what a user would notice at that
// size: how long the in-memory routing directory takes to load and how much memory it holds, how
// fast every admin list answers (p50/p99), and sip-inbound latency next to a server with the small
// example directory (a second database, <name>_small, dropped afterwards).
// `bun bench/scale.ts [--quick] [--json] [--keep]` runs it alone on a fresh database of the local
// PostgreSQL; bench/run.ts calls measureScale().
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { unitEngineEnvironment } from "./unit-environment";

const root = resolve(import.meta.dir, "..");

// ---------------------------------------------------------------- the data

export interface ScaleSizes {
  tenants: number;
  /** Per tenant; every fiftieth campaign is deleted (softly). */
  campaignsPerTenant: number;
  /** Per tenant: a default agent and others, plus a few system-wide agents. */
  agentsPerTenant: number;
  numbersPerTenant: number;
  leadsPerTenant: number;
  callLogs: number;
}

export const FULL_SIZES: ScaleSizes = {
  tenants: 1_000,
  campaignsPerTenant: 10,
  agentsPerTenant: 5,
  numbersPerTenant: 100,
  leadsPerTenant: 200,
  callLogs: 1_000_000,
};

export const QUICK_SIZES: ScaleSizes = { ...FULL_SIZES, callLogs: 200_000 };

/** The tenant that owns a tenth of all calls: the big customer every list must stay fast for. */
export const BIG_TENANT = 1;

/**
 * Ids are md5 hashes of a name, so rows can point at each other without joins while loading;
 * with the version (4) and variant (8) digits of a random UUID, which the API's schema checks.
 */
const uuidOf = (kind: string, n: string) =>
  `overlay(overlay(md5('scale-${kind}-' || (${n})) placing '4' from 13) placing '8' from 17)::uuid`;
export const scaleTenantId = (n: number) => uuidFromMd5(`scale-tenant-${n}`);
export const scaleTenantName = (n: number) => `scale-tenant-${String(n).padStart(5, "0")}`;
/** The n-th loaded number (0-based), E.164: +14152000000 onwards. */
export const scaleNumber = (n: number) => `+14152${String(n).padStart(6, "0")}`;

function uuidFromMd5(text: string): string {
  const md5 = new Bun.CryptoHasher("md5").update(text).digest("hex");
  const hex = `${md5.slice(0, 12)}4${md5.slice(13, 16)}8${md5.slice(17)}`;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The statements that load the data, one per table, in foreign-key order. Every row satisfies
 * the schema's constraints, foreign keys and triggers (campaign agents of their own tenant or
 * system-wide, numbers only on live campaigns of their tenant, calls and leads inside one tenant).
 * Times spread over the past year, older rows first, as a real history would be inserted.
 */
export function scaleDataStatements(s: ScaleSizes): string[] {
  const { tenants: T, campaignsPerTenant: C, agentsPerTenant: A, numbersPerTenant: N, leadsPerTenant: L, callLogs: M } = s;
  if (T * N > 1_000_000) throw new Error("at most 1,000,000 numbers (six digits after +14152)");
  if (T * L > 10_000_000) throw new Error("at most 10,000,000 leads (seven digits after +1212)");
  const year = "interval '365 days'";
  // When the k-th of n rows was created: spread over the past year, in order.
  const at = (k: string, n: number) => `now() - ${year} + (${k})::float8 / ${n} * ${year}`;
  // The g-th campaign (1-based, g = (t-1)*C + k): deleted every fiftieth.
  const campaignDeleted = (g: string) => `(${g}) % 50 = 0`;
  // The campaign of number k (1..N) of tenant t: none for every fifth number or a deleted campaign.
  const numberCampaign = (t: string, k: string) => `(${t} - 1) * ${C} + 1 + (${k}) % ${C}`;
  const numberCampaignId = (t: string, k: string) =>
    `case when (${k}) % 5 = 0 or ${campaignDeleted(numberCampaign(t, k))} then null else ${uuidOf("campaign", numberCampaign(t, k))} end`;
  return [
    `insert into tenants (id, name, active, created_at)
     select ${uuidOf("tenant", "t")}, 'scale-tenant-' || lpad(t::text, 5, '0'), true, ${at("t", T)}
     from generate_series(1, ${T}) t`,

    // Agent 1 of each tenant is its default; ten system-wide agents any campaign may use.
    `insert into agents (id, tenant_id, name, is_default, active, description, created_at)
     select ${uuidOf("agent", "t || '-' || a")}, ${uuidOf("tenant", "t")}, 'scale-agent-' || t || '-' || a, a = 1, true,
            'agent ' || a || ' of tenant ' || t, ${at(`(t - 1) * ${A} + a`, T * A)}
     from generate_series(1, ${T}) t, generate_series(1, ${A}) a
     union all
     select ${uuidOf("agent", "'system-' || k")}, null, 'scale-system-agent-' || k, false, true, null, ${at("k", 10)}
     from generate_series(1, 10) k`,

    // Each campaign uses one of its tenant's agents, every seventh a system-wide one; deleted ones none.
    `insert into campaigns (id, tenant_id, name, agent_id, status, created_at, deleted_at)
     select ${uuidOf("campaign", "g")}, ${uuidOf("tenant", "t")}, 'campaign ' || k,
            case when ${campaignDeleted("g")} then null
                 when k % 7 = 0 then ${uuidOf("agent", "'system-' || (1 + k % 10)")}
                 else ${uuidOf("agent", `t || '-' || (1 + k % ${A})`)} end,
            case when ${campaignDeleted("g")} then 'archived' when k % 10 = 9 then 'paused'
                 when k % 10 = 8 then 'completed' else 'active' end,
            ${at("g", T * C)},
            case when ${campaignDeleted("g")} then now() - interval '1 day' end
     from generate_series(1, ${T}) t, generate_series(1, ${C}) k, lateral (select (t - 1) * ${C} + k as g) g`,

    `insert into phone_numbers (id, e164, tenant_id, campaign_id, number_type, active, created_at)
     select ${uuidOf("number", "n")}, '+14152' || lpad((n - 1)::text, 6, '0'), ${uuidOf("tenant", "t")},
            ${numberCampaignId("t", "k")}, 'LOCAL', true, ${at("n", T * N)}
     from generate_series(1, ${T}) t, generate_series(1, ${N}) k, lateral (select (t - 1) * ${N} + k as n) n`,

    // One lead per caller and campaign (every fourth without a campaign); callers are unique.
    `insert into leads (id, tenant_id, campaign_id, phone_number, name, status, email, last_call_at, created_at, updated_at)
     select ${uuidOf("lead", "j")}, ${uuidOf("tenant", "t")},
            case when k % 4 = 0 then null else ${uuidOf("campaign", `(t - 1) * ${C} + 1 + k % ${C}`)} end,
            '+1212' || lpad(j::text, 7, '0'), 'Lead ' || j,
            (array['new', 'contacted', 'qualified', 'won', 'lost'])[1 + k % 5],
            case when k % 3 = 0 then 'lead' || j || '@example.com' end,
            ${at("j", T * L)}, ${at("j", T * L)}, ${at("j", T * L)}
     from generate_series(1, ${T}) t, generate_series(1, ${L}) k, lateral (select (t - 1) * ${L} + k as j) j`,

    // A tenth of all calls go to the big tenant, one in a hundred to a number nobody owns; the
    // newest few hundred are still ringing or in progress, a tenth failed, a tenth were abandoned.
    `insert into call_logs (provider_call_id, room_name, room_sid, trunk_id, from_number, from_raw, to_number, to_raw,
                            tenant_id, campaign_id, lead_id, phone_number_id, agent_name, agent_source, status,
                            created_at, caller_joined_at, answered_at, ended_at, duration_ms, disconnect_reason,
                            dispatch_id, dispatch_attempts, metadata, updated_at)
     select 'scale-' || i, 'call-scale-' || i, 'RM_scale' || i, 'ST_scale', caller, caller, dialed, dialed,
            tenant_id, campaign_id, lead_id, number_id,
            case when tenant_id is null then 'telephony-agent' when campaign_id is null then 'scale-agent-' || t || '-1'
                 else 'scale-agent-' || t || '-' || (1 + k % ${A}) end,
            case when tenant_id is null then 'system_default' when campaign_id is null then 'tenant_default' else 'campaign' end,
            status, created, created + interval '2 seconds',
            case when status in ('completed', 'in_progress') then created + interval '4 seconds' end,
            case when status in ('completed', 'failed', 'abandoned') then created + interval '94 seconds' end,
            case when status in ('completed', 'failed', 'abandoned') then 92000 end,
            case when status = 'completed' then 'CLIENT_INITIATED' when status = 'abandoned' then 'PARTICIPANT_REMOVED' end,
            'AD_scale' || i, 1, '{"source": "sip-inbound", "sip": {"trunkPhoneNumber": "scale"}}'::jsonb, created
     from generate_series(1, ${M}) i,
     -- Two scrambles of i, so tenant, number, caller and status vary independently of each other.
     lateral (select i::bigint * 2654435761 % 4294967291 as h, i::bigint * 2246822519 % 4294967279 as h2) h,
     lateral (select case when i % 100 = 7 then null when i % 10 = 0 then ${BIG_TENANT} else 1 + h2 % ${T} end as t,
                     1 + h % ${N} as k, 1 + h / ${N} % ${L} as kl, ${at("i", M)} as created,
                     case when i > ${M} - 100 then 'ringing' when i > ${M} - 300 then 'in_progress'
                          when h2 / ${T} % 20 < 2 then 'failed' when h2 / ${T} % 20 < 4 then 'abandoned'
                          else 'completed' end as status) k,
     lateral (select case when t is not null then ${uuidOf("tenant", "t")} end as tenant_id,
                     case when t is not null then ${uuidOf("number", `(t - 1) * ${N} + k`)} end as number_id,
                     case when t is null then '+14159999' || lpad((i % 1000)::text, 3, '0')
                          else '+14152' || lpad(((t - 1) * ${N} + k - 1)::text, 6, '0') end as dialed,
                     case when t is not null then ${numberCampaignId("t", "k")} end as campaign_id,
                     case when t is not null and i % 10 <> 3 then ${uuidOf("lead", `(t - 1) * ${L} + kl`)} end as lead_id,
                     case when i % 10 = 3 then null when t is null then '+1646' || lpad((i % 10000000)::text, 7, '0')
                          else '+1212' || lpad(((t - 1) * ${L} + kl)::text, 7, '0') end as caller) r`,
  ];
}

/**
 * Runs the loading statements with the big tables' foreign keys, unique keys and indexes set
 * aside and rebuilt afterwards: one bulk validation or sort per constraint instead of a lookup
 * per row, and every constraint is checked again when it is added back. Checks and triggers stay
 * on throughout. Keys another table's foreign key depends on stay too.
 */
export async function loadScaleData(
  url: string,
  sizes: ScaleSizes,
  options: { vacuum?: boolean; log?: (line: string) => void } = {},
) {
  const log = options.log ?? (() => {});
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const tables = ["tenants", "agents", "campaigns", "phone_numbers", "leads", "call_logs"];
  try {
    await sql.unsafe("set maintenance_work_mem = '256MB'");
    for (const [i, statement] of scaleDataStatements(sizes).entries()) {
      const table = tables[i]!;
      const started = performance.now();
      await sql.begin(async (tx) => {
        const constraints = await tx.unsafe<{ name: string; type: string; def: string }[]>(
          `select c.conname as name, c.contype as type, pg_get_constraintdef(c.oid) as def from pg_constraint c
           where c.conrelid = $1::regclass and (c.contype = 'f' or (c.contype in ('p', 'u') and not exists
             (select 1 from pg_constraint r where r.contype = 'f' and r.conindid = c.conindid and r.conrelid <> c.conrelid)))`,
          [table],
        );
        const indexes = await tx.unsafe<{ name: string; def: string }[]>(
          `select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as def from pg_index i
           where indrelid = $1::regclass and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`,
          [table],
        );
        for (const c of constraints) await tx.unsafe(`alter table "${table}" drop constraint "${c.name}"`);
        for (const x of indexes) await tx.unsafe(`drop index "${x.name}"`);
        await tx.unsafe(statement);
        const keys = constraints.filter((c) => c.type !== "f");
        const foreign = constraints.filter((c) => c.type === "f");
        for (const c of keys) await tx.unsafe(`alter table "${table}" add constraint "${c.name}" ${c.def}`);
        for (const x of indexes) await tx.unsafe(x.def);
        for (const c of foreign) await tx.unsafe(`alter table "${table}" add constraint "${c.name}" ${c.def}`);
      });
      log(`loaded ${table} in ${seconds(performance.now() - started)}`);
    }
    // As autovacuum would have left a table that grew over a year; a quick run only gathers statistics.
    const started = performance.now();
    await sql.unsafe(options.vacuum ? "vacuum analyze" : "analyze");
    log(`${options.vacuum ? "vacuum analyze" : "analyze"} in ${seconds(performance.now() - started)}`);
  } finally {
    await sql.end();
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;


// ---------------------------------------------------------------- the measurements

export interface Latency {
  name: string;
  path: string;
  key: "admin" | "tenant";
  requests: number;
  /** Rows on the page (the first answer's). */
  rows: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SipLoad {
  connections: number;
  seconds: number;
  callsPerSecond: number;
  answered: number;
  /** Answers whose record went to the journal (the database slower than CALL_RECORD_WAIT_MS). */
  pending: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Several runs of one load, interleaved with the others' so that drift on the machine hits all alike. */
export interface SipRuns {
  runs: SipLoad[];
  /** Medians over the runs. */
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface Startup {
  /** From spawning `serve` to /readyz answering ready: migration check and directory load included. */
  readyMs: number;
  /** Numbers in the loaded directory, as /readyz reports them. */
  numbers: number;
  /** The directory loads the server logged before it was ready, each one's duration. */
  loadsMs: number[];
  /** Resident memory once ready, and its peak so far. */
  rssMb: number;
  peakRssMb: number;
  /** The directory's snapshot on disk (DATA_DIR/directory.json), rewritten on every load. */
  snapshotKb: number;
}

export interface ScaleResult {
  at: string;
  quick: boolean;
  sizes: ScaleSizes & { numbers: number; campaigns: number; leads: number };
  loadSeconds: number;
  directory: {
    small: Startup;
    big: Startup;
    /** The big directory loaded in this process: a reload's duration (query and map), a few times. */
    reloadMs: number[];
    /** JavaScript heap the big directory holds once loaded (after a full collection), and per number. */
    heapMb: number;
    heapBytesPerNumber: number;
    /** A call arriving right after a directory change waits for the reload: its latency, a few tries. */
    callDuringReloadMs: number[];
  };
  admin: Latency[];
  /** Admin lists over 50 ms at p99. */
  slowAdmin: string[];
  sipInbound: {
    /** bench/sip-inbound.lua on the small example directory: one campaign number. */
    small: SipRuns;
    /** The same script with the big directory and history loaded. */
    big: SipRuns;
    /** bench/sip-inbound-scale.lua on the big directory: each call to a random loaded number. */
    bigSpread: SipRuns;
    /** big / small, of the medians. */
    p50Ratio: number;
    p99Ratio: number;
  };
  /** The big server's peak resident memory over the whole run. */
  bigPeakRssMb: number;
  totalSeconds: number;
}

function run(command: string[], env: Record<string, string | undefined> = {}) {
  const [cmd, ...args] = command;
  const result = spawnSync(cmd!, args, { cwd: root, env: { ...process.env, ...env }, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${command.join(" ")} failed:\n${result.stderr || result.stdout}`);
  return result.stdout;
}

const freePort = () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
};

function memoryMb(pid: number): { rssMb: number; peakRssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { rssMb: Math.round(kb("VmRSS") / 1024), peakRssMb: Math.round(kb("VmHWM") / 1024) };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;

interface Server {
  url: string;
  pid: number;
  startup: Startup;
  stop(): Promise<void>;
}

/** Starts `serve` and waits for /readyz; at LOG_LEVEL=debug the directory loads are read from its log. */
async function startServer(command: string[], env: Record<string, string>, logLevel: "debug" | "error"): Promise<Server> {
  const port = freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "switchboard-scale-"));
  const started = performance.now();
  const [cmd, ...args] = command;
  const child = spawn(cmd!, [...args, "serve"], {
    cwd: root,
    env: { ...process.env, ...unitEngineEnvironment(), ...env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: logLevel, DATA_DIR: dataDir },
    stdio: ["ignore", logLevel === "debug" ? "pipe" : "ignore", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  child.stdout?.on("data", (chunk) => (stdout += chunk));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const stop = async () => {
    child.kill("SIGTERM");
    await Promise.race([exited, Bun.sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ready = await fetch(`${url}/readyz`).then(
      async (r) => (r.ok ? ((await r.json()) as { routing: { numbers: number } }) : null),
      () => null,
    );
    if (ready) {
      const readyMs = Math.round(performance.now() - started);
      const snapshot = join(dataDir, "directory.json");
      const startup: Startup = {
        readyMs,
        numbers: ready.routing.numbers,
        loadsMs: stdout
          .split("\n")
          .filter((line) => line.includes('"routing directory loaded"'))
          .map((line) => (JSON.parse(line) as { ms: number }).ms),
        ...memoryMb(child.pid!),
        snapshotKb: existsSync(snapshot) ? Math.round(statSync(snapshot).size / 1024) : 0,
      };
      return { url, pid: child.pid!, startup, stop };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`switchboard serve did not become ready:\n${stderr}`);
    }
    await Bun.sleep(10);
  }
}

/** Start-up with a directory, measured on a server of its own (debug log), stopped afterwards. */
async function measureStartup(command: string[], env: Record<string, string>): Promise<Startup> {
  const server = await startServer(command, env, "debug");
  await server.stop();
  return server.startup;
}

/**
 * The big directory loaded in this process, as the server loads it: how long a reload takes and
 * how much JavaScript heap the loaded entries hold (measured after full collections).
 */
async function directoryInProcess(databaseUrl: string) {
  const { openDatabase } = await import("../src/db/client");
  const { createRoutingDirectory } = await import("../src/calls/directory");
  const { createLogger } = await import("../src/logger");
  const database = await openDatabase({ databaseUrl, dataDir: "memory://", poolMax: 2, statementTimeoutMs: 60_000 });
  try {
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    const directory = createRoutingDirectory({
      database,
      logger: createLogger("silent"),
      waitMs: 60_000,
      reloadIntervalMs: 3_600_000,
    });
    await directory.reload();
    const reloadMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await directory.reload();
      reloadMs.push(Math.round(performance.now() - started));
    }
    Bun.gc(true);
    const heap = process.memoryUsage().heapUsed - before;
    const numbers = directory.status().numbers;
    directory.close();
    return { reloadMs, heapMb: Math.round(heap / 1024 / 102.4) / 10, heapBytesPerNumber: Math.round(heap / numbers) };
  } finally {
    await database.close();
  }
}

/** `requests` sequential GETs after five unmeasured ones: p50, p99 and max, in ms. */
async function measureList(url: string, key: string, path: string, requests: number) {
  const headers = { authorization: `Bearer ${key}` };
  let rows = 0;
  const times: number[] = [];
  for (let i = -5; i < requests; i++) {
    const started = performance.now();
    const res = await fetch(`${url}/api/v1${path}`, { headers });
    const body = await res.text();
    const ms = performance.now() - started;
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${body.slice(0, 300)}`);
    if (i === -5) rows = (JSON.parse(body) as { data: unknown[] }).data.length;
    if (i >= 0) times.push(ms);
  }
  times.sort((a, b) => a - b);
  return { rows, p50Ms: round(percentile(times, 50)), p99Ms: round(percentile(times, 99)), maxMs: round(times.at(-1)!) };
}

function wrk(url: string, script: string, secs: number, args: string[] = []): SipLoad {
  const connections = 32;
  const out = run([
    "wrk",
    "-t2",
    `-c${connections}`,
    `-d${secs}s`,
    "--latency",
    "-s",
    script,
    `${url}/api/v1/webhooks/livekit/sip-inbound`,
    ...args,
  ]);
  const ms = (text: string | undefined) => {
    const [, value, unit] = /([\d.]+)(us|ms|s)/.exec(text ?? "") ?? [];
    return round(Number(value) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1));
  };
  // The percentiles are the "Latency Distribution" lines, each alone on its line.
  const at = (p: number) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out)?.[1]);
  return {
    connections,
    seconds: secs,
    callsPerSecond: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)),
    answered: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    pending: Number(/pending answers: (\d+)/.exec(out)?.[1] ?? 0),
    errors: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + (/Socket errors:.*/.exec(out) ? 1 : 0),
    p50Ms: at(50),
    p99Ms: at(99),
    maxMs: ms(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]),
  };
}

/** One measured run at c=32, after an unmeasured second that warms the server and the database. */
function sipLoad(url: string, script: string, secs: number, args: string[] = []): SipLoad {
  wrk(url, script, 1, args);
  return wrk(url, script, secs, args);
}

const summarize = (runs: SipLoad[]): SipRuns => ({
  runs,
  callsPerSecond: median(runs.map((r) => r.callsPerSecond)),
  p50Ms: median(runs.map((r) => r.p50Ms)),
  p99Ms: median(runs.map((r) => r.p99Ms)),
});

/** A call sent right after a directory change is announced waits for the reload (at most DB_STATEMENT_TIMEOUT_MS). */
async function callsDuringReload(url: string, databaseUrl: string, tries: number): Promise<number[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const times: number[] = [];
  try {
    for (let i = 0; i < tries; i++) {
      // What every trigger of migration 0007 sends on a change to a directory table.
      await sql.unsafe("notify switchboard_directory");
      await Bun.sleep(5); // the notice's way to the server's LISTEN connection
      const started = performance.now();
      const res = await fetch(`${url}/api/v1/webhooks/livekit/sip-inbound`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ call_id: `scale-reload-${Date.now()}-${i}`, from_number: "+12125550000", to_number: scaleNumber(i) }),
      });
      await res.text();
      times.push(round(performance.now() - started));
      for (let j = 0; j < 250; j++) {
        const ready = (await (await fetch(`${url}/readyz`)).json()) as { routing: { fresh: boolean } };
        if (ready.routing.fresh) break;
        await Bun.sleep(20);
      }
      await Bun.sleep(200);
    }
  } finally {
    await sql.end();
  }
  return times;
}

async function query<T extends Record<string, unknown>>(url: string, text: string): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await sql.unsafe<T[]>(text);
  } finally {
    await sql.end();
  }
}

/** A fresh database next to `url`'s, on the same server. */
async function siblingDatabase(url: string, suffix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const parsed = new URL(url);
  const name = `${decodeURIComponent(parsed.pathname.slice(1))}${suffix}`;
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const admin = async (text: string) => {
    const sql = postgres(maintenance.toString(), { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(text);
    } finally {
      await sql.end();
    }
  };
  await admin(`drop database if exists "${name}" with (force)`);
  await admin(`create database "${name}"`);
  parsed.pathname = `/${encodeURIComponent(name)}`;
  return { url: parsed.toString(), drop: () => admin(`drop database if exists "${name}" with (force)`) };
}

/** The command that runs Switchboard: a compiled binary, or a .ts entry point under this bun. */
const commandOf = (binary: string) => (binary.endsWith(".ts") ? [process.execPath, binary] : [binary]);

/**
 * The scale benchmark on `databaseUrl` (a fresh database: it is filled with the big directory and
 * history) and a second fresh database beside it, `<name>_small`, with the example directory
 * alone, dropped at the end. Both servers run side by side so their sip-inbound runs interleave.
 */
export async function measureScale(options: { binary: string; databaseUrl: string; quick: boolean }): Promise<ScaleResult> {
  const began = performance.now();
  const { databaseUrl, quick } = options;
  const command = commandOf(options.binary);
  const sizes = quick ? QUICK_SIZES : FULL_SIZES;
  const requests = quick ? 50 : 200;
  const secs = quick ? 3 : 8;
  const rounds = quick ? 1 : 3;
  const log = (line: string) => console.log(`scale: ${line}`);
  const cliDir = mkdtempSync(join(tmpdir(), "switchboard-scale-cli-"));
  const bigEnv = { DATABASE_URL: databaseUrl, DATA_DIR: cliDir };
  const smallDb = await siblingDatabase(databaseUrl, "_small");
  const smallEnv = { DATABASE_URL: smallDb.url, DATA_DIR: cliDir };
  const servers: Server[] = [];
  try {
    run([...command, "migrate"], bigEnv);
    run([...command, "migrate"], smallEnv);
    run([...command, "seed", "examples/directory.json"], bigEnv);
    run([...command, "seed", "examples/directory.json"], smallEnv);

    const loadStarted = performance.now();
    await loadScaleData(databaseUrl, sizes, { vacuum: !quick, log });
    const loadSeconds = Math.round((performance.now() - loadStarted) / 100) / 10;
    const adminKey = run([...command, "keys", "create", "--admin", "--label", "scale bench"], bigEnv).trim();
    const tenantKey = run([...command, "keys", "create", "--tenant", scaleTenantName(BIG_TENANT), "--label", "scale bench"], bigEnv).trim();

    const smallStartup = await measureStartup(command, smallEnv);
    const bigStartup = await measureStartup(command, bigEnv);
    const inProcess = await directoryInProcess(databaseUrl);
    log(`directory of ${bigStartup.numbers} numbers: ready in ${bigStartup.readyMs} ms (small: ${smallStartup.readyMs} ms), reload ${inProcess.reloadMs.join(", ")} ms`);

    const small = await startServer(command, smallEnv, "error");
    servers.push(small);
    const big = await startServer(command, bigEnv, "error");
    servers.push(big);

    // Filters with the most rows behind them: the big tenant's busiest campaign, lead, caller and number.
    const T1 = scaleTenantId(BIG_TENANT);
    const T5 = scaleTenantId(5);
    const [busiest] = await query<{ campaign: string; lead: string; caller: string; dialed: string }>(
      databaseUrl,
      `select mode() within group (order by campaign_id)::text as campaign, mode() within group (order by lead_id)::text as lead,
              mode() within group (order by from_number) as caller, mode() within group (order by to_number) as dialed
       from call_logs where tenant_id = '${T1}'`,
    );
    const { campaign, lead, caller, dialed } = busiest!;
    const [leadRow] = await query<{ phone: string }>(databaseUrl, `select phone_number as phone from leads where id = '${lead}'`);
    const firstPage = (await (
      await fetch(`${big.url}/api/v1/call-logs`, { headers: { authorization: `Bearer ${adminKey}` } })
    ).json()) as { next_cursor: string };
    const until = new Date(Date.now() - 30 * 86_400_000).toISOString();
    const since = new Date(Date.now() - 60 * 86_400_000).toISOString();
    const enc = encodeURIComponent;
    const lists: [string, string, "admin" | "tenant"][] = [
      ["tenants", "/tenants", "admin"],
      ["agents", "/agents", "admin"],
      ["agents by tenant", `/agents?tenant_id=${T5}`, "admin"],
      ["campaigns", "/campaigns", "admin"],
      ["campaigns by tenant", `/campaigns?tenant_id=${T5}`, "admin"],
      ["campaigns by status", "/campaigns?status=paused", "admin"],
      ["phone-numbers", "/phone-numbers", "admin"],
      ["phone-numbers by tenant", `/phone-numbers?tenant_id=${T5}`, "admin"],
      ["phone-numbers by campaign", `/phone-numbers?campaign_id=${campaign}`, "admin"],
      ["phone-numbers by number", `/phone-numbers?number=${enc(dialed)}`, "admin"],
      ["leads", "/leads", "admin"],
      ["leads by tenant", `/leads?tenant_id=${T1}`, "admin"],
      ["leads by campaign", `/leads?campaign_id=${campaign}`, "admin"],
      ["leads by phone", `/leads?phone_number=${enc(leadRow!.phone)}`, "admin"],
      ["call-logs", "/call-logs", "admin"],
      ["call-logs page 2", `/call-logs?cursor=${firstPage.next_cursor}`, "admin"],
      ["call-logs by big tenant", `/call-logs?tenant_id=${T1}`, "admin"],
      ["call-logs by tenant", `/call-logs?tenant_id=${T5}`, "admin"],
      ["call-logs by status failed", "/call-logs?status=failed", "admin"],
      ["call-logs by status ringing", "/call-logs?status=ringing", "admin"],
      ["call-logs by tenant+failed", `/call-logs?tenant_id=${T5}&status=failed`, "admin"],
      ["call-logs by big tenant+ringing", `/call-logs?tenant_id=${T1}&status=ringing`, "admin"],
      ["call-logs by campaign", `/call-logs?campaign_id=${campaign}`, "admin"],
      ["call-logs by lead", `/call-logs?lead_id=${lead}`, "admin"],
      ["call-logs by from_number", `/call-logs?from_number=${enc(caller)}`, "admin"],
      ["call-logs by to_number", `/call-logs?to_number=${enc(dialed)}`, "admin"],
      ["call-logs since/until", `/call-logs?since=${since}&until=${until}`, "admin"],
      ["call-logs, 500 a page (the maximum)", "/call-logs?limit=500", "admin"],
      ["api-keys", "/api-keys", "admin"],
      ["agents", "/agents", "tenant"],
      ["campaigns", "/campaigns", "tenant"],
      ["phone-numbers", "/phone-numbers", "tenant"],
      ["leads", "/leads", "tenant"],
      ["call-logs", "/call-logs", "tenant"],
      ["call-logs by status failed", "/call-logs?status=failed", "tenant"],
      ["call-logs by status in_progress", "/call-logs?status=in_progress", "tenant"],
      ["call-logs by campaign", `/call-logs?campaign_id=${campaign}`, "tenant"],
    ];
    const admin: Latency[] = [];
    for (const [name, path, key] of lists) {
      const figures = await measureList(big.url, key === "admin" ? adminKey : tenantKey, path, requests);
      admin.push({ name, path, key, requests, ...figures });
    }
    log(`admin lists measured: ${lists.length} x ${requests} requests`);

    const callDuringReloadMs = await callsDuringReload(big.url, databaseUrl, 3);
    const numbers = sizes.tenants * sizes.numbersPerTenant;
    const runs = { small: [] as SipLoad[], big: [] as SipLoad[], bigSpread: [] as SipLoad[] };
    for (let i = 0; i < rounds; i++) {
      runs.small.push(sipLoad(small.url, "bench/sip-inbound.lua", secs));
      runs.big.push(sipLoad(big.url, "bench/sip-inbound.lua", secs));
      runs.bigSpread.push(sipLoad(big.url, "bench/sip-inbound-scale.lua", secs, [String(numbers)]));
    }
    const sip = { small: summarize(runs.small), big: summarize(runs.big), bigSpread: summarize(runs.bigSpread) };
    const bigPeakRssMb = memoryMb(big.pid).peakRssMb;

    const result: ScaleResult = {
      at: new Date().toISOString(),
      quick,
      sizes: {
        ...sizes,
        numbers,
        campaigns: sizes.tenants * sizes.campaignsPerTenant,
        leads: sizes.tenants * sizes.leadsPerTenant,
      },
      loadSeconds,
      directory: { small: smallStartup, big: bigStartup, ...inProcess, callDuringReloadMs },
      admin,
      slowAdmin: admin.filter((a) => a.p99Ms > 50).map((a) => `${a.key} ${a.name}`),
      sipInbound: {
        ...sip,
        p50Ratio: round(sip.big.p50Ms / sip.small.p50Ms),
        p99Ratio: round(sip.big.p99Ms / sip.small.p99Ms),
      },
      bigPeakRssMb,
      totalSeconds: Math.round((performance.now() - began) / 1000),
    };
    report(result);
    return result;
  } finally {
    for (const server of servers) await server.stop();
    await smallDb.drop();
    rmSync(cliDir, { recursive: true, force: true });
  }
}

function report(r: ScaleResult) {
  const { small, big } = r.directory;
  console.log(
    `\nscale: ${r.sizes.tenants} tenants, ${r.sizes.campaigns} campaigns, ${r.sizes.numbers} numbers, ` +
      `${r.sizes.leads} leads, ${r.sizes.callLogs} call logs (loaded in ${r.loadSeconds} s)`,
  );
  console.log("\n| directory | numbers | ready ms | loads at start ms | RSS MB | peak RSS MB | snapshot KB |\n|---|---|---|---|---|---|---|");
  for (const [name, s] of [["small", small], ["big", big]] as const) {
    console.log(`| ${name} | ${s.numbers} | ${s.readyMs} | ${s.loadsMs.join(", ")} | ${s.rssMb} | ${s.peakRssMb} | ${s.snapshotKb} |`);
  }
  console.log(
    `big directory: reload ${r.directory.reloadMs.join(", ")} ms; heap ${r.directory.heapMb} MB (${r.directory.heapBytesPerNumber} bytes a number); ` +
      `a call right after a directory change: ${r.directory.callDuringReloadMs.join(", ")} ms`,
  );
  console.log("\n| admin list | key | rows | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|");
  for (const a of r.admin) console.log(`| ${a.name} | ${a.key} | ${a.rows} | ${a.p50Ms} | ${a.p99Ms}${a.p99Ms > 50 ? " (over 50)" : ""} | ${a.maxMs} |`);
  const s = r.sipInbound;
  console.log("\n| sip-inbound, c=32 (medians) | runs | calls/s | p50 ms | p99 ms | journaled | errors |\n|---|---|---|---|---|---|---|");
  for (const [name, l] of [
    ["small directory", s.small],
    ["big directory, same number", s.big],
    ["big directory, every number", s.bigSpread],
  ] as const) {
    const sum = (f: (x: SipLoad) => number) => l.runs.reduce((n, x) => n + f(x), 0);
    console.log(`| ${name} | ${l.runs.length} | ${l.callsPerSecond} | ${l.p50Ms} | ${l.p99Ms} | ${sum((x) => x.pending)} | ${sum((x) => x.errors)} |`);
  }
  console.log(`big / small: p50 ${s.p50Ratio}x, p99 ${s.p99Ratio}x; big server's peak RSS ${r.bigPeakRssMb} MB; ${r.totalSeconds} s in all`);
}

// ---------------------------------------------------------------- alone: bun bench/scale.ts [--quick] [--keep] [--json]

/** The compiled binary when it is newer than every source and migration, else the sources under bun. */
function pickBinary(): string {
  const binary = join(root, "bench", ".build", "switchboard");
  const sources = join(root, "src", "main.ts");
  if (!existsSync(binary)) return sources;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  if (Math.max(newest(join(root, "src")), newest(join(root, "drizzle"))) > statSync(binary).mtimeMs) {
    console.log("scale: bench/.build/switchboard is older than the sources: running src/main.ts under bun");
    return sources;
  }
  return binary;
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const PG = { host: process.env.PGHOST ?? "127.0.0.1", port: process.env.PGPORT ?? "5432", user: process.env.PGUSER ?? "root" };
  const name = `switchboard_scale_${Date.now()}`;
  const maintenance = `postgresql://${PG.user}@${PG.host}:${PG.port}/postgres`;
  const main = async () => {
    if (spawnSync("wrk", ["--version"]).error) throw new Error("wrk is missing: apt-get install wrk");
    if (spawnSync("pg_isready", ["-q", "-h", PG.host, "-p", PG.port]).status !== 0) {
      run(["pg_ctlcluster", "--skip-systemctl-redirect", readdirSync("/etc/postgresql")[0]!, "main", "start"]);
    }
    const admin = postgres(maintenance, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    try {
      const result = await measureScale({
        binary: pickBinary(),
        databaseUrl: `postgresql://${PG.user}@${PG.host}:${PG.port}/${name}`,
        quick: argv.includes("--quick"),
      });
      if (argv.includes("--json")) console.log(JSON.stringify(result, null, 2));
    } finally {
      if (argv.includes("--keep")) console.log(`scale: kept database ${name}`);
      else await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  };
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`scale: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
