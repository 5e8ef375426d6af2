// LiveKit's signed webhooks as they arrive at POST /api/v1/webhooks/livekit/events: signatures,
// what is ignored, bad bodies, repeated and concurrent deliveries, and the dispatch that follows a
// SIP caller's participant_joined. Events are built with the protocol builders and signed the way
// LiveKit signs them; the app talks to a stand-in LiveKit API on a loopback port.
import { describe, expect, test } from "bun:test";
import { EgressInfo, EgressStatus, IngressInfo, IngressState, WebhookEvent } from "@livekit/protocol";
import { AgentDispatchClient } from "livekit-server-sdk";
import {
  acmeDirectory,
  answer,
  CALLER,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  type CallOptions,
  callLogRows,
  eventRows,
  type Json,
  leadRows,
  newCall as newSipCall,
  postEvent,
  SIP_INBOUND_PATH,
  sipCallerJoins,
  SYSTEM_DEFAULT_AGENT,
  TENANT_DEFAULT_AGENT,
  TEST_KEYS,
  useLiveKitApp,
} from "./support/livekit-app";
import {
  agentJoined,
  agentLeft,
  randomId,
  roomStarted,
  signBody,
  signDelivery,
  sipParticipantJoined,
  trackPublished,
  type WebhookDelivery,
} from "./support/livekit-events";

const { apiKey, apiSecret } = TEST_KEYS;

/** A number of Acme's without a campaign: its calls go to the tenant's default agent. */
const TENANT_NUMBER = "+14155550101";
const TRUNK = "ST_switchboard";
const [acme] = acmeDirectory.tenants;
/** Acme, plus TENANT_NUMBER. */
const directory = {
  tenants: [{ ...acme!, phone_numbers: [...acme!.phone_numbers, { number: TENANT_NUMBER }] }],
};

const { ctx, fake } = useLiveKitApp();

/** A fresh call on TRUNK, at the current millisecond unless told. */
function newCall(overrides: Pick<CallOptions, "from" | "to" | "at"> = {}) {
  return newSipCall({ trunkId: TRUNK, at: new Date(), ...overrides });
}

const post = (delivery: { body: string; headers: Record<string, string> }) => postEvent(ctx, delivery);

/** Nothing at all happened: no record, no claimed event, no request to LiveKit. */
async function expectNothingChanged() {
  expect(await callLogRows(ctx)).toHaveLength(0);
  expect(await eventRows(ctx)).toHaveLength(0);
  expect(await leadRows(ctx)).toHaveLength(0);
  expect(fake.calls("CreateDispatch")).toHaveLength(0);
  expect(fake.calls()).toHaveLength(0);
}

