// The call recorder (src/calls/recorder.ts): concurrent calls' records share one statement
// (group commit). What a caller and an operator notice: every call is recorded once, each caller
// is one lead whose last call is the newest, the first delivery of a call id wins, one bad record
// fails only itself, and concurrent calls take fewer commits than calls. Runs on PGlite and on
// the PostgreSQL named by DATABASE_URL (the two-process test only there).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { eq, type SQL, sql } from "drizzle-orm";
import { recordCallEnded } from "../src/calls/lifecycle";
import { phoneNumberReader } from "../src/calls/phone";
import { type CallRecorder, createCallRecorder, type RecorderOptions, type StoredCall, type WrittenCall } from "../src/calls/recorder";
import {
  type CallDecision,
  chooseAgent,
  type InboundCall,
  type JournaledCall,
  type LateRecords,
  lateRecords,
  replayCallRecord,
  routeInboundCall,
  type RoutingDeps,
} from "../src/calls/service";
import { type Database, openDatabase } from "../src/db/client";
import { constraintViolation, isDatabaseUnavailable } from "../src/db/errors";
import { callLogs, leads } from "../src/db/schema";
import { createLogger } from "../src/logger";
import { openTestContext, openTestDatabase, type TestContext, type TestDatabase } from "./support/context";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";

const json = (res: Response): Promise<any> => res.json();

const LIVE_NUMBER = "+14155550100"; // Acme, campaign "Live" (acme-sales)
const PLAIN_NUMBER = "+14155550101"; // Acme, no campaign (acme-default)
const OTHER_NUMBER = "+14155550400"; // Other (other-default)
const DOOMED_NUMBER = "+14155550500"; // Doomed: deleted while its calls are being decided
const UNKNOWN_NUMBER = "+14155559999";

const directory = {
  tenants: [
    {
      name: "Acme",
      agents: [{ name: "acme-default", default: true }, { name: "acme-sales" }],
      campaigns: [{ name: "Live", agent: "acme-sales" }],
      phone_numbers: [{ number: LIVE_NUMBER, campaign: "Live" }, { number: PLAIN_NUMBER }],
    },
    {
      name: "Other",
      agents: [{ name: "other-default", default: true }],
      phone_numbers: [{ number: OTHER_NUMBER }],
    },
    {
      name: "Doomed",
      agents: [{ name: "doomed-default", default: true }, { name: "doomed-sales" }],
      campaigns: [{ name: "Doomed campaign", agent: "doomed-sales" }],
      phone_numbers: [{ number: DOOMED_NUMBER, campaign: "Doomed campaign" }],
    },
  ],
};

/** A small pool of callers, so callers repeat within a batch. */
const CALLERS = ["+12125550101", "+12125550102", "+12125550103", "+12125550104", "+12125550105", "+12125550106", "+12125550107"];

let callSeq = 0;
const newCallId = () => `rec-${++callSeq}-${crypto.randomUUID()}`;

/** A database that counts the statements sent through it and how many were in flight at once. */
function counted(real: Database) {
  const stats = { statements: 0, refused: 0, inFlight: 0, maxInFlight: 0 };
  const reset = () => {
    stats.statements = 0;
    stats.maxInFlight = stats.inFlight;
  };
  const database: Database = {
    ...real,
    rows: async <T extends Record<string, unknown>>(query: SQL) => {
      stats.statements++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        return await real.rows<T>(query);
      } catch (error) {
        stats.refused++;
        throw error;
      } finally {
        stats.inFlight--;
      }
    },
    // The database underneath is the file's (see afterAll), not this wrapper's to close.
    close: async () => {},
  };
  return { database, stats, reset };
}

let ctx: TestContext;
let own: TestDatabase;
let real: Database;
let counter: ReturnType<typeof counted>;
const db = () => ctx.database.db;

beforeAll(async () => {
  own = await openTestDatabase({ poolMax: 10 });
  real = own.database;
  counter = counted(real);
  ctx = await openTestContext({ DB_STATEMENT_TIMEOUT_MS: "10000" }, { database: counter.database });
}, 30_000);
afterAll(async () => {
  await ctx?.close();
  await own?.close();
});
beforeEach(async () => {
  await ctx.reset();
  await ctx.seed(directory);
});

