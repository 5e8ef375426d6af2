// The LiveKit webhook path under faults no in-process stand-in can fake: two real Switchboard
// server processes receiving the same signed deliveries at the same instant, and a real
// PostgreSQL crashed (stop -m immediate) under them while calls arrive. LiveKit is the stand-in
// of tests/support/fake-livekit.ts, which keeps rooms and their dispatches as livekit-server does.
//
// What a caller must notice: the campaign's agent, exactly one of it, outage or not. What LiveKit
// notices: every delivery answered 200, or 503 ("retry later") and then 200 on a redelivery, as
// livekit-server retries 5xx. What the business notices once the database is back: one call log
// per call, complete, and one lead per caller.
//
// Like tests/fault-injection.test.ts these tests bring their own database: they run only in the
// pass without DATABASE_URL, and only where PostgreSQL's server binaries are (pg_config on PATH).
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type DisposablePostgres, postgresBinDir, startDisposablePostgres } from "./support/disposable-postgres";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
import { type Call, EVENTS_PATH, type Json, newCall, plus, SYSTEM_DEFAULT_AGENT, sipCallerJoinedEvent, TEST_KEYS } from "./support/livekit-app";
import { agentJoined, signDelivery, sipParticipantLeft, type WebhookDelivery } from "./support/livekit-events";
import { type ServerProcess, seedDirectory, startServer } from "./support/server-process";

// examples/directory.json (what each test's database is seeded with): Acme Dental's campaign
// "Spring promo" is on +1 (415) 555-0100 and answered by acme-sales.
const DIRECTORY = "examples/directory.json";
const CAMPAIGN_NUMBER = "+14155550100";
const CAMPAIGN_NAME = "Spring promo";
const CAMPAIGN_AGENT = "acme-sales";
const CALLERS = ["+12125550161", "+12125550162", "+12125550163", "+12125550164", "+12125550165"];

/** LiveKit tries a delivery 5 times in all (livekit/protocol webhook, go-retryablehttp's defaults). */
const MAX_TRIES = 5;
/** Between our redeliveries: short, to keep the file fast (LiveKit waits 1, 2, 4, 8 s). */
const REDELIVERY_PAUSE_MS = 100;

const skip = Boolean(process.env.DATABASE_URL) || postgresBinDir() === null;

interface Server {
  name: string;
  process: ServerProcess;
}

/** One answer to one POST of a delivery. */
interface Answer {
  server: string;
  status: number;
  body: Json | null;
  error?: string;
}

/** Every answer one delivery got, the first try first. */
interface Delivered {
  label: string;
  answers: Answer[];
}

