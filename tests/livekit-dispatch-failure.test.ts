// Dispatch when things fail: LiveKit's API down, failing for a while, or refusing for good, and
// the database down. The answer tells LiveKit whether to deliver the event again (503) or not
// (2xx), and the call log keeps what happened.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { openTestContext, type TestContext } from "./support/context";
import { openSwitchedDatabase, type SwitchedDatabase } from "./support/switched-database";
import {
  acmeDirectory,
  CALLER,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  callLog,
  eventRows,
  type Json,
  liveKitEnv,
  newCall,
  postEventReply as post,
  SYSTEM_DEFAULT_AGENT,
  sipCallerJoins,
  TEST_KEYS,
  useFakeLiveKit,
  useLiveKitApp,
} from "./support/livekit-app";
import {
  agentJoined,
  roomFinished,
  signDelivery,
  sipParticipantJoined,
  sipParticipantLeft,
  trackPublished,
  type WebhookEvent,
} from "./support/livekit-events";

/** One stand-in LiveKit for the file; each describe opens its own app on it. */
const fake = useFakeLiveKit();

/** An app for the enclosing describe, dispatching through `fake` with `env` on top; Acme seeded before each test. */
const appWith = (env: Record<string, string>) => useLiveKitApp({ fake, env, seed: acmeDirectory }).ctx;

describe("LiveKit's API is down when the caller joins (LIVEKIT_DISPATCH_RETRIES=2)", () => {
  const ctx = appWith({ LIVEKIT_DISPATCH_RETRIES: "2" });

  test("503 so LiveKit retries, the call log is intact; the same delivery later dispatches once", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);

    await fake.setDown(true);
    const failed = await post(ctx, delivery);
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBe("unavailable");

    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({
      status: "ringing",
      agentName: CAMPAIGN_AGENT,
      agentSource: "campaign",
      dispatchId: null,
      dispatchClaimedAt: null,
      roomName: call.room,
    });
    // Why it failed, for whoever reads the call: LiveKit refused the connection.
    expect(log.dispatchError).toContain("ECONNREFUSED");
    expect(log.dispatchAttempts).toBeGreaterThanOrEqual(1);
    expect(log.callerJoinedAt?.getTime()).toBe(call.at.getTime());
    // The event was released so the redelivery is acted on.
    expect(await eventRows(ctx)).toHaveLength(0);

    // An operator is told, on a line about this call.
    expect(ctx.logs.some((l) => l.level === "error" && l.call_id === call.callId)).toBe(true);
    expect(fake.calls()).toHaveLength(0);

    await fake.setDown(false);
    const retried = await post(ctx, delivery);
    expect(retried.status).toBe(200);
    expect(retried.body.dispatch).toMatchObject({ kind: "dispatched", reused: false });
    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.status).toBe(200);
    expect(creates[0]!.request.agentName).toBe(CAMPAIGN_AGENT);
    const dispatches = fake.agentDispatches(call.room);
    expect(dispatches).toHaveLength(1);

    const after = await callLog(ctx, call.callId);
    expect(after.id).toBe(log.id);
    expect(after).toMatchObject({ dispatchId: dispatches[0]!.id, dispatchError: null, status: "ringing" });
    expect(after.dispatchAttempts).toBe(log.dispatchAttempts + 1);

    // A third delivery of the same event is a duplicate.
    const third = await post(ctx, delivery);
    expect(third).toMatchObject({ status: 200, body: { result: "duplicate" } });
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
  });

  test("a dispatch refused every time is tried 1 + LIVEKIT_DISPATCH_RETRIES times in the delivery, then answered 503", async () => {
    const call = newCall();
    fake.failNext("CreateDispatch", 10, 503);
    const res = await post(ctx, await sipCallerJoins(fake, call));
    expect(res.status).toBe(503);
    // Counted where LiveKit would count them: the requests it received.
    expect(fake.calls("CreateDispatch").map((c) => c.status)).toEqual([503, 503, 503]);
    expect(fake.agentDispatches(call.room)).toHaveLength(0);
    expect((await callLog(ctx, call.callId)).dispatchId).toBeNull();
  });
});

describe("LiveKit's API failing for a while and refusing for good (LIVEKIT_DISPATCH_RETRIES=3)", () => {
  const ctx = appWith({ LIVEKIT_DISPATCH_RETRIES: "3" });

  test("two 503s then success: dispatched within the same webhook", async () => {
    const call = newCall();
    fake.failNext("CreateDispatch", 2, 503);
    const res = await post(ctx, await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect(res.body.dispatch).toMatchObject({ kind: "dispatched" });

    const creates = fake.calls("CreateDispatch");
    expect(creates.map((c) => c.status)).toEqual([503, 503, 200]);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    expect(fake.agentDispatches()).toHaveLength(1);

    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({ dispatchId: fake.agentDispatches(call.room)[0]!.id, dispatchError: null, dispatchAttempts: 1 });
  });

  test("a 429 is retried too", async () => {
    const call = newCall();
    fake.failNext("CreateDispatch", 1, 429);
    const res = await post(ctx, await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.status)).toEqual([429, 200]);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
  });

  test("a non-retryable 400 is tried once, ends the call as failed with the reason, and is answered 2xx (a retry cannot help)", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    fake.failNext("CreateDispatch", 1, 400);
    const res = await post(ctx, delivery);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ result: "handled", dispatch: { kind: "failed", retryable: false } });

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.calls("CreateDispatch")[0]!.status).toBe(400);
    expect(fake.agentDispatches()).toHaveLength(0);
    expect(ctx.logs.some((l) => l.level === "error" && l.call_id === call.callId)).toBe(true);

    const log = await callLog(ctx, call.callId);
    expect(log).toMatchObject({
      status: "failed",
      disconnectReason: "AGENT_DISPATCH_FAILED",
      dispatchId: null,
      dispatchClaimedAt: null,
      dispatchAttempts: 1,
    });
    expect(log.endedAt).not.toBeNull();
    expect(log.dispatchError).toContain("injected failure");

    // The event was acted on: a redelivery of it is a duplicate and tries nothing.
    expect(await eventRows(ctx)).toHaveLength(1);
    const again = await post(ctx, delivery);
    expect(again).toMatchObject({ status: 200, body: { result: "duplicate" } });
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
  });
});