/** The decision routeInboundCall would make for a call from `from` to `to`, as of now. */
async function decide(to: string, from: string | null, callId = newCallId(), extra: Partial<InboundCall> = {}): Promise<CallDecision> {
  const entry = await ctx.directory.lookup(to);
  return {
    call: { callId, from, to, source: "sip-inbound", ...extra },
    fromNumber: from,
    toNumber: to,
    outcome: "dispatched",
    outcomeReason: null,
    transferTo: null,
    ...chooseAgent(entry, SYSTEM_DEFAULT_AGENT),
    tenantId: entry?.tenantId ?? null,
    campaignId: entry?.campaignId ?? null,
    phoneNumberId: entry?.phoneNumberId ?? null,
  };
}

/**
 * A recorder with a statement count of its own (the app's directory may read the database at
 * any time); the options default to one lane, written at once.
 */
function recorder(options: Partial<RecorderOptions> = {}): { rec: CallRecorder; stats: ReturnType<typeof counted>["stats"] } {
  const { database, stats } = counted(real);
  return { rec: createCallRecorder(database, { lanes: 1, gather: false, maxBatch: 64, ...options }), stats };
}

const allCallLogs = () => db().select().from(callLogs);
const allLeads = () => db().select().from(leads);
async function callLogOf(callId: string) {
  const rows = await db().select().from(callLogs).where(eq(callLogs.providerCallId, callId));
  expect(rows).toHaveLength(1);
  return rows[0]!;
}
const leadKey = (l: { tenantId: string | null; campaignId: string | null; phoneNumber: string | null }) =>
  `${l.tenantId}|${l.campaignId}|${l.phoneNumber}`;

/** The decision a written call answers with (what routeInboundCall hands the caller). */
const stored = (row: StoredCall) => ({
  call_log_id: row.call_log_id,
  lead_id: row.lead_id,
  tenant_id: row.tenant_id,
  campaign_id: row.campaign_id,
  phone_number_id: row.phone_number_id,
  agent_name: row.agent_name,
  agent_source: row.agent_source,
  from_number: row.from_number,
  to_number: row.to_number,
});

/** What a promise settled to, without throwing. */
async function settled<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

