// Outbound webhooks (issue 18) delivered by real server processes sharing one real PostgreSQL.
// Every process runs the delivery worker; a delivery is claimed by one of them at a time
// (FOR UPDATE SKIP LOCKED, then a lease). What a tenant's receiver must see holds across
// processes and across their deaths: every event arrives, signed with the endpoint's secret,
// always under the one webhook-id its delivery has (msg_<delivery id>), so a receiver that
// deduplicates by webhook-id sees each event once. In a run without faults nothing is sent twice;
// a process killed mid-delivery (SIGKILL) leaves its claims to the other once their lease lapses;
// a process stopped gracefully (SIGTERM) gives them back at once, untried.
//
// Which process holds which delivery is made certain by freezing the other process (SIGSTOP)
// before any event exists: only the process to be killed or stopped can claim, and the frozen
// one, thawed (SIGCONT) after, must deliver everything. The loopback receiver holds its answers
// (longer than WEBHOOK_TIMEOUT) so that the killed process's sends are in flight when it dies. A
// send lost with its process shows as a webhook-id received more often than the database
// recorded attempts for it: the dead process sent it and never wrote down what came of it.
//
// Like policies-processes.test.ts, these bring their own database (a disposable PostgreSQL): they
// run only in the suite's pass without DATABASE_URL, and need PostgreSQL's server binaries.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { type DisposablePostgres, postgresBinDir, startDisposablePostgres } from "./support/disposable-postgres";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";
import { createAdminKey, killAllServers, type ServerProcess, seedDirectory, startServer } from "./support/server-process";
import { type ReceivedWebhook, startWebhookReceiver, type WebhookReceiver } from "./support/webhook-receiver";

const skip = Boolean(process.env.DATABASE_URL) || postgresBinDir() === null;

const AGENT = "acme-agent";
const NUMBER = "+14155550100";
/** Longer than any attempt in these tests; the lease is 2 × this + 1 s (worker.ts). */
const WEBHOOK_TIMEOUT_MS = 2_000;
/** How long the receiver sits on a request it is told to hold: past WEBHOOK_TIMEOUT. */
const HOLD_MS = 10_000;

type Sql = ReturnType<typeof postgres>;

/** One delivery as the database holds it, with the event it carries named as the receiver sees it. */
interface DeliveryRow {
  id: string;
  /** "call.started <call_id>" or "lead.created <caller>". */
  event: string;
  status: string;
  /** Attempts recorded in webhook_attempts. */
  recorded: number;
  leased_until: Date | null;
  last_error: string | null;
}

/** The event a receiver got, named like DeliveryRow.event. */
const eventOf = (w: ReceivedWebhook) => `${w.payload.type} ${w.payload.data.provider_call_id ?? w.payload.data.phone_number}`;

/** The events the calls to `callers` (call id → caller) make: call.started, and lead.created for each new caller. */
const expectedEvents = (calls: Map<string, string>) =>
  [...calls].flatMap(([callId, caller]) => [`call.started ${callId}`, `lead.created ${caller}`]).sort();

const counts = (values: string[]) => {
  const n = new Map<string, number>();
  for (const v of values) n.set(v, (n.get(v) ?? 0) + 1);
  return n;
};

