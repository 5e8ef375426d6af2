// LiveKit's signed webhooks as they arrive at POST /api/v1/webhooks/livekit/events: signatures,
// what is ignored, bad bodies, repeated and concurrent deliveries, and the dispatch that follows a
// SIP caller's participant_joined. Events are built with the protocol builders and signed the way
// LiveKit signs them; the app talks to a stand-in LiveKit API on a loopback port.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { EgressInfo, EgressStatus, IngressInfo, IngressState, WebhookEvent } from "@livekit/protocol";
import { eq } from "drizzle-orm";
import { AgentDispatchClient } from "livekit-server-sdk";
import { callLogs, leads, webhookEvents } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
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

const EVENTS = "/api/v1/webhooks/livekit/events";
const SIP_INBOUND = "/api/v1/webhooks/livekit/sip-inbound";
const apiKey = "APItestkey";
const apiSecret = "test-secret-that-is-long-enough-for-hs256-0123456789";
const keys = { apiKey, apiSecret };

const CAMPAIGN_NUMBER = "+14155550100";
const TENANT_NUMBER = "+14155550101";
const CALLER = "+12125550142";
const TRUNK = "ST_switchboard";
const directory = {
  tenants: [
    {
      name: "Acme",
      agents: [{ name: "acme-default", default: true }, { name: "acme-sales" }],
      campaigns: [{ name: "Live", agent: "acme-sales" }],
      phone_numbers: [{ number: CAMPAIGN_NUMBER, campaign: "Live" }, { number: TENANT_NUMBER }],
    },
  ],
};

type Json = Record<string, any>;

let fake: FakeLiveKit;
let ctx: TestContext;

beforeAll(async () => {
  fake = await startFakeLiveKit(keys);
  ctx = await openTestContext({
    LIVEKIT_URL: fake.url,
    LIVEKIT_API_KEY: apiKey,
    LIVEKIT_API_SECRET: apiSecret,
    LIVEKIT_DISPATCH_RETRY_BASE_MS: "5",
  });
});
afterAll(async () => {
  await ctx?.close();
  await fake?.close();
});
beforeEach(async () => {
  await ctx.reset();
  fake.reset();
  ctx.logs.length = 0;
});

/** A fresh call: its own SIP call id and room, so builders' per-call memory never leaks between tests. */
function newCall(overrides: { from?: string; to?: string; at?: Date } = {}) {
  const callId = randomId("SCL_");
  const from = overrides.from ?? CALLER;
  return {
    callId,
    room: `call-_${from}_${randomId("")}`,
    from,
    to: overrides.to ?? CAMPAIGN_NUMBER,
    trunkId: TRUNK,
    at: overrides.at ?? new Date(),
  };
}

function post(delivery: { body: string; headers: Record<string, string> }) {
  return ctx.post(EVENTS, delivery.body, delivery.headers);
}

async function answer(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}

async function callLogRows() {
  return ctx.database.db.select().from(callLogs);
}

async function eventRows() {
  return ctx.database.db.select().from(webhookEvents);
}

/** Nothing at all happened: no record, no claimed event, no request to LiveKit. */
async function expectNothingChanged() {
  expect(await callLogRows()).toHaveLength(0);
  expect(await eventRows()).toHaveLength(0);
  expect(await ctx.database.db.select().from(leads)).toHaveLength(0);
  expect(fake.calls("CreateDispatch")).toHaveLength(0);
  expect(fake.calls()).toHaveLength(0);
}

