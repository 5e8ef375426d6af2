// The review fixes on the LiveKit path, as a caller and an operator notice them: an event held by a
// delivery that died is acted on by LiveKit's redelivery, one still in hand is not acted on twice,
// a delivery that failed on a database blip is not later skipped as a duplicate, outbound SIP
// participants are left alone, a reused room name is not mistaken for a finished room, the
// database being down or hung still gets the caller an agent while LiveKit is asked to redeliver,
// absurd int64 times are not a 500, and a dispatch already in the room (another agent's) is kept.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { AgentDispatchClient } from "livekit-server-sdk";
import postgres from "postgres";
import { createApp } from "../src/app";
import { loadConfig } from "../src/config";
import { type Database, openDatabase } from "../src/db/client";
import { leads } from "../src/db/schema";
import { createLogger } from "../src/logger";
import { type LogLine, openTestContext, type TestContext } from "./support/context";
import { openSwitchedDatabase, type SwitchedDatabase } from "./support/switched-database";
import {
  acmeDirectory,
  answer,
  CALLER,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  callLog,
  callLogRows,
  EVENTS_PATH,
  eventRow,
  type Json,
  leadRows,
  liveKitEnv,
  newCall,
  plus,
  postEventReply as post,
  SIP_INBOUND_PATH,
  sipCallerJoinedEvent,
  sipCallerJoins,
  startHungPostgres,
  SYSTEM_DEFAULT_AGENT,
  TEST_KEYS,
  useFakeLiveKit,
} from "./support/livekit-app";
import {
  agentJoined,
  randomId,
  roomFinished,
  signBody,
  signDelivery,
  sipParticipantJoined,
  sipParticipantLeft,
  type WebhookEvent,
} from "./support/livekit-events";

const fake = useFakeLiveKit();

const deliver = async (context: TestContext, event: WebhookEvent) => post(context, await signDelivery(event, TEST_KEYS));

// ---------------------------------------------------------------------------------------------
// One real database behind a switch (tests/support/switched-database.ts).

let switchable: SwitchedDatabase;
let state: SwitchedDatabase["state"];
/** Dispatch on (the default). */
let ctx: TestContext;
/** LIVEKIT_DISPATCH=false: LiveKit's own dispatch rules place agents; Switchboard only logs calls. */
let ctxNoDispatch: TestContext;

beforeAll(async () => {
  switchable = await openSwitchedDatabase();
  state = switchable.state;
  ctx = await openTestContext(liveKitEnv(fake, { LIVEKIT_DISPATCH_RETRIES: "1" }), { database: switchable.database });
  ctxNoDispatch = await openTestContext(liveKitEnv(fake, { LIVEKIT_DISPATCH: "false" }), { database: switchable.database });
});
afterAll(async () => {
  await switchable?.close();
});
beforeEach(async () => {
  state.down = false;
  state.failNext = [];
  await ctx.reset();
  await ctx.seed(acmeDirectory);
  // The second app shares the database: its directory hears of the seed by NOTIFY, in the
  // background; a test must not race that reload.
  await ctxNoDispatch.directory.reload();
  ctx.logs.length = 0;
  ctxNoDispatch.logs.length = 0;
});

// ---------------------------------------------------------------------------------------------