describe("a valid signed event", () => {
  test("is accepted (200) and acted on: routed to the campaign agent, logged, dispatched into the event's room", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const res = await post(delivery);
    expect(res.status).toBe(200);
    const body = await answer(res);
    expect(body).toMatchObject({ ok: true, event: "participant_joined", id: delivery.event.id, result: "handled" });
    expect(body.dispatch).toMatchObject({ kind: "dispatched", reused: false });

    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.status).toBe(200);
    expect(creates[0]!.request.agentName).toBe(CAMPAIGN_AGENT);
    expect(creates[0]!.request.room).toBe(call.room);
    const dispatches = fake.agentDispatches(call.room);
    expect(dispatches).toHaveLength(1);
    expect(body.dispatch.dispatchId).toBe(dispatches[0]!.id);

    const [log, ...more] = await callLogRows(ctx);
    expect(more).toHaveLength(0);
    expect(log).toMatchObject({
      providerCallId: call.callId,
      roomName: call.room,
      trunkId: TRUNK,
      fromNumber: CALLER,
      toNumber: CAMPAIGN_NUMBER,
      agentName: CAMPAIGN_AGENT,
      agentSource: "campaign",
      status: "ringing",
      dispatchId: dispatches[0]!.id,
      dispatchError: null,
      dispatchAttempts: 1,
    });
    expect(log!.tenantId).not.toBeNull();
    expect(log!.campaignId).not.toBeNull();
    expect(log!.callerJoinedAt?.getTime()).toBe(call.at.getTime());
    expect(log!.metadata).toMatchObject({ source: "livekit", sip: { "sip.callID": call.callId } });

    const metadata = JSON.parse(creates[0]!.request.metadata) as Json;
    expect(metadata).toMatchObject({
      call_type: "inbound",
      call_log_id: log!.id,
      lead_id: log!.leadId,
      tenant_id: log!.tenantId,
      campaign_id: log!.campaignId,
      from_number: CALLER,
      to_number: CAMPAIGN_NUMBER,
      agent_source: "campaign",
    });

    const lead = await leadRows(ctx);
    expect(lead).toHaveLength(1);
    expect(lead[0]).toMatchObject({ id: log!.leadId, phoneNumber: CALLER, status: "calling" });

    const events = await eventRows(ctx);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id: delivery.event.id, event: "participant_joined", roomName: call.room });
  });

  test("a number without a campaign is dispatched the tenant's default agent", async () => {
    await ctx.seed(directory);
    const call = newCall({ to: "(415) 555-0101" });
    const res = await post(await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual([TENANT_DEFAULT_AGENT]);
    const [log] = await callLogRows(ctx);
    expect(log).toMatchObject({ agentName: TENANT_DEFAULT_AGENT, agentSource: "tenant_default", toNumber: TENANT_NUMBER });
  });

  test("an unknown dialed number is dispatched the system default agent", async () => {
    await ctx.seed(directory);
    const call = newCall({ to: "+13105550000" });
    const res = await post(await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual([SYSTEM_DEFAULT_AGENT]);
    const [log] = await callLogRows(ctx);
    expect(log).toMatchObject({ agentName: SYSTEM_DEFAULT_AGENT, agentSource: "system_default", leadId: null });
  });

  test("the wire form has int64 fields as strings and kind as the enum name, and is accepted", async () => {
    await ctx.seed(directory);
    const call = newCall({ at: new Date("2025-08-22T08:00:00.456Z") });
    const delivery = await sipCallerJoins(fake, call);
    expect(delivery.body).toContain('"kind":"SIP"');
    expect(delivery.body).toContain('"joinedAt":"');
    expect(delivery.body).toContain('"joinedAtMs":"1755849600456"');
    expect(delivery.body).toContain('"createdAt":"1755849600"');
    const res = await post(delivery);
    expect(res.status).toBe(200);
    expect((await answer(res)).result).toBe("handled");
    const [log] = await callLogRows(ctx);
    // joinedAtMs, read as a 64-bit integer, is the start of the call to the millisecond.
    expect(log!.callerJoinedAt?.toISOString()).toBe("2025-08-22T08:00:00.456Z");
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
  });
});