describe("a valid signed event", () => {
  test("is accepted (200) and acted on: routed to the campaign agent, logged, dispatched into the event's room", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await signDelivery(sipParticipantJoined(call), keys);
    const res = await post(delivery);
    expect(res.status).toBe(200);
    const body = await answer(res);
    expect(body).toMatchObject({ ok: true, event: "participant_joined", id: delivery.event.id, result: "handled" });
    expect(body.dispatch).toMatchObject({ kind: "dispatched", reused: false });

    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.status).toBe(200);
    expect(creates[0]!.request.agentName).toBe("acme-sales");
    expect(creates[0]!.request.room).toBe(call.room);
    const dispatches = fake.dispatches(call.room);
    expect(dispatches).toHaveLength(1);
    expect(body.dispatch.dispatchId).toBe(dispatches[0]!.id);

    const [log, ...more] = await callLogRows();
    expect(more).toHaveLength(0);
    expect(log).toMatchObject({
      providerCallId: call.callId,
      roomName: call.room,
      trunkId: TRUNK,
      fromNumber: CALLER,
      toNumber: CAMPAIGN_NUMBER,
      agentName: "acme-sales",
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

    const lead = await ctx.database.db.select().from(leads);
    expect(lead).toHaveLength(1);
    expect(lead[0]).toMatchObject({ id: log!.leadId, phoneNumber: CALLER, status: "calling" });

    const events = await eventRows();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id: delivery.event.id, event: "participant_joined", roomName: call.room });
  });

  test("a number without a campaign is dispatched the tenant's default agent", async () => {
    await ctx.seed(directory);
    const call = newCall({ to: "(415) 555-0101" });
    const res = await post(await signDelivery(sipParticipantJoined(call), keys));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual(["acme-default"]);
    const [log] = await callLogRows();
    expect(log).toMatchObject({ agentName: "acme-default", agentSource: "tenant_default", toNumber: TENANT_NUMBER });
  });

  test("an unknown dialed number is dispatched the system default agent", async () => {
    await ctx.seed(directory);
    const call = newCall({ to: "+13105550000" });
    const res = await post(await signDelivery(sipParticipantJoined(call), keys));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual(["telephony-agent"]);
    const [log] = await callLogRows();
    expect(log).toMatchObject({ agentName: "telephony-agent", agentSource: "system_default", leadId: null });
  });

  test("the wire form has int64 fields as strings and kind as the enum name, and is accepted", async () => {
    await ctx.seed(directory);
    const call = newCall({ at: new Date("2025-08-22T08:00:00.456Z") });
    const delivery = await signDelivery(sipParticipantJoined(call), keys);
    expect(delivery.body).toContain('"kind":"SIP"');
    expect(delivery.body).toContain('"joinedAt":"');
    expect(delivery.body).toContain('"joinedAtMs":"1755849600456"');
    expect(delivery.body).toContain('"createdAt":"1755849600"');
    const res = await post(delivery);
    expect(res.status).toBe(200);
    expect((await answer(res)).result).toBe("handled");
    const [log] = await callLogRows();
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
    const delivery = await signDelivery(await signedJoin(), keys);
    const index = delivery.body.indexOf(CALLER) + CALLER.length - 1;
    const last = delivery.body[index]!;
    const tampered = delivery.body.slice(0, index) + (last === "9" ? "8" : "9") + delivery.body.slice(index + 1);
    expect(tampered).not.toBe(delivery.body);
    expect(tampered.length).toBe(delivery.body.length);
    const res = await post({ ...delivery, body: tampered });
    expect(res.status).toBe(401);
    expect((await answer(res)).error).toBe("unauthorized");
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
    const delivery = await signDelivery(await signedJoin(), { ...keys, expiredAt: new Date(Date.now() - 10 * 60_000) });
    const res = await post(delivery);
    expect(res.status).toBe(401);
    await expectNothingChanged();
  });

  test("no Authorization header", async () => {
    const delivery = await signDelivery(await signedJoin(), keys);
    const { authorization: _dropped, ...headers } = delivery.headers;
    const res = await post({ body: delivery.body, headers });
    expect(res.status).toBe(401);
    expect((await answer(res)).field).toBe("authorization");
    await expectNothingChanged();
  });

  test("a token valid for another body", async () => {
    const event = await signedJoin();
    const other = await signDelivery(sipParticipantJoined(newCall()), keys);
    const delivery = await signDelivery(event, keys);
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
    ["participant_left of an agent", () => agentLeft({ room, agentName: "acme-sales", at })],
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
      const delivery = await signDelivery(build(), keys);
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
    const good = (await signDelivery(sipParticipantJoined(newCall()), keys)).body;
    const malformed = good.slice(0, good.length - 5); // cut short: no longer JSON
    const delivery = await signDelivery(malformed, keys);
    const res = await post(delivery);
    expect(res.status).toBe(400);
    expect((await answer(res)).field).toBe("body");
    await expectNothingChanged();
  });

  test("a signed empty body gets a 4xx, not a 500", async () => {
    const delivery = await signDelivery("", keys);
    const res = await post(delivery);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectNothingChanged();
  });

  test("signed JSON that is not a WebhookEvent gets a 4xx, not a 500", async () => {
    const delivery = await signDelivery('{"event":5,"room":[]}', keys);
    const res = await post(delivery);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    await expectNothingChanged();
  });

  test("signed JSON that is not a WebhookEvent is a bad body (400), not an authorization failure", async () => {
    // The signature is valid: answering 401 "authorization: cannot decode ..." blames the wrong thing.
    for (const text of ['{"event":5}', "[]", "null"]) {
      const res = await post(await signDelivery(text, keys));
      const body = await answer(res);
      expect({ text, status: res.status, field: body.field }).toEqual({ text, status: 400, field: "body" });
    }
    await expectNothingChanged();
  });
});