describe("an event held by a delivery that died (crash recovery)", () => {
  test("LiveKit's redelivery of the SIP join, 30 s after the hold was taken, acts: one agent, a complete record", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const id = delivery.event.id;
    // What a process that died mid-way leaves behind: the event held, never marked done.
    await ctx.database.db.execute(sql`
      insert into webhook_events (id, event, room_name, room_sid, received_at, claimed_at, processed_at)
      values (${id}, 'participant_joined', ${call.room}, ${delivery.event.room!.sid},
              now() - interval '30 seconds', now() - interval '30 seconds', null)`);

    const res = await post(ctx, delivery);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ result: "handled", dispatch: { kind: "dispatched" } });

    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]).toMatchObject({ status: 200, request: { agentName: CAMPAIGN_AGENT, room: call.room } });
    const dispatches = fake.agentDispatches(call.room);
    expect(dispatches).toHaveLength(1);

    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "ringing", agentName: CAMPAIGN_AGENT, dispatchId: dispatches[0]!.id, roomName: call.room });
    expect(log.callerJoinedAt?.getTime()).toBe(call.at.getTime());

    const row = await eventRow(ctx, id);
    expect(row?.processedAt).toBeInstanceOf(Date);

    // Done now: a further redelivery is acknowledged and changes nothing.
    const again = await post(ctx, delivery);
    expect(again).toMatchObject({ status: 200, body: { result: "duplicate" } });
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
  });

  test("a delivery that died after claiming the dispatch: LiveKit's last redelivery (~15 s later) still gets the caller an agent", async () => {
    // The process routed the call and claimed the dispatch on the call log, then died before
    // CreateDispatch. LiveKit retries after 1, 2, 4 and 8 s; the event hold (10 s) has lapsed by
    // the last attempt, so that attempt acts. The caller must get an agent from it: it is the
    // last delivery LiveKit makes.
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const inbound = JSON.stringify({ call_id: call.callId, to_number: CAMPAIGN_NUMBER, from_number: CALLER });
    const routed = await ctx.post(SIP_INBOUND_PATH, inbound, { authorization: await signBody(inbound, TEST_KEYS) });
    expect(routed.status).toBe(200);
    await ctx.database.db.execute(sql`
      update call_logs set dispatch_claimed_at = now() - interval '15 seconds', dispatch_attempts = 1
      where provider_call_id = ${call.callId}`);
    await ctx.database.db.execute(sql`
      insert into webhook_events (id, event, room_name, room_sid, received_at, claimed_at)
      values (${delivery.event.id}, 'participant_joined', ${call.room}, ${delivery.event.room!.sid},
              now() - interval '15 seconds', now() - interval '15 seconds')`);

    const res = await post(ctx, delivery);
    expect(res.status).toBe(200);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect((await callLog(ctx, call.callId)).dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
  });
});

describe("an event another delivery is still working on (in-flight hold)", () => {
  test("the redelivery gets 503 and nothing is dispatched or written", async () => {
    const call = newCall();
    const delivery = await signDelivery(sipParticipantJoined(call), TEST_KEYS);
    await ctx.database.db.execute(sql`
      insert into webhook_events (id, event, room_name, room_sid, claimed_at, processed_at)
      values (${delivery.event.id}, 'participant_joined', ${call.room}, ${delivery.event.room!.sid}, now(), null)`);

    const res = await post(ctx, delivery);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("unavailable");
    expect(fake.calls()).toHaveLength(0);
    expect(await callLogRows(ctx, call.callId)).toHaveLength(0);
    // The hold is left to its owner.
    const row = await eventRow(ctx, delivery.event.id);
    expect(row).toBeDefined();
    expect(row!.processedAt).toBeNull();
  });
});

describe("a delivery that failed on a database blip is acted on when redelivered", () => {
  async function ringingCall() {
    const call = newCall();
    const joined = await deliver(ctx, sipCallerJoinedEvent(fake, call));
    expect(joined.status).toBe(200);
    return call;
  }

  test("participant_left while the database is down: 503; the redelivery after it is back ends the call", async () => {
    const call = await ringingCall();
    const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 9_000) }), TEST_KEYS);

    state.down = true;
    const failed = await post(ctx, left);
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBe("unavailable");

    state.down = false;
    expect((await callLog(ctx, call.callId)).endedAt).toBeNull();
    const redelivered = await post(ctx, left);
    expect(redelivered.status).toBe(200);
    expect(redelivered.body.result).toBe("handled");
    expect(redelivered.body.result).not.toBe("duplicate");

    const log = await callLog(ctx, call.callId);
    expect(["abandoned", "completed"]).toContain(log.status);
    expect(log.status).toBe("abandoned");
    expect(log.endedAt?.getTime()).toBe(plus(call.at, 9_000).getTime());
    expect(log.durationMs).toBe(9_000);
    const [lead] = await ctx.database.db.select().from(leads).where(eq(leads.id, log.leadId!));
    expect(lead!.status).toBe("missed");
  });

  test("participant_left whose write fails (the event is taken in the same statement): 503 (not 500); the redelivery ends the call", async () => {
    const call = await ringingCall();
    const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 7_000) }), TEST_KEYS);

    // The statement that takes the event and ends the call fails.
    state.failNext = [/ended as/];
    const failed = await post(ctx, left);
    // README: "503 when the database is down ..., so LiveKit delivers the event again".
    expect(failed.status).toBe(503);
    expect(state.failNext).toHaveLength(0);

    const redelivered = await post(ctx, left);
    expect(redelivered.status).toBe(200);
    expect(redelivered.body.result).toBe("handled");
    const log = await callLog(ctx, call.callId);
    expect(log.status).toBe("abandoned");
    expect(log.endedAt?.getTime()).toBe(plus(call.at, 7_000).getTime());
  });
});

