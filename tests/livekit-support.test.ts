// Proves the LiveKit test support behaves like LiveKit as seen through livekit-server-sdk.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { ListUpdate } from "@livekit/protocol";
import { AgentDispatchClient, SipClient, WebhookReceiver } from "livekit-server-sdk";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
import {
  agentJoined,
  DisconnectReason,
  ParticipantInfo_Kind,
  roomFinished,
  signDelivery,
  sipParticipantJoined,
  sipParticipantLeft,
  trackPublished,
} from "./support/livekit-events";

const apiKey = "APItestkey";
const apiSecret = "test-secret-that-is-long-enough-for-hs256-0123456789";
const keys = { apiKey, apiSecret };

describe("webhook deliveries", () => {
  const receiver = new WebhookReceiver(apiKey, apiSecret);
  const joinedAt = new Date("2025-08-22T08:00:00.456Z");

  test("a signed SIP participant_joined verifies and parses as LiveKit's would", async () => {
    const delivery = await signDelivery(
      sipParticipantJoined({
        room: "call-_+15551230000_Xy9",
        callId: "SCL_abc",
        from: "+15551230000",
        to: "+15557650000",
        trunkId: "ST_trunk",
        ruleId: "SDR_rule",
        twilioCallSid: "CA123",
        at: joinedAt,
      }),
      keys,
    );
    expect(delivery.headers["content-type"]).toBe("application/webhook+json");
    expect(delivery.headers.authorization).toBe(delivery.authorization);
    expect(delivery.authorization.startsWith("Bearer")).toBe(false);

    const event = await receiver.receive(delivery.body, delivery.authorization);
    expect(event.event).toBe("participant_joined");
    expect(event.id).toMatch(/^EV_/);
    expect(event.createdAt).toBe(1755849600n);
    expect(event.room?.name).toBe("call-_+15551230000_Xy9");
    const p = event.participant;
    expect(p?.kind).toBe(ParticipantInfo_Kind.SIP);
    expect(p?.kind).toBe(3);
    expect(typeof p?.joinedAt).toBe("bigint");
    expect(p?.joinedAt).toBe(1755849600n);
    expect(p?.joinedAtMs).toBe(1755849600456n);
    expect(p?.identity).toBe("sip_+15551230000");
    expect(p?.name).toBe("Phone +15551230000");
    expect(p?.attributes).toEqual({
      "sip.callID": "SCL_abc",
      "sip.trunkID": "ST_trunk",
      "sip.ruleID": "SDR_rule",
      "sip.phoneNumber": "+15551230000",
      "sip.trunkPhoneNumber": "+15557650000",
      "sip.callStatus": "ringing",
      "sip.twilio.callSid": "CA123",
    });

    // protojson on the wire: enum names, int64 as strings.
    expect(delivery.body).toContain('"kind":"SIP"');
    expect(delivery.body).toContain('"state":"ACTIVE"');
    expect(delivery.body).toContain('"createdAt":"1755849600"');
    expect(delivery.body).toContain('"joinedAt":"1755849600"');
    expect(delivery.body).toContain('"joinedAtMs":"1755849600456"');
  });

  test("hidePhoneNumber hides the number the way LiveKit SIP does", async () => {
    const event = sipParticipantJoined({
      room: "r",
      callId: "SCL_hidden",
      from: "+15551230000",
      to: "+15557650000",
      trunkId: "ST_t",
      hidePhoneNumber: true,
    });
    expect(event.participant?.identity).toMatch(/^sip_[0-9a-f]{16}$/);
    expect(event.participant?.name).toBe("Phone 0000");
    expect(event.participant?.attributes["sip.phoneNumber"]).toBeUndefined();
    expect(event.participant?.attributes["sip.trunkPhoneNumber"]).toBeUndefined();
  });

  test("participant_left matches its join and carries the disconnect reason", async () => {
    sipParticipantJoined({ room: "r2", callId: "SCL_left", from: "+15550001111", to: "+15557650000", trunkId: "ST_t", at: joinedAt });
    const leftAt = new Date(joinedAt.getTime() + 95_000);
    const delivery = await signDelivery(sipParticipantLeft({ room: "r2", callId: "SCL_left", at: leftAt, reason: "USER_REJECTED" }), keys);
    expect(delivery.body).toContain('"disconnectReason":"USER_REJECTED"');
    const event = await receiver.receive(delivery.body, delivery.authorization);
    expect(event.event).toBe("participant_left");
    expect(event.participant?.identity).toBe("sip_+15550001111");
    expect(event.participant?.disconnectReason).toBe(DisconnectReason.USER_REJECTED);
    expect(Number(event.createdAt - event.participant!.joinedAt)).toBe(95);
  });

  test("other builders produce events the receiver accepts", async () => {
    for (const e of [
      agentJoined({ room: "r3", agentName: "agent-a", at: joinedAt }),
      roomFinished({ room: "r3", at: joinedAt }),
      trackPublished({ room: "r3", callId: "SCL_abc" }),
    ]) {
      const d = await signDelivery(e, keys);
      const parsed = await receiver.receive(d.body, d.authorization);
      expect(parsed.event as string).toBe(e.event);
    }
    const agent = agentJoined({ room: "r3", agentName: "agent-a" });
    expect(agent.participant?.kind).toBe(ParticipantInfo_Kind.AGENT);
    expect(agent.toJsonString()).toContain('"kind":"AGENT"');
  });

  test("tampered body, wrong secret and expired token are rejected", async () => {
    const event = sipParticipantJoined({ room: "r", callId: "SCL_x", from: "+15551230000", to: "+15557650000", trunkId: "ST_t" });
    const good = await signDelivery(event, keys);
    await expect(receiver.receive(good.body.replace("+15551230000", "+15559999999"), good.authorization)).rejects.toThrow(
      /sha256/,
    );
    const wrongSecret = await signDelivery(event, { apiKey, apiSecret: "another-secret-another-secret-another" });
    await expect(receiver.receive(wrongSecret.body, wrongSecret.authorization)).rejects.toThrow();
    const expired = await signDelivery(event, { ...keys, expiredAt: new Date(Date.now() - 60_000) });
    await expect(receiver.receive(expired.body, expired.authorization)).rejects.toThrow(/exp/);
    const wrongKey = await signDelivery(event, { apiKey: "APIother", apiSecret });
    await expect(receiver.receive(wrongKey.body, wrongKey.authorization)).rejects.toThrow();
    // The untouched delivery still verifies.
    await expect(receiver.receive(good.body, good.authorization)).resolves.toBeDefined();
  });
});

