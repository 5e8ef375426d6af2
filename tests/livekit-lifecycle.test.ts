// A SIP call's life as LiveKit reports it through webhooks: the caller joins, an agent joins,
// someone leaves, the room finishes; and the same events out of order or repeated. Times come
// from the events (createdAt, joinedAtMs), so durations are exact.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { leads } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import {
  acmeDirectory,
  answer,
  CAMPAIGN_AGENT,
  callLog,
  callLogRows,
  type Json,
  leadRows,
  newCall,
  plus,
  postEvent,
  SYSTEM_DEFAULT_AGENT,
  sipCallerJoinedEvent,
  TEST_KEYS,
  useLiveKitApp,
} from "./support/livekit-app";
import {
  agentJoined,
  roomFinished,
  signDelivery,
  sipConnectionAborted,
  sipParticipantJoined,
  sipParticipantLeft,
  type WebhookEvent,
} from "./support/livekit-events";

// Calls start at whole seconds near now (newCall), so the lead's last_call_at follows the call.
const { ctx, fake } = useLiveKitApp({ seed: acmeDirectory });

/** Delivers a signed event to `context` (the suite's app unless told) and expects it acknowledged (200, ok). */
async function deliver(event: WebhookEvent, context: TestContext = ctx): Promise<Json> {
  const delivery = await signDelivery(event, TEST_KEYS);
  const res = await postEvent(context, delivery);
  const body = await answer(res);
  expect({ status: res.status, body }).toMatchObject({ status: 200, body: { ok: true } });
  return body;
}

async function leadOf(leadId: string | null) {
  expect(leadId).not.toBeNull();
  const [lead] = await ctx.database.db.select().from(leads).where(eq(leads.id, leadId!));
  return lead!;
}

/** Event time as the service reads it: createdAt, in whole seconds. */
const eventMs = (event: WebhookEvent) => Number(event.createdAt) * 1000;

describe("a call that is answered and hung up", () => {
  test("join, agent joins 2 s later, caller leaves at 62 s: completed, answered, exact duration, lead contacted", async () => {
    const call = newCall();
    const join = sipCallerJoinedEvent(fake, call);
    const agent = agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) });
    const left = sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 62_000), reason: "CLIENT_INITIATED" });

    const joined = await deliver(join);
    expect(joined.dispatch).toMatchObject({ kind: "dispatched" });
    expect((await callLog(ctx, call.callId)).status).toBe("ringing");

    await deliver(agent);
    const answered = await callLog(ctx, call.callId);
    expect(answered.status).toBe("in_progress");
    expect(answered.answeredAt?.getTime()).toBe(Number(agent.participant!.joinedAtMs));
    expect(answered.metadata).toMatchObject({ answered_by: agent.participant!.identity });

    await deliver(left);
    const log = await callLog(ctx, call.callId);
    const expectedDuration = eventMs(left) - Number(join.participant!.joinedAtMs);
    expect(expectedDuration).toBe(62_000);
    expect(log).toMatchObject({
      status: "completed",
      durationMs: expectedDuration,
      disconnectReason: "CLIENT_INITIATED",
      agentName: CAMPAIGN_AGENT,
    });
    expect(log.callerJoinedAt?.getTime()).toBe(call.at.getTime());
    expect(log.answeredAt?.getTime()).toBe(plus(call.at, 2_000).getTime());
    expect(log.endedAt?.getTime()).toBe(eventMs(left));

    const lead = await leadOf(log.leadId);
    expect(lead.status).toBe("contacted");
    expect(lead.lastCallAt?.getTime()).toBe(eventMs(left));
  });

  test("a repeated caller left (new event id) changes nothing", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) }));
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 62_000) }));
    const before = await callLog(ctx, call.callId);
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 70_000), reason: "USER_REJECTED" }));
    const after = await callLog(ctx, call.callId);
    expect(after).toMatchObject({
      status: before.status,
      endedAt: before.endedAt,
      durationMs: before.durationMs,
      disconnectReason: "CLIENT_INITIATED",
    });
  });
});

