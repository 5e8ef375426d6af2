// Builders for LiveKit webhook deliveries, made byte for byte the way livekit-server makes them.
//
// livekit/protocol (d74e7cdb) webhook/resource_url_notifier.go ResourceURLNotifier.send, which
// webhook/notifier.go NewDefaultNotifier uses for every configured URL:
//   encoded, _ := protojson.Marshal(event)               // utils/protojson: MarshalOptions{AllowPartial: true}
//   sum := sha256.Sum256(encoded); b64 := base64.StdEncoding.EncodeToString(sum[:])
//   token, _ := auth.NewAccessToken(apiKey, apiSecret).SetValidFor(5 * time.Minute).SetSha256(b64).ToJWT()
//   POST url, headers Authorization: token (no "Bearer "), content-type: application/webhook+json,
//   User-Agent: "LiveKit" (webhook/consts.go ContentType, DefaultUserAgent).
//
// The body (protobuf-go encoding/protojson encode.go, internal/encoding/json/encode.go):
// - lowerCamelCase JSON names, enums by name, 64-bit integers as JSON strings, unset/zero fields left out;
// - fields in declaration order of the .proto (order.IndexNameFieldOrder), NOT by field number:
//   WebhookEvent is event, room, participant, egressInfo, ingressInfo, track, job, id, createdAt;
// - map entries sorted by key (order.GenericKeyOrder: strings in UTF-8 byte order);
// - strings escape only '"', '\\', \b \f \n \r \t and \u00xx below 0x20 (appendString);
// - single line; after every ',' between values a space or not, as internal/detrand decides per
//   binary: `e.out = append(e.out, ','); if detrand.Bool() { e.out = append(e.out, ' ') }`
//   (prepareNext). So a server sends {"a":1,"b":2} or {"a":1, "b":2}, never a space after ':'.
// protobuf-es's toJsonString() writes fields by number and maps in insertion order, so the body is
// written here by goProtoJson() instead.
//
// The JWT (livekit/protocol auth/accesstoken.go ToJWT, golang-jwt/jwt v5): HS256, header
// {"alg":"HS256","typ":"JWT"} (a Go map, marshalled with sorted keys), claims tokenClaims =
// jwt.RegisteredClaims{iss, sub, aud, exp, nbf, iat, jti; all omitempty} + auth.ClaimGrants{...;
// sha256; all omitempty}: for a webhook {"iss":<key>,"exp":<now+300>,"nbf":<now>,"iat":<now>,
// "sha256":<b64>}, times in whole seconds (NumericDate, TimePrecision = time.Second). No sub, no video.
//
// The event builders return a @livekit/protocol WebhookEvent; signDelivery() turns one into what
// goes over the wire. Sids are derived from the room name / call id, so a participant_left built for
// the same call carries the same participant sid and identity as its participant_joined.
import { createHash, createHmac } from "node:crypto";
import {
  DisconnectReason,
  ParticipantInfo,
  ParticipantInfo_Kind,
  ParticipantInfo_State,
  ParticipantPermission,
  Room,
  type RoomEndReason,
  TrackInfo,
  TrackSource,
  TrackType,
  WebhookEvent,
} from "@livekit/protocol";

export { DisconnectReason, ParticipantInfo_Kind, WebhookEvent };

// ---------------------------------------------------------------------------------------------
// Body: protojson.Marshal as livekit-server runs it

/**
 * The two bodies protobuf-go writes: "compact" ({"a":1,"b":2}) or "spaced" ({"a":1, "b":2}), the
 * space after each separating comma chosen by internal/detrand for the whole server binary.
 */
export type JsonForm = "compact" | "spaced";

/** The part of a protobuf-es (v1) message and its reflection this writer reads. */
interface ReflectMessage {
  getType(): { typeName: string; fields: { list(): readonly ReflectField[] } };
  toJson(): unknown;
}
interface ReflectField {
  kind: "scalar" | "enum" | "message" | "map";
  localName: string;
  jsonName: string;
  repeated: boolean;
  oneof?: { localName: string };
  T?: { typeName?: string };
  V?: { kind: string; T?: { typeName?: string } };
}