describe.skipIf(skip)("outbound webhooks delivered by real server processes on one PostgreSQL", () => {
  let pg: DisposablePostgres | undefined;
  // Made in beforeAll: the describe body runs even when the file is skipped, the hooks do not.
  let scratch = "";
  let dirs = 0;
  const freshDir = (name: string) => mkdtempSync(join(scratch, `${name}-${++dirs}-`));
  const connections: Sql[] = [];
  const receivers: WebhookReceiver[] = [];
  let callers = 0;

  const serverEnv = (url: string) => ({
    DATABASE_URL: url,
    DATA_DIR: freshDir("data"),
    LOG_LEVEL: "warn",
    SYSTEM_DEFAULT_AGENT,
    WEBHOOK_DELIVERY: "true",
    WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOK_POLL_INTERVAL: "50ms",
    WEBHOOK_RETRY_SCHEDULE: "100ms,100ms,100ms,100ms,100ms,100ms",
    WEBHOOK_TIMEOUT: `${WEBHOOK_TIMEOUT_MS}ms`,
  });

  /** A new database on the disposable server, migrated and seeded with Acme; an admin key; a connection to it. */
  async function seeded(name: string): Promise<{ url: string; sql: Sql; key: string; tenantId: string }> {
    const url = await pg!.createDatabase(name);
    const file = join(scratch, `directory-${name}.json`);
    writeFileSync(file, JSON.stringify({ tenants: [{ name: "Acme", agents: [{ name: AGENT, default: true }], phone_numbers: [{ number: NUMBER }] }] }));
    await seedDirectory({ DATABASE_URL: url, DATA_DIR: freshDir("seed"), LOG_LEVEL: "warn" }, file);
    const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
    connections.push(sql);
    const [tenant] = await sql<{ id: string }[]>`select id from tenants where name = 'Acme'`;
    return { url, sql, key: createAdminKey({ DATABASE_URL: url, DATA_DIR: freshDir("keys") }, "webhooks-processes"), tenantId: tenant!.id };
  }

  function receiver(): WebhookReceiver {
    const r = startWebhookReceiver();
    receivers.push(r);
    return r;
  }

  /** POST /api/v1/webhook-endpoints on `server`: the endpoint's id and its secret (answered this once). */
  async function createEndpoint(server: ServerProcess, key: string, tenantId: string, url: string): Promise<{ id: string; secret: string }> {
    const res = await server.post("/api/v1/webhook-endpoints", { tenant_id: tenantId, url }, { authorization: `Bearer ${key}` });
    const body = (await res.json()) as { id: string; secret?: unknown };
    expect({ status: res.status, secret: typeof body.secret === "string" && body.secret.startsWith("whsec_") }).toEqual({ status: 201, secret: true });
    return { id: body.id, secret: body.secret as string };
  }

  /**
   * `perServer` sip-inbound calls to each of `servers`, all in flight together, each from a new
   * caller. Every call must be dispatched with its record written or journaled; answers call id → caller.
   */
  async function placeCalls(servers: ServerProcess[], prefix: string, perServer: number): Promise<Map<string, string>> {
    const calls = new Map<string, string>();
    const pending: Promise<string>[] = [];
    for (let i = 0; i < perServer; i++) {
      for (const [s, server] of servers.entries()) {
        const callId = `${prefix}-s${s + 1}-${i}`;
        const caller = `+1212555${String(1000 + ++callers)}`;
        calls.set(callId, caller);
        pending.push(
          server
            .post(SIP_INBOUND_PATH, { call_id: callId, from_number: caller, to_number: NUMBER })
            .then(async (res) => {
              const body = (await res.json().catch(() => ({}))) as { action?: string; record?: string };
              // Pending: journaled, the database slower than CALL_RECORD_WAIT_MS (common on a small
              // machine); written all the same, with its events, by the write or its replay.
              return `${res.status} ${body.action} ${body.record === "pending" ? "recorded" : body.record}`;
            })
            .catch((error: Error) => `failed: ${error.message}`),
        );
      }
    }
    const answers = await Promise.all(pending);
    expect(Object.fromEntries(counts(answers))).toEqual({ "200 dispatch recorded": calls.size });
    return calls;
  }

  async function deliveryRows(sql: Sql, endpointId: string): Promise<DeliveryRow[]> {
    return sql<DeliveryRow[]>`
      select d.id, o.type || ' ' || coalesce(o.data->>'provider_call_id', o.data->>'phone_number') as event, d.status,
             (select count(*)::int from webhook_attempts a where a.delivery_id = d.id) as recorded, d.leased_until, d.last_error
      from webhook_deliveries d join outbox_events o on o.id = d.event_id
      where d.endpoint_id = ${endpointId}
      order by o.id`;
  }

  /** What is still missing for `expected` to be delivered: rows, deliveries, receipts. Empty once all is there. */
  function missing(rows: DeliveryRow[], received: ReceivedWebhook[], expected: string[]) {
    const inDatabase = new Set(rows.map((r) => r.event));
    const receivedEvents = new Set(received.map(eventOf));
    return {
      notInOutbox: expected.filter((e) => !inDatabase.has(e)),
      notDelivered: rows.filter((r) => r.status !== "delivered").map((r) => `${r.event}: ${r.status}, ${r.recorded} attempts, ${r.last_error ?? "-"}`),
      notReceived: expected.filter((e) => !receivedEvents.has(e)),
    };
  }

  /** Polls (bounded) until every expected event is delivered in the database and was received; fails saying what is missing. */
  async function allDelivered(sql: Sql, endpointId: string, r: WebhookReceiver, expected: string[], ms = 25_000): Promise<DeliveryRow[]> {
    let rows: DeliveryRow[] = [];
    for (const deadline = Date.now() + ms; ; await Bun.sleep(100)) {
      rows = await deliveryRows(sql, endpointId);
      const gap = missing(rows, r.received, expected);
      if (gap.notInOutbox.length + gap.notDelivered.length + gap.notReceived.length === 0) return rows;
      if (Date.now() > deadline) {
        expect({ after: `${ms} ms`, ...gap }).toEqual({ after: `${ms} ms`, notInOutbox: [], notDelivered: [], notReceived: [] });
      }
    }
  }

  /**
   * What at-least-once delivery promises, whatever happened to the processes: one delivery per
   * event (the endpoint is the tenant's only one), every received request signed with the
   * secret and carrying the webhook-id of its event's delivery, one webhook-id per event, the same
   * body under an id every time it came. Answers the receipts per webhook-id.
   */
  function checkAtLeastOnce(r: WebhookReceiver, secret: string, rows: DeliveryRow[], expected: string[]): Map<string, number> {
    expect(rows.map((row) => row.event).sort()).toEqual(expected);
    expect(r.received.filter((w) => !r.verifies(secret, w)).map((w) => w.id)).toEqual([]);
    const idOf = new Map(rows.map((row) => [row.event, `msg_${row.id}`]));
    // Every receipt has its event's id: no unknown id, never a second id for an event.
    const wrongIds = r.received.filter((w) => idOf.get(eventOf(w)) !== w.id).map((w) => `${eventOf(w)} came as ${w.id}, its delivery is ${idOf.get(eventOf(w))}`);
    expect(wrongIds).toEqual([]);
    const idsPerEvent = new Map<string, Set<string>>();
    for (const w of r.received) idsPerEvent.set(eventOf(w), (idsPerEvent.get(eventOf(w)) ?? new Set()).add(w.id));
    expect([...idsPerEvent].filter(([, ids]) => ids.size !== 1).map(([event, ids]) => `${event}: ${[...ids].join(", ")}`)).toEqual([]);
    // A repeated send is the same message: same bytes, so the same event as the receiver stored it.
    const bodies = new Map<string, Set<string>>();
    for (const w of r.received) bodies.set(w.id, (bodies.get(w.id) ?? new Set()).add(w.body));
    expect([...bodies].filter(([, b]) => b.size !== 1).map(([id]) => id)).toEqual([]);
    return counts(r.received.map((w) => w.id));
  }

  /**
   * Polls (bounded) until all `events` are in the outbox (the calls' records are written, none
   * only in a journal) and every delivery claimed so far is at the receiver, being held there: in
   * flight. Only one process may be able to claim.
   */
  async function claimsInFlight(sql: Sql, endpointId: string, r: WebhookReceiver, events: number): Promise<void> {
    let state = { outbox: 0, leased: 0, received: 0 };
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await Bun.sleep(10)) {
      const rows = await sql<{ id: string; leased: boolean }[]>`
        select id, status = 'pending' and leased_until > now() as leased from webhook_deliveries where endpoint_id = ${endpointId}`;
      const leased = rows.filter((row) => row.leased).map((row) => `msg_${row.id}`);
      const got = new Set(r.received.map((w) => w.id));
      state = { outbox: rows.length, leased: leased.length, received: got.size };
      if (rows.length === events && leased.length > 0 && leased.every((id) => got.has(id))) return;
    }
    throw new Error(`not every event in the outbox with the claimed deliveries at the receiver within 15 s: ${JSON.stringify({ expected: events, ...state })}`);
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "switchboard-webhooks-"));
    pg = await startDisposablePostgres();
  }, 60_000);

  afterEach(async () => {
    await killAllServers();
    for (const sql of connections.splice(0)) await sql.end({ timeout: 1 }).catch(() => {});
    for (const r of receivers.splice(0)) await r.close().catch(() => {});
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await pg?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  test("two processes delivering at once, 40 calls through both: every call.started and lead.created arrives signed, each delivery exactly once under its own webhook-id", async () => {
    const { url, sql, key, tenantId } = await seeded("no_fault");
    const hooks = receiver();
    const servers = await Promise.all([startServer(serverEnv(url)), startServer(serverEnv(url))]);
    const endpoint = await createEndpoint(servers[0]!, key, tenantId, hooks.url);

    const calls = await placeCalls(servers, "calm", 20);
    const expected = expectedEvents(calls);
    expect(expected.length).toBe(80);
    await allDelivered(sql, endpoint.id, hooks, expected);
    // Anything sent twice would come in soon after the rest, and a journaled call's replay (every
    // second) must find its record there and add no event: a grace before counting.
    await Bun.sleep(1_500);
    const rows = await deliveryRows(sql, endpoint.id);

    const receipts = checkAtLeastOnce(hooks, endpoint.secret, rows, expected);
    // No fault, no repeat: as many webhook-ids as deliveries, each received once, in one attempt.
    expect({ deliveries: rows.length, webhookIds: receipts.size, received: hooks.received.length }).toEqual({ deliveries: 80, webhookIds: 80, received: 80 });
    expect([...receipts].filter(([, n]) => n !== 1)).toEqual([]);
    expect(rows.filter((row) => row.recorded !== 1).map((row) => `${row.event}: ${row.recorded} attempts`)).toEqual([]);
  }, 60_000);

  /**
   * Two processes, the survivor frozen (SIGSTOP) so it can claim nothing: 12 calls through the
   * other, whose attempts the receiver holds open, so that they are in flight when a test acts.
   */
  async function deliveriesInFlight(name: string) {
    const { url, sql, key, tenantId } = await seeded(name);
    const hooks = receiver();
    const [leaving, survivor] = await Promise.all([startServer(serverEnv(url)), startServer(serverEnv(url))]);
    survivor!.kill("SIGSTOP");
    const endpoint = await createEndpoint(leaving!, key, tenantId, hooks.url);
    hooks.fallback = { status: 200, delayMs: HOLD_MS };
    const expected = expectedEvents(await placeCalls([leaving!], name, 12));
    await claimsInFlight(sql, endpoint.id, hooks, expected.length);
    /** The receiver answers at once and the survivor is thawed: every event arrives, each id at least once. */
    const survivorTakesOver = async () => {
      hooks.fallback = 200;
      survivor!.kill("SIGCONT");
      const rows = await allDelivered(sql, endpoint.id, hooks, expected);
      const receipts = checkAtLeastOnce(hooks, endpoint.secret, rows, expected);
      expect(receipts.size).toBe(rows.length);
      return { rows, receipts };
    };
    return { sql, hooks, endpoint, expected, leaving: leaving!, survivorTakesOver };
  }

  test("a process killed (SIGKILL) with deliveries in flight: the other takes them over once their lease lapses, same webhook-ids, nothing lost", async () => {
    const { sql, hooks, endpoint, expected, leaving: doomed, survivorTakesOver } = await deliveriesInFlight("sigkill");
    doomed.kill("SIGKILL");
    await doomed.exited;
    const sentBeforeKill = new Set(hooks.received.map((w) => w.id));

    // What the dead process held: claimed, sent, nothing recorded of that send, the lease still on.
    const held = (await deliveryRows(sql, endpoint.id)).filter((row) => row.leased_until && row.leased_until > new Date());
    const inFlight = held.filter((row) => sentBeforeKill.has(`msg_${row.id}`));
    expect(inFlight.length).toBeGreaterThan(0);

    const { rows, receipts } = await survivorTakesOver();

    const final = new Map(rows.map((row) => [row.id, row]));
    for (const row of inFlight) {
      const id = `msg_${row.id}`;
      const got = hooks.received.filter((w) => w.id === id);
      expect({
        event: row.event,
        // Sent by the dead process (unrecorded) and again by the survivor: more receipts than attempts recorded.
        sentMoreThanRecorded: got.length > final.get(row.id)!.recorded,
        // The survivor waited for the lease: its send came after the lease's end.
        resentAfterLease: got.some((w) => w.receivedAt >= row.leased_until!.getTime() - 20),
      }).toEqual({ event: row.event, sentMoreThanRecorded: true, resentAfterLease: true });
    }
  }, 60_000);

  test("a process stopped (SIGTERM) with deliveries in flight gives them back untried: the other delivers them under the same webhook-ids, nothing lost", async () => {
    const { sql, hooks, endpoint, expected, leaving: stopping, survivorTakesOver } = await deliveriesInFlight("sigterm");
    stopping.kill("SIGTERM");
    const code = await Promise.race([stopping.exited, Bun.sleep(15_000).then(() => "still running 15 s after SIGTERM")]);
    expect(code).toBe(0);

    // Given back: no delivery is held by the stopped process, none of its cut-short sends was
    // recorded as an attempt, and those are pending for whoever polls next.
    const before = await deliveryRows(sql, endpoint.id);
    const sentCounts = counts(hooks.received.map((w) => w.id));
    expect(before.filter((row) => row.leased_until !== null).map((row) => row.event)).toEqual([]);
    const givenBack = before.filter((row) => (sentCounts.get(`msg_${row.id}`) ?? 0) > row.recorded);
    expect(givenBack.length).toBeGreaterThan(0);
    expect(givenBack.filter((row) => row.status !== "pending").map((row) => row.event)).toEqual([]);

    const { rows, receipts } = await survivorTakesOver();
    // Each was received again, under its id, and that time it was recorded.
    const final = new Map(rows.map((row) => [row.id, row]));
    expect(givenBack.filter((row) => (receipts.get(`msg_${row.id}`) ?? 0) < 2 || final.get(row.id)!.recorded < 1).map((row) => row.event)).toEqual([]);
  }, 60_000);
});
