// Routing policies held by real server processes on one real PostgreSQL: a concurrency cap is
// counted by the database (record_capped_call, drizzle/0010_policies.sql), so it must hold when
// the calls race in through two processes at once; and with the database gone, caps fail open
// (the call is admitted, its record journaled) while blocklists and business hours still apply
// from each process's in-memory directory.
//
// Policies have no admin API here: they are set with SQL on the servers' database, and the
// servers see them through the directory's NOTIFY reload. A change is known to have reached a
// server once a probe call shows it: every change is made in one transaction with a rename of a
// probe tenant's default agent, and the probe number is read in the same statement as the
// numbers' caps and before the tenants' (directory-data.ts), so a probe answered by the new name
// comes from a directory that holds the change.
//
// Like fault-injection.test.ts, these bring their own database (a disposable PostgreSQL): they
// run only in the suite's pass without DATABASE_URL, and need PostgreSQL's server binaries.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type DisposablePostgres, postgresBinDir, startDisposablePostgres } from "./support/disposable-postgres";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";
import { killAllServers, type ServerProcess, seedDirectory, startServer } from "./support/server-process";

const skip = Boolean(process.env.DATABASE_URL) || postgresBinDir() === null;

/** The tenant whose default agent is renamed with every policy change (see the header). */
const PROBE_TENANT = "Probe Co";
const PROBE_NUMBER = "+14155550190";
const AGENT = "acme-agent";
const CALLER = "+12125550111";
const TRANSFER_TO = "+14155550999";

type Sql = ReturnType<typeof postgres>;

interface Answer {
  callId: string;
  server: number;
  status: number;
  action?: string;
  reason?: string | null;
  agent_name?: string | null;
  transfer_to?: string | null;
  record?: string;
  error?: string;
}

/** One sip-inbound call to `server`; never throws (a failed request is an answer with an error). */
async function call(server: ServerProcess, index: number, callId: string, to: string, from = CALLER): Promise<Answer> {
  try {
    const res = await server.post(SIP_INBOUND_PATH, { call_id: callId, from_number: from, to_number: to });
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      return { callId, server: index, status: res.status, ...pick(body) };
    } catch {
      return { callId, server: index, status: res.status, error: `not JSON: ${text.slice(0, 200)}` };
    }
  } catch (error) {
    return { callId, server: index, status: 0, error: (error as Error).message };
  }
}

const pick = (body: Record<string, unknown>) => ({
  action: body.action as string,
  reason: body.reason as string | null,
  agent_name: body.agent_name as string | null,
  transfer_to: body.transfer_to as string | null,
  record: body.record as string,
});

/**
 * Every call at once: `perServer` calls to each server, all requests in flight together.
 * `to(i)` picks the dialed number of the i-th call of a server.
 */
async function burst(servers: ServerProcess[], prefix: string, perServer: number, to: (i: number) => string): Promise<Answer[]> {
  const pending: Promise<Answer>[] = [];
  for (let i = 0; i < perServer; i++) {
    for (const [s, server] of servers.entries()) pending.push(call(server, s + 1, `${prefix}-s${s + 1}-${i}`, to(i)));
  }
  return Promise.all(pending);
}

