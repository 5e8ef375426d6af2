// Faults no in-process stand-in can fake: a real PostgreSQL server crashed (stop -m immediate),
// frozen (SIGSTOP: connections open, nothing answers) and restarted under real Switchboard
// server processes, while calls keep arriving. What a caller must notice: nothing (every call is
// answered 200 by the right agent, the campaign's included, all through the outage). What the
// business must notice: nothing either (once the database is back, every answered call is in it
// exactly once, with the agent the caller got, and each caller has one lead).
//
// The suite runs twice in CI, once on DATABASE_URL; these tests bring their own database, so they
// run only in the other pass. They need PostgreSQL's server binaries (pg_config on PATH).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type DisposablePostgres, postgresBinDir, startDisposablePostgres } from "./support/disposable-postgres";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";
import { killAllServers, type ServerProcess, seedDirectory, startServer } from "./support/server-process";

/** examples/directory.json: what each dialed number must be answered by, database or not. */
const ROUTES = [
  { to: "+1 (415) 555-0100", agent: "acme-sales", lead: "Spring promo" }, // campaign "Spring promo"
  { to: "+14155550101", agent: "acme-receptionist", lead: "(no campaign)" }, // Acme Dental's default
  { to: "+19995550000", agent: SYSTEM_DEFAULT_AGENT, lead: null }, // nobody's number: no tenant, no lead
] as const;
const CALLERS = ["+12125550111", "+12125550112", "+12125550113", "+12125550114", "+12125550115"];

const skip = Boolean(process.env.DATABASE_URL) || postgresBinDir() === null;

/** One call as sent to one server, and what came back. */
interface SentCall {
  callId: string;
  route: (typeof ROUTES)[number];
  caller: string;
  /** Which part of the run it was sent in: before, outage, after. */
  phase: string;
  server: string;
  /** The server's log lines about this call, for failure messages only (never asserted on). */
  logLines: () => Record<string, unknown>[];
  status: number;
  body?: { agent_name?: string; metadata?: string; record?: string };
  meta?: { call_log_id?: string | null };
  error?: string;
  ms: number;
}

/**
 * Calls at a steady rate, open loop: a new call every 1/rate s whether or not the last one was
 * answered, as callers do; a stalled server shows up as latency and failures, not as fewer calls.
 */