describe("many calls at once through sip-inbound", () => {
  test("200 concurrent calls from 7 callers: each recorded once, one lead per caller per campaign, fewer commits than calls", async () => {
    const numbers = [LIVE_NUMBER, PLAIN_NUMBER, OTHER_NUMBER];
    const calls = Array.from({ length: 200 }, (_, i) => ({
      call_id: newCallId(),
      from_number: CALLERS[i % CALLERS.length]!,
      to_number: numbers[i % numbers.length]!,
    }));
    counter.reset();
    const responses = await Promise.all(calls.map((body) => ctx.post(SIP_INBOUND_PATH, body)));
    const statements = counter.stats.statements;

    expect(responses.map((r) => r.status)).toEqual(Array(200).fill(200));
    const answers = await Promise.all(responses.map(json));
    expect(answers.map((a) => a.record)).toEqual(Array(200).fill("recorded"));
    // Group commit: the 200 records rode far fewer statements than one each.
    expect(statements).toBeLessThan(200);

    const logs = await allCallLogs();
    expect(logs).toHaveLength(200);
    const logByCall = new Map(logs.map((l) => [l.providerCallId, l]));
    expect(logByCall.size).toBe(200);

    const leadRows = await allLeads();
    // 7 callers x (Acme/Live, Acme/no campaign, Other): every caller called every number
    // (200 calls, 7 callers and 3 numbers are coprime: all 21 pairs occur).
    expect(leadRows).toHaveLength(21);
    expect(new Set(leadRows.map(leadKey)).size).toBe(21);
    const leadById = new Map(leadRows.map((l) => [l.id, l]));

    calls.forEach((body, i) => {
      const meta = JSON.parse(answers[i].metadata);
      const log = logByCall.get(body.call_id)!;
      expect(meta.call_log_id).toBe(log.id);
      expect(meta.lead_id).toBe(log.leadId);
      const lead = leadById.get(log.leadId!)!;
      // The call's lead is its caller's, in the tenant and campaign of the number dialed.
      expect(lead).toMatchObject({ tenantId: log.tenantId, campaignId: log.campaignId, phoneNumber: body.from_number });
    });
    expect(answers.map((a) => a.agent_name).sort()).toEqual(
      calls.map((c) => ({ [LIVE_NUMBER]: "acme-sales", [PLAIN_NUMBER]: "acme-default", [OTHER_NUMBER]: "other-default" })[c.to_number]).sort(),
    );

    // Each lead's last call is its newest call, and it is calling.
    for (const lead of leadRows) {
      const times = logs.filter((l) => l.leadId === lead.id).map((l) => l.createdAt.getTime());
      expect(times.length).toBeGreaterThan(0);
      expect(lead.lastCallAt!.getTime()).toBe(Math.max(...times));
      expect(lead.status).toBe("calling");
    }
  });

  test("a call id delivered twice among many concurrent calls: one call log, the same answer to both", async () => {
    const twice = { call_id: newCallId(), from_number: CALLERS[0], to_number: LIVE_NUMBER };
    const others = Array.from({ length: 20 }, (_, i) => ({
      call_id: newCallId(),
      from_number: CALLERS[i % 3],
      to_number: LIVE_NUMBER,
    }));
    const responses = await Promise.all([twice, ...others, twice].map((body) => ctx.post(SIP_INBOUND_PATH, body)));
    const answers = await Promise.all(responses.map(json));
    expect(responses.map((r) => r.status)).toEqual(Array(22).fill(200));
    const first = answers[0];
    const last = answers[21];
    expect(last).toEqual(first);
    expect(first.record).toBe("recorded");
    expect(first.agent_name).toBe("acme-sales");
    const log = await callLogOf(twice.call_id);
    expect(JSON.parse(first.metadata).call_log_id).toBe(log.id);
    expect(await allCallLogs()).toHaveLength(21);
    expect(await allLeads()).toHaveLength(3);
  });
});

describe("group commit", () => {
  test.each([false, true])("concurrent writes share statements (gather %p), never more than maxBatch to one", async (gather) => {
    const { rec, stats } = recorder({ gather, maxBatch: 8 });
    const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => decide(LIVE_NUMBER, CALLERS[i % 4]!)));
    const written = await Promise.all(decisions.map((d) => rec.write(d)));
    const statements = stats.statements;
    expect(written.every((w) => w.inserted)).toBe(true);
    // Fewer commits than calls; but no statement carries more than 8 calls, so at least 5.
    expect(statements).toBeLessThan(40);
    expect(statements).toBeGreaterThanOrEqual(5);
    expect(await allCallLogs()).toHaveLength(40);
    expect(await allLeads()).toHaveLength(4);
    for (const [i, w] of written.entries()) {
      const log = await callLogOf(decisions[i]!.call.callId);
      expect(w.row.call_log_id).toBe(log.id);
      expect(w.row.lead_id).toBe(log.leadId);
    }
  });

  test.each([false, true])("a lone write on an idle recorder is written without waiting for company (gather %p)", async (gather) => {
    const { rec, stats } = recorder({ gather });
    const decision = await decide(PLAIN_NUMBER, CALLERS[0]!);
    // Nothing else is written: if the recorder held the call for a batch to fill, this would never resolve.
    const written = await rec.write(decision);
    expect(stats.statements).toBe(1);
    expect(written.inserted).toBe(true);
    expect(written.row).toMatchObject({ agent_name: "acme-default", agent_source: "tenant_default", from_number: CALLERS[0] });
    expect((await callLogOf(decision.call.callId)).id).toBe(written.row.call_log_id);
    // And the next lone write too, once the first is done.
    const next = await rec.write(await decide(PLAIN_NUMBER, CALLERS[0]!));
    expect(next.inserted).toBe(true);
    expect(next.row.lead_id).toBe(written.row.lead_id);
  });

  test("no more statements in flight than lanes", async () => {
    const { rec, stats } = recorder({ lanes: 2 });
    const decisions = await Promise.all(Array.from({ length: 30 }, (_, i) => decide(OTHER_NUMBER, CALLERS[i % 5]!)));
    const written = await Promise.all(decisions.map((d) => rec.write(d)));
    expect(written.every((w) => w.inserted)).toBe(true);
    expect(stats.maxInFlight).toBeLessThanOrEqual(2);
    expect(stats.statements).toBeLessThan(30);
    expect(await allCallLogs()).toHaveLength(30);
  });
});

