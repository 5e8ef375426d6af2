// Builders for LiveKit webhook deliveries, made the way the LiveKit server makes them
// (livekit/protocol webhook/url_notifier.go):
// - body = protojson.Marshal(WebhookEvent): lowerCamelCase names, int64 as strings, enums as names,
//   zero values left out. protobuf-es's toJsonString() with default options writes the same.
// - Authorization = JWT (no "Bearer " prefix), HS256 with the API secret, iss = API key,
//   valid 5 minutes, claim sha256 = standard padded base64 of SHA-256 over the exact body bytes.
// - Content-Type: application/webhook+json, User-Agent: LiveKit.
// WebhookReceiver.receive(body, authorization) from livekit-server-sdk verifies exactly this.
//
// The event builders return a @livekit/protocol WebhookEvent; signDelivery() turns one into what
// goes over the wire. Sids are derived from the room name / call id, so a participant_left built for
// the same call carries the same participant sid and identity as its participant_joined.
import { createHash } from "node:crypto";
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
import { AccessToken } from "livekit-server-sdk";

export { DisconnectReason, ParticipantInfo_Kind, WebhookEvent };

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignOptions {
  apiKey: string;
  apiSecret: string;
  /** Token lifetime: seconds or a jose time span ("5m"). Default 5 minutes, as the server. */
  ttl?: number | string;
  /** Make a token whose exp is this instant (use one more than 10 s in the past: receivers allow 10 s of skew). */
  expiredAt?: Date;
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

/** The webhook JWT for `body`, as the server signs it (AccessToken with only the sha256 claim). */
export async function signBody(body: string, options: SignOptions): Promise<string> {
  let ttl: number | string = options.ttl ?? "5m";
  if (options.expiredAt) {
    // jose accepts a negative span ("-60s"): exp = now - 60 s. AccessToken treats 0 as "unset".
    ttl = Math.min(-1, Math.floor((options.expiredAt.getTime() - Date.now()) / 1000));
  }
  const token = new AccessToken(options.apiKey, options.apiSecret, { ttl });
  token.sha256 = bodySha256(body);
  return token.toJwt();
}

/**
 * Serialise and sign an event (or sign a raw body string, e.g. to hand-craft a malformed one).
 * Tamper after signing to test hash checks: `{ ...delivery, body: delivery.body.replace(...) }`.
 */
export async function signDelivery(event: WebhookEvent | string, options: SignOptions): Promise<WebhookDelivery> {
  const body = typeof event === "string" ? event : event.toJsonString();
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
  /** Room sid; default derived from the room name ("RM_..."). */
  roomSid?: string;
  /** Room creation time; default the event's `at`. */
  roomCreatedAt?: Date;
  numParticipants?: number;
  metadata?: string;
}

export function buildRoom(options: RoomOptions & { at?: Date }): Room {
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
    room: buildRoom({ ...merged, at, roomCreatedAt: o.roomCreatedAt ?? known?.roomCreatedAt ?? known?.joinedAt, numParticipants: o.numParticipants ?? 0 }),
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
      roomCreatedAt: o.roomCreatedAt ?? known?.roomCreatedAt ?? known?.joinedAt,
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