describe("an agent's join, a caller's leave, room_finished: the event taken, the call changed and the event done in one statement", () => {
  async function ringingCall() {
    const call = newCall();
    expect((await deliver(ctx, sipCallerJoinedEvent(fake, call))).status).toBe(200);
    return call;
  }

  test("a room_finished whose statement fails leaves the call ringing and the event untaken: 503, and the redelivery ends the call", async () => {
    const call = await ringingCall();
    const finished = await signDelivery(roomFinished({ room: call.room, at: plus(call.at, 5_000) }), TEST_KEYS);

    state.failNext = [/ended as/];
    const failed = await post(ctx, finished);
    expect(failed.status).toBe(503);
    expect(state.failNext).toHaveLength(0);
    expect((await callLog(ctx, call.callId)).status).toBe("ringing");
    // Not taken: nothing of it is left to make the redelivery a "duplicate".
    expect(await eventRow(ctx, finished.event.id)).toBeUndefined();

    const redelivered = await post(ctx, finished);
    expect(redelivered).toMatchObject({ status: 200, body: { result: "handled" } });
    expect(await callLog(ctx, call.callId)).toMatchObject({ status: "abandoned", disconnectReason: "ROOM_FINISHED" });
    expect((await eventRow(ctx, finished.event.id))?.processedAt).toBeInstanceOf(Date);
  });

  test("an agent's join another delivery holds is a 503 that changes nothing; once the hold lapses the redelivery answers the call, and a repeat is a duplicate", async () => {
    const call = await ringingCall();
    const joinedAt = plus(call.at, 2_000);
    const agent = await signDelivery(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: joinedAt }), TEST_KEYS);
    await ctx.database.db.execute(sql`
      insert into webhook_events (id, event, room_name, room_sid, claimed_at, processed_at)
      values (${agent.event.id}, 'participant_joined', ${call.room}, ${agent.event.room!.sid}, now(), null)`);

    const held = await post(ctx, agent);
    expect(held.status).toBe(503);
    expect((await callLog(ctx, call.callId)).status).toBe("ringing");

    // The delivery that held it died: 30 s later its hold has lapsed.
    await ctx.database.db.execute(sql`update webhook_events set claimed_at = now() - interval '30 seconds' where id = ${agent.event.id}`);
    const redelivered = await post(ctx, agent);
    expect(redelivered).toMatchObject({ status: 200, body: { result: "handled", action: "call answered" } });
    const log = await callLog(ctx, call.callId);
    expect(log.status).toBe("in_progress");
    expect(log.answeredAt?.getTime()).toBe(joinedAt.getTime());

    const again = await post(ctx, agent);
    expect(again).toMatchObject({ status: 200, body: { result: "duplicate" } });
    expect((await callLog(ctx, call.callId)).updatedAt?.getTime()).toBe(log.updatedAt?.getTime());
  });

  test("a caller's leave held by a delivery that died before the call had a record is taken over once the hold lapses, and ends the call", async () => {
    const call = await ringingCall();
    const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 8_000) }), TEST_KEYS);
    // What the dead delivery left: the leave taken (it was the first news of the call), never done.
    await ctx.database.db.execute(sql`
      insert into webhook_events (id, event, action, room_name, room_sid, claimed_at, processed_at)
      values (${left.event.id}, 'participant_left', 'caller_left', ${call.room}, ${left.event.room!.sid}, now() - interval '30 seconds', null)`);

    const redelivered = await post(ctx, left);
    expect(redelivered).toMatchObject({ status: 200, body: { result: "handled" } });
    expect(await callLog(ctx, call.callId)).toMatchObject({ status: "abandoned", durationMs: 8_000 });
    expect((await eventRow(ctx, left.event.id))?.processedAt).toBeInstanceOf(Date);
    expect(await post(ctx, left)).toMatchObject({ status: 200, body: { result: "duplicate" } });
  });

  test.skipIf(!process.env.DATABASE_URL)(
    "a redelivery that comes while the first delivery's statement waits is a duplicate once that commits, not a 503 (PostgreSQL)",
    async () => {
      const call = await ringingCall();
      const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 6_000) }), TEST_KEYS);
      // Something else (an admin's edit, another event) holds the call's row for a moment.
      const pg = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      const held = await pg.reserve();
      try {
        await held`begin`;
        await held`select 1 from call_logs where provider_call_id = ${call.callId} for update`;
        const first = post(ctx, left);
        await Bun.sleep(200);
        // LiveKit's redelivery waits on the first's uncommitted claim of the same event.
        const second = post(ctx, left);
        await Bun.sleep(200);
        await held`commit`;
        const answers = await Promise.all([first, second]);
        expect(answers.map((a) => ({ status: a.status, result: a.body.result }))).toEqual([
          { status: 200, result: "handled" },
          { status: 200, result: "duplicate" },
        ]);
      } finally {
        held.release();
        await pg.end();
      }
      expect((await callLog(ctx, call.callId)).status).toBe("abandoned");
    },
  );
});