describe("the first delivery of a call id wins", () => {
  test("the same call id twice in one batch: one call log, both get its decision, the second is not inserted", async () => {
    const { rec } = recorder({ gather: true });
    const first = await decide(LIVE_NUMBER, CALLERS[0]!);
    // The second delivery was decided differently (as if the directory changed in between).
    const second = { ...first, agentName: "someone-else", agentSource: "system_default" } as CallDecision;
    const [a, b] = await Promise.all([rec.write(first), rec.write(second), rec.write(await decide(LIVE_NUMBER, CALLERS[1]!))]);
    expect(a!.inserted).toBe(true);
    expect(b!.inserted).toBe(false);
    expect(stored(b!.row)).toEqual(stored(a!.row));
    expect(b!.row.agent_name).toBe("acme-sales");
    const log = await callLogOf(first.call.callId);
    expect(log).toMatchObject({ id: a!.row.call_log_id, agentName: "acme-sales", agentSource: "campaign" });
    expect(await allCallLogs()).toHaveLength(2);
    expect(await allLeads()).toHaveLength(2);
  });

  test("two LiveKit joins of one new call in one batch: exactly one of them may dispatch the agent", async () => {
    const { rec } = recorder({ gather: true });
    const joined = { at: new Date(), claimDispatchForMs: 30_000 };
    const decision = await decide(LIVE_NUMBER, CALLERS[0]!, newCallId(), { source: "livekit", roomName: "room-1", joined });
    const written = await Promise.all([rec.write(decision), rec.write(decision)]);
    expect(written.map((w) => w.dispatchClaim?.outcome)).toEqual(["claimed", "in_progress"]);
    expect(written[1]!.row.call_log_id).toBe(written[0]!.row.call_log_id);
    const log = await callLogOf(decision.call.callId);
    expect(log.dispatchAttempts).toBe(1);
    expect(log.callerJoinedAt?.getTime()).toBe(joined.at.getTime());
  });

  test("a call id recorded before: its stored decision comes back and nothing changes, even after the directory changed", async () => {
    const body = { call_id: newCallId(), from_number: CALLERS[0], to_number: LIVE_NUMBER };
    const earlier = await json(await ctx.post(SIP_INBOUND_PATH, body));
    expect(earlier.agent_name).toBe("acme-sales");
    const logBefore = await callLogOf(body.call_id);
    const leadsBefore = await allLeads();

    // The campaign is paused since: new calls to the number get the tenant's default.
    await ctx.seed({
      tenants: [{ name: "Acme", agents: [{ name: "acme-sales" }], campaigns: [{ name: "Live", agent: "acme-sales", status: "paused" }] }],
    });
    await Bun.sleep(5);
    const redelivered = await decide(LIVE_NUMBER, CALLERS[0]!, body.call_id);
    expect(redelivered.agentName).toBe("acme-default");

    const { rec } = recorder({ gather: true });
    const fresh = await decide(PLAIN_NUMBER, CALLERS[1]!);
    const [again, other] = await Promise.all([rec.write(redelivered), rec.write(fresh)]);
    expect(again!.inserted).toBe(false);
    expect(again!.row).toMatchObject({ call_log_id: logBefore.id, agent_name: "acme-sales", agent_source: "campaign", lead_id: logBefore.leadId });
    expect(other!.inserted).toBe(true);

    expect(await callLogOf(body.call_id)).toEqual(logBefore);
    const leadAfter = (await allLeads()).find((l) => l.id === logBefore.leadId);
    expect(leadAfter).toEqual(leadsBefore.find((l) => l.id === logBefore.leadId));

    // Through the endpoint too: the earlier answer, word for word.
    expect(await json(await ctx.post(SIP_INBOUND_PATH, body))).toEqual(earlier);
  });
});