describe("repeated deliveries", () => {
  test("the same delivery posted twice is acted on once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await signDelivery(sipParticipantJoined(call), keys);
    const first = await post(delivery);
    const second = await post(delivery);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect((await answer(first)).result).toBe("handled");
    expect((await answer(second)).result).toBe("duplicate");

    expect(await callLogRows()).toHaveLength(1);
    const creates = fake.calls("CreateDispatch");
    expect(creates).toHaveLength(1);
    expect(creates[0]!.status).toBe(200);
    expect(fake.dispatches(call.room)).toHaveLength(1);
    expect(await eventRows()).toHaveLength(1);
    expect(ctx.logs.some((l) => l.msg === "repeated delivery ignored" && l.event_id === delivery.event.id)).toBe(true);
  });

  test("the same delivery posted three times concurrently dispatches exactly once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const delivery = await signDelivery(sipParticipantJoined(call), keys);
    const responses = await Promise.all([post(delivery), post(delivery), post(delivery)]);
    // One delivery acts. The others find it either done (200, duplicate) or still in hand
    // (503: LiveKit redelivers later, so the event is not lost if the first attempt fails).
    const bodies = await Promise.all(responses.map(answer));
    const outcomes = responses.map((r, i) => `${r.status} ${bodies[i]!.result ?? bodies[i]!.error}`).sort();
    expect(outcomes.filter((o) => o === "200 handled")).toHaveLength(1);
    for (const other of outcomes.filter((o) => o !== "200 handled")) {
      expect(["200 duplicate", "503 unavailable"]).toContain(other);
    }

    // A later redelivery of any of them is acknowledged without acting again.
    const again = await post(delivery);
    expect(again.status).toBe(200);
    expect((await answer(again)).result).toBe("duplicate");

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.dispatches(call.room)).toHaveLength(1);
    const logs = await callLogRows();
    expect(logs).toHaveLength(1);
    expect(logs[0]!.dispatchId).toBe(fake.dispatches(call.room)[0]!.id);
    expect(await eventRows()).toHaveLength(1);
  });

  test("a join resent with a new event id for the same SIP call dispatches once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const first = await signDelivery(sipParticipantJoined(call), keys);
    const resent = await signDelivery(sipParticipantJoined(call), keys);
    expect(resent.event.id).not.toBe(first.event.id);

    const a = await post(first);
    const b = await post(resent);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect((await answer(a)).dispatch.kind).toBe("dispatched");
    expect((await answer(b)).dispatch).toMatchObject({ kind: "skipped" });

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.dispatches(call.room)).toHaveLength(1);
    const logs = await callLogRows();
    expect(logs).toHaveLength(1);
    expect(logs[0]!.dispatchId).toBe(fake.dispatches(call.room)[0]!.id);
    expect(await eventRows()).toHaveLength(2);
  });

  test("joins with different event ids for the same SIP call arriving concurrently dispatch once", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const deliveries: WebhookDelivery[] = [];
    for (let i = 0; i < 3; i++) deliveries.push(await signDelivery(sipParticipantJoined(call), keys));
    expect(new Set(deliveries.map((d) => d.event.id)).size).toBe(3);
    const responses = await Promise.all(deliveries.map(post));
    // One dispatches; the others find it dispatched (200, skipped) or still being dispatched
    // (503, so LiveKit redelivers them in case that dispatch fails).
    const bodies = await Promise.all(responses.map(answer));
    const outcomes = responses.map((r, i) => `${r.status} ${bodies[i]!.dispatch?.kind ?? bodies[i]!.error}`);
    expect(outcomes.filter((o) => o === "200 dispatched")).toHaveLength(1);
    for (const other of outcomes.filter((o) => o !== "200 dispatched")) {
      expect(["200 skipped", "503 unavailable"]).toContain(other);
    }
    // Their redeliveries are then acknowledged without a second agent.
    for (const [i, res] of responses.entries()) {
      if (res.status === 503) expect((await post(deliveries[i]!)).status).toBe(200);
    }

    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    expect(fake.dispatches(call.room)).toHaveLength(1);
    expect(await callLogRows()).toHaveLength(1);
  });

  test("a dispatch LiveKit already has for the room's agent is reused, not created again", async () => {
    await ctx.seed(directory);
    const call = newCall();
    // E.g. created by a process whose write of the dispatch id was lost.
    const existing = await new AgentDispatchClient(fake.url, apiKey, apiSecret).createDispatch(call.room, "acme-sales");
    const before = fake.calls("CreateDispatch").length;

    const res = await post(await signDelivery(sipParticipantJoined(call), keys));
    expect(res.status).toBe(200);
    expect((await answer(res)).dispatch).toMatchObject({ kind: "dispatched", reused: true, dispatchId: existing.id });
    expect(fake.calls("CreateDispatch").length).toBe(before);
    expect(fake.dispatches(call.room)).toHaveLength(1);
    const [log] = await callLogRows();
    expect(log!.dispatchId).toBe(existing.id);
  });
});