describe("deliveries that must not be trusted get 401 and change nothing", () => {
  async function signedJoin() {
    await ctx.seed(directory);
    return sipParticipantJoined(newCall());
  }

  test("a body changed by one character after signing", async () => {
    const delivery = await signDelivery(await signedJoin(), TEST_KEYS);
    const index = delivery.body.indexOf(CALLER) + CALLER.length - 1;
    const last = delivery.body[index]!;
    const tampered = delivery.body.slice(0, index) + (last === "9" ? "8" : "9") + delivery.body.slice(index + 1);
    expect(tampered).not.toBe(delivery.body);
    expect(tampered.length).toBe(delivery.body.length);
    const res = await post({ ...delivery, body: tampered });
    expect(res.status).toBe(401);
    expect((await answer(res)).error.code).toBe("unauthorized");
    await expectNothingChanged();
  });

  test("a token signed with another secret", async () => {
    const delivery = await signDelivery(await signedJoin(), { apiKey, apiSecret: "another-secret-another-secret-another-secret" });
    const res = await post(delivery);
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("a token from another API key", async () => {
    const delivery = await signDelivery(await signedJoin(), { apiKey: "APIother", apiSecret });
    const res = await post(delivery);
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("an expired token", async () => {
    const delivery = await signDelivery(await signedJoin(), { ...TEST_KEYS, expiredAt: new Date(Date.now() - 10 * 60_000) });
    const res = await post(delivery);
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("no Authorization header", async () => {
    const delivery = await signDelivery(await signedJoin(), TEST_KEYS);
    const { authorization: _dropped, ...headers } = delivery.headers;
    const res = await post({ body: delivery.body, headers });
    expect(res.status).toBe(401);
    expect((await answer(res)).error.details.field).toBe("authorization");
    await expectNothingChanged();
  });

  test("a token valid for another body", async () => {
    const event = await signedJoin();
    const other = await signDelivery(sipParticipantJoined(newCall()), TEST_KEYS);
    const delivery = await signDelivery(event, TEST_KEYS);
    const res = await post({ body: delivery.body, headers: other.headers });
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });
});

describe("events that are not about a SIP call are acknowledged and ignored", () => {
  const at = new Date();
  const room = "call-_ignored";
  const ignored: Array<[string, () => WebhookEvent]> = [
    ["room_started", () => roomStarted({ room, at })],
    ["track_published", () => trackPublished({ room, at })],
    ["participant_left of an agent", () => agentLeft({ room, agentName: CAMPAIGN_AGENT, at })],
    [
      "egress_started",
      () =>
        new WebhookEvent({
          event: "egress_started",
          id: randomId("EV_"),
          createdAt: BigInt(Math.floor(at.getTime() / 1000)),
          egressInfo: new EgressInfo({
            egressId: randomId("EG_"),
            roomId: "RM_x",
            roomName: room,
            status: EgressStatus.EGRESS_STARTING,
            startedAt: BigInt(at.getTime()) * 1_000_000n,
          }),
        }),
    ],
    [
      "ingress_started",
      () =>
        new WebhookEvent({
          event: "ingress_started",
          id: randomId("EV_"),
          createdAt: BigInt(Math.floor(at.getTime() / 1000)),
          ingressInfo: new IngressInfo({
            ingressId: randomId("IN_"),
            name: "obs",
            roomName: room,
            state: new IngressState({ startedAt: BigInt(at.getTime()) * 1_000_000n }),
          }),
        }),
    ],
  ];

  for (const [name, build] of ignored) {
    test(name, async () => {
      await ctx.seed(directory);
      const delivery = await signDelivery(build(), TEST_KEYS);
      const res = await post(delivery);
      expect(res.status).toBeGreaterThanOrEqual(200);
      expect(res.status).toBeLessThan(300);
      const body = await answer(res);
      expect(body).toMatchObject({ ok: true, result: "ignored", id: delivery.event.id });
      await expectNothingChanged();
    });
  }
});

describe("bodies that are not webhook events", () => {
  test("malformed JSON with a valid signature of exactly that body gets a 4xx, not a 500", async () => {
    const good = (await signDelivery(sipParticipantJoined(newCall()), TEST_KEYS)).body;
    const malformed = good.slice(0, good.length - 5); // cut short: no longer JSON
    const delivery = await signDelivery(malformed, TEST_KEYS);
    const res = await post(delivery);
    expect(res.status).toBe(400);
    expect((await answer(res)).error.details.field).toBe("body");
    await expectNothingChanged();
  });

  test("a signed empty body gets a 4xx, not a 500", async () => {
    const delivery = await signDelivery("", TEST_KEYS);
    const res = await post(delivery);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectNothingChanged();
  });

  test("signed JSON that is not a WebhookEvent gets a 4xx, not a 500", async () => {
    const delivery = await signDelivery('{"event":5,"room":[]}', TEST_KEYS);
    const res = await post(delivery);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectNothingChanged();
  });

  test("signed JSON that is not a WebhookEvent is a bad body (400), not an authorization failure", async () => {
    // The signature is valid: answering 401 "authorization: cannot decode ..." blames the wrong thing.
    for (const text of ['{"event":5}', "[]", "null"]) {
      const res = await post(await signDelivery(text, TEST_KEYS));
      const body = await answer(res);
      expect({ text, status: res.status, field: body.error.details.field }).toEqual({ text, status: 400, field: "body" });
    }
    await expectNothingChanged();
  });
});

describe("repeated deliveries", () => {
  test("the same delivery posted twice is acted on once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const first = await post(delivery);
    const second = await post(delivery);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect((await answer(first)).result).toBe("handled");
    expect((await answer(second)).result).toBe("duplicate");

    expect(await callLogRows(ctx)).toHaveLength(1);
    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.status).toBe(200);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    expect(await eventRows(ctx)).toHaveLength(1);
  });

  test("the same delivery posted three times concurrently dispatches exactly once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const responses = await Promise.all([post(delivery), post(delivery), post(delivery)]);
    // One delivery acts. The others find it either done (200, duplicate) or still in hand
    // (503: LiveKit redelivers later, so the event is not lost if the first attempt fails).
    const bodies = await Promise.all(responses.map(answer));
    const outcomes = responses.map((r, i) => `${r.status} ${bodies[i]!.result ?? bodies[i]!.error.code}`).sort();
    expect(outcomes.filter((o) => o === "200 handled")).toHaveLength(1);
    for (const other of outcomes.filter((o) => o !== "200 handled")) {
      expect(["200 duplicate", "503 unavailable"]).toContain(other);
    }

    // A later redelivery of any of them is acknowledged without acting again.
    const again = await post(delivery);
    expect(again.status).toBe(200);
    expect((await answer(again)).result).toBe("duplicate");

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const logs = await callLogRows(ctx);
    expect(logs).toHaveLength(1);
    expect(logs[0]!.dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
    expect(await eventRows(ctx)).toHaveLength(1);
  });

  test("a join resent with a new event id for the same SIP call dispatches once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const first = await sipCallerJoins(fake, call);
    const resent = await sipCallerJoins(fake, call);
    expect(resent.event.id).not.toBe(first.event.id);

    const a = await post(first);
    const b = await post(resent);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect((await answer(a)).dispatch.kind).toBe("dispatched");
    expect((await answer(b)).dispatch).toMatchObject({ kind: "skipped" });

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const logs = await callLogRows(ctx);
    expect(logs).toHaveLength(1);
    expect(logs[0]!.dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
    expect(await eventRows(ctx)).toHaveLength(2);
  });

  test("joins with different event ids for the same SIP call arriving concurrently dispatch once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const deliveries: WebhookDelivery[] = [];
    for (let i = 0; i < 3; i++) deliveries.push(await sipCallerJoins(fake, call));
    expect(new Set(deliveries.map((d) => d.event.id)).size).toBe(3);
    const responses = await Promise.all(deliveries.map(post));
    // One dispatches; the others find it dispatched (200, skipped) or still being dispatched
    // (503, so LiveKit redelivers them in case that dispatch fails).
    const bodies = await Promise.all(responses.map(answer));
    const outcomes = responses.map((r, i) => `${r.status} ${bodies[i]!.dispatch?.kind ?? bodies[i]!.error.code}`);
    expect(outcomes.filter((o) => o === "200 dispatched")).toHaveLength(1);
    for (const other of outcomes.filter((o) => o !== "200 dispatched")) {
      expect(["200 skipped", "503 unavailable"]).toContain(other);
    }
    // Their redeliveries are then acknowledged without a second agent.
    for (const [i, res] of responses.entries()) {
      if (res.status === 503) expect((await post(deliveries[i]!)).status).toBe(200);
    }

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    expect(await callLogRows(ctx)).toHaveLength(1);
  });

  test("a dispatch LiveKit already has for the room's agent is reused, not created again", async () => {
    await ctx.seed(directory);
    const call = newCall();
    // E.g. created by a process whose write of the dispatch id was lost.
    const existing = await new AgentDispatchClient(fake.url, apiKey, apiSecret).createDispatch(call.room, CAMPAIGN_AGENT);
    const before = fake.calls("CreateDispatch").length;

    const res = await post(await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect((await answer(res)).dispatch).toMatchObject({ kind: "dispatched", reused: true, dispatchId: existing.id });
    expect(fake.calls("CreateDispatch").length).toBe(before);
    expect(fake.agentDispatches(call.room)).toHaveLength(1);
    const [log] = await callLogRows(ctx);
    expect(log!.dispatchId).toBe(existing.id);
  });
});

describe("a call first seen through sip-inbound, then through LiveKit's join", () => {
  async function sipInbound(body: Json, headers: Record<string, string>) {
    return ctx.post(SIP_INBOUND_PATH, JSON.stringify(body), headers);
  }

  test("sip-inbound without a signature is refused when keys are configured", async () => {
    await ctx.seed(directory);
    const res = await sipInbound({ call_id: randomId("SCL_"), to_number: CAMPAIGN_NUMBER, from_number: CALLER }, {});
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("sip-inbound with a signature over another body is refused", async () => {
    await ctx.seed(directory);
    const body = JSON.stringify({ call_id: randomId("SCL_"), to_number: CAMPAIGN_NUMBER, from_number: CALLER });
    const authorization = await signBody(body, TEST_KEYS);
    const res = await ctx.post(SIP_INBOUND_PATH, body.replace(CALLER, "+12125550143"), { authorization });
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("reuses the call log; the dispatch carries the same metadata and agent as the sip-inbound answer", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const body = JSON.stringify({
      call_id: call.callId,
      from_number: call.from,
      to_number: call.to,
      trunk_id: call.trunkId,
      room_name: call.room,
    });
    const inbound = await ctx.post(SIP_INBOUND_PATH, body, { authorization: await signBody(body, TEST_KEYS) });
    expect(inbound.status).toBe(200);
    const decision = await answer(inbound);
    expect(decision.agent_name).toBe(CAMPAIGN_AGENT);
    const decided = JSON.parse(decision.metadata as string) as Json;
    expect(decided.call_log_id).toEqual(expect.any(String));
    expect(fake.calls()).toHaveLength(0);

    const res = await post(await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);

    const logs = await callLogRows(ctx);
    expect(logs).toHaveLength(1);
    expect(logs[0]!.id).toBe(decided.call_log_id);
    expect(logs[0]!.metadata).toMatchObject({ source: "sip-inbound" });

    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.request.agentName).toBe(decision.agent_name);
    expect(creates[0]!.request.room).toBe(call.room);
    const dispatched = JSON.parse(creates[0]!.request.metadata as string) as Json;
    expect(dispatched.call_log_id).toBe(decided.call_log_id);
    expect(dispatched.agent_source).toBe(decided.agent_source);
    expect(dispatched).toEqual(decided);
    expect(logs[0]!.dispatchId).toBe(fake.agentDispatches(call.room)[0]!.id);
    expect(logs[0]!.callerJoinedAt?.getTime()).toBe(call.at.getTime());
  });

  test("the sip-inbound decision stands even if the directory changed before the join", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const body = JSON.stringify({ call_id: call.callId, from_number: call.from, to_number: call.to });
    const inbound = await ctx.post(SIP_INBOUND_PATH, body, { authorization: await signBody(body, TEST_KEYS) });
    const decision = await answer(inbound);
    expect(decision.agent_name).toBe(CAMPAIGN_AGENT);

    // The campaign is paused between the decision and LiveKit's join.
    const paused = structuredClone(directory) as Json;
    paused.tenants[0].campaigns[0].status = "paused";
    await ctx.seed(paused);
    const res = await post(await sipCallerJoins(fake, call));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual([CAMPAIGN_AGENT]);
    const [log] = await callLogRows(ctx, call.callId);
    expect(log!.agentName).toBe(CAMPAIGN_AGENT);
    // sip-inbound did not know the room; the join filled it in, so the agent's join finds the call.
    expect(log!.roomName).toBe(call.room);
    const agent = await post(await signDelivery(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT }), TEST_KEYS));
    expect(agent.status).toBe(200);
    const [answered] = await callLogRows(ctx, call.callId);
    expect(answered!.status).toBe("in_progress");
  });
});