describe("one call's problem is that call's alone", () => {
  test("a batch holding records the database refuses: the good ones are recorded, each bad one refused with its constraint", async () => {
    const { rec, stats } = recorder({ gather: true });
    const good = await Promise.all(Array.from({ length: 10 }, (_, i) => decide(LIVE_NUMBER, CALLERS[i % 3]!)));
    const badSource: CallDecision = { ...(await decide(LIVE_NUMBER, CALLERS[5]!)), agentSource: "bogus" as never };
    const emptyId = await decide(LIVE_NUMBER, CALLERS[6]!, "");
    const duplicate = good[0]!;
    const results = await Promise.all(
      [...good.slice(0, 5), badSource, ...good.slice(5), emptyId, duplicate].map((d) => settled(rec.write(d))),
    );
    // Good calls shared a statement the database refused: more refusals than the two bad calls alone.
    expect(stats.refused).toBeGreaterThan(2);

    const badSourceResult = results[5]!;
    const emptyIdResult = results[11]!;
    for (const [result, constraint] of [
      [badSourceResult, "call_logs_agent_source_check"],
      [emptyIdResult, "call_logs_provider_call_id_not_empty"],
    ] as const) {
      expect(result.value).toBeUndefined();
      expect(isDatabaseUnavailable(result.error)).toBe(false);
      expect(constraintViolation(result.error)).toMatchObject({ kind: "check", constraint });
    }

    const goodResults = [...results.slice(0, 5), ...results.slice(6, 11)];
    expect(goodResults.every((r) => r.error === undefined)).toBe(true);
    const goodWritten = goodResults.map((r) => r.value!);
    const dupWritten = results[12]!.value!;
    // The duplicate of a good call gets that call's record; only one of the two inserted it.
    expect(dupWritten.row.call_log_id).toBe(goodWritten[0]!.row.call_log_id);
    expect([goodWritten[0]!.inserted, dupWritten.inserted].filter(Boolean)).toHaveLength(1);
    expect(goodWritten.slice(1).every((w) => w.inserted)).toBe(true);

    const logs = await allCallLogs();
    expect(logs).toHaveLength(10);
    expect(new Set(logs.map((l) => l.providerCallId))).toEqual(new Set(good.map((d) => d.call.callId)));
    // The refused calls' callers got no lead; the good calls' callers one each.
    const leadRows = await allLeads();
    expect(leadRows.map((l) => l.phoneNumber).sort()).toEqual(CALLERS.slice(0, 3).sort());
  });

  test("a database that is down fails the whole batch at once, each caller told it is unavailable", async () => {
    const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    let statements = 0;
    const down: Database = {
      ...real,
      rows: () => {
        statements++;
        return Promise.reject(refused());
      },
    };
    const rec = createCallRecorder(down, { lanes: 1, gather: true, maxBatch: 64 });
    const decisions = await Promise.all(Array.from({ length: 12 }, (_, i) => decide(LIVE_NUMBER, CALLERS[i % 3]!)));
    const results = await Promise.all(decisions.map((d) => settled(rec.write(d))));
    expect(results.every((r) => r.value === undefined && isDatabaseUnavailable(r.error))).toBe(true);
    // Not retried call by call against a database that is not there.
    expect(statements).toBe(1);
    expect(await allCallLogs()).toHaveLength(0);
  });
});