describe("calls no agent answered", () => {
  test("the caller hangs up before an agent joins: abandoned, lead missed", async () => {
    const call = newCall();
    const join = sipCallerJoinedEvent(fake, call);
    await deliver(join);
    const left = sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 30_000) });
    await deliver(left);
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({
      status: "abandoned",
      answeredAt: null,
      disconnectReason: "CLIENT_INITIATED",
      durationMs: eventMs(left) - Number(join.participant!.joinedAtMs),
    });
    expect(log.endedAt?.getTime()).toBe(eventMs(left));
    expect((await leadOf(log.leadId)).status).toBe("missed");
  });

  for (const reason of ["USER_REJECTED", "SIP_TRUNK_FAILURE", "USER_UNAVAILABLE"] as const) {
    test(`the call ends with ${reason}: failed`, async () => {
      const call = newCall();
      await deliver(sipCallerJoinedEvent(fake, call));
      await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 5_000), reason }));
      const log = await callLog(ctx, call.callId);
      expect(log).toMatchObject({ status: "failed", disconnectReason: reason, answeredAt: null, durationMs: 5_000 });
      expect((await leadOf(log.leadId)).status).toBe("missed");
    });
  }

  test("participant_connection_aborted of the SIP participant ends the call", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    const aborted = sipConnectionAborted({ room: call.room, callId: call.callId, at: plus(call.at, 3_000) });
    expect(aborted.event).toBe("participant_connection_aborted");
    expect((await deliver(aborted)).result).toBe("handled");
    const log = await callLog(ctx, call.callId);
    expect(log.status).not.toBe("ringing");
    expect(log.status).toBe("abandoned");
    expect(log.endedAt?.getTime()).toBe(eventMs(aborted));
    expect(log.disconnectReason).toBe("UNKNOWN_REASON");
    expect(log.durationMs).toBe(3_000);
  });
});

describe("events out of order", () => {
  test("caller left delivered before its join: one call log, stays ended, the late join dispatches nothing", async () => {
    const call = newCall();
    const join = sipParticipantJoined(call); // built first so the left matches it; delivered last
    const left = sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 8_000) });

    await deliver(left);
    const afterLeft = await callLog(ctx, call.callId);
    expect(afterLeft.status).toBe("abandoned");

    const late = await deliver(join);
    expect(late.dispatch).toMatchObject({ kind: "skipped" });
    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    expect(fake.calls()).toHaveLength(0);
    expect(fake.dispatches(call.room)).toHaveLength(0);

    const rows = await callLogRows(ctx);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: afterLeft.id,
      status: "abandoned",
      endedAt: afterLeft.endedAt,
      durationMs: 8_000,
      dispatchId: null,
    });
    expect(rows[0]!.callerJoinedAt?.getTime()).toBe(call.at.getTime());
    expect((await leadOf(rows[0]!.leadId)).status).toBe("missed");
  });

  test("room_finished before the join: the late join dispatches nothing and the call does not ring forever", async () => {
    const call = newCall();
    const join = sipParticipantJoined(call);
    await deliver(roomFinished({ room: call.room, at: plus(call.at, 1_000) }));
    // No call in the room yet: nothing to end.
    expect(await callLogRows(ctx, call.callId)).toHaveLength(0);

    await deliver(join);
    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    expect(fake.dispatches()).toHaveLength(0);

    const log = await callLog(ctx, call.callId);
    expect(log.status).toBe("abandoned");
    expect(log.endedAt).not.toBeNull();
    expect(log.disconnectReason).toBe("ROOM_FINISHED");
    expect(log.dispatchId).toBeNull();
  });

  test("room_finished after a completed call changes nothing", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) }));
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 62_000) }));
    const before = await callLog(ctx, call.callId);
    expect(before.status).toBe("completed");

    await deliver(roomFinished({ room: call.room, at: plus(call.at, 90_000) }));
    const after = await callLog(ctx, call.callId);
    expect(after).toMatchObject({
      status: "completed",
      endedAt: before.endedAt,
      durationMs: before.durationMs,
      disconnectReason: before.disconnectReason,
      answeredAt: before.answeredAt,
    });
    expect((await leadOf(after.leadId)).status).toBe("contacted");
  });

  test("room_finished ends a call still ringing in the room", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    await deliver(roomFinished({ room: call.room, at: plus(call.at, 40_000) }));
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "abandoned", disconnectReason: "ROOM_FINISHED", durationMs: 40_000 });
  });

  test("an agent join that came before the call had a record still makes the call answered", async () => {
    // As when the database was down through every delivery of the caller's join: the agent
    // (dispatched anyway) joins, and the call is first recorded at hang-up.
    const call = newCall();
    const agentAt = plus(call.at, 2_000);
    await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: agentAt }));
    // No record of the call yet: the agent's join has nothing to answer until the call is recorded.
    expect(await callLogRows(ctx, call.callId)).toHaveLength(0);
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, joinedAt: call.at, at: plus(call.at, 30_000) }));
    const log = await callLog(ctx, call.callId);
    expect(log.status).toBe("completed");
    expect(log.answeredAt?.getTime()).toBe(agentAt.getTime());
    expect(log.durationMs).toBe(30_000);
  });

  test("an agent joining after the caller left does not move the call back", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 4_000) }));
    await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 5_000) }));
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ status: "abandoned", answeredAt: null });
  });

  test("a repeated agent join after a completed call does not move the call back", async () => {
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    const agent = { room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) };
    await deliver(agentJoined(agent));
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 62_000) }));
    const before = await callLog(ctx, call.callId);
    // LiveKit resends the agent's join with a new event id, and a second agent joins later.
    await deliver(agentJoined(agent));
    await deliver(agentJoined({ ...agent, at: plus(call.at, 63_000) }));
    const after = await callLog(ctx, call.callId);
    expect(after).toMatchObject({
      status: "completed",
      answeredAt: before.answeredAt,
      endedAt: before.endedAt,
      durationMs: 62_000,
    });
  });
});