/** The answers counted by what the caller got: "status action reason record" → how many. */
function tally(answers: Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const key = a.error ? `status ${a.status}: ${a.error}` : `${a.status} ${a.action} ${a.reason ?? "-"} ${a.record}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** A directory file for seedDirectory: the tenant under test, and the probe tenant. */
function directoryFile(dir: string, numbers: string[]): string {
  const path = join(dir, `directory-${Math.random().toString(36).slice(2)}.json`);
  const file = {
    tenants: [
      { name: "Acme", agents: [{ name: AGENT, default: true }], phone_numbers: numbers.map((number) => ({ number })) },
      { name: PROBE_TENANT, agents: [{ name: "probe-0", default: true }], phone_numbers: [{ number: PROBE_NUMBER }] },
    ],
  };
  writeFileSync(path, JSON.stringify(file));
  return path;
}

describe.skipIf(skip)("routing policies across real server processes on one PostgreSQL", () => {
  let pg: DisposablePostgres | undefined;
  // Made in beforeAll: the describe body runs even when the file is skipped, the hooks do not.
  let scratch = "";
  let dirs = 0;
  const freshDir = (name: string) => mkdtempSync(join(scratch, `${name}-${++dirs}-`));
  const connections: Sql[] = [];
  let probes = 0;
  let step = 0;

  /** The defaults, CALL_RECORD_WAIT_MS included, unless a test says otherwise. */
  const serverEnv = (url: string, extra: Record<string, string> = {}) => ({
    DATABASE_URL: url,
    DATA_DIR: freshDir("data"),
    LOG_LEVEL: "warn",
    SYSTEM_DEFAULT_AGENT,
    ...extra,
  });

  /** A new database on the disposable server, migrated and seeded; and a connection to it. */
  async function seeded(name: string, numbers: string[]): Promise<{ url: string; sql: Sql }> {
    const url = await pg!.createDatabase(name);
    await seedDirectory({ DATABASE_URL: url, DATA_DIR: freshDir("seed"), LOG_LEVEL: "warn" }, directoryFile(scratch, numbers));
    const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
    connections.push(sql);
    return { url, sql };
  }

  /**
   * Applies `change` and the probe's rename in one transaction, then waits until every server
   * routes the probe number to the new name: its directory holds the change.
   */
  async function configure(sql: Sql, servers: ServerProcess[], change: (tx: postgres.TransactionSql) => Promise<unknown>) {
    const name = `probe-${++step}`;
    await sql.begin(async (tx) => {
      await change(tx);
      await tx`update agents set name = ${name} where tenant_id = (select id from tenants where name = ${PROBE_TENANT})`;
    });
    for (const [s, server] of servers.entries()) {
      let seen: Answer | undefined;
      for (const deadline = Date.now() + 15_000; Date.now() < deadline; await Bun.sleep(50)) {
        seen = await call(server, s + 1, `probe-call-${++probes}`, PROBE_NUMBER);
        if (seen.agent_name === name) break;
      }
      expect({ server: s + 1, agent: seen?.agent_name }).toEqual({ server: s + 1, agent: name });
    }
  }

  const numberId = async (sql: Sql, e164: string) => (await sql<{ id: string }[]>`select id from phone_numbers where e164 = ${e164}`)[0]!.id;
  const tenantId = async (sql: Sql) => (await sql<{ id: string }[]>`select id from tenants where name = 'Acme'`)[0]!.id;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "switchboard-policies-"));
    pg = await startDisposablePostgres();
  }, 60_000);

  afterEach(async () => {
    await killAllServers();
    for (const sql of connections.splice(0)) await sql.end({ timeout: 1 }).catch(() => {});
    if (pg && !pg.running) await pg.start();
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await pg?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  /**
   * The shape both cap tests share: `limit` calls admitted out of the burst however it is split
   * between the processes and numbers, the rest overflowed; then an overflow transfer; then two
   * ended calls free exactly two slots. `scope` names the capped calls' logs.
   */
  async function capHolds(options: {
    name: string;
    limit: number;
    perServer: number;
    numbers: string[];
    /** Sets the cap (and no overflow) on the number or the tenant. */
    setCap: (tx: postgres.TransactionSql) => Promise<unknown>;
    setOverflow: (tx: postgres.TransactionSql, overflow: string) => Promise<unknown>;
    /** The column the capped calls' logs share, and its value. */
    scope: (sql: Sql) => Promise<{ column: "phone_number_id" | "tenant_id"; id: string }>;
  }) {
    const { sql, url } = await seeded(options.name, options.numbers);
    const servers = await Promise.all([startServer(serverEnv(url)), startServer(serverEnv(url))]);
    await configure(sql, servers, options.setCap);
    const { column, id } = await options.scope(sql);
    const scope = sql`${sql(column)} = ${id}`;
    const to = (i: number) => options.numbers[i % options.numbers.length]!;

    // 1. Everyone at once through both processes: `limit` admitted, the rest over capacity; what
    // the callers were answered and what the database holds are checked together, so a failure
    // shows both.
    const total = 2 * options.perServer;
    const first = await burst(servers, `${options.name}-a`, options.perServer, to);
    type Log = { provider_call_id: string; outcome: string; outcome_reason: string | null; ended_at: Date | null };
    const readLogs = () => sql<Log[]>`select provider_call_id, outcome, outcome_reason, ended_at from call_logs where ${scope}`;
    let logs = await readLogs();
    // Every answer came after its record was written, unless it was journaled: wait for those (bounded).
    for (const deadline = Date.now() + 10_000; logs.length < total && Date.now() < deadline; await Bun.sleep(100)) logs = await readLogs();
    const admitted = logs.filter((l) => l.outcome === "dispatched" && l.outcome_reason === null);
    const dispatchedAnswers = first.filter((a) => a.action === "dispatch").map((a) => a.callId);
    expect({
      answers: tally(first),
      records: logs.length,
      admitted: admitted.length,
      overCapacity: logs.filter((l) => l.outcome === "rejected" && l.outcome_reason === "over_capacity").length,
    }).toEqual({
      answers: { "200 dispatch - recorded": options.limit, "200 reject over_capacity recorded": total - options.limit },
      records: total,
      admitted: options.limit,
      overCapacity: total - options.limit,
    });
    for (const a of first.filter((a) => a.action === "dispatch")) expect(a.agent_name).toBe(AGENT);
    for (const a of first.filter((a) => a.action === "reject")) expect(a.agent_name).toBeNull();
    // Both processes took part in the race (admission is the database's, whichever process asks).
    expect(new Set(first.map((a) => a.server))).toEqual(new Set([1, 2]));
    expect(admitted.every((l) => l.ended_at === null)).toBe(true);
    // The answers and the records agree, call by call.
    expect(admitted.map((l) => l.provider_call_id).sort()).toEqual(dispatchedAnswers.sort());

    // 2. An overflow transfer: further calls are passed on, still over capacity.
    await configure(sql, servers, (tx) => options.setOverflow(tx, JSON.stringify({ action: "transfer", transfer_to: TRANSFER_TO })));
    const transferred = await burst(servers, `${options.name}-b`, 3, to);
    expect(tally(transferred)).toEqual({ "200 transfer over_capacity recorded": 6 });
    for (const a of transferred) expect({ agent: a.agent_name, to: a.transfer_to }).toEqual({ agent: null, to: TRANSFER_TO });
    const [stored] = await sql<{ n: number }[]>`
      select count(*)::int as n from call_logs
      where ${scope} and provider_call_id like ${`${options.name}-b-%`}
        and outcome = 'transferred' and outcome_reason = 'over_capacity' and transfer_to = ${TRANSFER_TO}`;
    expect(stored!.n).toBe(6);

    // 3. Two admitted calls end (as an end event would record it): exactly two more are admitted.
    const ending = admitted.slice(0, 2).map((l) => l.provider_call_id);
    const ended = await sql`update call_logs set ended_at = now(), status = 'completed' where provider_call_id in ${sql(ending)} and ended_at is null returning id`;
    expect(ended.length).toBe(2);
    const after = await burst(servers, `${options.name}-c`, 5, to);
    expect(tally(after)).toEqual({ "200 dispatch - recorded": 2, "200 transfer over_capacity recorded": 8 });
    const [open] = await sql<{ n: number }[]>`
      select count(*)::int as n from call_logs
      where ${scope} and ended_at is null and outcome = 'dispatched' and outcome_reason is null`;
    expect(open!.n).toBe(options.limit);
  }

  test("a number capped at 5, 30 calls to each of two processes at once: exactly 5 admitted, 55 over capacity; overflow transfers; two ended calls free two slots", async () => {
    const number = "+14155550100";
    await capHolds({
      name: "number_cap",
      limit: 5,
      perServer: 30,
      numbers: [number],
      setCap: (tx) => tx`update phone_numbers set max_concurrent_calls = 5, overflow = null where e164 = ${number}`,
      setOverflow: (tx, overflow) => tx`update phone_numbers set overflow = ${overflow}::text::jsonb where e164 = ${number}`,
      scope: async (sql) => ({ column: "phone_number_id", id: await numberId(sql, number) }),
    });
  }, 120_000);

  test("a tenant capped at 3 across two uncapped numbers, 10 calls to each of two processes at once: exactly 3 admitted; overflow transfers; two ended calls free two slots", async () => {
    const numbers = ["+14155550100", "+14155550101"];
    await capHolds({
      name: "tenant_cap",
      limit: 3,
      perServer: 10,
      numbers,
      setCap: (tx) => tx`update tenants set max_concurrent_calls = 3, overflow = null where name = 'Acme'`,
      setOverflow: (tx, overflow) => tx`update tenants set overflow = ${overflow}::text::jsonb where name = 'Acme'`,
      scope: async (sql) => ({ column: "tenant_id", id: await tenantId(sql) }),
    });
  }, 120_000);

  test("database down: a capped number's call is admitted and journaled (caps fail open), a blocklisted caller and a closed number are still rejected; the journaled call is written once it is back", async () => {
    const capped = "+14155550100";
    const plain = "+14155550101";
    const closed = "+14155550102";
    const blocked = "+12125550666";
    const { sql, url } = await seeded("outage", [capped, plain, closed]);
    // Default settings: a capped call waits for the database's decision while it is up; once it is
    // down (a refused connection) each record fails at once and the call is admitted.
    const server = await startServer(serverEnv(url));
    await configure(sql, [server], async (tx) => {
      await tx`update phone_numbers set max_concurrent_calls = 1 where e164 = ${capped}`;
      await tx`insert into blocklist_entries (tenant_id, pattern) select id, ${blocked} from tenants where name = 'Acme'`;
      // No opening hours on any day: closed whatever the clock says.
      const [schedule] = await tx<{ id: string }[]>`
        insert into schedules (tenant_id, name, time_zone, weekly_hours, after_hours)
        select id, 'never open', 'UTC', '{}'::jsonb, '{"action":"reject"}'::jsonb from tenants where name = 'Acme'
        returning id`;
      await tx`update phone_numbers set schedule_id = ${schedule!.id} where e164 = ${closed}`;
    });

    // With the database up: the cap's one slot is taken by an open call, and it is enforced.
    const holder = await call(server, 1, "outage-holder", capped);
    expect(holder).toMatchObject({ status: 200, action: "dispatch", reason: null, record: "recorded" });
    const refused = await call(server, 1, "outage-refused", capped);
    expect(refused).toMatchObject({ action: "reject", reason: "over_capacity", record: "recorded" });

    await pg!.stopImmediate();

    const admitted = await call(server, 1, "outage-capped", capped);
    expect(admitted).toMatchObject({ status: 200, action: "dispatch", reason: null, agent_name: AGENT, record: "pending" });
    const blocklisted = await call(server, 1, "outage-blocked", plain, blocked);
    expect(blocklisted).toMatchObject({ status: 200, action: "reject", reason: "blocklist", agent_name: null });
    const afterHours = await call(server, 1, "outage-closed", closed);
    expect(afterHours).toMatchObject({ status: 200, action: "reject", reason: "after_hours", agent_name: null });
    // The caller who is not blocked, to an open uncapped number, is dispatched as usual.
    const usual = await call(server, 1, "outage-usual", plain);
    expect(usual).toMatchObject({ status: 200, action: "dispatch", reason: null, agent_name: AGENT });

    await pg!.start();
    let rows: { provider_call_id: string; outcome: string; outcome_reason: string | null; agent_name: string | null }[] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await Bun.sleep(200)) {
      try {
        rows = await sql`
          select provider_call_id, outcome, outcome_reason, agent_name from call_logs
          where provider_call_id in ('outage-capped', 'outage-blocked', 'outage-closed', 'outage-usual')
          order by provider_call_id`;
      } catch {
        continue; // the connection is being re-established
      }
      if (rows.length === 4) break;
    }
    expect(rows.map((r) => ({ ...r }))).toEqual([
      { provider_call_id: "outage-blocked", outcome: "rejected", outcome_reason: "blocklist", agent_name: null },
      // Written as admitted, past the cap: the database could not count it when it came in.
      { provider_call_id: "outage-capped", outcome: "dispatched", outcome_reason: null, agent_name: AGENT },
      { provider_call_id: "outage-closed", outcome: "rejected", outcome_reason: "after_hours", agent_name: null },
      { provider_call_id: "outage-usual", outcome: "dispatched", outcome_reason: null, agent_name: AGENT },
    ]);
  }, 120_000);
});