describe("references gone between the decision and the record", () => {
  const deps = (database: Database, onLookup: () => Promise<void>): RoutingDeps => ({
    database,
    directory: {
      ...ctx.directory,
      // The directory answers as it was; then, before the record is written, the rows go.
      lookup: async (to) => {
        const entry = await ctx.directory.lookup(to);
        await onLookup();
        return entry;
      },
    },
    recorder: recorder({ gather: true }).rec,
    readNumber: phoneNumberReader("US"),
    settings: { systemDefaultAgent: SYSTEM_DEFAULT_AGENT, recordWaitMs: 10_000, maxCallSeconds: 14_400 },
    logger: createLogger("error", { write: () => {} }),
  });

  test("a deleted number: the call is recorded with its tenant and campaign, without the number", async () => {
    const routing = await routeInboundCall(
      deps(counter.database, async () => {
        await db().execute(sql`delete from phone_numbers where e164 = ${LIVE_NUMBER}`);
      }),
      { callId: newCallId(), from: CALLERS[0], to: LIVE_NUMBER, source: "sip-inbound" },
    );
    expect(routing).toMatchObject({ record: "recorded", agentName: "acme-sales", agentSource: "campaign", phoneNumberId: null });
    expect(routing.tenantId).not.toBeNull();
    expect(routing.campaignId).not.toBeNull();
    const log = await callLogOf(routing.callId);
    expect(log).toMatchObject({ id: routing.callLogId, phoneNumberId: null, tenantId: routing.tenantId, campaignId: routing.campaignId });
    const [lead] = await allLeads();
    expect(lead).toMatchObject({ id: log.leadId, tenantId: routing.tenantId, campaignId: routing.campaignId, phoneNumber: CALLERS[0] });
  });

  test("a deleted tenant (with its campaign and number), amid other calls: recorded without any of them, the others untouched", async () => {
    // Every call's lookup waits for the one deletion, so their records are written together after it.
    let deletion: Promise<void> | undefined;
    const routingDeps = deps(counter.database, () => (deletion ??= deleteDoomed()));
    const deleteDoomed = async () => {
      const [doomed] = await ctx.database.rows<{ id: string }>(sql`select id from tenants where name = 'Doomed'`);
      await db().execute(sql`delete from phone_numbers where tenant_id = ${doomed!.id}`);
      await db().execute(sql`delete from campaigns where tenant_id = ${doomed!.id}`);
      await db().execute(sql`delete from agents where tenant_id = ${doomed!.id}`);
      await db().execute(sql`delete from tenants where id = ${doomed!.id}`);
    };
    const [gone, ...others] = await Promise.all([
      routeInboundCall(routingDeps, { callId: newCallId(), from: CALLERS[0], to: DOOMED_NUMBER, source: "sip-inbound" }),
      ...CALLERS.slice(0, 4).map((from) =>
        routeInboundCall(routingDeps, { callId: newCallId(), from, to: LIVE_NUMBER, source: "sip-inbound" }),
      ),
    ]);
    expect(gone).toMatchObject({
      record: "recorded",
      agentName: "doomed-sales",
      agentSource: "campaign",
      tenantId: null,
      campaignId: null,
      phoneNumberId: null,
      leadId: null,
    });
    expect(await callLogOf(gone!.callId)).toMatchObject({
      id: gone!.callLogId,
      tenantId: null,
      campaignId: null,
      phoneNumberId: null,
      leadId: null,
      agentName: "doomed-sales",
      fromNumber: CALLERS[0],
      toNumber: DOOMED_NUMBER,
    });
    expect(others.every((r) => r.record === "recorded" && r.leadId !== null && r.agentName === "acme-sales")).toBe(true);
    expect(await allCallLogs()).toHaveLength(5);
    // Only the Acme callers have leads.
    expect((await allLeads()).map((l) => l.phoneNumber).sort()).toEqual(CALLERS.slice(0, 4).sort());
  });
});