describe("the app's API secret does not match LiveKit's", () => {
  const wrongSecret = "wrong-secret-wrong-secret-wrong-secret-0123";
  const ctx = appWith({ LIVEKIT_API_SECRET: wrongSecret, LIVEKIT_DISPATCH_RETRIES: "3" });

  test("LiveKit's 401 is not retried; the error is on the call log; the webhook gets 2xx", async () => {
    const call = newCall();
    // LiveKit signs webhooks with the secret the app has.
    const appKeys = { apiKey: TEST_KEYS.apiKey, apiSecret: wrongSecret };
    const res = await post(ctx, await sipCallerJoins(fake, call, {}, appKeys));
    expect(res.status).toBe(200);
    expect(res.body.dispatch).toMatchObject({ kind: "failed", retryable: false });

    // One attempt: its first request (the room's dispatch list) was refused.
    expect(fake.calls().map((c) => [c.method, c.status])).toEqual([["ListDispatch", 401]]);
    expect(fake.calls("CreateDispatch")).toHaveLength(0);
    const log = await callLog(ctx, call.callId);
    expect(log.dispatchId).toBeNull();
    expect(log.dispatchError).toEqual(expect.any(String));
  });
});

describe("the database is down", () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await openTestContext(liveKitEnv(fake, { LIVEKIT_DISPATCH_RETRIES: "1" }));
    await ctx.seed(acmeDirectory);
    await ctx.database.close();
  });
  beforeEach(() => {
    ctx.logs.length = 0;
  });

  const notJoins: Array<[string, () => WebhookEvent]> = [
    [
      "participant_left of the caller",
      () => {
        const call = newCall();
        sipParticipantJoined(call);
        return sipParticipantLeft({ room: call.room, callId: call.callId });
      },
    ],
    ["participant_joined of an agent", () => agentJoined({ room: newCall().room, agentName: CAMPAIGN_AGENT })],
    ["room_finished", () => roomFinished({ room: newCall().room })],
  ];
  for (const [name, build] of notJoins) {
    test(`${name}: 503, so LiveKit delivers it again`, async () => {
      const res = await post(ctx, await signDelivery(build(), TEST_KEYS));
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("unavailable");
      expect(fake.calls()).toHaveLength(0);
    });
  }

  test("an event that is ignored anyway still gets 200", async () => {
    const res = await post(ctx, await signDelivery(trackPublished({ room: newCall().room }), TEST_KEYS));
    expect(res).toMatchObject({ status: 200, body: { result: "ignored" } });
  });

  test("a SIP caller's join: the campaign's agent (from the directory in memory) is still dispatched, and the webhook answers 503", async () => {
    const call = newCall();
    const res = await post(ctx, await sipCallerJoins(fake, call));
    expect(res.status).toBe(503);
    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]).toMatchObject({ status: 200, request: { agentName: CAMPAIGN_AGENT, room: call.room } });
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const metadata = JSON.parse(creates[0]!.request.metadata as string) as Json;
    expect(metadata).toMatchObject({ call_log_id: null, agent_source: "campaign", from_number: CALLER, to_number: CAMPAIGN_NUMBER });
    expect(ctx.logs.some((l) => l.level === "error" && l.call_id === call.callId)).toBe(true);
  });
});

describe("the database comes back after a join was handled without it", () => {
  // The real database behind a switch that makes every statement fail like a refused connection.
  let switchable: SwitchedDatabase;
  let state: SwitchedDatabase["state"];
  let ctx: TestContext;
  beforeAll(async () => {
    switchable = await openSwitchedDatabase();
    state = switchable.state;
    ctx = await openTestContext(liveKitEnv(fake, { LIVEKIT_DISPATCH_RETRIES: "1" }), { database: switchable.database });
  });
  afterAll(async () => {
    await switchable?.close();
  });
  beforeEach(async () => {
    state.down = false;
    await ctx.reset();
    await ctx.seed(acmeDirectory);
    ctx.logs.length = 0;
  });

  test("LiveKit's redelivery of the join does not put a second agent in the caller's room", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);

    state.down = true;
    const first = await post(ctx, delivery);
    expect(first.status).toBe(503);
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);

    state.down = false;
    const redelivered = await post(ctx, delivery);
    expect(redelivered.status).toBe(200);
    // The caller already has an agent: a second one would talk over the first.
    expect(fake.agentDispatches(call.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    const log = await callLog(ctx, call.callId);
    expect(log.dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
  });

  test("a redelivery while the database is still down does not dispatch again", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    state.down = true;
    expect((await post(ctx, delivery)).status).toBe(503);
    expect((await post(ctx, delivery)).status).toBe(503);
    // LiveKit's list of the room's dispatches is the only guard without a database.
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
  });
});