describe("outbound SIP participants (calls an agent places: no sip.ruleID)", () => {
  test("their join and leave are acknowledged and ignored: no call log, no lead, no dispatch", async () => {
    const call = { ...newCall(), outbound: true };
    const joined = await deliver(ctx, sipParticipantJoined(call));
    expect(joined.status).toBe(200);
    expect(joined.body.result).toBe("ignored");
    expect(joined.body.dispatch).toBeUndefined();

    const left = await deliver(ctx, sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 5_000) }));
    expect(left.status).toBe(200);
    expect(left.body.result).toBe("ignored");

    expect(await callLogRows(ctx, call.callId)).toHaveLength(0);
    expect(await callLogRows(ctx)).toHaveLength(0);
    expect(await leadRows(ctx)).toHaveLength(0);
    expect(fake.calls()).toHaveLength(0);
    expect(fake.dispatches()).toHaveLength(0);
  });
});

describe("room_finished is about one room (its sid), not every room of that name", () => {
  test("a new caller in a reused room name (another sid) is dispatched and stays ringing", async () => {
    const room = `call-x-${randomId("")}`;
    const finished = await deliver(ctx, roomFinished({ room, roomSid: "RM_oldRoomAAAA" }));
    expect(finished.status).toBe(200);

    const call = newCall({ room });
    const join = sipCallerJoinedEvent(fake, call, { roomSid: "RM_newRoomBBBB" });
    expect(join.room!.sid).toBe("RM_newRoomBBBB");
    const joined = await deliver(ctx, join);
    expect(joined.status).toBe(200);
    expect(joined.body.dispatch).toMatchObject({ kind: "dispatched" });

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "ringing", endedAt: null, disconnectReason: null, dispatchId: fake.agentDispatches(room)[0]!.id });
  });

  test("a join that arrives after its own room (same sid) finished is ended, with no agent sent", async () => {
    const room = `call-x-${randomId("")}`;
    const sid = "RM_sameRoomCCCC";
    const call = newCall({ room });
    const join = sipParticipantJoined({ ...call, roomSid: sid });
    expect((await deliver(ctx, roomFinished({ room, roomSid: sid, at: plus(call.at, 1_000) }))).status).toBe(200);

    const late = await deliver(ctx, join);
    expect(late.status).toBe(200);
    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    const log = await callLog(ctx, call.callId);
    expect(log.status).toBe("abandoned");
    expect(log.disconnectReason).toBe("ROOM_FINISHED");
    expect(log.endedAt).not.toBeNull();
    expect(log.dispatchId).toBeNull();
  });
});