describe("a journaled call written late", () => {
  test("an older call replayed after the lead moved on neither moves the lead back to calling nor its last call back", async () => {
    const { rec } = recorder();
    const callerCalledAt = Date.now();
    const older = await decide(LIVE_NUMBER, CALLERS[0]!);
    // The newer call is recorded and ends unanswered: the lead is missed.
    const newerDecision = await decide(LIVE_NUMBER, CALLERS[0]!);
    const newer = await rec.write(newerDecision);
    const endedAt = new Date(Date.now() + 1_000);
    await recordCallEnded(ctx.database, {
      callId: newerDecision.call.callId,
      endedAt,
      disconnectReason: "CLIENT_INITIATED",
      unansweredStatus: "abandoned",
    });
    const [missed] = await allLeads();
    expect(missed).toMatchObject({ id: newer.row.lead_id, status: "missed" });
    expect(missed!.lastCallAt!.getTime()).toBe(endedAt.getTime());

    // The older call, journaled during an outage, comes in now with the time it rang.
    const rangAt = new Date(callerCalledAt - 60_000);
    await replayCallRecord(ctx.database, older, rangAt);
    const log = await callLogOf(older.call.callId);
    expect(log).toMatchObject({ leadId: newer.row.lead_id, agentName: "acme-sales" });
    expect(log.createdAt.getTime()).toBe(rangAt.getTime());
    const [after] = await allLeads();
    expect(after).toMatchObject({ id: newer.row.lead_id, status: "missed" });
    expect(after!.lastCallAt!.getTime()).toBe(endedAt.getTime());

    // Replayed again (the journal retries): still one call log, the lead still as it was.
    await replayCallRecord(ctx.database, older, rangAt);
    expect(await allCallLogs()).toHaveLength(2);
    expect((await allLeads())[0]).toMatchObject({ status: "missed", lastCallAt: endedAt });

    // A newer call than the lead's last does bring it back to calling.
    const later = new Date(endedAt.getTime() + 1_000);
    await replayCallRecord(ctx.database, await decide(LIVE_NUMBER, CALLERS[0]!), later);
    expect((await allLeads())[0]).toMatchObject({ status: "calling", lastCallAt: later });
  });
});

describe("a call journaled because its record was slow", () => {
  /**
   * Routing over a database that holds every statement until `release` (then runs it, or with
   * `refuse` fails it as a lost connection does), waiting 20 ms for a record. `landed` settles
   * when a journaled call's write is known to have landed.
   */
  function slowRouting({ refuse = false } = {}) {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { database: countedDb, stats } = counted(real);
    const lost = () => Promise.reject(Object.assign(new Error("connection lost"), { code: "CONNECTION_CLOSED" }));
    const slow: Database = { ...countedDb, rows: async (query) => gate.then(() => (refuse ? lost() : countedDb.rows(query))) };
    const journaled: JournaledCall[] = [];
    const remembered = lateRecords();
    let markLanded!: () => void;
    const landed = new Promise<void>((resolve) => (markLanded = resolve));
    const late: LateRecords = { ...remembered, landed: (entry) => (remembered.landed(entry), markLanded()) };
    const deps: RoutingDeps = {
      database: slow,
      directory: ctx.directory,
      recorder: createCallRecorder(slow, { lanes: 1, gather: false, maxBatch: 64 }),
      journal: { append: async (_kind, data) => void journaled.push(data as JournaledCall) },
      lateRecords: late,
      readNumber: phoneNumberReader("US"),
      settings: { systemDefaultAgent: SYSTEM_DEFAULT_AGENT, recordWaitMs: 20, maxCallSeconds: 14_400 },
      logger: createLogger("error", { write: () => {} }),
    };
    return { deps, slow, stats, journaled, late, landed, release };
  }

  test("whose write then landed: its entry's replay costs the database nothing, and the call stays recorded once", async () => {
    const { deps, slow, stats, journaled, late, landed, release } = slowRouting();
    const routing = await routeInboundCall(deps, { callId: newCallId(), from: CALLERS[0], to: LIVE_NUMBER, source: "sip-inbound" });
    expect(routing).toMatchObject({ record: "pending", agentName: "acme-sales" });
    expect(journaled).toHaveLength(1);

    release();
    await landed;
    expect(await callLogOf(routing.callId)).toMatchObject({ agentName: "acme-sales", fromNumber: CALLERS[0] });
    const before = stats.statements;
    await replayCallRecord(slow, journaled[0]!, new Date(), late);
    expect(stats.statements).toBe(before);
    expect(await allCallLogs()).toHaveLength(1);

    // Replayed again (the journal retries after a crash, say): written as usual, and it finds the call there.
    await replayCallRecord(slow, journaled[0]!, new Date(), late);
    expect(stats.statements).toBeGreaterThan(before);
    expect(await allCallLogs()).toHaveLength(1);
  });

  test("another entry of the same call, carrying facts that write did not (its LiveKit join), is still written", async () => {
    const { deps, slow, journaled, late, landed, release } = slowRouting();
    const routing = await routeInboundCall(deps, { callId: newCallId(), from: CALLERS[2], to: LIVE_NUMBER, source: "sip-inbound" });
    release();
    await landed;
    expect((await callLogOf(routing.callId)).callerJoinedAt).toBeNull();
    // The caller's join, journaled by another delivery while the database was away.
    const [first] = journaled;
    const joinedAt = new Date();
    const join: JournaledCall = { ...first!, entry: crypto.randomUUID(), call: { ...first!.call, source: "livekit", joined: { at: joinedAt } } };
    await replayCallRecord(slow, join, new Date(), late);
    expect((await callLogOf(routing.callId)).callerJoinedAt?.getTime()).toBe(joinedAt.getTime());
  });

  test("whose write failed after all: its replay writes it", async () => {
    // The write the caller gave up on fails when it finally runs: the database went away.
    const { deps, journaled, late, release } = slowRouting({ refuse: true });
    const routing = await routeInboundCall(deps, { callId: newCallId(), from: CALLERS[1], to: LIVE_NUMBER, source: "sip-inbound" });
    expect(routing.record).toBe("pending");
    release();
    await Bun.sleep(50);
    expect(await allCallLogs()).toHaveLength(0);
    await replayCallRecord(real, journaled[0]!, new Date(), late);
    expect(await callLogOf(routing.callId)).toMatchObject({ agentName: "acme-sales", fromNumber: CALLERS[1] });
  });
});