/** POSTs the signed bytes exactly as they are, with LiveKit's headers. */
async function post(server: Server, delivery: WebhookDelivery): Promise<Answer> {
  try {
    const res = await fetch(`${server.process.url}${EVENTS_PATH}`, {
      method: "POST",
      headers: delivery.headers,
      body: delivery.body,
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    let body: Json | null;
    try {
      body = JSON.parse(text) as Json;
    } catch {
      body = { unparsed: text.slice(0, 200) };
    }
    return { server: server.name, status: res.status, body };
  } catch (error) {
    return { server: server.name, status: 0, body: null, error: (error as Error).message };
  }
}

/**
 * One delivery as LiveKit makes it: POSTed to `first`; while it is answered 503, redelivered (to
 * either server: a load balancer picks one) after a short pause, up to MAX_TRIES tries in all.
 */
async function deliver(label: string, delivery: WebhookDelivery, first: Server, servers: Server[]): Promise<Delivered> {
  const answers = [await post(first, delivery)];
  while (answers.at(-1)!.status === 503 && answers.length < MAX_TRIES) {
    await Bun.sleep(REDELIVERY_PAUSE_MS);
    answers.push(await post(servers[Math.floor(Math.random() * servers.length)]!, delivery));
  }
  return { label, answers };
}

/** The same delivery to every server at the same instant (LiveKit's webhook URL behind two processes, or two URLs). */
async function deliverToAll(label: string, delivery: WebhookDelivery, servers: Server[]): Promise<Delivered[]> {
  return Promise.all(servers.map((server) => deliver(`${label} -> ${server.name}`, delivery, server, servers)));
}

const summary = (d: Delivered) =>
  `${d.label}: ${d.answers.map((a) => `${a.server} ${a.status}${a.error ? ` (${a.error})` : ""} ${JSON.stringify(a.body).slice(0, 160)}`).join(" | ")}`;

/** What the servers logged about a call, for failure messages only (never asserted on). */
function logsAbout(servers: Server[], call: Call): string {
  return servers
    .flatMap((s) =>
      s.process.logs
        .filter((l) => l.room === call.room || l.call_id === call.callId)
        .map((l) => `${s.name}: ${JSON.stringify({ msg: l.msg, event: l.event, err: (l.err as Json | undefined)?.message, action: l.action })}`),
    )
    .join("\n")
    .slice(0, 2000);
}

/** The named dispatches in the call's room as LiveKit lists them: the agents sent to the caller. */
const namedDispatches = (fake: FakeLiveKit, call: Call) => fake.agentDispatches(call.room).map((d) => d.agentName);

interface CallLogRow {
  provider_call_id: string;
  status: string;
  agent_name: string;
  caller_joined_at: Date | null;
  answered_at: Date | null;
  ended_at: Date | null;
  dispatch_id: string | null;
}

async function callLogRows(sql: postgres.Sql, calls: Call[]): Promise<CallLogRow[]> {
  const ids = calls.map((c) => c.callId);
  return [
    ...(await sql<CallLogRow[]>`
      select provider_call_id, status, agent_name, caller_joined_at, answered_at, ended_at, dispatch_id
      from call_logs where provider_call_id in ${sql(ids)}`),
  ];
}

describe.skipIf(skip)("fault injection on the LiveKit webhook path: two processes, a crashed PostgreSQL", () => {
  let pg: DisposablePostgres | undefined;
  let fake: FakeLiveKit | undefined;
  // Made in beforeAll: the describe body runs even when the file is skipped, the hooks do not.
  let scratch = "";
  let dirs = 0;
  const freshDir = (name: string) => mkdtempSync(join(scratch, `${name}-${++dirs}-`));
  /** The servers this file started; killed after each test, whatever happened. */
  const started: ServerProcess[] = [];
  const sqls: postgres.Sql[] = [];

  /** A new database on the disposable server, migrated and seeded with examples/directory.json. */
  async function seededDatabase(name: string): Promise<string> {
    const url = await pg!.createDatabase(name);
    await seedDirectory({ DATABASE_URL: url, DATA_DIR: freshDir("seed"), LOG_LEVEL: "warn" }, DIRECTORY);
    return url;
  }

  async function server(name: string, url: string): Promise<Server> {
    const process = await startServer({
      DATABASE_URL: url,
      DATA_DIR: freshDir(name),
      LOG_LEVEL: "info",
      SYSTEM_DEFAULT_AGENT,
      LIVEKIT_URL: fake!.url,
      LIVEKIT_API_KEY: TEST_KEYS.apiKey,
      LIVEKIT_API_SECRET: TEST_KEYS.apiSecret,
      LIVEKIT_DISPATCH_RETRY_BASE_MS: "5",
    });
    started.push(process);
    return { name, process };
  }

  function connect(url: string): postgres.Sql {
    const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
    sqls.push(sql);
    return sql;
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "switchboard-livekit-faults-"));
    fake = await startFakeLiveKit(TEST_KEYS);
    pg = await startDisposablePostgres();
  }, 60_000);

  afterEach(async () => {
    // Whatever a test left behind: its servers and connections gone, the database up for the next.
    const servers = started.splice(0);
    for (const p of servers) p.kill("SIGKILL");
    await Promise.all(servers.map((p) => p.exited));
    await Promise.all(sqls.splice(0).map((sql) => sql.end({ timeout: 1 }).catch(() => {})));
    if (pg) {
      await pg.thaw();
      if (!pg.running) await pg.start();
    }
  }, 60_000);

  afterAll(async () => {
    const left = started.splice(0);
    for (const p of left) p.kill("SIGKILL");
    await Promise.all(left.map((p) => p.exited));
    await Promise.all(sqls.splice(0).map((sql) => sql.end({ timeout: 1 }).catch(() => {})));
    await fake?.close();
    await pg?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  test("Two server processes receive the same LiveKit events at once: one call log, one lead and one agent dispatch per call", async () => {
    const url = await seededDatabase("livekit_two_servers");
    const servers = await Promise.all([server("server-1", url), server("server-2", url)]);
    const began = performance.now();

    // 20 calls from 5 callers, all at once; each room's events one after the other (LiveKit
    // keeps one queue per room), each event to both processes at the same instant.
    const calls = Array.from({ length: 20 }, (_, i) => newCall({ from: CALLERS[i % CALLERS.length]!, to: CAMPAIGN_NUMBER }));
    const delivered: Delivered[] = [];
    await Promise.all(
      calls.map(async (call, i) => {
        const join = await signDelivery(sipCallerJoinedEvent(fake!, call), TEST_KEYS);
        delivered.push(...(await deliverToAll(`call ${i} caller joined`, join, servers)));
        const agent = await signDelivery(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) }), TEST_KEYS);
        delivered.push(...(await deliverToAll(`call ${i} agent joined`, agent, servers)));
        const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 40_000) }), TEST_KEYS);
        delivered.push(...(await deliverToAll(`call ${i} caller left`, left, servers)));
      }),
    );
    const retried = delivered.filter((d) => d.answers.length > 1);
    console.log(
      `[fault-injection-livekit] two servers: ${calls.length} calls, ${delivered.length} deliveries in ` +
        `${(performance.now() - began).toFixed(0)} ms; ${retried.length} answered 503 first and redelivered ` +
        `(${retried.reduce((n, d) => n + d.answers.length - 1, 0)} redeliveries)`,
    );

    // LiveKit was told "done" (200) or "retry later" (503) every time, and every delivery was
    // done within LiveKit's tries.
    const wrongAnswers = delivered.filter((d) => d.answers.some((a) => a.status !== 200 && a.status !== 503)).map(summary);
    expect(wrongAnswers).toEqual([]);
    const neverDone = delivered.filter((d) => d.answers.at(-1)!.status !== 200).map(summary);
    expect(neverDone).toEqual([]);

    // Each caller got exactly one agent, the campaign's.
    const wrongDispatches = calls
      .map((call, i) => ({ i, call, agents: namedDispatches(fake!, call) }))
      .filter(({ agents }) => agents.length !== 1 || agents[0] !== CAMPAIGN_AGENT)
      .map(({ i, call, agents }) => `call ${i} (${call.room}): dispatched ${JSON.stringify(agents)}\n${logsAbout(servers, call)}`);
    expect(wrongDispatches).toEqual([]);

    // One call log per call, completed, with the campaign's agent; one lead per caller. A delivery
    // answered "journaled" (the record took longer than CALL_RECORD_WAIT_MS, even with the
    // database up) is written by the journal's replay: wait for it (bounded), then check.
    const sql = connect(url);
    const settled = performance.now();
    let rows: CallLogRow[] = [];
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await Bun.sleep(200)) {
      rows = await callLogRows(sql, calls);
      if (rows.length >= calls.length && rows.every((r) => r.status === "completed")) break;
    }
    console.log(
      `[fault-injection-livekit] two servers: ${delivered.filter((d) => d.answers.at(-1)!.body?.result === "journaled").length} deliveries ` +
        `answered "journaled" with the database up; call logs settled ${(performance.now() - settled).toFixed(0)} ms after the last answer`,
    );
    const perCall = calls.map((call, i) => {
      const mine = rows.filter((r) => r.provider_call_id === call.callId);
      return { i, call, mine };
    });
    const wrongLogs = perCall
      .filter(({ mine }) => mine.length !== 1 || mine[0]!.status !== "completed" || mine[0]!.agent_name !== CAMPAIGN_AGENT)
      .map(({ i, mine }) => `call ${i}: ${JSON.stringify(mine.map((r) => ({ status: r.status, agent: r.agent_name })))}`);
    expect(wrongLogs).toEqual([]);

    const leads = await sql<{ campaign: string | null; phone_number: string; n: number }[]>`
      select c.name as campaign, l.phone_number, count(*)::int as n
      from leads l left join campaigns c on c.id = l.campaign_id
      where l.phone_number in ${sql(CALLERS)}
      group by c.name, l.phone_number order by l.phone_number`;
    expect(leads.map((l) => ({ ...l }))).toEqual(CALLERS.map((phone_number) => ({ campaign: CAMPAIGN_NAME, phone_number, n: 1 })));
  }, 60_000);

  test("A database outage during the calls: the caller still gets the campaign's agent, both webhooks are answered 200 (journaled), and the records are complete once the database is back", async () => {
    const url = await seededDatabase("livekit_outage");
    const one = await server("server-1", url);
    const servers = [one];
    const calls = CALLERS.map((from) => newCall({ from, to: CAMPAIGN_NUMBER }));

    await pg!.stopImmediate();
    const joins = await Promise.all(
      calls.map(async (call, i) => post(one, await signDelivery(sipCallerJoinedEvent(fake!, call), TEST_KEYS)).then((a) => ({ i, call, a }))),
    );
    const wrongJoins = joins
      .filter(({ a }) => a.status !== 200 || a.body?.result !== "journaled")
      .map(({ i, call, a }) => `call ${i} join: ${a.status} ${a.error ?? ""} ${JSON.stringify(a.body)}\n${logsAbout(servers, call)}`);
    expect(wrongJoins).toEqual([]);
    // The caller is not kept waiting for the database: the campaign's agent is in the room now.
    const agentsDuringOutage = calls.map((call) => namedDispatches(fake!, call));
    expect(agentsDuringOutage).toEqual(calls.map(() => [CAMPAIGN_AGENT]));

    const leaves = await Promise.all(
      calls.map(async (call, i) =>
        post(one, await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 20_000) }), TEST_KEYS)).then((a) => ({
          i,
          call,
          a,
        })),
      ),
    );
    const wrongLeaves = leaves
      .filter(({ a }) => a.status !== 200 || a.body?.result !== "journaled")
      .map(({ i, call, a }) => `call ${i} leave: ${a.status} ${a.error ?? ""} ${JSON.stringify(a.body)}\n${logsAbout(servers, call)}`);
    expect(wrongLeaves).toEqual([]);

    await pg!.start();
    const back = performance.now();
    const sql = connect(url);
    const complete = (r: CallLogRow) =>
      r.caller_joined_at !== null && r.ended_at !== null && r.status === "abandoned" && r.agent_name === CAMPAIGN_AGENT;
    let rows: CallLogRow[] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await Bun.sleep(200)) {
      try {
        rows = await callLogRows(sql, calls);
      } catch {
        continue; // the database may still be starting
      }
      if (rows.length >= calls.length && rows.every(complete)) break;
    }
    console.log(
      `[fault-injection-livekit] outage: ${rows.filter(complete).length} of ${calls.length} call logs complete ` +
        `${(performance.now() - back).toFixed(0)} ms after the database was back`,
    );

    // Once the database is back: each call once, complete, abandoned (no agent joined), with the
    // agent the caller got.
    const records = calls.map((call) =>
      rows
        .filter((r) => r.provider_call_id === call.callId)
        .map((r) => ({
          status: r.status,
          agent_name: r.agent_name,
          caller_joined: r.caller_joined_at !== null,
          ended: r.ended_at !== null,
        })),
    );
    expect(records).toEqual(calls.map(() => [{ status: "abandoned", agent_name: CAMPAIGN_AGENT, caller_joined: true, ended: true }]));
    // Still exactly one agent per caller: the replay of the journaled joins sends none, and
    // records on each call log the dispatch made while it could not be written.
    expect(calls.map((call) => namedDispatches(fake!, call))).toEqual(calls.map(() => [CAMPAIGN_AGENT]));
    const dispatchIds = calls.map((call) => rows.find((r) => r.provider_call_id === call.callId)?.dispatch_id);
    const sentIds = calls.map((call) => fake!.agentDispatches(call.room).find((d) => d.agentName !== "")?.id);
    expect(dispatchIds).toEqual(sentIds);
    const leads = await sql<{ phone_number: string; n: number }[]>`
      select phone_number, count(*)::int as n from leads where phone_number in ${sql(CALLERS)}
      group by phone_number order by phone_number`;
    expect(leads.map((l) => ({ ...l }))).toEqual(CALLERS.map((phone_number) => ({ phone_number, n: 1 })));
  }, 60_000);

  // Only the sequential case. During an outage there is no shared claim (the event claim and the
  // call log's dispatch claim both live in the database); LiveKit's list of the room's dispatches
  // is the only guard, and a list-then-create is not atomic: two processes receiving the very same
  // join at the same instant may both find no named dispatch and both create one. LiveKit sends a
  // delivery to one URL at a time and redelivers only after an answer or a timeout, so the
  // sequential case (a redelivery that reaches the other process) is the one that happens.
  test("A redelivery to the other process during an outage does not dispatch a second agent", async () => {
    const url = await seededDatabase("livekit_outage_redelivery");
    const [a, b] = await Promise.all([server("server-A", url), server("server-B", url)]);
    const call = newCall({ from: CALLERS[0]!, to: CAMPAIGN_NUMBER });

    await pg!.stopImmediate();
    const join = await signDelivery(sipCallerJoinedEvent(fake!, call), TEST_KEYS);
    const first = await post(a, join);
    expect({ status: first.status, result: first.body?.result }).toEqual({ status: 200, result: "journaled" });
    expect(namedDispatches(fake!, call)).toEqual([CAMPAIGN_AGENT]);

    // LiveKit did not hear the 200 (a timeout, a dropped connection) and delivers again; this
    // time the load balancer picks the other process.
    const again = await post(b, join);
    expect([200, 503]).toContain(again.status);
    const creates = fake!.calls("CreateDispatch").filter((c) => c.request?.room === call.room);
    expect({ agents: namedDispatches(fake!, call), creates: creates.length }).toEqual({ agents: [CAMPAIGN_AGENT], creates: 1 });
    console.log(`[fault-injection-livekit] redelivery during the outage: server-A ${first.status} ${first.body?.result}, server-B ${again.status} ${again.body?.result}`);
  }, 60_000);
});