/** Go compares map keys as strings, byte by byte (UTF-8); JavaScript's sort compares UTF-16 units. */
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/** google.protobuf.* types have their own JSON forms (Timestamp as RFC 3339, ...): written as protobuf-es made them. */
const isWellKnown = (typeName: string | undefined) => typeName?.startsWith("google.protobuf.") ?? false;

/** A JSON value (a leaf, or a well-known type's form): objects with sorted keys, as Go's map and Struct encoders do. */
function writeJsonValue(value: unknown, comma: string): string {
  if (Array.isArray(value)) return `[${value.map((v) => writeJsonValue(v, comma)).join(comma)}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value)
      .sort(utf8Order)
      .map((k) => `${JSON.stringify(k)}:${writeJsonValue((value as Record<string, unknown>)[k], comma)}`);
    return `{${entries.join(comma)}}`;
  }
  // JSON.stringify escapes strings as protobuf-go's appendString does (", \, \b \f \n \r \t,
  // \u00xx for the other control characters, nothing else) and formats doubles the same way for
  // the values these events carry. Known gap: a float32 field is formatted as the double it is held in.
  return JSON.stringify(value);
}

function writeMessage(message: ReflectMessage, json: Record<string, unknown>, comma: string): string {
  const parts: string[] = [];
  // Declaration order (order.IndexNameFieldOrder); protobuf-es lists fields as protoc-gen-es
  // generated them, in declaration order.
  for (const field of message.getType().fields.list()) {
    if (!(field.jsonName in json)) continue; // not populated: left out
    const value = field.oneof
      ? (message as unknown as Record<string, { case?: string; value?: unknown }>)[field.oneof.localName]?.value
      : (message as unknown as Record<string, unknown>)[field.localName];
    parts.push(`${JSON.stringify(field.jsonName)}:${writeField(field, value, json[field.jsonName], comma)}`);
  }
  return `{${parts.join(comma)}}`;
}

function writeField(field: ReflectField, value: unknown, json: unknown, comma: string): string {
  if (field.kind === "message" && !isWellKnown(field.T?.typeName)) {
    if (field.repeated) {
      const items = (json as unknown[]).map((j, i) => writeMessage((value as ReflectMessage[])[i]!, j as Record<string, unknown>, comma));
      return `[${items.join(comma)}]`;
    }
    return writeMessage(value as ReflectMessage, json as Record<string, unknown>, comma);
  }
  if (field.kind === "map") {
    const entries = json as Record<string, unknown>;
    const values = value as Record<string, unknown>;
    const nested = field.V?.kind === "message" && !isWellKnown(field.V.T?.typeName);
    const written = Object.keys(entries)
      .sort(utf8Order) // order.GenericKeyOrder
      .map((k) => {
        const v = nested
          ? writeMessage(values[k] as ReflectMessage, entries[k] as Record<string, unknown>, comma)
          : writeJsonValue(entries[k], comma);
        return `${JSON.stringify(k)}:${v}`;
      });
    return `{${written.join(comma)}}`;
  }
  return writeJsonValue(json, comma);
}

/**
 * protojson.Marshal(message) with livekit/protocol utils/protojson's options (AllowPartial only),
 * byte for byte: declaration order, sorted maps, and `form` for the separator after commas.
 */
export function goProtoJson(message: WebhookEvent | ReflectMessage, form: JsonForm = "compact"): string {
  const reflect = message as unknown as ReflectMessage;
  return writeMessage(reflect, reflect.toJson() as Record<string, unknown>, form === "spaced" ? ", " : ",");
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignOptions {
  apiKey: string;
  apiSecret: string;
  /** Token lifetime: seconds, or a span such as "5m", "300s", "1h". Default 5 minutes, as the server. */
  ttl?: number | string;
  /** Make a token whose exp is this instant (use one more than 10 s in the past: receivers allow 10 s of skew). */
  expiredAt?: Date;
  /** The token's iat and nbf ("now" when the server signs); default now. */
  issuedAt?: Date;
}

export interface DeliveryOptions extends SignOptions {
  /** The body's separator form (see JsonForm); default "compact". */
  form?: JsonForm;
}

export interface WebhookDelivery {
  /** The event that was serialised. */
  event: WebhookEvent;
  /** Exact body bytes as text; post these unchanged. */
  body: string;
  /** The JWT for the Authorization header (no "Bearer " prefix). */
  authorization: string;
  /** Request headers as the server sends them. */
  headers: { "content-type": string; authorization: string; "user-agent": string };
}

/** Standard padded base64 of SHA-256 over the UTF-8 bytes of `body`. */
export function bodySha256(body: string): string {
  return createHash("sha256").update(body, "utf8").digest("base64");
}

function ttlSeconds(ttl: number | string): number {
  if (typeof ttl === "number") return ttl;
  const match = /^(-?\d+)\s*(s|m|h)?$/.exec(ttl.trim());
  if (!match) throw new Error(`ttl: "${ttl}" is not seconds or a span like "5m"`);
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 } as const)[(match[2] ?? "s") as "s" | "m" | "h"];
}

/** A JSON string as Go's encoding/json writes it: also <, >, & and U+2028/2029 escaped (HTMLEscape). */
function goJsonString(text: string): string {
  return JSON.stringify(text).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const base64url = (text: string | Buffer) => Buffer.from(text).toString("base64url");

/**
 * The webhook JWT for `body`, as livekit-server signs it (auth.AccessToken.ToJWT with only the
 * sha256 grant): header {"alg":"HS256","typ":"JWT"}, claims exactly iss, exp, nbf, iat, sha256 in
 * that order, HMAC-SHA256 with the API secret, base64url without padding.
 */
export async function signBody(body: string, options: SignOptions): Promise<string> {
  if (!options.apiKey || !options.apiSecret) throw new Error("ErrKeysMissing: apiKey and apiSecret are required"); // ToJWT
  let iat = Math.floor((options.issuedAt ?? new Date()).getTime() / 1000);
  let exp = iat + ttlSeconds(options.ttl ?? 300);
  if (options.expiredAt) {
    // A token the server would have issued 5 minutes before it expired.
    exp = Math.floor(options.expiredAt.getTime() / 1000);
    iat = exp - ttlSeconds(options.ttl ?? 300);
  }
  const header = '{"alg":"HS256","typ":"JWT"}';
  const claims = `{"iss":${goJsonString(options.apiKey)},"exp":${exp},"nbf":${iat},"iat":${iat},"sha256":${goJsonString(bodySha256(body))}}`;
  const signingInput = `${base64url(header)}.${base64url(claims)}`;
  const signature = createHmac("sha256", options.apiSecret).update(signingInput).digest("base64url");
  return `${signingInput}.${signature}`;
}

/**
 * Serialise and sign an event (or sign a raw body string, e.g. to hand-craft a malformed one).
 * Tamper after signing to test hash checks: `{ ...delivery, body: delivery.body.replace(...) }`.
 */
export async function signDelivery(event: WebhookEvent | string, options: DeliveryOptions): Promise<WebhookDelivery> {
  const body = typeof event === "string" ? event : goProtoJson(event, options.form ?? "compact");
  const parsed = typeof event === "string" ? safeParse(body) : event;
  const authorization = await signBody(body, options);
  return {
    event: parsed,
    body,
    authorization,
    headers: { "content-type": "application/webhook+json", authorization, "user-agent": "LiveKit" },
  };
}

function safeParse(body: string): WebhookEvent {
  try {
    return WebhookEvent.fromJsonString(body, { ignoreUnknownFields: true });
  } catch {
    return new WebhookEvent();
  }
}

// ---------------------------------------------------------------------------------------------
// Ids and time

const ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/** prefix + 12 random characters, like LiveKit's guid.New. */
export function randomId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let out = prefix;
  for (const b of bytes) out += ID_ALPHABET[b % ID_ALPHABET.length];
  return out;
}

/** prefix + 12 characters derived from `seed`: the same seed gives the same id. */
export function stableId(prefix: string, seed: string): string {
  const bytes = createHash("sha256").update(seed).digest();
  let out = prefix;
  for (let i = 0; i < 12; i++) out += ID_ALPHABET[(bytes[i] as number) % ID_ALPHABET.length];
  return out;
}

const seconds = (d: Date) => BigInt(Math.floor(d.getTime() / 1000));
const millis = (d: Date) => BigInt(d.getTime());

type ReasonInput = DisconnectReason | keyof typeof DisconnectReason;
const toReason = (r: ReasonInput): DisconnectReason =>
  typeof r === "number" ? r : (DisconnectReason[r] as unknown as DisconnectReason);

// ---------------------------------------------------------------------------------------------
// Shapes

export interface RoomOptions {
  room: string;
  /** Room sid; default the LiveKit room's (roomInfo, or the last one a join was built with for this name), else derived from the name ("RM_..."). */
  roomSid?: string;
  /** Room creation time; default the LiveKit room's, else the event's `at`. */
  roomCreatedAt?: Date;
  numParticipants?: number;
  metadata?: string;
  /**
   * The room as LiveKit has it (e.g. fake.createRoom()): the event carries it, with its sid,
   * creation time, timeouts, turn password and codecs, and numParticipants set for the event.
   * Later events for the same room name default to it.
   */
  roomInfo?: Room;
}

// The LiveKit room a join was built with, per room name, so the room's later events (an agent's
// join, the caller's leave, room_finished) carry the same sid, as they do from LiveKit.
const knownRooms = new Map<string, Room>();

export function buildRoom(options: RoomOptions & { at?: Date }): Room {
  const base = options.roomInfo ?? (options.roomSid === undefined ? knownRooms.get(options.room) : undefined);
  if (options.roomInfo) knownRooms.set(options.room, options.roomInfo.clone());
  if (base && base.name === options.room && (options.roomSid === undefined || options.roomSid === base.sid)) {
    const room = base.clone();
    if (options.roomCreatedAt) {
      room.creationTime = seconds(options.roomCreatedAt);
      room.creationTimeMs = millis(options.roomCreatedAt);
    }
    if (options.metadata !== undefined) room.metadata = options.metadata;
    room.numParticipants = options.numParticipants ?? 0;
    return room;
  }
  const created = options.roomCreatedAt ?? options.at ?? new Date();
  return new Room({
    sid: options.roomSid ?? stableId("RM_", options.room),
    name: options.room,
    emptyTimeout: 300,
    departureTimeout: 20,
    creationTime: seconds(created),
    creationTimeMs: millis(created),
    metadata: options.metadata ?? "",
    numParticipants: options.numParticipants ?? 0,
  });
}

interface EventBase {
  /** Event id; default "EV_" + random. */
  eventId?: string;
  /** When the event happened: the event's createdAt (and joinedAt for joins). Default now. */
  at?: Date;
}

type WebhookEventInit = NonNullable<ConstructorParameters<typeof WebhookEvent>[0]>;

function event(name: string, base: EventBase, parts: WebhookEventInit): WebhookEvent {
  return new WebhookEvent({
    event: name,
    id: base.eventId ?? randomId("EV_"),
    createdAt: seconds(base.at ?? new Date()),
    ...parts,
  });
}

// ---------------------------------------------------------------------------------------------
// SIP caller

export interface SipCallerOptions extends RoomOptions {
  /** sip.callID ("SCL_..."). */
  callId: string;
  /** Caller number: sip.phoneNumber, identity "sip_<from>", name "Phone <from>". */
  from?: string;
  /** Number dialed: sip.trunkPhoneNumber. */
  to?: string;
  /** sip.trunkID ("ST_..."). */
  trunkId?: string;
  /**
   * sip.ruleID ("SDR_..."): LiveKit sets it on every inbound caller (the dispatch rule that
   * placed them); default "SDR_inbound". `outbound: true` leaves it out, as for calls an agent places.
   */
  ruleId?: string;
  /** An outbound SIP participant (created by CreateSIPParticipant): no sip.ruleID. */
  outbound?: boolean;
  /** sip.twilio.callSid; omitted unless given. */
  twilioCallSid?: string;
  /** sip.hostname; omitted unless given. */
  hostname?: string;
  /** sip.callStatus; default "ringing" on join ("hangup" on leave). */
  callStatus?: string;
  /** As a dispatch rule with hide_phone_number: identity sip_<hash>, name "Phone <last 4>", no number attributes. */
  hidePhoneNumber?: boolean;
  /** Extra or replacing attributes (e.g. "sip.h.x-foo"). */
  attributes?: Record<string, string>;
  /** Participant sid; default derived from the call id ("PA_..."). */
  participantSid?: string;
  /** Participant identity override. */
  identity?: string;
  /** Participant metadata (a dispatch rule's metadata lands here). */
  metadata?: string;
}

// What a sipParticipantJoined said about a call, so the later events for the same call id match it.
const knownCalls = new Map<string, SipCallerOptions & { joinedAt: Date }>();

function sipParticipant(
  o: SipCallerOptions,
  joinedAt: Date,
  state: ParticipantInfo_State,
  callStatus: string,
  reason?: DisconnectReason,
): ParticipantInfo {
  const from = o.from ?? "";
  let identity: string;
  let name: string;
  const attributes: Record<string, string> = {};
  attributes["sip.callID"] = o.callId;
  if (o.trunkId) attributes["sip.trunkID"] = o.trunkId;
  if (!o.outbound) attributes["sip.ruleID"] = o.ruleId ?? "SDR_inbound";
  if (o.hidePhoneNumber) {
    // livekit/sip EvaluateDispatchRule: sha256 of the number, first 8 bytes in hex; last 4 digits shown.
    identity = `sip_${createHash("sha256").update(from).digest("hex").slice(0, 16)}`;
    name = `Phone ${from.length <= 4 ? from.slice(-1) : from.slice(-4)}`;
  } else {
    identity = from ? `sip_${from}` : `sip_${stableId("", o.callId)}`;
    name = from ? `Phone ${from}` : "";
    if (from) attributes["sip.phoneNumber"] = from;
    if (o.to) attributes["sip.trunkPhoneNumber"] = o.to;
    if (o.hostname) attributes["sip.hostname"] = o.hostname;
  }
  attributes["sip.callStatus"] = callStatus;
  if (o.twilioCallSid) attributes["sip.twilio.callSid"] = o.twilioCallSid;
  Object.assign(attributes, o.attributes ?? {});
  return new ParticipantInfo({
    sid: o.participantSid ?? stableId("PA_", o.callId),
    identity: o.identity ?? identity,
    name,
    state,
    metadata: o.metadata ?? "",
    joinedAt: seconds(joinedAt),
    joinedAtMs: millis(joinedAt),
    kind: ParticipantInfo_Kind.SIP,
    attributes,
    permission: new ParticipantPermission({ canSubscribe: true, canPublish: true, canPublishData: true }),
    disconnectReason: reason ?? DisconnectReason.UNKNOWN_REASON,
  });
}

export type SipJoinedOptions = SipCallerOptions & EventBase & { from: string; to: string; trunkId: string };

/** participant_joined for an inbound SIP caller (LiveKit sends it while the call still rings). */
export function sipParticipantJoined(o: SipJoinedOptions): WebhookEvent {
  const at = o.at ?? new Date();
  knownCalls.set(o.callId, { ...o, joinedAt: at });
  return event("participant_joined", o, {
    room: buildRoom({ ...o, at, numParticipants: o.numParticipants ?? 1 }),
    participant: sipParticipant(o, at, ParticipantInfo_State.ACTIVE, o.callStatus ?? "ringing"),
  });
}

export type SipLeftOptions = Partial<SipCallerOptions> &
  EventBase & {
    room: string;
    callId: string;
    /** Default CLIENT_INITIATED (the caller hung up). */
    reason?: ReasonInput;
    /** Participant's joinedAt; default the `at` of the sipParticipantJoined built for this call id, else `at`. */
    joinedAt?: Date;
  };

/** participant_left for a SIP caller. Fields not given come from the sipParticipantJoined for the same callId. */
export function sipParticipantLeft(o: SipLeftOptions): WebhookEvent {
  return sipEnded("participant_left", o, ParticipantInfo_State.DISCONNECTED, o.reason ?? "CLIENT_INITIATED");
}

/** participant_connection_aborted for a SIP caller (joined but its connection never completed). */
export function sipConnectionAborted(o: SipLeftOptions): WebhookEvent {
  return sipEnded("participant_connection_aborted", o, ParticipantInfo_State.DISCONNECTED, o.reason ?? "UNKNOWN_REASON");
}

function sipEnded(name: string, o: SipLeftOptions, state: ParticipantInfo_State, reason: ReasonInput): WebhookEvent {
  const at = o.at ?? new Date();
  const known = knownCalls.get(o.callId);
  const merged: SipCallerOptions = { ...known, ...stripUndefined(o) } as SipCallerOptions;
  const joinedAt = o.joinedAt ?? known?.joinedAt ?? at;
  return event(name, o, {
    room: buildRoom({ ...merged, at, roomCreatedAt: o.roomCreatedAt ?? known?.roomCreatedAt ?? (known?.roomInfo ? undefined : known?.joinedAt), numParticipants: o.numParticipants ?? 0 }),
    participant: sipParticipant(merged, joinedAt, state, o.callStatus ?? "hangup", toReason(reason)),
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------
// Agent participant

export interface AgentOptions extends RoomOptions, EventBase {
  agentName: string;
  /** Identity; default "agent-" + a job id derived from room and agent name ("agent-AJ_..."). */
  identity?: string;
  /** Participant name; default the agent name. */
  name?: string;
  participantSid?: string;
  attributes?: Record<string, string>;
  metadata?: string;
}

function agentParticipant(o: AgentOptions, joinedAt: Date, state: ParticipantInfo_State, reason?: DisconnectReason) {
  const seed = `${o.room}/${o.agentName}`;
  return new ParticipantInfo({
    sid: o.participantSid ?? stableId("PA_", `agent:${seed}`),
    identity: o.identity ?? `agent-${stableId("AJ_", seed)}`,
    name: o.name ?? o.agentName,
    state,
    metadata: o.metadata ?? "",
    joinedAt: seconds(joinedAt),
    joinedAtMs: millis(joinedAt),
    kind: ParticipantInfo_Kind.AGENT,
    attributes: { ...(o.attributes ?? {}) },
    permission: new ParticipantPermission({ canSubscribe: true, canPublish: true, canPublishData: true, agent: true }),
    disconnectReason: reason ?? DisconnectReason.UNKNOWN_REASON,
  });
}

/** participant_joined for a dispatched agent (kind AGENT). */
export function agentJoined(o: AgentOptions): WebhookEvent {
  const at = o.at ?? new Date();
  return event("participant_joined", o, {
    room: buildRoom({ ...o, at, numParticipants: o.numParticipants ?? 2 }),
    participant: agentParticipant(o, at, ParticipantInfo_State.ACTIVE),
  });
}

/** participant_left for an agent. */
export function agentLeft(o: AgentOptions & { joinedAt?: Date; reason?: ReasonInput }): WebhookEvent {
  const at = o.at ?? new Date();
  return event("participant_left", o, {
    room: buildRoom({ ...o, at, numParticipants: o.numParticipants ?? 0 }),
    participant: agentParticipant(o, o.joinedAt ?? at, ParticipantInfo_State.DISCONNECTED, toReason(o.reason ?? "CLIENT_INITIATED")),
  });
}

// ---------------------------------------------------------------------------------------------
// Room events

export function roomStarted(o: RoomOptions & EventBase): WebhookEvent {
  const at = o.at ?? new Date();
  return event("room_started", o, { room: buildRoom({ ...o, at }) });
}

export function roomFinished(o: RoomOptions & EventBase & { roomEndReason?: RoomEndReason }): WebhookEvent {
  const at = o.at ?? new Date();
  return event("room_finished", o, {
    room: buildRoom({ ...o, at, numParticipants: o.numParticipants ?? 0 }),
    ...(o.roomEndReason !== undefined ? { roomEndReason: o.roomEndReason } : {}),
  });
}

/** track_published: an event Switchboard should ignore. Default: the SIP caller of `callId` publishing its audio. */
export function trackPublished(
  o: RoomOptions & EventBase & { callId?: string; participant?: ParticipantInfo; trackSid?: string },
): WebhookEvent {
  const at = o.at ?? new Date();
  const known = o.callId ? knownCalls.get(o.callId) : undefined;
  const participant =
    o.participant ??
    sipParticipant(
      { from: "+15550000000", ...known, room: o.room, callId: o.callId ?? "SCL_unknown" },
      known?.joinedAt ?? at,
      ParticipantInfo_State.ACTIVE,
      "ringing",
    );
  return event("track_published", o, {
    room: buildRoom({
      ...o,
      at,
      roomCreatedAt: o.roomCreatedAt ?? known?.roomCreatedAt ?? (known?.roomInfo ? undefined : known?.joinedAt),
      numParticipants: o.numParticipants ?? 1,
    }),
    participant,
    track: new TrackInfo({
      sid: o.trackSid ?? randomId("TR_"),
      type: TrackType.AUDIO,
      source: TrackSource.MICROPHONE,
      mimeType: "audio/opus",
      name: "",
    }),
  });
}