describe("callers whose number is hidden", () => {
  test("a hidePhoneNumber join is routed to the system default, logged, and creates no lead", async () => {
    const call = newCall();
    const join = sipCallerJoinedEvent(fake, call, { hidePhoneNumber: true });
    expect(join.participant!.attributes["sip.phoneNumber"]).toBeUndefined();
    expect(join.participant!.attributes["sip.trunkPhoneNumber"]).toBeUndefined();
    const body = await deliver(join);
    expect(body.dispatch).toMatchObject({ kind: "dispatched" });
    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({
      agentName: SYSTEM_DEFAULT_AGENT,
      agentSource: "system_default",
      fromNumber: null,
      toNumber: null,
      leadId: null,
      tenantId: null,
      trunkId: call.trunkId,
      roomName: call.room,
      status: "ringing",
    });
    expect(await leadRows(ctx)).toHaveLength(0);
    expect(fake.calls("CreateDispatch").map((c) => [c.request.agentName, c.request.room])).toEqual([
      [SYSTEM_DEFAULT_AGENT, call.room],
    ]);

    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 10_000) }));
    expect((await callLog(ctx, call.callId)).status).toBe("abandoned");
    expect(await leadRows(ctx)).toHaveLength(0);
  });
});

describe("dispatch switched off", () => {
  const cases: Array<[string, Record<string, string>]> = [
    ["LIVEKIT_DISPATCH=false", { LIVEKIT_DISPATCH: "false" }],
    ["no LIVEKIT_URL", {}],
  ];
  for (const [name, env] of cases) {
    describe(name, () => {
      let other: TestContext;
      beforeAll(async () => {
        other = await openTestContext({
          ...(name === "no LIVEKIT_URL" ? {} : { LIVEKIT_URL: fake.url }),
          LIVEKIT_API_KEY: TEST_KEYS.apiKey,
          LIVEKIT_API_SECRET: TEST_KEYS.apiSecret,
          ...env,
        });
      });
      afterAll(() => other?.close());

      test("the join is logged and no agent is dispatched; the call still ends normally", async () => {
        await other.reset();
        await other.seed(acmeDirectory);
        fake.reset();
        const call = newCall();
        const body = await deliver(sipParticipantJoined(call), other);
        expect(body.result).toBe("handled");
        expect(body.dispatch).toBeUndefined();
        const log = await callLog(other, call.callId);
        expect(log).toMatchObject({
          agentName: CAMPAIGN_AGENT,
          agentSource: "campaign",
          status: "ringing",
          dispatchId: null,
          dispatchAttempts: 0,
        });
        expect(log.callerJoinedAt?.getTime()).toBe(call.at.getTime());
        expect(fake.calls("CreateDispatch")).toHaveLength(0);
        expect(fake.calls()).toHaveLength(0);

        // LiveKit's own dispatch rule sent the agent: the call is still tracked to its end.
        await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 1_000) }), other);
        await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 20_000) }), other);
        expect(await callLog(other, call.callId)).toMatchObject({ status: "completed", durationMs: 20_000 });
      });
    });
  }
});
