// What passes between LiveKit and Switchboard, as livekit-server makes it: webhook bodies byte for
// byte (protojson, both separator forms), the webhook JWT's exact claims, the request headers;
// and the stand-in LiveKit's rooms and their agent dispatches, as livekit-server keeps them.
// Each expectation cites the Go source it follows (livekit/protocol, livekit/livekit, protobuf-go).
import { describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { Codec, Room } from "@livekit/protocol";
import { AgentDispatchClient, TokenVerifier, WebhookReceiver } from "livekit-server-sdk";
import { startFakeLiveKit } from "./support/fake-livekit";
import {
  acmeDirectory,
  callLogRows,
  eventRows,
  newCall,
  postEventReply,
  sipCallerJoinedEvent,
  sipCallerJoins,
  TEST_KEYS,
  useFakeLiveKit,
  useLiveKitApp,
  wholeSecondsNow,
} from "./support/livekit-app";
import {
  agentJoined,
  goProtoJson,
  roomFinished,
  signBody,
  signDelivery,
  sipParticipantJoined,
  sipParticipantLeft,
  trackPublished,
} from "./support/livekit-events";

// ---------------------------------------------------------------------------------------------
// One participant_joined with every value fixed, and the bytes livekit-server would send for it.

const GOLDEN_ROOM = "call-_+15551230000_GoLdEn1";
const goldenEvent = () =>
  sipParticipantJoined({
    room: GOLDEN_ROOM,
    roomInfo: new Room({
      sid: "RM_GoldenRoom01",
      name: GOLDEN_ROOM,
      emptyTimeout: 300,
      departureTimeout: 20,
      creationTime: 1755849600n,
      creationTimeMs: 1755849600123n,
      turnPassword: "tUrNpAsS",
      enabledCodecs: [new Codec({ mime: "audio/opus" }), new Codec({ mime: "video/VP8" })],
    }),
    callId: "SCL_golden0001",
    from: "+15551230000",
    to: "+15557650000",
    trunkId: "ST_goldTrunk01",
    ruleId: "SDR_goldRule01",
    twilioCallSid: "CA123",
    participantSid: "PA_goldPart001",
    eventId: "EV_golden000001",
    at: new Date("2025-08-22T08:00:00.456Z"),
    // A dispatch rule's attributes are copied onto the caller (livekit/protocol sip/sip.go
    // EvaluateDispatchRule). Numeric-looking keys: a JavaScript object would put "9" before "10".
    attributes: { "sip.h.x-note": 'a,b "c"', "9": "nine", "10": "ten" },
  });

// Written by hand from protobuf-go's rules, not by running any serialiser:
// - encoding/protojson encode.go marshalMessage: order.RangeFields(fields, order.IndexNameFieldOrder):
//   fields in .proto declaration order. livekit_webhook.proto WebhookEvent declares event, room,
//   participant, egress_info, ingress_info, track, job, id (6), created_at (7): id and createdAt
//   come last. livekit_models.proto Room: sid, name, empty_timeout (3), departure_timeout (14),
//   max_participants (4), creation_time (5), creation_time_ms (15), turn_password (6),
//   enabled_codecs (7), metadata (8), num_participants (9). ParticipantInfo: sid, identity, state,
//   tracks, metadata, joined_at (6), joined_at_ms (17), name (9), version, permission, region,
//   is_publisher, kind, attributes, disconnect_reason.
// - Unpopulated fields are left out (metadata "", max_participants 0, disconnect_reason
//   UNKNOWN_REASON = 0); int64 as strings ("1755849600"); uint32 as numbers; enums by name.
// - marshalMap: order.RangeEntries(mmap, order.GenericKeyOrder): keys in byte order, so "10" < "9"
//   < "sip.callID" < "sip.callStatus" ('I' 0x49 < 'S' 0x53) < "sip.h..." < ... < "sip.trunkID"
//   < "sip.trunkPhoneNumber" < "sip.twilio.callSid".
// - internal/encoding/json appendString escapes the '"' in the note as \", nothing else.
const GOLDEN_COMPACT =
  '{"event":"participant_joined",' +
  '"room":{"sid":"RM_GoldenRoom01","name":"call-_+15551230000_GoLdEn1","emptyTimeout":300,"departureTimeout":20,' +
  '"creationTime":"1755849600","creationTimeMs":"1755849600123","turnPassword":"tUrNpAsS",' +
  '"enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"}],"numParticipants":1},' +
  '"participant":{"sid":"PA_goldPart001","identity":"sip_+15551230000","state":"ACTIVE",' +
  '"joinedAt":"1755849600","joinedAtMs":"1755849600456","name":"Phone +15551230000",' +
  '"permission":{"canSubscribe":true,"canPublish":true,"canPublishData":true},"kind":"SIP",' +
  '"attributes":{"10":"ten","9":"nine","sip.callID":"SCL_golden0001","sip.callStatus":"ringing",' +
  '"sip.h.x-note":"a,b \\"c\\"","sip.phoneNumber":"+15551230000","sip.ruleID":"SDR_goldRule01",' +
  '"sip.trunkID":"ST_goldTrunk01","sip.trunkPhoneNumber":"+15557650000","sip.twilio.callSid":"CA123"}},' +
  '"id":"EV_golden000001","createdAt":"1755849600"}';

// The same, from a binary whose detrand.Bool() is true: internal/encoding/json/encode.go
// prepareNext appends ',' and then ' ' between two values (after a scalar, '}' or ']' and before
// a name, scalar, '{' or '['), and nowhere else: not after ':', not inside strings ("a,b").
const GOLDEN_SPACED =
  '{"event":"participant_joined", ' +
  '"room":{"sid":"RM_GoldenRoom01", "name":"call-_+15551230000_GoLdEn1", "emptyTimeout":300, "departureTimeout":20, ' +
  '"creationTime":"1755849600", "creationTimeMs":"1755849600123", "turnPassword":"tUrNpAsS", ' +
  '"enabledCodecs":[{"mime":"audio/opus"}, {"mime":"video/VP8"}], "numParticipants":1}, ' +
  '"participant":{"sid":"PA_goldPart001", "identity":"sip_+15551230000", "state":"ACTIVE", ' +
  '"joinedAt":"1755849600", "joinedAtMs":"1755849600456", "name":"Phone +15551230000", ' +
  '"permission":{"canSubscribe":true, "canPublish":true, "canPublishData":true}, "kind":"SIP", ' +
  '"attributes":{"10":"ten", "9":"nine", "sip.callID":"SCL_golden0001", "sip.callStatus":"ringing", ' +
  '"sip.h.x-note":"a,b \\"c\\"", "sip.phoneNumber":"+15551230000", "sip.ruleID":"SDR_goldRule01", ' +
  '"sip.trunkID":"ST_goldTrunk01", "sip.trunkPhoneNumber":"+15557650000", "sip.twilio.callSid":"CA123"}}, ' +
  '"id":"EV_golden000001", "createdAt":"1755849600"}';

const decodeSegment = (segment: string) => Buffer.from(segment, "base64url").toString("utf8");

describe("webhook bodies are protojson.Marshal's bytes", () => {
  test("golden: one participant_joined, compact, exactly as hand-derived from the Go rules", () => {
    expect(goProtoJson(goldenEvent())).toBe(GOLDEN_COMPACT);
  });

  test("golden: the same event in the spaced form", () => {
    expect(goProtoJson(goldenEvent(), "spaced")).toBe(GOLDEN_SPACED);
    // The two forms differ only by the space after separating commas.
    expect(GOLDEN_SPACED.replaceAll(", ", ",")).toBe(GOLDEN_COMPACT);
  });

  test("signDelivery writes the compact form unless asked for the spaced one; both parse to the same event", async () => {
    const compact = await signDelivery(goldenEvent(), TEST_KEYS);
    const spaced = await signDelivery(goldenEvent(), { ...TEST_KEYS, form: "spaced" });
    expect(compact.body).toBe(GOLDEN_COMPACT);
    expect(spaced.body).toBe(GOLDEN_SPACED);
    const receiver = new WebhookReceiver(TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
    const [a, b] = await Promise.all([
      receiver.receive(compact.body, compact.authorization),
      receiver.receive(spaced.body, spaced.authorization),
    ]);
    expect(a.equals(b)).toBe(true);
    // Each form is signed over its own bytes.
    expect(compact.authorization).not.toBe(spaced.authorization);
  });

  test("declaration order, not field numbers: a track_published has track (8) before id (6) and createdAt (7)", async () => {
    const room = `wire-${crypto.randomUUID()}`;
    const { body } = await signDelivery(trackPublished({ room, callId: "SCL_wireTrack01", at: new Date() }), TEST_KEYS);
    expect(Object.keys(JSON.parse(body))).toEqual(["event", "room", "participant", "track", "id", "createdAt"]);
    // protobuf-es's own toJsonString writes by field number: not what the server sends.
    expect(Object.keys(JSON.parse(trackPublished({ room, callId: "SCL_wireTrack01" }).toJsonString()))).toEqual([
      "event",
      "room",
      "participant",
      "id",
      "createdAt",
      "track",
    ]);
  });
});

describe("the webhook request as livekit-server sends it", () => {
  test("headers: bare JWT in Authorization, Content-Type application/webhook+json, User-Agent LiveKit", async () => {
    // livekit/protocol webhook/resource_url_notifier.go send + webhook/consts.go.
    const delivery = await signDelivery(goldenEvent(), TEST_KEYS);
    expect(delivery.headers).toEqual({
      "content-type": "application/webhook+json",
      authorization: delivery.authorization,
      "user-agent": "LiveKit",
    });
    expect(delivery.authorization).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(delivery.authorization.startsWith("Bearer")).toBe(false);
  });

  test("JWT: exactly iss, exp, nbf, iat, sha256 (in that order), HS256, valid 5 minutes, no sub, no video", async () => {
    const delivery = await signDelivery(goldenEvent(), TEST_KEYS);
    const [header, payload, signature] = delivery.authorization.split(".") as [string, string, string];
    // golang-jwt v5 token.go NewWithClaims: Header map[string]any{"typ": "JWT", "alg": ...},
    // json.Marshal of a map sorts its keys.
    expect(decodeSegment(header)).toBe('{"alg":"HS256","typ":"JWT"}');
    const claims = JSON.parse(decodeSegment(payload)) as Record<string, unknown>;
    // auth/accesstoken.go ToJWT: tokenClaims{jwt.RegisteredClaims{Issuer, Subject: "", IssuedAt,
    // NotBefore, ExpiresAt}, ClaimGrants{Sha256}}; every tag omitempty, struct order iss, sub, aud,
    // exp, nbf, iat, jti, then the grants.
    expect(Object.keys(claims)).toEqual(["iss", "exp", "nbf", "iat", "sha256"]);
    expect(claims.iss).toBe(TEST_KEYS.apiKey);
    expect(claims.nbf).toBe(claims.iat);
    expect((claims.exp as number) - (claims.iat as number)).toBe(300); // SetValidFor(5 * time.Minute)
    expect(Math.abs((claims.iat as number) - Date.now() / 1000)).toBeLessThan(5);
    expect(Number.isInteger(claims.iat)).toBe(true); // NumericDate, TimePrecision = time.Second
    expect(claims.sha256).toBe(createHash("sha256").update(delivery.body).digest("base64"));
    const expected = createHmac("sha256", TEST_KEYS.apiSecret).update(`${header}.${payload}`).digest("base64url");
    expect(signature).toBe(expected);
    // And livekit-server-sdk, as Switchboard uses it, takes it.
    const verified = await new TokenVerifier(TEST_KEYS.apiKey, TEST_KEYS.apiSecret).verify(delivery.authorization);
    expect(verified.sha256).toBe(claims.sha256 as string);
  });

  test("golden JWT for a fixed time: the payload bytes as Go's encoding/json writes tokenClaims", async () => {
    const token = await signBody(GOLDEN_COMPACT, { ...TEST_KEYS, issuedAt: new Date("2025-08-22T08:00:00.999Z") });
    const sha = createHash("sha256").update(GOLDEN_COMPACT).digest("base64");
    const header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}
    const payload = Buffer.from(`{"iss":"APItestkey","exp":1755849900,"nbf":1755849600,"iat":1755849600,"sha256":"${sha}"}`).toString(
      "base64url",
    );
    const signature = createHmac("sha256", TEST_KEYS.apiSecret).update(`${header}.${payload}`).digest("base64url");
    expect(token).toBe(`${header}.${payload}.${signature}`);
  });
});

describe("both separator forms through the app", () => {
  // Dispatch off: what is recorded depends on the body alone. The stand-in LiveKit still holds the rooms.
  const { ctx, fake } = useLiveKitApp({ seed: acmeDirectory, env: { LIVEKIT_DISPATCH: "false" } });

  /**
   * The call's rows with everything that names this particular call (ids, room, sid) replaced and
   * the times of receipt left out (an event received within its createdAt second is timed by the
   * app's clock: src/livekit/service.ts eventTime).
   */
  async function recorded(call: ReturnType<typeof newCall>, eventId: string, roomSid: string) {
    const [log] = await callLogRows(ctx, call.callId);
    const events = (await eventRows(ctx)).filter((e) => e.roomName === call.room);
    // When it was received, and what the caller's lead said before it: the second call's lead has the first call in it.
    const receipt = ["id", "createdAt", "updatedAt", "receivedAt", "claimedAt", "processedAt", "occurredAt", "caller"];
    const text = JSON.stringify({ log, events }, (key, value) => (receipt.includes(key) ? undefined : value));
    return JSON.parse(
      text.replaceAll(call.callId, "<call>").replaceAll(call.room, "<room>").replaceAll(roomSid, "<sid>").replaceAll(eventId, "<event>"),
    );
  }

  test("the compact and the spaced body are both accepted and recorded identically", async () => {
    const results = [];
    const at = wholeSecondsNow();
    for (const form of ["compact", "spaced"] as const) {
      const call = newCall({ at });
      const delivery = await sipCallerJoins(fake, call, { participantSid: "PA_wireCaller01" }, { form });
      if (form === "spaced") expect(delivery.body).toContain('"event":"participant_joined", "room":{');
      else expect(delivery.body).not.toContain(", ");
      const reply = await postEventReply(ctx, delivery);
      expect(reply).toMatchObject({ status: 200, body: { ok: true, result: "handled" } });
      const left = await signDelivery(sipParticipantLeft({ room: call.room, callId: call.callId, at: new Date(call.at.getTime() + 9_000) }), {
        ...TEST_KEYS,
        form,
      });
      expect((await postEventReply(ctx, left)).status).toBe(200);
      results.push({
        reply: { ...reply.body, id: undefined },
        rows: await recorded(call, delivery.event.id, delivery.event.room!.sid),
        leftRows: (await eventRows(ctx)).filter((e) => e.id === left.event.id).map((e) => e.action),
      });
    }
    expect(results[1]).toEqual(results[0]!);
    expect(results[0]!.rows.log).toMatchObject({ providerCallId: "<call>", roomName: "<room>", status: "abandoned", durationMs: 9_000 });
    expect(results[0]!.rows.events).toHaveLength(2);
    expect(fake.calls()).toHaveLength(0);
  });

  test("the same event in the other form is the same event: a duplicate", async () => {
    const call = newCall();
    const event = sipParticipantJoined(call);
    const spaced = await signDelivery(event, { ...TEST_KEYS, form: "spaced" });
    const compact = await signDelivery(event, TEST_KEYS);
    expect(spaced.body).not.toBe(compact.body);
    expect((await postEventReply(ctx, spaced)).body.result).toBe("handled");
    expect((await postEventReply(ctx, compact)).body.result).toBe("duplicate");
    expect(await callLogRows(ctx, call.callId)).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe("the stand-in LiveKit's rooms, as livekit-server keeps them", () => {
  const fake = useFakeLiveKit();
  const client = () => new AgentDispatchClient(fake.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
  const roomName = () => `room-${crypto.randomUUID()}`;

  test("a room created without agents: a fresh RM_ sid, the server's defaults, and one implicit dispatch with an empty agent name", async () => {
    const name = roomName();
    const before = BigInt(Date.now()) * 1_000_000n;
    const room = fake.createRoom(name);
    // pkg/service/roomallocator.go CreateRoom + applyDefaultRoomConfig, pkg/config/config.go defaults.
    expect(room.sid).toMatch(/^RM_[2-9A-HJ-NP-Za-km-z]{12}$/);
    expect(room).toMatchObject({ name, emptyTimeout: 300, departureTimeout: 20, maxParticipants: 0, metadata: "", numParticipants: 0 });
    expect(room.turnPassword).toMatch(/^[0-9A-Za-z]{40,}$/);
    expect(room.enabledCodecs.map((c) => c.mime)).toEqual([
      "audio/PCMU",
      "audio/PCMA",
      "audio/opus",
      "audio/red",
      "video/VP8",
      "video/H264",
      "video/VP9",
      "video/AV1",
      "video/H265",
      "video/rtx",
    ]);
    expect(Number(room.creationTimeMs / 1000n)).toBe(Number(room.creationTime));

    // pkg/rtc/room.go createAgentDispatchesFromRoomAgent ("Backward compatibility") and ListDispatch.
    const listed = await client().listDispatch(name);
    expect(listed).toHaveLength(1);
    const [implicit] = listed;
    expect(implicit!.id).toMatch(/^AD_[2-9A-HJ-NP-Za-km-z]{12}$/);
    expect(implicit).toMatchObject({ agentName: "", metadata: "", room: name, attributes: {} });
    expect(implicit!.state?.createdAt).toBeGreaterThanOrEqual(before); // time.Now().UnixNano()
    expect(implicit!.state?.deletedAt).toBe(0n);
    expect(fake.dispatches(name).map((d) => d.id)).toEqual([implicit!.id]);
    expect(fake.agentDispatches(name)).toEqual([]);
  });

  test("a room created with room_config agents (a SIP dispatch rule's) has those dispatches instead", async () => {
    const name = roomName();
    fake.createRoom(name, { agents: [{ agentName: "rule-agent", metadata: '{"a":1}', attributes: { k: "v" } }] });
    const listed = await client().listDispatch(name);
    expect(listed.map((d) => [d.agentName, d.metadata, d.attributes])).toEqual([["rule-agent", '{"a":1}', { k: "v" }]]);
  });

  test("a live room is returned as it is; deleted and created again it has a new sid and a fresh dispatch list", async () => {
    const name = roomName();
    const first = fake.createRoom(name);
    await client().createDispatch(name, "agent-a");
    const again = fake.createRoom(name, { agents: [{ agentName: "ignored" }] }); // getOrCreateRoom
    expect(again.sid).toBe(first.sid);
    expect(fake.dispatches(name).map((d) => d.agentName)).toEqual(["", "agent-a"]);
    expect(fake.rooms().map((r) => r.sid)).toEqual([first.sid]);
    expect(fake.room(name)?.sid).toBe(first.sid);

    expect(fake.deleteRoom(name)).toBe(true);
    expect(fake.room(name)).toBeUndefined();
    expect(fake.dispatches(name)).toEqual([]);
    const second = fake.createRoom(name);
    expect(second.sid).not.toBe(first.sid);
    expect(fake.dispatches(name).map((d) => d.agentName)).toEqual([""]);
  });

  test("ListDispatch and DeleteDispatch for a room that does not exist: 503 unavailable (no node serves its psrpc topic)", async () => {
    const name = roomName();
    await expect(client().listDispatch(name)).rejects.toMatchObject({ status: 503, code: "unavailable", message: "no response from servers" });
    await expect(client().deleteDispatch("AD_whatever1234", name)).rejects.toMatchObject({ status: 503, code: "unavailable" });
    expect(fake.rooms()).toEqual([]);
  });

  test("CreateDispatch for a room that does not exist creates it (room.auto_create): its implicit dispatch, then the one asked for", async () => {
    const name = roomName();
    const created = await client().createDispatch(name, "agent-a", { metadata: "{}" });
    expect(created).toMatchObject({ agentName: "agent-a", room: name, metadata: "{}" });
    expect(fake.room(name)?.sid).toMatch(/^RM_/);
    expect(fake.dispatches(name).map((d) => d.agentName)).toEqual(["", "agent-a"]);
    expect(fake.agentDispatches(name).map((d) => d.id)).toEqual([created.id]);
  });

  test("with auto_create off, CreateDispatch for a missing room fails like ListDispatch", async () => {
    const strict = await startFakeLiveKit({ ...TEST_KEYS, autoCreate: false });
    try {
      const strictClient = new AgentDispatchClient(strict.url, TEST_KEYS.apiKey, TEST_KEYS.apiSecret);
      await expect(strictClient.createDispatch("nowhere", "agent-a")).rejects.toMatchObject({ status: 503, code: "unavailable" });
      expect(strict.rooms()).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  test("DeleteDispatch of an unknown id in a live room: 404; of a known one: gone from the list", async () => {
    const name = roomName();
    fake.createRoom(name);
    const created = await client().createDispatch(name, "agent-a");
    await expect(client().deleteDispatch("AD_unknown12345", name)).rejects.toMatchObject({ status: 404, message: "dispatch ID not found" });
    await client().deleteDispatch(created.id, name);
    expect(fake.dispatches(name).map((d) => d.agentName)).toEqual([""]);
  });

  test("reset forgets rooms", async () => {
    fake.createRoom(roomName());
    fake.reset();
    expect(fake.rooms()).toEqual([]);
    expect(fake.dispatches()).toEqual([]);
  });

  test("sipCallerJoins: the room is created first; the join and the room's later events carry its real sid", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const room = fake.room(call.room)!;
    expect(delivery.event.room).toMatchObject({ sid: room.sid, name: call.room, numParticipants: 1, turnPassword: room.turnPassword });
    expect(delivery.event.room!.creationTimeMs).toBe(BigInt(call.at.getTime()));
    expect(fake.dispatches(call.room).map((d) => d.agentName)).toEqual([""]);
    for (const later of [
      agentJoined({ room: call.room, agentName: "agent-a" }),
      sipParticipantLeft({ room: call.room, callId: call.callId }),
      roomFinished({ room: call.room }),
    ]) {
      expect(later.room!.sid).toBe(room.sid);
    }
    // A join built again for the same call (LiveKit resending) is the same room.
    expect(sipCallerJoinedEvent(fake, call).room!.sid).toBe(room.sid);

    const ruled = newCall();
    const withAgents = sipCallerJoinedEvent(fake, ruled, { agents: [{ agentName: "rule-agent" }] });
    expect(withAgents.room!.sid).toBe(fake.room(ruled.room)!.sid);
    expect(fake.dispatches(ruled.room).map((d) => d.agentName)).toEqual(["rule-agent"]);
  });
});
