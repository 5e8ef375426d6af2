// The stand-in LiveKit's room participants, RoomService.RemoveParticipant, SIP.TransferSIPParticipant
// and SIP.CreateSIPParticipant, driven with the real livekit-server-sdk clients. Each expectation
// follows the Go source cited in tests/support/fake-livekit.ts's header (livekit/livekit
// pkg/service/roomservice.go, sip.go, pkg/rtc/types/interfaces.go; livekit/protocol livekit/sip.go,
// rpc/sip.go; livekit/sip pkg/sip/inbound.go, outbound.go, client.go; psrpc errors.go for the 412).
import { describe, expect, test } from "bun:test";
import { CreateSIPParticipantRequest, DisconnectReason, ParticipantInfo_Kind, ParticipantInfo_State, SIPParticipantInfo } from "@livekit/protocol";
import { AccessToken, RoomServiceClient, SipClient } from "livekit-server-sdk";
import { startFakeLiveKit } from "./support/fake-livekit";
import { newCall, sipCallerJoinedEvent, TEST_KEYS, useFakeLiveKit } from "./support/livekit-app";

describe("the stand-in LiveKit's participants, RemoveParticipant, TransferSIPParticipant and CreateSIPParticipant", () => {
  const fake = useFakeLiveKit();
  const rooms = () => new RoomServiceClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
  const sip = () => new SipClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
  const roomName = () => `room-${crypto.randomUUID()}`;

  /** A SIP caller in a fresh room, put there by the same helper the app's tests use for a caller's join: still ringing. */
  const sipCaller = () => {
    const call = newCall();
    const joined = sipCallerJoinedEvent(fake, call);
    return { call, identity: joined.participant!.identity, joined };
  };
  /** sipCaller, then answered (an agent subscribed to its audio): a call that can be transferred. */
  const answeredCaller = () => {
    const caller = sipCaller();
    fake.answerCall(caller.call.room, caller.identity);
    return caller;
  };

  /** A token signed with the fake's keys carrying exactly these grants. */
  const token = async (video?: Record<string, unknown>, sipGrant?: { admin?: boolean; call?: boolean }) => {
    const at = new AccessToken(TEST_KEYS.apiKey, TEST_KEYS.apiSecret, { ttl: "10m" });
    if (video) at.addGrant(video);
    if (sipGrant) at.addSIPGrant(sipGrant);
    return at.toJwt();
  };

  test("addParticipant: a PA_ sid, ACTIVE, joinedAt now, in the room (created if needed) with numParticipants counted", () => {
    const name = roomName();
    const before = Date.now();
    const added = fake.addParticipant(name, { identity: "alice", name: "Alice", attributes: { a: "1" } });
    expect(added.sid).toMatch(/^PA_[2-9A-HJ-NP-Za-km-z]{12}$/);
    expect(added).toMatchObject({ identity: "alice", name: "Alice", state: ParticipantInfo_State.ACTIVE, kind: ParticipantInfo_Kind.STANDARD, attributes: { a: "1" } });
    expect(Number(added.joinedAtMs)).toBeGreaterThanOrEqual(before);
    expect(fake.room(name)?.sid).toMatch(/^RM_/);
    fake.addParticipant(name, { identity: "bob" });
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["alice", "bob"]);
    expect(fake.room(name)?.numParticipants).toBe(2);
    expect(fake.participants(roomName())).toEqual([]);
  });

  test("sipCallerJoinedEvent puts the caller in the fake's room as the webhook's participant; built again, it is the same one", () => {
    const { call, joined } = sipCaller();
    const [inRoom, ...others] = fake.participants(call.room);
    expect(others).toEqual([]);
    const webhook = joined.participant!;
    expect(inRoom).toMatchObject({ sid: webhook.sid, identity: webhook.identity, kind: ParticipantInfo_Kind.SIP, attributes: webhook.attributes });
    expect(inRoom!.attributes["sip.callID"]).toBe(call.callId);
    sipCallerJoinedEvent(fake, call); // LiveKit resending the join
    expect(fake.participants(call.room).map((p) => p.sid)).toEqual([webhook.sid]);
    expect(fake.removedParticipants()).toEqual([]);
  });

  test("a join with an identity already in the room replaces it (DUPLICATE_IDENTITY)", () => {
    const name = roomName();
    const first = fake.addParticipant(name, { identity: "alice" });
    const second = fake.addParticipant(name, { identity: "alice" });
    expect(fake.participants(name).map((p) => p.sid)).toEqual([second.sid]);
    expect(fake.removedParticipants(name)).toMatchObject([
      { identity: "alice", cause: "DuplicateIdentity", disconnectReason: DisconnectReason.DUPLICATE_IDENTITY, participant: { sid: first.sid } },
    ]);
  });

  test("RemoveParticipant: the participant is gone and recorded as participant_left would carry it (PARTICIPANT_REMOVED)", async () => {
    const { call, identity } = sipCaller();
    const agent = fake.addParticipant(call.room, { identity: "agent-1", kind: ParticipantInfo_Kind.AGENT });
    const roomSid = fake.room(call.room)!.sid;

    await rooms().removeParticipant(call.room, identity);

    expect(fake.participants(call.room).map((p) => p.identity)).toEqual([agent.identity]);
    expect(fake.room(call.room)?.numParticipants).toBe(1);
    const [removed, ...more] = fake.removedParticipants(call.room);
    expect(more).toEqual([]);
    expect(removed).toMatchObject({ room: call.room, roomSid, identity, cause: "RemoveParticipant", disconnectReason: DisconnectReason.PARTICIPANT_REMOVED });
    expect(removed!.participant).toMatchObject({
      identity,
      kind: ParticipantInfo_Kind.SIP,
      state: ParticipantInfo_State.DISCONNECTED,
      disconnectReason: DisconnectReason.PARTICIPANT_REMOVED,
    });
    // The SDK's request: a RoomParticipantIdentity, with video { roomAdmin, room }.
    const [recorded] = fake.calls("RemoveParticipant");
    expect(recorded).toMatchObject({ service: "RoomService", status: 200, request: { room: call.room, identity } });
    expect(recorded!.grants?.video).toMatchObject({ roomAdmin: true, room: call.room });
    expect(fake.transfers()).toEqual([]);
  });

  test("RemoveParticipant of an identity not in the room, or in a room that is not live: 404 not_found 'participant does not exist'", async () => {
    const { call, identity } = sipCaller();
    await expect(rooms().removeParticipant(call.room, "nobody")).rejects.toMatchObject({
      status: 404,
      code: "not_found",
      message: "participant does not exist",
    });
    await expect(rooms().removeParticipant(roomName(), identity)).rejects.toMatchObject({ status: 404, code: "not_found" });
    // Removed once, the second removal finds nobody either.
    await rooms().removeParticipant(call.room, identity);
    await expect(rooms().removeParticipant(call.room, identity)).rejects.toMatchObject({ status: 404, code: "not_found" });
    expect(fake.removedParticipants().map((r) => r.identity)).toEqual([identity]);
  });

  test("TransferSIPParticipant of an answered SIP caller to a tel: URI: recorded, and the caller leaves (CLIENT_INITIATED)", async () => {
    const { call, identity, joined } = answeredCaller();

    await sip().transferSipParticipant(call.room, identity, "tel:+15551234567");

    const [transfer, ...more] = fake.transfers(call.room);
    expect(more).toEqual([]);
    expect(transfer).toMatchObject({
      room: call.room,
      identity,
      participantSid: joined.participant!.sid,
      sipCallId: call.callId,
      transferTo: "tel:+15551234567",
      referTo: "tel:+15551234567", // a tel: URI is passed on bare
      playDialtone: false,
      ringingTimeoutMs: 30_000, // the SDK's default ringing timeout
    });
    expect(fake.participants(call.room)).toEqual([]);
    expect(fake.removedParticipants(call.room)).toMatchObject([
      {
        identity,
        cause: "TransferSIPParticipant",
        disconnectReason: DisconnectReason.CLIENT_INITIATED,
        participant: { state: ParticipantInfo_State.DISCONNECTED, disconnectReason: DisconnectReason.CLIENT_INITIATED },
      },
    ]);
    // The SDK's token: video { roomAdmin, room } and sip { call }.
    const [recorded] = fake.calls("TransferSIPParticipant");
    expect(recorded).toMatchObject({ service: "SIP", status: 200, request: { roomName: call.room, participantIdentity: identity } });
    expect(recorded!.grants?.video).toMatchObject({ roomAdmin: true, room: call.room });
    expect(recorded!.grants?.sip).toMatchObject({ call: true });
  });

  test("a sip: transfer target is passed on as <sip:...>; the options reach the record", async () => {
    const { call, identity } = answeredCaller();
    await sip().transferSipParticipant(call.room, identity, "sip:desk@example.com", {
      playDialtone: true,
      ringingTimeout: 12,
      headers: { "X-Reason": "vip" },
    });
    expect(fake.transfers(call.room)).toMatchObject([
      { transferTo: "sip:desk@example.com", referTo: "<sip:desk@example.com>", playDialtone: true, ringingTimeoutMs: 12_000, headers: { "X-Reason": "vip" } },
    ]);
  });

  test("TransferSIPParticipant of a participant without a SIP session: 400 invalid_argument, and it stays", async () => {
    const name = roomName();
    fake.addParticipant(name, { identity: "web-user" });
    await expect(sip().transferSipParticipant(name, "web-user", "tel:+15551234567")).rejects.toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: "no SIP session associated with participant",
    });
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["web-user"]);
    expect(fake.transfers()).toEqual([]);
    expect(fake.removedParticipants()).toEqual([]);
  });

  test("TransferSIPParticipant with a bad or missing transfer_to: 400 invalid_argument, and the caller stays", async () => {
    const { call, identity } = sipCaller();
    await expect(sip().transferSipParticipant(call.room, identity, "+15551234567")).rejects.toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: "transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)",
    });
    await expect(sip().transferSipParticipant(call.room, identity, "")).rejects.toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: "missing transfer to",
    });
    expect(fake.participants(call.room).map((p) => p.identity)).toEqual([identity]);
    expect(fake.transfers()).toEqual([]);
  });

  test("TransferSIPParticipant of an identity not in the room: 404 not_found", async () => {
    const { call } = sipCaller();
    await expect(sip().transferSipParticipant(call.room, "nobody", "tel:+15551234567")).rejects.toMatchObject({
      status: 404,
      code: "not_found",
      message: "participant does not exist",
    });
    expect(fake.transfers()).toEqual([]);
  });

  test("a token without the needed grant is refused with 401 unauthenticated, and nothing changes", async () => {
    const { call, identity } = answeredCaller();
    const denied = { status: 401, code: "unauthenticated", message: "permissions denied" };
    const withToken = async (video?: Record<string, unknown>, sipGrant?: { admin?: boolean; call?: boolean }) => ({
      rooms: new RoomServiceClient(fake.url, undefined, undefined, { token: await token(video, sipGrant) }),
      sip: new SipClient(fake.url, undefined, undefined, { token: await token(video, sipGrant) }),
    });

    // RemoveParticipant needs roomAdmin for that very room.
    await expect((await withToken({ roomAdmin: true, room: "another-room" })).rooms.removeParticipant(call.room, identity)).rejects.toMatchObject(denied);
    await expect((await withToken({ roomList: true, roomCreate: true, room: call.room })).rooms.removeParticipant(call.room, identity)).rejects.toMatchObject(denied);
    // TransferSIPParticipant needs sip.call (sip.admin is not it) and roomAdmin for the room.
    await expect((await withToken({ roomAdmin: true, room: call.room })).sip.transferSipParticipant(call.room, identity, "tel:+15551234567")).rejects.toMatchObject(denied);
    await expect(
      (await withToken({ roomAdmin: true, room: call.room }, { admin: true })).sip.transferSipParticipant(call.room, identity, "tel:+15551234567"),
    ).rejects.toMatchObject(denied);
    await expect((await withToken(undefined, { call: true })).sip.transferSipParticipant(call.room, identity, "tel:+15551234567")).rejects.toMatchObject(denied);

    expect(fake.participants(call.room).map((p) => p.identity)).toEqual([identity]);
    expect(fake.removedParticipants()).toEqual([]);
    expect(fake.transfers()).toEqual([]);
    // With both grants the same transfer goes through.
    await (await withToken({ roomAdmin: true, room: call.room }, { call: true })).sip.transferSipParticipant(call.room, identity, "tel:+15551234567");
    expect(fake.transfers().map((t) => t.identity)).toEqual([identity]);
  });

  test("TransferSIPParticipant with no room name is 400 before any grant is looked at", async () => {
    const { identity } = sipCaller();
    const noGrants = new SipClient(fake.url, undefined, undefined, { token: await token({ roomList: true }) });
    await expect(noGrants.transferSipParticipant("", identity, "tel:+15551234567")).rejects.toMatchObject({
      status: 400,
      code: "invalid_argument",
      message: "Missing room name",
    });
  });

  test("failNext and delayNext work for the new methods: an injected failure changes nothing, a delayed call is carried out", async () => {
    const { call, identity } = answeredCaller();
    fake.failNext("RemoveParticipant", 1, 503);
    await expect(rooms().removeParticipant(call.room, identity)).rejects.toMatchObject({ status: 503, code: "unavailable" });
    expect(fake.participants(call.room).map((p) => p.identity)).toEqual([identity]);

    fake.failNext("TransferSIPParticipant", 1, { status: 500, code: "internal", msg: "REFER failed" });
    await expect(sip().transferSipParticipant(call.room, identity, "tel:+15551234567")).rejects.toMatchObject({ status: 500, message: "REFER failed" });
    expect(fake.transfers()).toEqual([]);

    fake.delayNext("TransferSIPParticipant", 300);
    const started = Date.now();
    await sip().transferSipParticipant(call.room, identity, "tel:+15551234567");
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(fake.transfers().map((t) => t.identity)).toEqual([identity]);
    expect(fake.calls("TransferSIPParticipant").map((c) => c.status)).toEqual([500, 200]);
  });

  test("deleteRoom forgets its participants; reset forgets participants, removals and transfers", async () => {
    const first = sipCaller();
    expect(fake.deleteRoom(first.call.room)).toBe(true);
    expect(fake.participants(first.call.room)).toEqual([]);
    fake.createRoom(first.call.room);
    expect(fake.participants(first.call.room)).toEqual([]);

    const second = sipCaller();
    const third = answeredCaller();
    await rooms().removeParticipant(second.call.room, second.identity);
    await sip().transferSipParticipant(third.call.room, third.identity, "tel:+15551234567");
    const kept = fake.addParticipant(third.call.room, { identity: "agent" });
    expect(fake.participants(third.call.room).map((p) => p.sid)).toEqual([kept.sid]);
    fake.reset();
    expect(fake.participants(third.call.room)).toEqual([]);
    expect(fake.removedParticipants()).toEqual([]);
    expect(fake.transfers()).toEqual([]);
  });
  // ---- TransferSIPParticipant of a call that is not established ----

  test("TransferSIPParticipant of a caller still ringing: 412 failed_precondition 'can't transfer non established call', and nothing changes", async () => {
    const { call, identity, joined } = sipCaller();
    expect(fake.participants(call.room)[0]!.attributes["sip.callStatus"]).toBe("ringing");

    await expect(sip().transferSipParticipant(call.room, identity, "tel:+15551234567")).rejects.toMatchObject({
      status: 412,
      code: "failed_precondition",
      message: "can't transfer non established call",
    });

    // Still in the room, as it was: not removed, not transferred, still ringing.
    expect(fake.participants(call.room)).toMatchObject([{ sid: joined.participant!.sid, identity, attributes: { "sip.callStatus": "ringing" } }]);
    expect(fake.removedParticipants()).toEqual([]);
    expect(fake.transfers()).toEqual([]);
    expect(fake.calls("TransferSIPParticipant")).toMatchObject([{ status: 412, errorCode: "failed_precondition" }]);
  });

  test("answerCall makes the caller's sip.callStatus active (nothing else changes), and the same transfer then goes through", async () => {
    const { call, identity, joined } = sipCaller();
    await expect(sip().transferSipParticipant(call.room, identity, "tel:+15551234567")).rejects.toMatchObject({ status: 412 });

    const answered = fake.answerCall(call.room, identity);
    expect(answered.sid).toBe(joined.participant!.sid);
    expect(answered.attributes).toEqual({ ...joined.participant!.attributes, "sip.callStatus": "active" });
    expect(fake.participants(call.room)[0]!.attributes["sip.callStatus"]).toBe("active");

    await sip().transferSipParticipant(call.room, identity, "tel:+15551234567");
    expect(fake.transfers(call.room).map((t) => t.identity)).toEqual([identity]);
    expect(fake.participants(call.room)).toEqual([]);
    expect(fake.calls("TransferSIPParticipant").map((c) => c.status)).toEqual([412, 200]);
  });

  test("the checks before the SIP node still come first for a ringing caller; answerCall of nobody throws", async () => {
    const { call, identity } = sipCaller();
    await expect(sip().transferSipParticipant(call.room, identity, "+15551234567")).rejects.toMatchObject({ status: 400, code: "invalid_argument" });
    await expect(sip().transferSipParticipant(call.room, "nobody", "tel:+15551234567")).rejects.toMatchObject({ status: 404, code: "not_found" });
    expect(() => fake.answerCall(call.room, "nobody")).toThrow();
    expect(() => fake.answerCall(roomName(), identity)).toThrow();
  });

  // ---- CreateSIPParticipant ----

  /** An outbound trunk the way a test provisions one. */
  const outboundTrunk = (numbers = ["+15550001111"], address = "sip.carrier.example") => fake.createOutboundTrunk({ name: "out", address, numbers });

  test("createSipParticipant dials the number into the room (created by the join): the SIP participant is there, answered SIPParticipantInfo, recorded", async () => {
    const trunk = outboundTrunk();
    expect(trunk.sipTrunkId).toMatch(/^ST_/);
    const name = roomName();
    expect(fake.room(name)).toBeUndefined();

    const info = await sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name, {
      participantIdentity: "transfer-1",
      participantName: "Transfer",
      participantAttributes: { "switchboard.leg": "transfer" },
    });

    expect(info).toBeInstanceOf(SIPParticipantInfo);
    expect(info.participantId).toMatch(/^PA_/);
    expect(info.sipCallId).toMatch(/^SCL_/);
    expect(info).toMatchObject({ participantIdentity: "transfer-1", roomName: name });
    expect(fake.room(name)?.sid).toMatch(/^RM_/);
    const [dialed, ...others] = fake.participants(name);
    expect(others).toEqual([]);
    expect(dialed).toMatchObject({ sid: info.participantId, identity: "transfer-1", name: "Transfer", kind: ParticipantInfo_Kind.SIP, state: ParticipantInfo_State.ACTIVE });
    expect(dialed!.attributes).toEqual({
      "switchboard.leg": "transfer",
      "sip.callID": info.sipCallId,
      "sip.trunkID": trunk.sipTrunkId,
      "sip.phoneNumber": "+15557654321",
      "sip.hostname": "sip.carrier.example",
      "sip.trunkPhoneNumber": "+15550001111",
      "sip.callStatus": "dialing", // not waiting until answered: the answer comes while it dials
    });
    expect(fake.outboundCalls()).toMatchObject([
      {
        room: name,
        trunkId: trunk.sipTrunkId,
        number: "+15557654321",
        fromNumber: "+15550001111",
        identity: "transfer-1",
        name: "Transfer",
        attributes: dialed!.attributes,
        waitUntilAnswered: false,
        participantSid: info.participantId,
        sipCallId: info.sipCallId,
      },
    ]);
    // The SDK's token: sip { call } and no room grant.
    const [recorded] = fake.calls("CreateSIPParticipant");
    expect(recorded).toMatchObject({ service: "SIP", status: 200, request: { sipTrunkId: trunk.sipTrunkId, sipCallTo: "+15557654321", roomName: name } });
    expect(recorded!.grants?.sip).toMatchObject({ call: true });
    expect(recorded!.grants?.sip?.admin).toBeFalsy();
    expect(recorded!.grants?.video?.roomAdmin).toBeFalsy();
  });

  test("a dialed participant still dialing cannot be transferred; answered, it can", async () => {
    const trunk = outboundTrunk();
    const name = roomName();
    const info = await sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name, { participantIdentity: "callee" });
    await expect(sip().transferSipParticipant(name, "callee", "tel:+15551234567")).rejects.toMatchObject({ status: 412, code: "failed_precondition" });
    fake.answerCall(name, "callee");
    await sip().transferSipParticipant(name, "callee", "tel:+15551234567");
    expect(fake.transfers(name)).toMatchObject([{ identity: "callee", sipCallId: info.sipCallId, participantSid: info.participantId }]);
  });

  test("waitUntilAnswered: answered as if the callee picked up at once (active, transferable); the options reach the record", async () => {
    const trunk = outboundTrunk(["15550001111", "15550002222"]);
    const name = roomName();
    fake.createRoom(name);
    fake.addParticipant(name, { identity: "caller" });
    await sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name, {
      participantIdentity: "callee",
      waitUntilAnswered: true,
      fromNumber: "+15559990000",
      dtmf: "1234#",
      playDialtone: true,
      headers: { "X-Leg": "b" },
    });
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["caller", "callee"]);
    const [call] = fake.outboundCalls(name);
    expect(call).toMatchObject({
      waitUntilAnswered: true,
      fromNumber: "+15559990000", // sip_number wins over the trunk's numbers
      dtmf: "1234#",
      playDialtone: true,
      headers: { "X-Leg": "b" },
      ringingTimeoutMs: 30_000, // the SDK sets its default ringing timeout with waitUntilAnswered
      attributes: { "sip.callStatus": "active", "sip.trunkPhoneNumber": "+15559990000" },
    });
    await sip().transferSipParticipant(name, "callee", "tel:+15551234567");
    expect(fake.transfers(name).map((t) => t.identity)).toEqual(["callee"]);
  });

  test("identities: the SDK sends 'sip-participant' when none is given; the server's own default is sip_<number>; hidePhoneNumber leaves the number attributes out", async () => {
    const trunk = outboundTrunk();
    const name = roomName();
    await sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name, { hidePhoneNumber: true });
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["sip-participant"]);
    expect(Object.keys(fake.participants(name)[0]!.attributes).sort()).toEqual(["sip.callID", "sip.callStatus", "sip.trunkID"]);

    // Another client leaving participant_identity empty.
    const at = new AccessToken(TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
    at.addSIPGrant({ call: true });
    const body = new CreateSIPParticipantRequest({ sipTrunkId: trunk.sipTrunkId, sipCallTo: "+15550009999", roomName: name }).toJsonString();
    const response = await fetch(`${fake.url}/twirp/livekit.SIP/CreateSIPParticipant`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await at.toJwt()}` },
      body,
    });
    expect(response.status).toBe(200);
    expect(SIPParticipantInfo.fromJsonString(await response.text())).toMatchObject({ participantIdentity: "sip_+15550009999", roomName: name });
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["sip-participant", "sip_+15550009999"]);
  });

  test("createSipParticipant creates the room even with room.auto_create off (a join, not a dispatch)", async () => {
    const strict = await startFakeLiveKit({ ...TEST_KEYS, autoCreate: false });
    try {
      const trunk = strict.createOutboundTrunk({ address: "sip.carrier.example", numbers: ["+15550001111"] });
      const name = roomName();
      await new SipClient(strict.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret).createSipParticipant(trunk.sipTrunkId, "+15557654321", name);
      expect(strict.room(name)?.sid).toMatch(/^RM_/);
      expect(strict.participants(name).map((p) => p.identity)).toEqual(["sip-participant"]);
    } finally {
      await strict.close();
    }
  });

  test("createSipParticipant validation: 400 invalid_argument in the server's order, then 404 for an unknown trunk, 412 for a trunk without numbers; nobody joins", async () => {
    const trunk = outboundTrunk();
    const name = roomName();
    const bad = (status: number, code: string, message: string) => ({ status, code, message });
    await expect(sip().createSipParticipant("", "+15557654321", name)).rejects.toMatchObject(bad(400, "invalid_argument", "missing sip trunk id and sip number"));
    await expect(sip().createSipParticipant(trunk.sipTrunkId, "", name)).rejects.toMatchObject(bad(400, "invalid_argument", "missing sip callee number"));
    await expect(sip().createSipParticipant(trunk.sipTrunkId, "bob@example.com", name)).rejects.toMatchObject(
      bad(400, "invalid_argument", "SipCallTo should be a phone number or SIP user, not a full SIP URI"),
    );
    await expect(sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", "")).rejects.toMatchObject(bad(400, "invalid_argument", "missing room name"));
    // Validation before the trunk lookup: an unknown trunk with no room is still "missing room name".
    await expect(sip().createSipParticipant("ST_unknown", "+15557654321", "")).rejects.toMatchObject(bad(400, "invalid_argument", "missing room name"));
    await expect(sip().createSipParticipant("ST_unknown", "+15557654321", name)).rejects.toMatchObject(bad(404, "not_found", "requested sip trunk does not exist"));
    const empty = outboundTrunk([]);
    await expect(sip().createSipParticipant(empty.sipTrunkId, "+15557654321", name)).rejects.toMatchObject(
      bad(412, "failed_precondition", "no numbers on outbound trunk"),
    );
    // A sip_number makes up for a trunk without numbers.
    await sip().createSipParticipant(empty.sipTrunkId, "+15557654321", name, { fromNumber: "+15559990000" });
    expect(fake.outboundCalls().map((c) => c.fromNumber)).toEqual(["+15559990000"]);
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["sip-participant"]);
    expect(fake.calls("CreateSIPParticipant").map((c) => c.status)).toEqual([400, 400, 400, 400, 400, 404, 412, 200]);
  });

  test("an inbound trunk's id is not an outbound trunk (404); DeleteSIPTrunk removes an outbound trunk", async () => {
    const admin = sip();
    const inbound = await admin.createSipInboundTrunk("in", ["+15550001111"]);
    await expect(sip().createSipParticipant(inbound.sipTrunkId, "+15557654321", roomName())).rejects.toMatchObject({ status: 404, code: "not_found" });
    const trunk = outboundTrunk();
    await admin.deleteSipTrunk(trunk.sipTrunkId);
    expect(fake.outboundTrunks()).toEqual([]);
    await expect(sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", roomName())).rejects.toMatchObject({ status: 404, code: "not_found" });
    expect(fake.outboundCalls()).toEqual([]);
  });

  test("createSipParticipant needs sip.call only: without it 401 (before any validation), and nothing joins", async () => {
    const trunk = outboundTrunk();
    const name = roomName();
    const denied = { status: 401, code: "unauthenticated", message: "permissions denied" };
    const client = async (video?: Record<string, unknown>, sipGrant?: { admin?: boolean; call?: boolean }) =>
      new SipClient(fake.url, undefined, undefined, { token: await token(video, sipGrant) });

    await expect((await client({ roomAdmin: true, roomCreate: true, room: name })).createSipParticipant(trunk.sipTrunkId, "+15557654321", name)).rejects.toMatchObject(denied);
    await expect((await client(undefined, { admin: true })).createSipParticipant(trunk.sipTrunkId, "+15557654321", name)).rejects.toMatchObject(denied);
    // No grant and an invalid request: the grant is checked first.
    await expect((await client({ roomList: true })).createSipParticipant(trunk.sipTrunkId, "+15557654321", "")).rejects.toMatchObject(denied);
    expect(fake.room(name)).toBeUndefined();
    expect(fake.outboundCalls()).toEqual([]);

    // sip.call alone, without any room grant, is enough.
    await (await client(undefined, { call: true })).createSipParticipant(trunk.sipTrunkId, "+15557654321", name);
    expect(fake.participants(name).map((p) => p.identity)).toEqual(["sip-participant"]);
  });

  test("failNext and delayNext work for CreateSIPParticipant", async () => {
    const trunk = outboundTrunk();
    const name = roomName();
    fake.failNext("CreateSIPParticipant", 1, 503);
    await expect(sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name)).rejects.toMatchObject({ status: 503, code: "unavailable" });
    expect(fake.room(name)).toBeUndefined();
    expect(fake.outboundCalls()).toEqual([]);

    fake.delayNext("CreateSIPParticipant", 300);
    const started = Date.now();
    await sip().createSipParticipant(trunk.sipTrunkId, "+15557654321", name);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(fake.outboundCalls().map((c) => c.room)).toEqual([name]);
    expect(fake.calls("CreateSIPParticipant").map((c) => c.status)).toEqual([503, 200]);

    fake.reset();
    expect(fake.outboundCalls()).toEqual([]);
    expect(fake.outboundTrunks()).toEqual([]);
  });
});
