// The LiveKit path against rooms as livekit-server really makes them: a room created without
// agents holds an implicit empty-name dispatch; a rule's room_config may already hold a named
// agent; room names are reused with a new sid; and signed events can carry values PostgreSQL
// cannot store. What a caller and an operator notice: which agent answers, how many agents join,
// which call a late event changes, and that every call ends with one record and no redelivery loop.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { openTestContext, type TestContext } from "./support/context";
import {
  acmeDirectory,
  CAMPAIGN_AGENT,
  callLog,
  callLogRows,
  liveKitEnv,
  newCall,
  plus,
  postEventReply as post,
  SYSTEM_DEFAULT_AGENT,
  TEST_KEYS,
  useFakeLiveKit,
} from "./support/livekit-app";
import {
  agentJoined,
  randomId,
  roomFinished,
  signDelivery,
  sipParticipantJoined,
  sipParticipantLeft,
  type WebhookEvent,
} from "./support/livekit-events";
import { openSwitchedDatabase, type SwitchedDatabase } from "./support/switched-database";

const fake = useFakeLiveKit();
let switchable: SwitchedDatabase;
let ctx: TestContext;

beforeAll(async () => {
  switchable = await openSwitchedDatabase();
  ctx = await openTestContext(liveKitEnv(fake), { database: switchable.database });
});
afterAll(async () => {
  await ctx?.close();
  await switchable?.close();
});
beforeEach(async () => {
  switchable.state.down = false;
  await ctx.reset();
  await ctx.seed(acmeDirectory);
  ctx.logs.length = 0;
});

const deliver = async (event: WebhookEvent) => post(ctx, await signDelivery(event, TEST_KEYS));

/** A caller whose SIP join made a room in LiveKit (with a rule's agents, if any) and its join event. */
function callerInNewRoom(options: { room?: string; agents?: { agentName: string }[]; at?: Date } = {}) {
  const call = newCall({ room: options.room, at: options.at });
  const room = fake.createRoom(call.room, { agents: options.agents });
  return { ...call, roomSid: room.sid, join: sipParticipantJoined({ ...call, roomSid: room.sid }) };
}

describe("a room created without agents (what `livekit provision` sets up)", () => {
  test("holds livekit-server's implicit empty-name dispatch, and still gets exactly one CreateDispatch for the routed agent", async () => {
    const call = callerInNewRoom();
    expect(fake.dispatches(call.room).map((d) => d.agentName)).toEqual([""]);

    const joined = await deliver(call.join);
    expect(joined.status).toBe(200);
    expect(joined.body.dispatch).toMatchObject({ kind: "dispatched", reused: false });

    const created = fake.calls("CreateDispatch").filter((c) => c.status === 200);
    expect(created.map((c) => c.request.agentName)).toEqual([CAMPAIGN_AGENT]);
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ agentName: CAMPAIGN_AGENT, agentSource: "campaign", roomSid: call.roomSid });
    expect(log.dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);

    // LiveKit's redelivery of the join sends no second agent.
    expect((await deliver(call.join)).status).toBe(200);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
  });
});

describe("a room where a dispatch rule already placed a named agent", () => {
  test("gets no second agent; the record names the rule's agent and says why", async () => {
    const call = callerInNewRoom({ agents: [{ agentName: "rule-agent" }] });
    const joined = await deliver(call.join);
    expect(joined.status).toBe(200);
    expect(joined.body.dispatch).toMatchObject({ kind: "dispatched", reused: true });

    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    expect(fake.dispatches(call.room).map((d) => d.agentName)).toEqual(["rule-agent"]);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ agentName: "rule-agent", agentSource: "dispatch_rule" });
    expect(log.metadata).toMatchObject({ routed_agent: CAMPAIGN_AGENT, routed_agent_source: "campaign" });
  });
});

describe("a caller who joins during a database outage", () => {
  test("gets the campaign's agent from the directory in memory, and the record names it once the database is back", async () => {
    const call = callerInNewRoom();
    switchable.state.down = true;
    const during = await deliver(call.join);
    expect(during.status).toBe(503);
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);

    switchable.state.down = false;
    expect((await deliver(call.join)).status).toBe(200);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ agentName: CAMPAIGN_AGENT, agentSource: "campaign", dispatchId: fake.agentDispatches(call.room)[0]!.id });
  });
});