class CallStream {
  readonly calls: SentCall[] = [];
  phase = "before";
  private inflight: Promise<void>[] = [];
  private n = 0;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly prefix: string,
    /** Each call goes to every one of these at the same moment (same call id). */
    private readonly servers: () => ServerProcess[],
  ) {}

  /** Sends one call (to every server) now. */
  send() {
    const i = this.n++;
    const route = ROUTES[i % ROUTES.length]!;
    const caller = CALLERS[Math.floor(i / ROUTES.length) % CALLERS.length]!;
    const callId = `${this.prefix}-${i}`;
    const phase = this.phase;
    for (const [index, server] of this.servers().entries()) {
      this.inflight.push(this.call(server, `server-${index + 1}`, { callId, route, caller, phase }));
    }
  }

  private async call(server: ServerProcess, name: string, call: Pick<SentCall, "callId" | "route" | "caller" | "phase">) {
    const started = performance.now();
    const logLines = () => server.logs.filter((line) => line.call_id === call.callId);
    const sent: SentCall = { ...call, server: name, logLines, status: 0, ms: 0 };
    try {
      const res = await server.post(SIP_INBOUND_PATH, { call_id: call.callId, from_number: call.caller, to_number: call.route.to });
      sent.status = res.status;
      const text = await res.text();
      try {
        sent.body = JSON.parse(text);
        sent.meta = JSON.parse(sent.body?.metadata ?? "null") ?? undefined;
      } catch {
        sent.error = `not JSON: ${text.slice(0, 200)}`;
      }
    } catch (error) {
      sent.error = (error as Error).message;
    }
    sent.ms = performance.now() - started;
    this.calls.push(sent);
  }

  /** Starts sending `perSecond` calls a second in the background, until stop(). */
  start(perSecond: number) {
    this.running = true;
    const interval = 1000 / perSecond;
    this.loop = (async () => {
      const began = performance.now();
      for (let k = 1; this.running; k++) {
        this.send();
        await Bun.sleep(Math.max(0, began + k * interval - performance.now()));
      }
    })();
  }

  /** Stops sending and waits for every answer. */
  async stop() {
    this.running = false;
    await this.loop;
    await Promise.all(this.inflight);
  }

  /** Distinct call ids sent. */
  get callIds(): string[] {
    return [...new Set(this.calls.map((c) => c.callId))];
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** For the record only (speed is measured in benchmarks, not asserted): latency of the calls sent in `phase`. */
function printLatency(label: string, calls: SentCall[], phase: string) {
  const ms = calls
    .filter((c) => c.phase === phase)
    .map((c) => c.ms)
    .sort((a, b) => a - b);
  const f = (v: number) => `${v.toFixed(1)} ms`;
  const records = new Map<string, number>();
  for (const c of calls.filter((c) => c.phase === phase)) {
    const key = String(c.body?.record ?? `status ${c.status}`);
    records.set(key, (records.get(key) ?? 0) + 1);
  }
  console.log(
    `[fault-injection] ${label}: ${ms.length} answers during the ${phase}: p50 ${f(percentile(ms, 50))}, ` +
      `p99 ${f(percentile(ms, 99))}, max ${f(ms.at(-1) ?? NaN)}; ` +
      `${[...records].map(([k, v]) => `${v} ${k}`).join(", ")} (of ${calls.length} answers in all)`,
  );
}

/**
 * Every call was answered 200 by the agent its number is for (what the caller notices), and with
 * a record state that is true: "recorded" (metadata names the call log) or "pending" (journaled;
 * call_log_id null). Checked in that order, so a wrong agent is the failure reported first.
 */
function expectAnsweredCorrectly(calls: SentCall[], options: { record?: "pending" } = {}) {
  const wrongAnswers: string[] = [];
  const wrongRecords: string[] = [];
  for (const c of calls) {
    const where = `${c.callId} (${c.phase}, ${c.server}, to ${c.route.to}, ${c.ms.toFixed(0)} ms)`;
    // What the server said about the call, so a failure explains itself.
    const said = () => ` [server log: ${c.logLines().map((l) => JSON.stringify({ msg: l.msg, err: l.err })).join("; ").slice(0, 600)}]`;
    if (c.status !== 200 || c.error) {
      wrongAnswers.push(`${where}: status ${c.status}${c.error ? `, ${c.error}` : ""} ${JSON.stringify(c.body ?? null).slice(0, 200)}${said()}`);
      continue;
    }
    if (c.body?.agent_name !== c.route.agent) wrongAnswers.push(`${where}: answered ${c.body?.agent_name}, expected ${c.route.agent}`);
    const record = c.body?.record;
    if (record !== "recorded" && record !== "pending") wrongRecords.push(`${where}: record is ${JSON.stringify(record)}${said()}`);
    else if (options.record && record !== options.record) wrongRecords.push(`${where}: record is ${record}, expected ${options.record}`);
    if (record === "pending" && c.meta?.call_log_id != null) wrongRecords.push(`${where}: pending but metadata names call log ${c.meta.call_log_id}`);
    if (record === "recorded" && !c.meta?.call_log_id) wrongRecords.push(`${where}: recorded but metadata has no call_log_id`);
  }
  expect({ wrongAnswers: wrongAnswers.length, first: wrongAnswers.slice(0, 10) }).toEqual({ wrongAnswers: 0, first: [] });
  expect({ wrongRecords: wrongRecords.length, first: wrongRecords.slice(0, 10) }).toEqual({ wrongRecords: 0, first: [] });
}

/**
 * Once the database is back, every call id sent is in call_logs exactly once, with the agent the
 * caller was answered by, and the call log id a "recorded" answer named; each caller has one lead
 * per (tenant, campaign), calls made during the outage included.
 */
async function expectRecordedExactlyOnce(url: string, stream: CallStream, label: string) {
  const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
  try {
    const prefix = `${stream.callIds[0]!.replace(/-\d+$/, "")}-%`;
    const expected = stream.callIds.length;
    // The journal is written to the database once it answers again: wait for it (bounded).
    const waitStarted = performance.now();
    let count = 0;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await Bun.sleep(200)) {
      try {
        const rows = await sql<{ count: number }[]>`select count(*)::int as count from call_logs where provider_call_id like ${prefix}`;
        count = rows[0]?.count ?? 0;
      } catch {
        continue; // the database may still be starting
      }
      if (count >= expected) break;
    }
    console.log(
      `[fault-injection] ${label}: ${count} of ${expected} calls in call_logs ` +
        `${(performance.now() - waitStarted).toFixed(0)} ms after the last answer (the database was back before it)`,
    );

    const duplicated = await sql`
      select provider_call_id, count(*)::int as n from call_logs
      where provider_call_id like ${prefix} group by provider_call_id having count(*) > 1`;
    expect([...duplicated]).toEqual([]);

    const stored = new Map<string, { id: string; agent_name: string }>();
    for (const row of await sql<{ id: string; provider_call_id: string; agent_name: string }[]>`
      select id, provider_call_id, agent_name from call_logs where provider_call_id like ${prefix}`) {
      stored.set(row.provider_call_id, row);
    }
    const missing = stream.callIds.filter((id) => !stored.has(id));
    expect({ missing: missing.length, first: missing.slice(0, 10) }).toEqual({ missing: 0, first: [] });

    const mismatched: string[] = [];
    for (const c of stream.calls) {
      const row = stored.get(c.callId);
      if (!row || c.status !== 200) continue;
      if (row.agent_name !== c.body?.agent_name) mismatched.push(`${c.callId}: answered ${c.body?.agent_name}, stored ${row.agent_name}`);
      if (c.body?.record === "recorded" && c.meta?.call_log_id !== row.id) {
        mismatched.push(`${c.callId}: answer named call log ${c.meta?.call_log_id}, stored ${row.id}`);
      }
    }
    expect({ mismatched: mismatched.length, first: mismatched.slice(0, 10) }).toEqual({ mismatched: 0, first: [] });

    const duplicateLeads = await sql`
      select tenant_id, campaign_id, phone_number, count(*)::int as n from leads
      group by tenant_id, campaign_id, phone_number having count(*) > 1`;
    expect([...duplicateLeads]).toEqual([]);
    const leads = await sql<{ campaign: string; phone_number: string }[]>`
      select coalesce(c.name, '(no campaign)') as campaign, l.phone_number
      from leads l left join campaigns c on c.id = l.campaign_id`;
    const expectedLeads = new Set(stream.calls.filter((c) => c.route.lead).map((c) => `${c.route.lead} / ${c.caller}`));
    expect(leads.map((l) => `${l.campaign} / ${l.phone_number}`).sort()).toEqual([...expectedLeads].sort());
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** What a fresh connection to the port gets: "answered", or the error's code (ECONNREFUSED when nobody listens). */
async function connectionRefused(port: number): Promise<string | undefined> {
  const probe = postgres(`postgresql://postgres@127.0.0.1:${port}/postgres`, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    return await probe`select 1`.then(
      () => "answered",
      (error: { code?: string }) => error.code,
    );
  } finally {
    await probe.end({ timeout: 1 }).catch(() => {});
  }
}

describe.skipIf(skip)("fault injection: a real PostgreSQL crashed, frozen and restarted under real servers", () => {
  let pg: DisposablePostgres | undefined;
  // Made in beforeAll: the describe body runs even when the file is skipped, the hooks do not.
  let scratch = "";
  let dirs = 0;
  const freshDir = (name: string) => mkdtempSync(join(scratch, `${name}-${++dirs}-`));

  /** A new database on the disposable server, migrated and seeded with examples/directory.json. */
  async function seededDatabase(name: string): Promise<string> {
    const url = await pg!.createDatabase(name);
    await seedDirectory({ DATABASE_URL: url, DATA_DIR: freshDir("seed"), LOG_LEVEL: "warn" }, "examples/directory.json");
    return url;
  }

  const serverEnv = (url: string, dataDir: string) => ({
    DATABASE_URL: url,
    DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    SYSTEM_DEFAULT_AGENT,
    DB_STATEMENT_TIMEOUT_MS: "1000",
  });

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "switchboard-faults-"));
    pg = await startDisposablePostgres();
  }, 60_000);

  afterEach(async () => {
    // Whatever a test left behind: its servers gone, the database up and answering for the next.
    await killAllServers();
    if (pg) {
      await pg.thaw();
      if (!pg.running) await pg.start();
    }
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await pg?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  test("the disposable PostgreSQL really crashes, freezes and comes back (else the tests below prove nothing)", async () => {
    const own = await startDisposablePostgres();
    try {
      const sql = postgres(await own.createDatabase("harness"), { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        await sql`create table kept (v text)`;
        await sql`insert into kept values ('before the crash')`;

        await own.freeze();
        const whileFrozen = sql`select v from kept`.then((rows) => rows[0]?.v as string);
        const answered = await Promise.race([whileFrozen, Bun.sleep(700).then(() => "no answer")]);
        expect(answered).toBe("no answer");
        await own.thaw();
        // The statement sent while frozen is answered once thawed: frozen, not dropped.
        expect(await whileFrozen).toBe("before the crash");

        await own.stopImmediate();
        // A new connection (the open one may report CONNECTION_CLOSED first): nobody listens.
        expect(await connectionRefused(own.port)).toBe("ECONNREFUSED");

        await own.start();
        expect((await sql`select v from kept`)[0]?.v).toBe("before the crash");
      } finally {
        await sql.end({ timeout: 1 }).catch(() => {});
      }
    } finally {
      await own.destroy();
    }
    // Nothing left: no directory, nobody listening on its port.
    expect(existsSync(own.dir)).toBe(false);
    expect(await connectionRefused(own.port)).toBe("ECONNREFUSED");
  }, 60_000);

  /** 2 s of calls, 4 s of `fault`, `heal`, 2 s more: every answer right, every call recorded once. */
  async function callsThrough(name: string, fault: () => Promise<void>, heal: () => Promise<void>) {
    const url = await seededDatabase(name.replaceAll(" ", "_"));
    const server = await startServer(serverEnv(url, freshDir(name.replaceAll(" ", "-"))));
    const stream = new CallStream(name.replaceAll(" ", "-"), () => [server]);
    stream.start(30);
    await Bun.sleep(2000);
    stream.phase = "outage";
    await fault();
    await Bun.sleep(4000);
    await heal();
    stream.phase = "after";
    await Bun.sleep(2000);
    await stream.stop();
    printLatency(name, stream.calls, "outage");
    printLatency(name, stream.calls, "after");

    expect(stream.calls.filter((c) => c.phase === "outage").length).toBeGreaterThan(50);
    expectAnsweredCorrectly(stream.calls);
    await expectRecordedExactlyOnce(url, stream, name);
  }

  test("database killed mid-stream: every caller gets the right agent through the outage, and every call is recorded once after it", async () => {
    await callsThrough("database killed", () => pg!.stopImmediate(), () => pg!.start());
  }, 120_000);

  test("database frozen (SIGSTOP): every caller gets the right agent while it hangs, and every call is recorded once after it thaws", async () => {
    await callsThrough("database frozen", () => pg!.freeze(), () => pg!.thaw());
  }, 120_000);

  test("SIGKILL during the outage loses nothing: calls answered while the database was down reach it through the next process", async () => {
    const url = await seededDatabase("sigkill_outage");
    const env = serverEnv(url, freshDir("sigkill"));
    const first = await startServer(env);
    await pg!.stopImmediate();
    const stream = new CallStream("sigkill", () => [first]);
    stream.phase = "outage";
    for (let i = 0; i < 30; i++) {
      stream.send();
      await Bun.sleep(20);
    }
    await stream.stop();
    // Every one of them answered, by the right agent, and said to be pending (the database is down).
    expectAnsweredCorrectly(stream.calls, { record: "pending" });

    first.kill("SIGKILL");
    expect(await first.exited).toBe(137);
    await pg!.start();
    await startServer(env);
    await expectRecordedExactlyOnce(url, stream, "after SIGKILL");
  }, 120_000);

  test("a restart while the database is still down: the new process starts, routes every known number to its agent, and records it all once the database is back", async () => {
    const url = await seededDatabase("restart_outage");
    // A DATA_DIR that does not exist yet, as on a new machine: the first start makes it, snapshot included.
    const env = serverEnv(url, join(freshDir("restart"), "data"));
    const first = await startServer(env);
    await pg!.stopImmediate();
    let current = first;
    const stream = new CallStream("restart", () => [current]);
    stream.phase = "outage";
    for (let i = 0; i < 10; i++) {
      stream.send();
      await Bun.sleep(20);
    }
    await Bun.sleep(200); // the last answers are in before the kill
    first.kill("SIGKILL");
    await first.exited;
    // A restart (a deploy, systemd) while the database is still down: it cannot migrate or read
    // the directory, and must serve anyway, from the directory's snapshot on disk.
    current = await startServer(env);
    const ready = (await (await current.get("/readyz")).json()) as { status: string; routing: { source: string } };
    expect(ready).toMatchObject({ status: "degraded", routing: { source: "snapshot" } });
    for (let i = 0; i < 20; i++) {
      stream.send();
      await Bun.sleep(20);
    }
    await stream.stop();
    expectAnsweredCorrectly(stream.calls, { record: "pending" });

    await pg!.start();
    await expectRecordedExactlyOnce(url, stream, "restart during the outage");
  }, 120_000);

  test("two server processes on one database: the same calls sent to both at once make one call log and one lead, answered by the same agent", async () => {
    const url = await seededDatabase("two_servers");
    const [one, two] = await Promise.all([startServer(serverEnv(url, freshDir("one"))), startServer(serverEnv(url, freshDir("two")))]);
    const stream = new CallStream("pair", () => [one, two]);
    stream.start(15);
    await Bun.sleep(1500);
    // A short outage too: both processes journal the same calls, and replay must still make one.
    stream.phase = "outage";
    await pg!.stopImmediate();
    await Bun.sleep(1500);
    await pg!.start();
    stream.phase = "after";
    await Bun.sleep(1500);
    await stream.stop();
    printLatency("two servers", stream.calls, "outage");

    expectAnsweredCorrectly(stream.calls);
    const agents = new Map<string, Set<string | undefined>>();
    for (const c of stream.calls) agents.set(c.callId, (agents.get(c.callId) ?? new Set()).add(c.body?.agent_name));
    const split = [...agents].filter(([, names]) => names.size > 1).map(([id, names]) => `${id}: ${[...names].join(" vs ")}`);
    expect(split).toEqual([]);
    expect(stream.calls.length).toBe(2 * stream.callIds.length);
    await expectRecordedExactlyOnce(url, stream, "two servers");
  }, 120_000);

  test("/readyz answers 200 'degraded' while the database is down (calls are still routed) and 'ready' once it is back", async () => {
    const url = await seededDatabase("readiness");
    const server = await startServer(serverEnv(url, freshDir("ready")));
    const readiness = async () => {
      const res = await server.get("/readyz");
      return { status: res.status, body: (await res.json().catch(() => null)) as { status?: string } | null };
    };
    expect(await readiness()).toMatchObject({ status: 200, body: { status: "ready" } });

    await pg!.stopImmediate();
    const seen: { status: number; state?: string }[] = [];
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await Bun.sleep(100)) {
      const { status, body } = await readiness();
      seen.push({ status, state: body?.status });
      if (body?.status === "degraded") break;
    }
    // Never 503 (the server still routes), and it owns up to the outage.
    expect(seen.filter((s) => s.status !== 200)).toEqual([]);
    expect(seen.at(-1)).toEqual({ status: 200, state: "degraded" });
    const res = await server.post(SIP_INBOUND_PATH, { call_id: "readiness-1", from_number: CALLERS[0], to_number: ROUTES[0].to });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { agent_name: string }).agent_name).toBe(ROUTES[0].agent);

    await pg!.start();
    let state: string | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && state !== "ready"; await Bun.sleep(100)) {
      state = (await readiness()).body?.status;
    }
    expect(state).toBe("ready");
  }, 60_000);
});