describe("dispatch off (LIVEKIT_DISPATCH=false)", () => {
  test("a SIP join while the database fails gets 503, so LiveKit redelivers and the record gets written", async () => {
    const call = newCall();
    const delivery = await signDelivery(sipParticipantJoined(call), TEST_KEYS);

    state.down = true;
    const failed = await post(ctxNoDispatch, delivery);
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBe("unavailable");
    expect(fake.calls()).toHaveLength(0);

    state.down = false;
    const redelivered = await post(ctxNoDispatch, delivery);
    expect(redelivered.status).toBe(200);
    expect(redelivered.body).toMatchObject({ result: "handled", action: "caller_joined (dispatch off)" });
    const log = await callLog(ctxNoDispatch, call.callId);
    expect(log).toMatchObject({ status: "ringing", agentName: CAMPAIGN_AGENT, roomName: call.room, dispatchId: null });
    expect(log.callerJoinedAt?.getTime()).toBe(call.at.getTime());
    expect(fake.calls()).toHaveLength(0);
  });
});

describe("out-of-range int64 times in a signed event", () => {
  /** createdAt and joinedAt are seconds, joinedAtMs milliseconds; each case sets all three. */
  type Times = { createdAt: bigint; joinedAt: bigint; joinedAtMs: bigint };
  const INT64_MAX = 9_223_372_036_854_775_807n;
  const cases: Array<[string, Times]> = [
    ["99999999999999 s", { createdAt: 99_999_999_999_999n, joinedAt: 99_999_999_999_999n, joinedAtMs: 99_999_999_999_999_000n }],
    ["the largest int64", { createdAt: INT64_MAX, joinedAt: INT64_MAX, joinedAtMs: INT64_MAX }],
    ["year 10000", { createdAt: 253_402_300_800n, joinedAt: 253_402_300_800n, joinedAtMs: 253_402_300_800_000n }],
    // A join "in 1970": its duration would not fit the column, and the call would never end.
    ["joinedAtMs 1000 (1970)", { createdAt: 1n, joinedAt: 1n, joinedAtMs: 1000n }],
    // Within what JavaScript and PostgreSQL can hold, but three thousand years from now.
    ["year 5138 (joinedAtMs 99999999999999)", { createdAt: 99_999_999_999n, joinedAt: 99_999_999_999n, joinedAtMs: 99_999_999_999_999n }],
  ];
  const absurd = (event: WebhookEvent, times: Times) => {
    event.createdAt = times.createdAt;
    event.participant!.joinedAt = times.joinedAt;
    event.participant!.joinedAtMs = times.joinedAtMs;
    return event;
  };

  for (const [name, times] of cases) {
    test(`${name}: the join and the leave are handled (2xx) and the call is timed from the clock`, async () => {
      const call = newCall();
      const delivery = await signDelivery(absurd(sipCallerJoinedEvent(fake, call), times), TEST_KEYS);
      // The wire carries the absurd values, as a broken or hostile sender would.
      expect(delivery.body).toContain(`"createdAt":"${times.createdAt}"`);

      const started = Date.now();
      const joined = await post(ctx, delivery);
      expect(joined.status).toBeGreaterThanOrEqual(200);
      expect(joined.status).toBeLessThan(300);
      expect(joined.body.dispatch).toMatchObject({ kind: "dispatched" });

      const log = await callLog(ctx, call.callId);
      expect(Math.abs(log.callerJoinedAt!.getTime() - started)).toBeLessThan(60_000);

      const left = await deliver(ctx, absurd(sipParticipantLeft({ room: call.room, callId: call.callId }), times));
      expect(left.status).toBeGreaterThanOrEqual(200);
      expect(left.status).toBeLessThan(300);
      const ended = await callLog(ctx, call.callId);
      expect(ended.status).toBe("abandoned");
      expect(Math.abs(ended.endedAt!.getTime() - Date.now())).toBeLessThan(60_000);
      expect(ended.durationMs).toBeGreaterThanOrEqual(0);
      expect(ended.durationMs).toBeLessThan(60_000);
    });
  }
});

describe("a dispatch already in the room for another agent (e.g. placed by a dispatch rule)", () => {
  test("is kept: no second agent; the record names the agent actually sent and the routed one", async () => {
    const call = newCall();
    const existing = await new AgentDispatchClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret).createDispatch(call.room, "rule-agent");
    expect(fake.calls("CreateDispatch")).toHaveLength(1);

    const joined = await deliver(ctx, sipCallerJoinedEvent(fake, call));
    expect(joined.status).toBe(200);
    expect(joined.body.dispatch).toMatchObject({ kind: "dispatched", reused: true, dispatchId: existing.id });

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual(["rule-agent"]);
    const log = await callLog(ctx, call.callId);
    expect(log.dispatchId).toBe(existing.id);
    expect(log.agentName).toBe("rule-agent");
    expect(log.metadata).toMatchObject({ routed_agent: CAMPAIGN_AGENT });
  });
});