describe("a room name reused by the next caller (a new sid)", () => {
  test("a late agent join and room_finished of the earlier room leave the next caller's call untouched", async () => {
    const name = `call-_reused_${randomId("")}`;
    const first = callerInNewRoom({ room: name });
    expect((await deliver(first.join)).status).toBe(200);
    const firstAgent = { room: name, roomSid: first.roomSid, agentName: CAMPAIGN_AGENT };
    expect((await deliver(agentJoined({ ...firstAgent, at: plus(first.at, 1000) }))).status).toBe(200);
    expect((await deliver(sipParticipantLeft({ room: name, roomSid: first.roomSid, callId: first.callId }))).status).toBe(200);
    fake.deleteRoom(name);

    const second = callerInNewRoom({ room: name });
    expect(second.roomSid).not.toBe(first.roomSid);
    expect((await deliver(second.join)).status).toBe(200);

    // Events of room 1 that LiveKit delivers late (a retry, another queue): new event ids, old sid.
    const lateAgent = await deliver(agentJoined({ ...firstAgent, identity: "agent-late", at: plus(first.at, 2000) }));
    const lateFinish = await deliver(roomFinished({ room: name, roomSid: first.roomSid }));
    expect([lateAgent.status, lateFinish.status]).toEqual([200, 200]);

    const secondLog = await callLog(ctx, second.callId);
    expect(secondLog).toMatchObject({ status: "ringing", answeredAt: null, endedAt: null, disconnectReason: null });
    expect((await callLog(ctx, first.callId)).status).toBe("completed");

    // Room 2's own events still act on caller 2's call.
    expect((await deliver(agentJoined({ room: name, roomSid: second.roomSid, agentName: CAMPAIGN_AGENT }))).status).toBe(200);
    expect((await callLog(ctx, second.callId)).status).toBe("in_progress");
    expect((await deliver(roomFinished({ room: name, roomSid: second.roomSid }))).status).toBe(200);
    expect((await callLog(ctx, second.callId)).status).toBe("completed");
  });
});

// ---------------------------------------------------------------------------------------------

/** 3,000 random bytes as base64: too long for an index entry even compressed. */
const longValue = (prefix: string) =>
  prefix + Buffer.from(crypto.getRandomValues(new Uint8Array(3000))).toString("base64");

type Spoil = { field: string; spoil: (call: ReturnType<typeof newCall>) => Record<string, string> };
const spoilers: Spoil[] = [
  { field: "event id", spoil: () => ({ eventId: `EV_\u0000${randomId("")}` }) },
  { field: "event id", spoil: () => ({ eventId: longValue("EV_") }) },
  { field: "room name", spoil: (c) => ({ room: `${c.room}\u0000x` }) },
  { field: "room name", spoil: (c) => ({ room: longValue(c.room) }) },
  { field: "room sid", spoil: () => ({ roomSid: `RM_\u0000${randomId("")}` }) },
  { field: "room sid", spoil: () => ({ roomSid: longValue("RM_") }) },
  { field: "participant identity", spoil: () => ({ identity: `sip_\u0000${randomId("")}` }) },
  { field: "participant identity", spoil: () => ({ identity: longValue("sip_") }) },
  { field: "sip.callID", spoil: () => ({ callId: `SCL_\u0000${randomId("")}` }) },
  { field: "sip.callID", spoil: () => ({ callId: longValue("SCL_") }) },
];

describe("signed events with values PostgreSQL cannot store as they are", () => {
  for (const { field, spoil } of spoilers) {
    const sample = JSON.stringify(Object.values(spoil(newCall()))[0]!.slice(0, 8));
    test(`${field} ${sample}...: the call is recorded once, its leave ends it, and no answer asks for a redelivery`, async () => {
      const call = newCall();
      const spoiled = { ...call, roomSid: randomId("RM_"), ...spoil(call) };
      fake.createRoom(spoiled.room, { sid: spoiled.roomSid });
      const join = sipParticipantJoined(spoiled);
      expect((await deliver(join)).status).toBe(200);
      expect(fake.agentDispatches(spoiled.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);

      // The same event again (LiveKit's retry) changes nothing.
      expect((await deliver(join)).status).toBe(200);
      expect(fake.agentDispatches(spoiled.room)).toHaveLength(1);

      const leave = sipParticipantLeft({ ...spoiled, eventId: randomId("EV_"), at: plus(call.at, 5000) });
      expect((await deliver(leave)).status).toBe(200);
      const rows = await callLogRows(ctx);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: "abandoned", agentName: CAMPAIGN_AGENT, fromNumber: call.from });
      expect(rows[0]!.providerCallId).not.toBe("");
      expect(rows[0]!.durationMs).toBe(5000);
    });
  }
});