describe("two processes on one PostgreSQL", () => {
  test.skipIf(!process.env.DATABASE_URL)(
    "two recorders writing overlapping calls at once: no deadlock, one call log per id, one lead per caller",
    async () => {
      const open = () =>
        openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir: "memory://", poolMax: 6, statementTimeoutMs: 10_000 });
      const [one, two] = await Promise.all([open(), open()]);
      try {
        const recorders = [one, two].map((database) => createCallRecorder(database, { lanes: 3, gather: false, maxBatch: 16 }));
        const numbers = [LIVE_NUMBER, PLAIN_NUMBER, OTHER_NUMBER];
        const allIds = new Set<string>();
        for (let round = 0; round < 3; round++) {
          const decisions = await Promise.all(
            Array.from({ length: 150 }, (_, i) => decide(numbers[i % 3]!, CALLERS[(i * 5 + round) % CALLERS.length]!)),
          );
          decisions.forEach((d) => allIds.add(d.call.callId));
          // Each process gets its own calls plus every third call of the other's (duplicate deliveries), in another order.
          const mine = decisions.filter((_, i) => i % 2 === 0);
          const theirs = decisions.filter((_, i) => i % 2 === 1);
          const firstLoad = [...mine, ...theirs.filter((_, i) => i % 3 === 0)];
          const secondLoad = [...theirs, ...mine.filter((_, i) => i % 3 === 0)].reverse();
          const results = await Promise.all([
            ...firstLoad.map((d) => settled(recorders[0]!.write(d))),
            ...secondLoad.map((d) => settled(recorders[1]!.write(d))),
          ]);
          const errors = results.filter((r) => r.error !== undefined).map((r) => String(r.error));
          expect(errors).toEqual([]);
          const byCall = new Map<string, WrittenCall[]>();
          [...firstLoad, ...secondLoad].forEach((d, i) => {
            const list = byCall.get(d.call.callId) ?? [];
            list.push(results[i]!.value!);
            byCall.set(d.call.callId, list);
          });
          for (const [, written] of byCall) {
            expect(new Set(written.map((w) => w.row.call_log_id)).size).toBe(1);
            expect(written.filter((w) => w.inserted)).toHaveLength(1);
          }
        }
        const logs = await allCallLogs();
        expect(logs).toHaveLength(allIds.size);
        expect(new Set(logs.map((l) => l.providerCallId))).toEqual(allIds);
        const leadRows = await allLeads();
        expect(new Set(leadRows.map(leadKey)).size).toBe(leadRows.length);
        expect(leadRows).toHaveLength(21);
        const leadById = new Map(leadRows.map((l) => [l.id, l]));
        for (const log of logs) {
          expect(leadById.get(log.leadId!)).toMatchObject({ tenantId: log.tenantId, campaignId: log.campaignId, phoneNumber: log.fromNumber });
        }
      } finally {
        await Promise.all([one.close(), two.close()]);
      }
    },
  );
});