// ---------------------------------------------------------------------------------------------

describe("a database that accepts connections and never answers (DB_STATEMENT_TIMEOUT_MS=300)", () => {
  // postgres.js against a TCP server that never speaks, whichever database the suite runs on.
  let hung: ReturnType<typeof startHungPostgres>;
  let database: Database;
  let app: ReturnType<typeof createApp>;
  const logs: LogLine[] = [];
  beforeAll(async () => {
    hung = startHungPostgres();
    const url = hung.url;
    const config = loadConfig({ ...liveKitEnv(fake, { LIVEKIT_DISPATCH_RETRIES: "1" }), DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: "300", LOG_LEVEL: "debug" });
    database = await openDatabase({ databaseUrl: url, dataDir: "memory://", poolMax: 2, statementTimeoutMs: 300 });
    const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(JSON.parse(line)) });
    app = createApp({ database, config, logger });
  });
  afterAll(() => {
    hung?.stop();
    // postgres.js waits out its 5 s end timeout for a connection that never completed: the
    // close goes on in the background rather than holding up the files after this one.
    void database.close().catch(() => {});
  });

  test("a SIP join is answered (503) and the system default agent is still dispatched, once", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const res = await app.handle(new Request(`http://localhost${EVENTS_PATH}`, { method: "POST", headers: delivery.headers, body: delivery.body }));
    const body = await answer(res);
    expect(res.status).toBe(503);
    expect(body.error.code).toBe("unavailable");

    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]).toMatchObject({ status: 200, request: { agentName: SYSTEM_DEFAULT_AGENT, room: call.room } });
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const metadata = JSON.parse(creates[0]!.request.metadata as string) as Json;
    expect(metadata).toMatchObject({ call_log_id: null, agent_source: "system_default", from_number: CALLER, to_number: CAMPAIGN_NUMBER });
  }, 20_000);
});

// ---------------------------------------------------------------------------------------------

describe("a CreateDispatch that LiveKit carries out but answers too late", () => {
  test("no second agent: the claim is kept until LiveKit's list can tell, then that dispatch is adopted", async () => {
    const slow = await openTestContext(
      liveKitEnv(fake, { LIVEKIT_DISPATCH_BUDGET_MS: "300", LIVEKIT_DISPATCH_RETRIES: "3" }),
      { database: switchable.database },
    );
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    fake.delayNext("CreateDispatch", 1500);

    // The budget runs out while the create is in flight: LiveKit will redeliver.
    const first = await post(slow, delivery);
    expect(first.status).toBe(503);
    // A redelivery while the outcome is unknown must not create another agent.
    const early = await post(slow, delivery);
    expect(early.status).toBe(503);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);

    // Later (past the claim's expiry), the redelivery finds the dispatch that did land and keeps it.
    await Bun.sleep(1600);
    await slow.database.rows(
      sql`update call_logs set dispatch_claimed_at = now() - interval '1 minute' where provider_call_id = ${call.callId} returning id`,
    );
    const later = await post(slow, delivery);
    expect(later.status).toBe(200);
    expect(later.body.dispatch).toMatchObject({ kind: "dispatched", reused: true });
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    expect((await callLog(slow, call.callId)).dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
  });
});

// ---------------------------------------------------------------------------------------------

describe("SIP attributes PostgreSQL cannot store", () => {
  test("a NUL in a SIP header attribute does not keep the call from being recorded", async () => {
    const call = newCall();
    const joined = await deliver(ctx, sipCallerJoinedEvent(fake, call, { attributes: { "sip.h.x-note": "before\u0000after" } }));
    expect(joined.status).toBe(200);
    const log = await callLog(ctx, call.callId);
    expect(log.agentName).toBe(CAMPAIGN_AGENT);
    expect(log.metadata).toMatchObject({ sip: { "sip.h.x-note": "beforeafter" } });
  });
});