describe("fake LiveKit API", () => {
  let fake: FakeLiveKit;
  beforeAll(async () => {
    fake = await startFakeLiveKit(keys);
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.reset());

  test("agent dispatch: create, list, delete", async () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new AgentDispatchClient(fake.url, apiKey, apiSecret);
    const created = await client.createDispatch("room1", "agent-a", { metadata: "{}" });
    expect(created.id).toMatch(/^AD_/);
    expect(created.agentName).toBe("agent-a");
    expect(created.room).toBe("room1");
    expect(created.metadata).toBe("{}");

    const calls = fake.calls("CreateDispatch");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.status).toBe(200);
    expect(calls[0]?.request.room).toBe("room1");
    expect(calls[0]?.request.agentName).toBe("agent-a");
    expect(calls[0]?.request.metadata).toBe("{}");
    expect(calls[0]?.grants?.video).toEqual({ roomAdmin: true, room: "room1" });

    // CreateDispatch created room1 (auto_create), which came with its implicit empty-name dispatch.
    const listed = await client.listDispatch("room1");
    expect(listed.map((d) => [d.agentName, d.id]).sort()).toEqual([
      ["", fake.dispatches("room1")[0]!.id],
      ["agent-a", created.id],
    ]);
    // A room that does not exist: no node answers for it.
    await expect(client.listDispatch("other-room")).rejects.toMatchObject({ status: 503, code: "unavailable" });
    expect((await client.getDispatch(created.id, "room1"))?.agentName).toBe("agent-a");

    await client.deleteDispatch(created.id, "room1");
    expect((await client.listDispatch("room1")).map((d) => d.agentName)).toEqual([""]);
  });

  test("a client with the wrong secret is unauthenticated", async () => {
    const client = new AgentDispatchClient(fake.url, apiKey, "wrong-secret-wrong-secret-wrong-secret");
    const err = await client.createDispatch("room1", "agent-a").catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.status).toBe(401);
    expect(err.code).toBe("unauthenticated");
    expect(fake.dispatches()).toEqual([]);
    expect(fake.calls("CreateDispatch")[0]?.status).toBe(401);
  });

  test("failNext fails exactly the next n calls", async () => {
    const client = new AgentDispatchClient(fake.url, apiKey, apiSecret);
    fake.failNext("CreateDispatch");
    const err = await client.createDispatch("room1", "agent-a").catch((e) => e);
    expect(err.status).toBe(503);
    expect(err.code).toBe("unavailable");
    expect(fake.dispatches("room1")).toHaveLength(0);
    await client.createDispatch("room1", "agent-a");
    expect(fake.agentDispatches("room1")).toHaveLength(1);

    fake.failNext("ListDispatch", 2, 500);
    await expect(client.listDispatch("room1")).rejects.toMatchObject({ status: 500, code: "internal" });
    await expect(client.listDispatch("room1")).rejects.toMatchObject({ status: 500 });
    expect((await client.listDispatch("room1")).map((d) => d.agentName).sort()).toEqual(["", "agent-a"]);
  });

  test("setDown refuses connections; setDown(false) listens again on the same port", async () => {
    const client = new AgentDispatchClient(fake.url, apiKey, apiSecret);
    fake.createRoom("room1");
    await client.listDispatch("room1"); // leave a kept-alive connection behind
    await fake.setDown(true);
    expect(fake.down).toBe(true);
    const err = await client.createDispatch("room1", "agent-a").catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.status).toBeUndefined(); // no HTTP answer at all
    expect(String(err.code ?? err.message)).toMatch(/ConnectionRefused|ECONNREFUSED|Unable to connect/i);
    await fake.setDown(false);
    expect(fake.down).toBe(false);
    const created = await client.createDispatch("room1", "agent-a");
    expect(created.id).toMatch(/^AD_/);
  });

  test("SIP inbound trunks: create, list, update, delete", async () => {
    const sip = new SipClient(fake.url, apiKey, apiSecret);
    const trunk = await sip.createSipInboundTrunk("switchboard", ["+15557650000"], { krispEnabled: true, metadata: "m" });
    expect(trunk.sipTrunkId).toMatch(/^ST_/);
    expect(fake.calls("CreateSIPInboundTrunk")[0]?.grants?.sip).toEqual({ admin: true });

    const listed = await sip.listSipInboundTrunk();
    expect(listed).toHaveLength(1);
    expect(listed[0]?.sipTrunkId).toBe(trunk.sipTrunkId);
    expect(listed[0]?.numbers).toEqual(["+15557650000"]);
    expect(listed[0]?.krispEnabled).toBe(true);
    expect(await sip.listSipInboundTrunk({ numbers: ["+15550000000"] })).toEqual([]);

    const updated = await sip.updateSipInboundTrunkFields(trunk.sipTrunkId, {
      numbers: new ListUpdate({ add: ["+15557651111"] }),
      name: "renamed",
    });
    expect(updated.name).toBe("renamed");
    expect(updated.numbers).toEqual(["+15557650000", "+15557651111"]);
    expect(fake.calls("UpdateSIPInboundTrunk")[0]?.request.action.case).toBe("update");

    const replaced = await sip.updateSipInboundTrunk(trunk.sipTrunkId, listed[0]!);
    expect(replaced.name).toBe("switchboard");
    expect(fake.calls("UpdateSIPInboundTrunk")[1]?.request.action.case).toBe("replace");

    await sip.deleteSipTrunk(trunk.sipTrunkId);
    expect(await sip.listSipInboundTrunk()).toEqual([]);
  });

  test("SIP dispatch rules: create, list, update, delete", async () => {
    const sip = new SipClient(fake.url, apiKey, apiSecret);
    const rule = await sip.createSipDispatchRule(
      { type: "individual", roomPrefix: "call-" },
      { name: "switchboard", trunkIds: ["ST_abc"], metadata: "{}", attributes: { a: "b" } },
    );
    expect(rule.sipDispatchRuleId).toMatch(/^SDR_/);
    const listed = await sip.listSipDispatchRule();
    expect(listed).toHaveLength(1);
    const individual = listed[0]?.rule?.rule;
    expect(individual?.case).toBe("dispatchRuleIndividual");
    expect(individual?.case === "dispatchRuleIndividual" && individual.value.roomPrefix).toBe("call-");
    expect(listed[0]?.trunkIds).toEqual(["ST_abc"]);
    expect(await sip.listSipDispatchRule({ trunkIds: ["ST_other"] })).toEqual([]);

    const updated = await sip.updateSipDispatchRuleFields(rule.sipDispatchRuleId, { metadata: "{\"v\":2}" });
    expect(updated.metadata).toBe('{"v":2}');
    expect(updated.name).toBe("switchboard");

    await sip.deleteSipDispatchRule(rule.sipDispatchRuleId);
    expect(await sip.listSipDispatchRule()).toEqual([]);
  });

  test("SIP calls need the sip.admin grant", async () => {
    const badSip = new SipClient(fake.url, apiKey, "nope-nope-nope-nope-nope-nope-nope-nope");
    await expect(badSip.listSipInboundTrunk()).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
  });
});
