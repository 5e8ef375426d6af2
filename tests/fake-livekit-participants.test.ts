// The stand-in LiveKit's room participants, RoomService.RemoveParticipant and SIP.TransferSIPParticipant,
// driven with the real livekit-server-sdk clients. Each expectation follows the Go source cited in
// tests/support/fake-livekit.ts's header (livekit/livekit pkg/service/roomservice.go, sip.go,
// pkg/rtc/types/interfaces.go; livekit/protocol livekit/sip.go; livekit/sip pkg/sip/inbound.go).
import { describe, expect, test } from "bun:test";
import { DisconnectReason, ParticipantInfo_Kind, ParticipantInfo_State } from "@livekit/protocol";
import { AccessToken, RoomServiceClient, SipClient } from "livekit-server-sdk";
import { newCall, sipCallerJoinedEvent, TEST_KEYS, useFakeLiveKit } from "./support/livekit-app";

describe("the stand-in LiveKit's participants, RemoveParticipant and TransferSIPParticipant", () => {
  const fake = useFakeLiveKit();
  const rooms = () => new RoomServiceClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
  const sip = () => new SipClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
  const roomName = () => `room-${crypto.randomUUID()}`;

  /** A SIP caller in a fresh room, put there by the same helper the app's tests use for a caller's join. */
  const sipCaller = () => {
    const call = newCall();
    const joined = sipCallerJoinedEvent(fake, call);
    return { call, identity: joined.participant!.identity, joined };
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

  test("TransferSIPParticipant of a SIP caller to a tel: URI: recorded, and the caller leaves (CLIENT_INITIATED)", async () => {
    const { call, identity, joined } = sipCaller();

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
    const { call, identity } = sipCaller();
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
    const { call, identity } = sipCaller();
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
    const { call, identity } = sipCaller();
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
    const third = sipCaller();
    await rooms().removeParticipant(second.call.room, second.identity);
    await sip().transferSipParticipant(third.call.room, third.identity, "tel:+15551234567");
    const kept = fake.addParticipant(third.call.room, { identity: "agent" });
    expect(fake.participants(third.call.room).map((p) => p.sid)).toEqual([kept.sid]);
    fake.reset();
    expect(fake.participants(third.call.room)).toEqual([]);
    expect(fake.removedParticipants()).toEqual([]);
    expect(fake.transfers()).toEqual([]);
  });
});