describe("a call first seen through sip-inbound, then through LiveKit's join", () => {
  async function sipInbound(body: Json, headers: Record<string, string>) {
    return ctx.post(SIP_INBOUND, JSON.stringify(body), headers);
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
    const authorization = await signBody(body, keys);
    const res = await ctx.post(SIP_INBOUND, body.replace(CALLER, "+12125550143"), { authorization });
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
    const inbound = await ctx.post(SIP_INBOUND, body, { authorization: await signBody(body, keys) });
    expect(inbound.status).toBe(200);
    const decision = await answer(inbound);
    expect(decision.agent_name).toBe("acme-sales");
    const decided = JSON.parse(decision.metadata as string) as Json;
    expect(decided.call_log_id).toEqual(expect.any(String));
    expect(fake.calls()).toHaveLength(0);

    const res = await post(await signDelivery(sipParticipantJoined(call), keys));
    expect(res.status).toBe(200);

    const logs = await callLogRows();
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
    expect(logs[0]!.dispatchId).toBe(fake.dispatches(call.room)[0]!.id);
    expect(logs[0]!.callerJoinedAt?.getTime()).toBe(call.at.getTime());
  });

  test("the sip-inbound decision stands even if the directory changed before the join", async () => {
    await ctx.seed(directory);
    const call = newCall();
    const body = JSON.stringify({ call_id: call.callId, from_number: call.from, to_number: call.to });
    const inbound = await ctx.post(SIP_INBOUND, body, { authorization: await signBody(body, keys) });
    const decision = await answer(inbound);
    expect(decision.agent_name).toBe("acme-sales");

    // The campaign is paused between the decision and LiveKit's join.
    const paused = structuredClone(directory) as Json;
    paused.tenants[0].campaigns[0].status = "paused";
    await ctx.seed(paused);
    const res = await post(await signDelivery(sipParticipantJoined(call), keys));
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch").map((c) => c.request.agentName)).toEqual(["acme-sales"]);
    const [log] = await ctx.database.db.select().from(callLogs).where(eq(callLogs.providerCallId, call.callId));
    expect(log!.agentName).toBe("acme-sales");
    // sip-inbound did not know the room; the join filled it in, so the agent's join finds the call.
    expect(log!.roomName).toBe(call.room);
    const agent = await post(await signDelivery(agentJoined({ room: call.room, agentName: "acme-sales" }), keys));
    expect((await answer(agent)).action).toBe("call answered");
  });
});