describe("a SIP join without sip.callID", () => {
  test("is recorded under the participant's sid, which its leave shares", async () => {
    const call = { ...newCall(), callId: "", participantSid: `PA_${randomId("")}` };
    fake.createRoom(call.room);
    const joined = await deliver(sipParticipantJoined(call));
    expect(joined.status).toBe(200);
    expect((await deliver(sipParticipantLeft({ ...call, at: plus(call.at, 2000) }))).status).toBe(200);
    const rows = await callLogRows(ctx);
    expect(rows.map((r) => r.providerCallId)).toEqual([call.participantSid]);
    expect(rows[0]!.status).toBe("abandoned");
  });

  test("nor a participant sid is refused with 400 naming sip.callID, and no call log has an empty call id", async () => {
    const first = await deliver(sipParticipantJoined({ ...newCall(), callId: "", participantSid: "" }));
    const second = await deliver(sipParticipantJoined({ ...newCall(), callId: "", participantSid: "" }));
    expect([first.status, second.status]).toEqual([400, 400]);
    expect(first.body.error.details.field).toBe("participant.attributes.sip.callID");
    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    const empty = await ctx.database.rows(sql`select id from call_logs where provider_call_id = ''`);
    expect(empty).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe("a dispatch LiveKit keeps failing", () => {
  test("each of LiveKit's first four deliveries is answered 503; the fifth ends the call as failed, with the reason, and 200", async () => {
    const call = callerInNewRoom();
    fake.failNext("CreateDispatch", 1000, 503);
    const delivery = await signDelivery(call.join, TEST_KEYS);
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) statuses.push((await post(ctx, delivery)).status);
    expect(statuses).toEqual([503, 503, 503, 503, 200]);

    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "failed", disconnectReason: "AGENT_DISPATCH_FAILED", dispatchId: null });
    expect(log.dispatchError).toContain("injected failure");
    expect(log.endedAt).not.toBeNull();

    // The caller's eventual hang-up changes nothing more.
    expect((await deliver(sipParticipantLeft({ room: call.room, roomSid: call.roomSid, callId: call.callId }))).status).toBe(200);
    expect((await callLog(ctx, call.callId)).disconnectReason).toBe("AGENT_DISPATCH_FAILED");
  });

  test("a join LiveKit first sent more than 15 s ago is its last delivery: the call ends as failed at once", async () => {
    const call = callerInNewRoom({ at: new Date(Math.floor(Date.now() / 1000) * 1000 - 16_000) });
    fake.failNext("CreateDispatch", 1000, 503);
    const answer = await deliver(call.join);
    expect(answer.status).toBe(200);
    expect(await callLog(ctx, call.callId)).toMatchObject({ status: "failed", disconnectReason: "AGENT_DISPATCH_FAILED" });
  });

  test("a 408 from LiveKit (its node may have acted) is retried by redelivery but never answered by a second CreateDispatch", async () => {
    const call = callerInNewRoom();
    fake.failNext("CreateDispatch", 1, 408);
    expect((await deliver(call.join)).status).toBe(503);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    const log = await callLog(ctx, call.callId);
    // The claim is kept, so a redelivery meanwhile sends nothing either.
    expect(log).toMatchObject({ status: "ringing", dispatchId: null });
    expect(log.dispatchClaimedAt).not.toBeNull();
    expect((await deliver(call.join)).status).toBe(503);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
  });

  test("on LiveKit's last delivery, a CreateDispatch still unanswered leaves the call ringing for the agent it may start", async () => {
    const call = callerInNewRoom({ at: new Date(Math.floor(Date.now() / 1000) * 1000 - 16_000) });
    fake.delayNext("CreateDispatch", 4000);
    const answer = await deliver(call.join);
    expect(answer.status).toBe(200);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "ringing", endedAt: null, dispatchId: null });
    expect(log.dispatchError).toContain("timed out");

    // LiveKit did carry it out: the agent joins and answers the call.
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);
    const joined = await deliver(agentJoined({ room: call.room, roomSid: call.roomSid, agentName: CAMPAIGN_AGENT }));
    expect(joined.status).toBe(200);
    expect((await callLog(ctx, call.callId)).status).toBe("in_progress");
  });

  test("a join with deliveries left is answered 503 and the call keeps ringing", async () => {
    const call = callerInNewRoom();
    fake.failNext("CreateDispatch", 1000, 503);
    expect((await deliver(call.join)).status).toBe(503);
    expect(await callLog(ctx, call.callId)).toMatchObject({ status: "ringing", endedAt: null });
  });
});
