// A stand-in for the LiveKit server's Twirp API on a loopback port, for the parts Switchboard calls:
// AgentDispatchService (CreateDispatch, ListDispatch, DeleteDispatch) and the SIP service's inbound
// trunk and dispatch rule provisioning; plus the rooms those dispatches live in.
//
// Wire facts it mirrors (livekit-server-sdk 2.19.2, TwirpRPC.js / ServiceBase.js):
// - POST {url}/twirp/livekit.<Service>/<Method>, body = JSON.stringify(Request.toJson()),
//   Content-Type "application/json;charset=UTF-8"; the SDK never sends protobuf binary.
// - Authorization: "Bearer <JWT>" signed HS256 with the API secret, iss = API key, ttl 10 min.
//   AgentDispatchClient puts video { roomAdmin: true, room: <room> }; SipClient puts sip { admin: true }.
// - A 2xx answer is read with response.json() and decoded with Response.fromJson(..., ignoreUnknownFields).
// - Errors: the SDK reads {"code","msg","meta"} only when Content-Type is exactly "application/json",
//   and throws TwirpError(statusText, msg, status, code).
// - No failover to other regions for a host that is not *.livekit.cloud, so one request per call.
//
// Like the real server (livekit/livekit pkg/service), a missing token or a token without the needed
// grant is answered 401 {"code":"unauthenticated"}; so is a token that fails verification.
//
// Rooms, as livekit-server keeps them (livekit/livekit at 788d4c35, livekit/protocol at d74e7cdb):
// - A room is created by the first join (a SIP caller's, through livekit/sip pkg/sip/room.go Connect
//   with the dispatch rule's room_config in its token), by RoomService.CreateRoom, or by
//   CreateDispatch when room.auto_create is on (the default). pkg/service/roomallocator.go
//   StandardRoomAllocator.CreateRoom + applyDefaultRoomConfig give it: sid guid.New("RM_"), name,
//   creation_time / creation_time_ms = now, turn_password utils.RandomSecret(), and from the
//   default room config (pkg/config/config.go DefaultConfig) empty_timeout 300, departure_timeout 20,
//   max_participants 0 and enabled_codecs PCMU, PCMA, opus, red, VP8, H264, VP9, AV1, H265, rtx.
//   Its agents: `if req.Agents != nil { internal.AgentDispatches = req.Agents }`.
// - pkg/rtc/room.go NewRoom -> createAgentDispatchesFromRoomAgent: with no agents in the room's
//   config, "Backward compatibility: by default, start any agent in the empty JobName": ONE dispatch
//   with an empty agent name; otherwise one dispatch per configured agent. Each is
//   createAgentDispatchFromRoomDispatch: id guid.New("AD_"), agent_name, metadata, room, restart
//   policy, deployment, attributes; createAgentDispatch stamps state.created_at = time.Now().UnixNano().
// - A live room is returned as it is by pkg/service/roommanager.go getOrCreateRoom: a later join
//   with other room_config agents adds none. A room deleted and created again gets a new sid and a
//   fresh dispatch list (a new rtc.Room).
//
// Participants, RoomService.RemoveParticipant and SIP.TransferSIPParticipant (livekit/livekit at
// 788d4c35, livekit/protocol at d74e7cdb, livekit/sip at be5d3f57, livekit-server-sdk 2.19.2):
// - RoomServiceClient.removeParticipant(room, identity, { revokeTokenTs }) posts
//   livekit.RoomService/RemoveParticipant with a RoomParticipantIdentity and a token with
//   video { roomAdmin: true, room }. pkg/service/roomservice.go RemoveParticipant:
//   EnsureAdminPermission (roomAdmin and video.room == req.room, else twirpAuthError: 401
//   "unauthenticated" "permissions denied"), then the store's HasParticipant (pkg/service/localstore.go,
//   redisstore.go: a missing room and a missing identity alike) -> ErrParticipantNotFound, psrpc
//   NotFound "participant does not exist" = 404 "not_found"; then pkg/service/roommanager.go
//   RemoveParticipant -> rtc.Room.RemoveParticipant(..., ParticipantCloseReasonServiceRequestRemoveParticipant),
//   answer RemoveParticipantResponse {} (livekit_room.proto). pkg/rtc/types/interfaces.go
//   ToDisconnectReason maps that close reason to DisconnectReason PARTICIPANT_REMOVED, which the
//   participant_left webhook carries (pkg/rtc/participant.go ToProto, pkg/telemetry/events.go).
// - SipClient.transferSipParticipant(roomName, participantIdentity, transferTo, opts) posts
//   livekit.SIP/TransferSIPParticipant with a TransferSIPParticipantRequest (ringing_timeout 30 s
//   unless told) and a token with video { roomAdmin: true, room: roomName } AND sip { call: true }
//   (no sip.admin). pkg/service/sip.go transferSIPParticipantRequest, in this order: empty room_name
//   400 "Missing room name", empty participant_identity 400 "Missing participant identity" (both
//   before any auth), EnsureSIPCallPermission then EnsureAdminPermission (401 "permissions denied"),
//   req.ValidateResult() (protocol livekit/sip.go: 400 "missing transfer to"; transfer_to must start
//   with sip:, sips: or tel:, optionally inside <...>, else 400 "transfer_to must be a valid SIP(s) or
//   TEL URI (sip:, sips: or tel:)"; a sip(s): URI is sent on as "<sip:...>", a tel: one bare; header
//   names/values checked), RoomService.GetParticipant (404 "participant does not exist"), and the
//   participant's "sip.callID" attribute (none: 400 "no SIP session associated with participant";
//   the check is on that attribute, not on the participant's kind). The call then goes over psrpc to
//   the SIP node serving topic sip.callID (protocol rpc/sip.psrpc.go, a claimed single request: no
//   node for it is 503 "unavailable" "no response from servers", as for dispatches; the fake takes a
//   participant with a sip.callID but not of kind SIP for that case). The answer is
//   TransferSIPParticipantResponse; livekit/sip pkg/sip/service.go answers google.protobuf.Empty, so
//   every field is at its default and the JSON is {}.
// - After a transfer (livekit/sip pkg/sip/inbound.go transferCall): the REFER is accepted, the RPC
//   returns, and the bridge waits for the far end's BYE, hanging up itself after referByeTimeout
//   (1 s, pkg/sip/protocol.go); closing the call closes its room connection with lkRoom.Close() ->
//   CloseWithReason(UNKNOWN_REASON) -> server-sdk-go SendLeaveWithReason(UNKNOWN_REASON), which
//   pkg/rtc/signalling/signalhandler.go takes as ParticipantCloseReasonClientRequestLeave: the
//   participant_left webhook says CLIENT_INITIATED. The fake removes the participant when it answers.
// - A participant joining with an identity already in the room replaces it (pkg/service/roommanager.go:
//   the old one is removed with ParticipantCloseReasonDuplicateIdentity -> DUPLICATE_IDENTITY).
// - Only an established call can be transferred. livekit/sip pkg/sip/inbound.go (*sipInbound).newReferReq
//   (and outbound.go, the same for dialed calls): `if c.invite == nil || c.inviteOk == nil` ->
//   psrpc.NewErrorf(FailedPrecondition, "can't transfer non established call"). An inbound call
//   gets its 200 OK (inviteOk, accepted()) only in handleInvite's acceptCall, which runs after
//   waitSubscribe: someone (an agent) subscribed to the caller's track; until then the caller's
//   "sip.callStatus" attribute is "ringing" (joinRoom with CallRinging), then setStatus(CallActive)
//   makes it "active" (pkg/sip/participant.go CallStatus.Attribute). A dialed call gets inviteOk
//   when the callee answers: "dialing" -> "ringing" (180) -> "automation" while its dtmf is sent
//   -> "active" (outbound.go connectToRoom, sipSignal, dialSIP). The error travels back unchanged:
//   pkg/sip/service.go TransferSIPParticipant (siperrors.ApplySIPStatus leaves a non-SIPStatus error
//   alone), psrpc NewErrorFromResponse keeps code and message, livekit/livekit pkg/service/sip.go
//   TransferSIPParticipant returns it (wrapSIPContextError passes psrpc errors through), and the
//   generated twirp writeError (protocol livekit/*.twirp.go) takes it with errors.As -> psrpc
//   errors.go psrpcError.As -> twirp.NewError(FailedPrecondition.ToTwirp(), msg), status from
//   twirp.ServerHTTPStatusFromErrorCode: 412 {"code":"failed_precondition","msg":"can't transfer
//   non established call"}. The fake refuses so a participant whose sip.callStatus is neither
//   "active" nor "automation"; answerCall() stands for the answer. Nothing is removed or recorded.
//
// SIP.CreateSIPParticipant (livekit/livekit pkg/service/sip.go CreateSIPParticipant +
// CreateSIPParticipantRequest, livekit/protocol rpc/sip.go NewCreateSIPParticipantRequestResult,
// livekit/sip pkg/sip/client.go createSIPParticipant, outbound.go):
// - SipClient.createSipParticipant(sipTrunkId, number, roomName, opts?, outboundTrunkConfig?) sends
//   participant_identity opts.participantIdentity || "sip-participant" (so the server's own default,
//   "sip_" + sip_call_to, applies only to other clients), sip_number = opts.fromNumber, and a token
//   with an empty video grant and sip { call: true }. With waitUntilAnswered the SDK also sets
//   ringing_timeout (30 s unless told) and a longer request timeout.
// - Server order: EnsureSIPCallPermission (401 "permissions denied"; no room grant is looked at,
//   and this comes before any validation), then req.ValidateResult() (protocol livekit/sip.go) as
//   400 invalid_argument: "missing sip trunk id and sip number", "missing sip callee number",
//   "SipCallTo should be a phone number or SIP user, not a full SIP URI", "missing room name",
//   "DisplayName too long (max 128 characters)", header checks; then, for a sip_trunk_id, the store's
//   LoadSIPOutboundTrunk (outbound trunks, then legacy ones; an inbound trunk's id is not found):
//   404 not_found "requested sip trunk does not exist". No sip_number and a trunk without numbers:
//   412 failed_precondition "no numbers on outbound trunk"; else sip_number, or a random trunk number
//   ("+" put in front for a *twilio.com address). No address at all (no trunk, no inline trunk
//   hostname): livekit/sip buildRequestURI -> 400 "invalid request URI: address must be set".
// - The dialed participant joins before the answer (newCall -> connectToRoom, with a token from
//   protocol sip/token.go BuildSIPToken: kind SIP); a join creates a missing room whatever
//   room.auto_create says (rtcservice.go startConnection -> SelectRoomNode; ValidateCreateRoom has
//   no caller). Identity req.participant_identity or "sip_" + sip_call_to; name, metadata as sent;
//   attributes: the request's, plus sip.callID (a new "SCL_" id, protocol sip.NewCallID), sip.trunkID
//   and, unless hide_phone_number, sip.phoneNumber (sip_call_to), sip.hostname (the trunk's address),
//   sip.trunkPhoneNumber (the number dialed from); sip.callStatus "dialing". Without
//   wait_until_answered the answer comes at once (DialAsync) and the call is still dialing (the fake
//   leaves it at "dialing" until answerCall); with it the answer waits for the callee, and the fake
//   answers as if the callee picked up at once ("active").
// - Answer SIPParticipantInfo { participant_id, participant_identity, room_name, sip_call_id }.
//   The fake has no CreateSIPOutboundTrunk RPC: tests provision outbound trunks with
//   createOutboundTrunk(); DeleteSIPTrunk removes them too (the store HDels all three trunk keys).
import {
  AgentDispatch,
  AgentDispatchState,
  Codec,
  CreateAgentDispatchRequest,
  CreateSIPDispatchRuleRequest,
  CreateSIPInboundTrunkRequest,
  CreateSIPParticipantRequest,
  DeleteAgentDispatchRequest,
  DeleteSIPDispatchRuleRequest,
  DeleteSIPTrunkRequest,
  DisconnectReason,
  ListAgentDispatchRequest,
  ListAgentDispatchResponse,
  ListSIPDispatchRuleRequest,
  ListSIPDispatchRuleResponse,
  ListSIPInboundTrunkRequest,
  ListSIPInboundTrunkResponse,
  type ListUpdate,
  type Pagination,
  ParticipantInfo,
  ParticipantInfo_Kind,
  ParticipantInfo_State,
  RemoveParticipantResponse,
  Room,
  RoomAgentDispatch,
  RoomParticipantIdentity,
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  SIPOutboundTrunkInfo,
  SIPParticipantInfo,
  SIPTrunkInfo,
  TransferSIPParticipantRequest,
  TransferSIPParticipantResponse,
  UpdateSIPDispatchRuleRequest,
  UpdateSIPInboundTrunkRequest,
} from "@livekit/protocol";
import { type ClaimGrants, TokenVerifier } from "livekit-server-sdk";

// ---------------------------------------------------------------------------------------------
// Types

/** Twirp methods the fake implements. */
export type FakeLiveKitMethod =
  | "CreateDispatch"
  | "ListDispatch"
  | "DeleteDispatch"
  | "ListSIPInboundTrunk"
  | "CreateSIPInboundTrunk"
  | "UpdateSIPInboundTrunk"
  | "DeleteSIPTrunk"
  | "ListSIPDispatchRule"
  | "CreateSIPDispatchRule"
  | "UpdateSIPDispatchRule"
  | "DeleteSIPDispatchRule"
  | "RemoveParticipant"
  | "TransferSIPParticipant"
  | "CreateSIPParticipant";

/** One request the fake received, whatever its outcome. */
export interface RecordedCall {
  /** Twirp service, e.g. "AgentDispatchService" or "SIP". */
  service: string;
  /** Twirp method, e.g. "CreateDispatch". */
  method: string;
  /** The decoded request message (e.g. a CreateAgentDispatchRequest); undefined when the body did not decode. */
  request: any;
  /** When the request arrived. */
  at: Date;
  /** HTTP status the fake answered with. */
  status: number;
  /** Twirp error code when status is not 200. */
  errorCode?: string;
  /** Verified JWT claims, when the token verified. */
  grants?: ClaimGrants;
  /** The raw Authorization header. */
  authorization: string | null;
}

export interface FailureSpec {
  status?: number;
  /** Twirp error code; defaults from the status (503 unavailable, 500 internal, 429 resource_exhausted, ...). */
  code?: string;
  msg?: string;
}

export interface FakeLiveKitOptions {
  apiKey: string;
  apiSecret: string;
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /**
   * livekit.yaml room.auto_create (default true, pkg/config/config.go): CreateDispatch for a room
   * that does not exist creates it. false: CreateDispatch there fails like ListDispatch does.
   */
  autoCreate?: boolean;
  /**
   * How long a dispatch call for a room that does not exist takes to fail. The real server needs
   * about 3 s (3 psrpc attempts of DefaultAffinityTimeout = 1 s each, see NO_ROOM below); the
   * default here is 0 so tests stay fast.
   */
  missingRoomDelayMs?: number;
}

/** One agent of a room's configuration (RoomConfiguration.agents, e.g. a SIP dispatch rule's room_config). */
export type RoomAgent = NonNullable<ConstructorParameters<typeof RoomAgentDispatch>[0]> & { agentName: string };

export interface CreateRoomOptions {
  /**
   * The agents of the room's configuration, e.g. a SIP dispatch rule's room_config.agents: one
   * dispatch each. None (the default): the one implicit dispatch with an empty agent name.
   */
  agents?: RoomAgent[];
  /** Creation time; default now. */
  createdAt?: Date;
  /** Room metadata (CreateRoomRequest.metadata); default none. */
  metadata?: string;
  /**
   * The sid, for a test that needs a known one; by default a fresh "RM_" + 12 characters, as the
   * server makes it. Not something LiveKit lets a client choose.
   */
  sid?: string;
}

/** A participant to put in a room: any ParticipantInfo field; identity is required. */
export type ParticipantInit = NonNullable<ConstructorParameters<typeof ParticipantInfo>[0]> & { identity: string };

/** A participant that left a room through the API (or was replaced by a join with its identity). */
export interface RemovedParticipant {
  room: string;
  roomSid: string;
  identity: string;
  /** What made it leave: RemoveParticipant, a completed TransferSIPParticipant, or a later join with the same identity. */
  cause: "RemoveParticipant" | "TransferSIPParticipant" | "DuplicateIdentity";
  /**
   * The DisconnectReason its participant_left webhook carries: PARTICIPANT_REMOVED (RemoveParticipant),
   * CLIENT_INITIATED (the SIP bridge leaving after a transfer), DUPLICATE_IDENTITY.
   */
  disconnectReason: DisconnectReason;
  /** The participant as participant_left would carry it: state DISCONNECTED, disconnectReason set. */
  participant: ParticipantInfo;
  at: Date;
}

/** A TransferSIPParticipant the fake carried out. */
export interface SIPTransfer {
  room: string;
  identity: string;
  participantSid: string;
  /** The participant's sip.callID: the psrpc topic the server sends the transfer to. */
  sipCallId: string;
  /** transfer_to as the client sent it, e.g. "tel:+15551234567". */
  transferTo: string;
  /** What the server passes on to livekit/sip for the Refer-To header: "<sip:...>" for a sip(s): URI, a tel: URI as it is. */
  referTo: string;
  playDialtone: boolean;
  headers: Record<string, string>;
  /** The ringing timeout the server resolved (request's ringing_timeout, else 30 s). */
  ringingTimeoutMs: number;
  at: Date;
}

/** A CreateSIPParticipant the fake carried out: a number dialed into a room. */
export interface OutboundCall {
  room: string;
  /** sip_trunk_id as sent ("" when the request carried an inline trunk or none). */
  trunkId: string;
  /** sip_call_to: the number dialed. */
  number: string;
  /** The number dialed from: sip_number, else one of the trunk's numbers. */
  fromNumber: string;
  /** The dialed participant's identity (request's, else "sip_" + number). */
  identity: string;
  /** participant_name as sent. */
  name: string;
  /** The dialed participant's attributes when it joined (sip.callStatus "dialing", or "active" with waitUntilAnswered). */
  attributes: Record<string, string>;
  waitUntilAnswered: boolean;
  /** The dialed participant's sid (SIPParticipantInfo.participant_id). */
  participantSid: string;
  /** The new call's sip.callID ("SCL_..."). */
  sipCallId: string;
  dtmf: string;
  playDialtone: boolean;
  headers: Record<string, string>;
  /** ringing_timeout as sent, in ms; undefined when not sent (livekit/sip then uses its default). */
  ringingTimeoutMs?: number;
  at: Date;
}

export interface FakeLiveKit {
  /** http://127.0.0.1:PORT — pass to AgentDispatchClient / SipClient. */
  readonly url: string;
  readonly port: number;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Whether setDown(true) is in effect. */
  readonly down: boolean;
  /** Every request received (optionally only those of one method), oldest first. Includes failed ones; see `status`. */
  calls(method?: FakeLiveKitMethod | string): RecordedCall[];
  /** Answer the next `n` calls of `method` (default 1) with a Twirp error, HTTP 503 "unavailable" unless told. */
  failNext(method: FakeLiveKitMethod | string, n?: number, status?: number | FailureSpec): void;
  /**
   * Carry out the next `n` calls of `method` (default 1) as usual but answer them only after `ms`:
   * a slow LiveKit whose CreateDispatch lands while the client has already given up.
   */
  delayNext(method: FakeLiveKitMethod | string, ms: number, n?: number): void;
  /** true: stop listening, so connections are refused; false: listen again on the same port. */
  setDown(down: boolean): Promise<void>;
  /**
   * Current dispatches, as ListDispatch lists them: of one room (none when it does not exist), or
   * of every room. A room created without agents has its implicit empty-name dispatch here.
   */
  dispatches(room?: string): AgentDispatch[];
  /** dispatches(room) less those with an empty agent name (the implicit one): the agents someone sent. */
  agentDispatches(room?: string): AgentDispatch[];
  /**
   * Creates a room as livekit-server does when the first participant joins it (e.g. a SIP caller,
   * with the dispatch rule's room_config agents): a new sid and its dispatches, the implicit
   * empty-name one when no agents are given. A room of that name that is still live is returned
   * as it is (getOrCreateRoom): `options` then change nothing.
   */
  createRoom(name: string, options?: CreateRoomOptions): Room;
  /** The live rooms, oldest first. */
  rooms(): Room[];
  /** The live room of that name. */
  room(name: string): Room | undefined;
  /** Closes a room (RoomService.DeleteRoom, or the last participant gone): it, its dispatches and its participants are forgotten. */
  deleteRoom(name: string): boolean;
  /**
   * A participant joins a live room (created as createRoom does when it is not live): sid "PA_..."
   * unless given, state ACTIVE, joinedAt now, kind STANDARD unless given. A participant of that
   * identity already there with the same sid is updated in place; with another sid it is replaced
   * (recorded in removedParticipants with DUPLICATE_IDENTITY). Returns the participant as the room has it.
   */
  addParticipant(room: string, participant: ParticipantInit): ParticipantInfo;
  /** The room's current participants, in join order (none when the room is not live). */
  participants(room: string): ParticipantInfo[];
  /** Participants that left through RemoveParticipant, a transfer, or a duplicate identity, oldest first (optionally of one room). */
  removedParticipants(room?: string): RemovedParticipant[];
  /** Completed TransferSIPParticipant calls, oldest first (optionally of one room). */
  transfers(room?: string): SIPTransfer[];
  /**
   * The SIP call of `identity` in `room` is answered: for an inbound caller, an agent subscribed
   * to the caller's audio, so livekit/sip sends the 200 OK; for a dialed participant, the callee
   * picked up. Its sip.callStatus becomes "active", and from then on TransferSIPParticipant can
   * transfer it (before, it is refused 412 failed_precondition). Throws when there is no such
   * participant. Returns the participant as the room has it.
   */
  answerCall(room: string, identity: string): ParticipantInfo;
  /** CreateSIPParticipant calls carried out, oldest first (optionally of one room). */
  outboundCalls(room?: string): OutboundCall[];
  /**
   * Provisions an outbound trunk, as CreateSIPOutboundTrunk would (the fake has no RPC for it):
   * sid "ST_..." unless given. CreateSIPParticipant finds it by id.
   */
  createOutboundTrunk(trunk: NonNullable<ConstructorParameters<typeof SIPOutboundTrunkInfo>[0]>): SIPOutboundTrunkInfo;
  /** Current outbound trunks. */
  outboundTrunks(): SIPOutboundTrunkInfo[];
  /** Current inbound trunks. */
  trunks(): SIPInboundTrunkInfo[];
  /** Current dispatch rules. */
  rules(): SIPDispatchRuleInfo[];
  /** Forget state (rooms, dispatches, participants, removals, transfers, outbound calls, trunks, rules), recorded calls and pending failures (the server keeps running). */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/** LiveKit-style id: prefix + 12 random characters (like guid.New in livekit/protocol). */
export function livekitId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let out = prefix;
  for (const b of bytes) out += ID_ALPHABET[b % ID_ALPHABET.length];
  return out;
}

const CODE_BY_STATUS: Record<number, string> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  408: "deadline_exceeded",
  409: "already_exists",
  412: "failed_precondition",
  429: "resource_exhausted",
  500: "internal",
  501: "unimplemented",
  503: "unavailable",
  504: "deadline_exceeded",
};

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  412: "Precondition Failed",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

class TwirpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    msg: string,
  ) {
    super(msg);
  }
}

function twirpError(status: number, code: string, msg: string): Response {
  // Content-Type must be exactly "application/json" for the SDK to read code and msg.
  return new Response(JSON.stringify({ code, msg }), {
    status,
    statusText: STATUS_TEXT[status] ?? "",
    headers: { "content-type": "application/json" },
  });
}

/** livekit/protocol livekit/types.go (*ListUpdate).Validate: the error a list update is refused with, if any. */
function listUpdateError(update: ListUpdate | undefined): string | undefined {
  if (!update) return undefined;
  const change = update.set.length + update.add.length + update.remove.length > 0;
  if (!update.clear && !change) return "unsupported list update operation";
  if (update.clear && change) return "cannot clear and change the list at the same time";
  if (update.set.length > 0 && update.add.length + update.remove.length > 0) return "cannot set and change the list at the same time";
  if ([...update.set, ...update.add, ...update.remove].some((v) => v === "")) return "empty element in the list";
  return undefined;
}

/** livekit/protocol livekit/types.go applyListUpdate: clear, else set, else remove then add (no duplicates). */
function applyListUpdate(current: string[], update: ListUpdate | undefined): string[] {
  if (!update) return current;
  if (update.clear) return [];
  if (update.set.length > 0) return [...update.set];
  const next = [...current];
  for (const v of update.remove) {
    const i = next.indexOf(v);
    if (i >= 0) next.splice(i, 1);
  }
  for (const v of update.add) if (!next.includes(v)) next.push(v);
  return next;
}

/** livekit/protocol livekit/types.go applyMapDiff: a key with a value is set, a key with "" is removed. */
function applyMapDiff(current: Record<string, string>, diff: Record<string, string>): Record<string, string> {
  const next = { ...current };
  for (const [k, v] of Object.entries(diff)) {
    if (v !== "") next[k] = v;
    else delete next[k];
  }
  return next;
}

/** livekit/livekit pkg/config/config.go DefaultConfig Room.EnabledCodecs, as mime.MimeType.String() names them. */
export const DEFAULT_ENABLED_CODECS = [
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
] as const;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A stand-in for livekit/protocol utils.RandomSecret(): 256 random bits in base62 (about 43 characters). */
function randomSecret(): string {
  let n = 0n;
  for (const b of crypto.getRandomValues(new Uint8Array(32))) n = (n << 8n) | BigInt(b);
  let out = "";
  while (n > 0n) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out || "0";
}

/** A copy in random order (Fisher-Yates). */
function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function paginate<T>(items: T[], idOf: (t: T) => string, page: Pagination | undefined): T[] {
  let out = [...items].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  if (page?.afterId) out = out.filter((t) => idOf(t) > page.afterId);
  if (page?.limit) out = out.slice(0, page.limit);
  return out;
}

/**
 * How LiveKit's SIP list calls select: the ids asked for (in that order; the real server sends
 * null for a missing id, which JSON lists of messages cannot carry through protobuf-es, so
 * missing ones are left out), else a page of all; then, when a filter is given, the items that
 * match it plus wildcards (items with an empty list match everything).
 */
function listSelection<T>(
  store: Map<string, T>,
  request: { ids: string[]; page: Pagination | undefined; filter: string[] },
  idOf: (item: T) => string,
  keysOf: (item: T) => string[],
): T[] {
  let items =
    request.ids.length > 0
      ? request.ids.map((id) => store.get(id)).filter((item) => item !== undefined)
      : paginate([...store.values()], idOf, request.page);
  if (request.filter.length > 0) {
    items = items.filter((item) => keysOf(item).length === 0 || keysOf(item).some((key) => request.filter.includes(key)));
  }
  return items;
}

/** The part of a protobuf-es message the fake uses. */
interface Message {
  toJsonString(): string;
  toBinary(): Uint8Array;
}

type AnyMessageType = {
  fromJson(json: never, options?: { ignoreUnknownFields?: boolean }): Message;
  fromBinary(bytes: Uint8Array): Message;
};

interface Route {
  service: "AgentDispatchService" | "SIP" | "RoomService";
  request: AnyMessageType;
  handle(req: any, grants: ClaimGrants): Message | Promise<Message>;
  /** Room the token must be scoped to (dispatch calls), or undefined for SIP admin calls. */
  room?(req: any): string;
  /**
   * The method's own checks up to and including the grants, instead of the room / sip.admin check:
   * a failure, or undefined to go on. `grants` is empty when the request had no token.
   */
  authorize?(req: any, grants: ClaimGrants): TwirpFailure | undefined;
}

/** livekit/livekit pkg/service/auth.go EnsureAdminPermission. */
const hasRoomAdmin = (grants: ClaimGrants, room: string) => grants.video?.roomAdmin === true && (grants.video.room ?? "") === room;

/** twirpAuthError(ErrPermissionDenied). */
const permissionDenied = () => new TwirpFailure(401, "unauthenticated", "permissions denied");

/**
 * livekit/protocol livekit/sip.go (*TransferSIPParticipantRequest).ValidateResult, after the room
 * name and identity checks the server has already made: the error, or the Refer-To target it
 * normalizes transfer_to to. validateHeaders is followed for names and lengths
 * (livekit/sip_validation.go ValidateHeaderName / ValidateHeaderValueResult), not for the character sets.
 */
function validateTransfer(req: TransferSIPParticipantRequest): { error: string } | { referTo: string } {
  if (req.transferTo === "") return { error: "missing transfer to" };
  const bracketed = req.transferTo.startsWith("<") && req.transferTo.endsWith(">");
  const inner = bracketed ? req.transferTo.slice(1, -1) : req.transferTo;
  const sip = inner.startsWith("sip:") || inner.startsWith("sips:");
  if (!sip && !inner.startsWith("tel:")) {
    return { error: "transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)" };
  }
  const headers = headersError(req.headers);
  if (headers) return { error: headers };
  return { referTo: sip ? `<${inner}>` : inner };
}

/**
 * The sip.callStatus values of a call that has its 200 OK (livekit/sip pkg/sip/participant.go):
 * "active", and "automation" (a dialed call sending its initial dtmf, after the answer).
 */
const ESTABLISHED_STATUSES = new Set(["active", "automation"]);

/** A header map's first error as livekit/protocol validateHeaders reports it (names and lengths). */
function headersError(headers: Record<string, string>): string | undefined {
  for (const [name, value] of Object.entries(headers)) {
    if (name === "") return "invalid header name: header name cannot be empty";
    if (name.length > 255) return "invalid header name: header name too long (max 255 characters)";
    if (value.length > 1024) return `invalid header value for ${name}: header ${name}: value too long (max 1024 characters)`;
  }
  return undefined;
}

/**
 * livekit/protocol livekit/sip.go (*CreateSIPParticipantRequest).ValidateResult, in its order
 * (the inline trunk's own Validate, to_user_override's character set, destination and media are
 * not followed): the error, if any.
 */
function validateCreateSIPParticipant(req: CreateSIPParticipantRequest): string | undefined {
  if (req.sipTrunkId === "" && req.trunk === undefined && req.sipNumber === "") return "missing sip trunk id and sip number";
  if (req.sipCallTo === "") return "missing sip callee number";
  if (req.sipCallTo.includes("@")) return "SipCallTo should be a phone number or SIP user, not a full SIP URI";
  if (req.toUserOverride.includes("@")) return "ToUserOverride should be a phone number or SIP user, not a full SIP URI";
  if (req.roomName === "") return "missing room name";
  if (req.displayName !== undefined && req.displayName.length > 128) return "DisplayName too long (max 128 characters)";
  return headersError(req.headers);
}

// ---------------------------------------------------------------------------------------------

/** Start the fake on 127.0.0.1 (a free port unless `port` is given). */
export async function startFakeLiveKit(options: FakeLiveKitOptions): Promise<FakeLiveKit> {
  const { apiKey, apiSecret } = options;
  const verifier = new TokenVerifier(apiKey, apiSecret);

  const autoCreate = options.autoCreate ?? true;
  const missingRoomDelayMs = options.missingRoomDelayMs ?? 0;

  /** A live room: what RoomService would list, and its rtc.Room's agentDispatches. */
  interface RoomState {
    info: Room;
    dispatches: AgentDispatch[];
    /** By identity, in join order (rtc.Room participants). */
    participants: Map<string, ParticipantInfo>;
  }
  const rooms = new Map<string, RoomState>();
  const trunks = new Map<string, SIPInboundTrunkInfo>();
  const rules = new Map<string, SIPDispatchRuleInfo>();
  const removed: RemovedParticipant[] = [];
  const transferred: SIPTransfer[] = [];
  const outboundTrunks = new Map<string, SIPOutboundTrunkInfo>();
  const dialed: OutboundCall[] = [];
  const recorded: RecordedCall[] = [];
  const failures = new Map<string, Array<{ status: number; code: string; msg: string }>>();
  const delays = new Map<string, number[]>();

  const invalid = (msg: string) => new TwirpFailure(400, "invalid_argument", msg);
  const internal = (msg: string) => new TwirpFailure(500, "internal", msg);

  /**
   * A dispatch call for a room no node has: AgentDispatchService (livekit/livekit
   * pkg/service/agent_dispatch_service.go) sends it over psrpc to the room's topic, whose server
   * is registered only while the room lives (pkg/service/roommanager.go getOrCreateRoom,
   * RegisterAllRoomTopics). The generated client needs a claim (livekit/protocol
   * rpc/agent_dispatch.psrpc.go RegisterMethod("ListDispatch", false, false, true, true)), so
   * psrpc pkg/client/rpc.go selectServer gives up with ErrNoResponse = Unavailable "no response from
   * servers"; the retry middleware (protocol rpc DefaultPSRPCConfig, MaxAttempts 3) retries
   * Unavailable, then twirp answers 503 {"code":"unavailable"} (psrpc errors.go ToTwirp).
   */
  const noRoom = async () => {
    if (missingRoomDelayMs > 0) await Bun.sleep(missingRoomDelayMs);
    return new TwirpFailure(503, "unavailable", "no response from servers");
  };

  /** livekit/livekit pkg/rtc/room.go createAgentDispatchFromRoomDispatch + createAgentDispatch. */
  const newDispatch = (room: string, agent: { agentName?: string; metadata?: string; restartPolicy?: number; deployment?: unknown; attributes?: Record<string, string> }) =>
    new AgentDispatch({
      id: livekitId("AD_"),
      agentName: agent.agentName ?? "",
      metadata: agent.metadata ?? "",
      room,
      restartPolicy: agent.restartPolicy,
      deployment: agent.deployment as AgentDispatch["deployment"],
      attributes: { ...(agent.attributes ?? {}) },
      // time.Now().UnixNano()
      state: new AgentDispatchState({ createdAt: BigInt(Date.now()) * 1_000_000n }),
    });

  /** roomallocator.go CreateRoom + roommanager.go getOrCreateRoom + rtc/room.go NewRoom. */
  const getOrCreateRoom = (name: string, options: CreateRoomOptions = {}): RoomState => {
    const live = rooms.get(name);
    if (live) return live;
    const created = options.createdAt ?? new Date();
    const info = new Room({
      sid: options.sid ?? livekitId("RM_"),
      name,
      emptyTimeout: 300,
      departureTimeout: 20,
      maxParticipants: 0,
      creationTime: BigInt(Math.floor(created.getTime() / 1000)),
      creationTimeMs: BigInt(created.getTime()),
      turnPassword: randomSecret(),
      enabledCodecs: DEFAULT_ENABLED_CODECS.map((mime) => new Codec({ mime })),
      metadata: options.metadata ?? "",
    });
    // createAgentDispatchesFromRoomAgent: "Backward compatibility: by default, start any agent in
    // the empty JobName".
    const agents = options.agents?.length ? options.agents : [{ agentName: "" }];
    const state: RoomState = { info, dispatches: agents.map((agent) => newDispatch(name, agent)), participants: new Map() };
    rooms.set(name, state);
    return state;
  };

  /**
   * rtc.Room.RemoveParticipant: the participant is gone from the room (numParticipants down) and
   * recorded as its participant_left would carry it: state DISCONNECTED, the DisconnectReason that
   * pkg/rtc/types/interfaces.go ToDisconnectReason gives the close reason.
   */
  const removeParticipant = (room: RoomState, identity: string, cause: RemovedParticipant["cause"], disconnectReason: DisconnectReason) => {
    const participant = room.participants.get(identity);
    if (!participant) return undefined;
    room.participants.delete(identity);
    room.info.numParticipants = room.participants.size;
    const left = participant.clone();
    left.state = ParticipantInfo_State.DISCONNECTED;
    left.disconnectReason = disconnectReason;
    removed.push({ room: room.info.name, roomSid: room.info.sid, identity, cause, disconnectReason, participant: left, at: new Date() });
    return left;
  };

  /** livekit/livekit pkg/config/config.go LimitConfig defaults, CheckMetadataSize / CheckAttributesSize. */
  const MAX_METADATA_BYTES = 512 * 1024;
  const MAX_ATTRIBUTES_BYTES = 64 * 1024;
  const byteLength = (text: string) => Buffer.byteLength(text, "utf8");

  const routes: Record<FakeLiveKitMethod, Route> = {
    // ---- AgentDispatchService (livekit/livekit pkg/service/agent_dispatch_service.go) ----
    CreateDispatch: {
      service: "AgentDispatchService",
      request: CreateAgentDispatchRequest,
      room: (req: CreateAgentDispatchRequest) => req.room,
      async handle(req: CreateAgentDispatchRequest) {
        if (byteLength(req.metadata) > MAX_METADATA_BYTES) throw invalid("metadata size exceeds limits");
        const attributeBytes = Object.entries(req.attributes).reduce((n, [k, v]) => n + byteLength(k) + byteLength(v), 0);
        if (attributeBytes > MAX_ATTRIBUTES_BYTES) throw invalid("attribute size exceeds limits");
        // `if ag.roomAllocator.AutoCreateEnabled(ctx) { ... ag.router.CreateRoom(ctx,
        // &livekit.CreateRoomRequest{Name: req.Room}) }`: a request without agents, so a room
        // created here also gets the implicit empty-name dispatch, then the one asked for.
        let room = rooms.get(req.room);
        if (!room) {
          if (!autoCreate) throw await noRoom();
          room = getOrCreateRoom(req.room);
        }
        // RoomManager.CreateDispatch -> Room.AddAgentDispatch -> createAgentDispatch.
        const dispatch = newDispatch(req.room, req);
        room.dispatches.push(dispatch);
        return dispatch.clone();
      },
    },
    ListDispatch: {
      service: "AgentDispatchService",
      request: ListAgentDispatchRequest,
      room: (req: ListAgentDispatchRequest) => req.room,
      async handle(req: ListAgentDispatchRequest) {
        const room = rooms.get(req.room);
        if (!room) throw await noRoom();
        // Room.GetAgentDispatches: every dispatch, or the one of dispatch_id (none if unknown). The
        // server ranges over a Go map, whose order is random: so is this list's, so no test can
        // pass on an order the server does not keep.
        const list = room.dispatches.filter((d) => !req.dispatchId || d.id === req.dispatchId);
        return new ListAgentDispatchResponse({ agentDispatches: shuffled(list).map((d) => d.clone()) });
      },
    },
    DeleteDispatch: {
      service: "AgentDispatchService",
      request: DeleteAgentDispatchRequest,
      room: (req: DeleteAgentDispatchRequest) => req.room,
      async handle(req: DeleteAgentDispatchRequest) {
        const room = rooms.get(req.room);
        if (!room) throw await noRoom();
        // Room.DeleteAgentDispatch: psrpc.NewErrorf(psrpc.NotFound, "dispatch ID not found"); the
        // dispatch is answered as it was (no deleted_at set).
        const index = room.dispatches.findIndex((d) => d.id === req.dispatchId);
        if (index < 0) throw new TwirpFailure(404, "not_found", "dispatch ID not found");
        const [removed] = room.dispatches.splice(index, 1);
        return (removed as AgentDispatch).clone();
      },
    },

    // ---- SIP: inbound trunks ----
    ListSIPInboundTrunk: {
      service: "SIP",
      request: ListSIPInboundTrunkRequest,
      handle(req: ListSIPInboundTrunkRequest) {
        const items = listSelection(
          trunks,
          { ids: req.trunkIds, page: req.page, filter: req.numbers },
          (t) => t.sipTrunkId,
          (t) => t.numbers,
        );
        return new ListSIPInboundTrunkResponse({ items: items.map((t) => t.clone()) });
      },
    },
    CreateSIPInboundTrunk: {
      service: "SIP",
      request: CreateSIPInboundTrunkRequest,
      handle(req: CreateSIPInboundTrunkRequest) {
        if (!req.trunk) throw invalid("trunk is required");
        if (req.trunk.sipTrunkId) throw invalid("trunk ID must be empty"); // pkg/service/sip.go CreateSIPInboundTrunk
        const trunk = req.trunk.clone();
        trunk.sipTrunkId = livekitId("ST_");
        trunks.set(trunk.sipTrunkId, trunk);
        return trunk.clone();
      },
    },
    UpdateSIPInboundTrunk: {
      service: "SIP",
      request: UpdateSIPInboundTrunkRequest,
      // livekit/livekit pkg/service/sip.go UpdateSIPInboundTrunk; livekit/protocol livekit/sip.go
      // (*UpdateSIPInboundTrunkRequest).ValidateResult and the actions' ApplyResult.
      handle(req: UpdateSIPInboundTrunkRequest) {
        if (!req.sipTrunkId) throw invalid("trunk id must be set");
        const action = req.action;
        if (action.case === "replace" && action.value.sipTrunkId && action.value.sipTrunkId !== req.sipTrunkId) {
          throw invalid("trunk id in the info must be empty or match the id in the update");
        }
        if (action.case === "update") {
          const error = [action.value.numbers, action.value.allowedAddresses, action.value.allowedNumbers]
            .map(listUpdateError)
            .find((e) => e !== undefined);
          if (error) throw invalid(error);
        }
        if (action.case === undefined) throw invalid("missing or unsupported update action");
        const existing = trunks.get(req.sipTrunkId);
        if (!existing) throw new TwirpFailure(404, "not_found", "requested sip trunk does not exist");
        let next: SIPInboundTrunkInfo;
        if (action.case === "replace") {
          next = action.value.clone();
        } else {
          const u = action.value;
          next = existing.clone();
          next.numbers = applyListUpdate(next.numbers, u.numbers);
          next.allowedAddresses = applyListUpdate(next.allowedAddresses, u.allowedAddresses);
          next.allowedNumbers = applyListUpdate(next.allowedNumbers, u.allowedNumbers);
          if (u.authUsername !== undefined) next.authUsername = u.authUsername;
          if (u.authPassword !== undefined) next.authPassword = u.authPassword;
          if (u.authRealm !== undefined) next.authRealm = u.authRealm;
          if (u.name !== undefined) next.name = u.name;
          if (u.metadata !== undefined) next.metadata = u.metadata;
          if (u.mediaEncryption !== undefined) next.mediaEncryption = u.mediaEncryption;
          if (u.media !== undefined) next.media = u.media.clone();
        }
        next.sipTrunkId = existing.sipTrunkId;
        trunks.set(next.sipTrunkId, next);
        return next.clone();
      },
    },
    DeleteSIPTrunk: {
      service: "SIP",
      request: DeleteSIPTrunkRequest,
      // pkg/service/sip.go DeleteSIPTrunk: the store's HDel does not mind a missing id, and the
      // answer is the legacy SIPTrunkInfo with only the id.
      handle(req: DeleteSIPTrunkRequest) {
        if (!req.sipTrunkId) throw invalid("trunk ID is required");
        trunks.delete(req.sipTrunkId);
        outboundTrunks.delete(req.sipTrunkId);
        return new SIPTrunkInfo({ sipTrunkId: req.sipTrunkId });
      },
    },

    // ---- SIP: dispatch rules ----
    ListSIPDispatchRule: {
      service: "SIP",
      request: ListSIPDispatchRuleRequest,
      handle(req: ListSIPDispatchRuleRequest) {
        const items = listSelection(
          rules,
          { ids: req.dispatchRuleIds, page: req.page, filter: req.trunkIds },
          (r) => r.sipDispatchRuleId,
          (r) => r.trunkIds,
        );
        return new ListSIPDispatchRuleResponse({ items: items.map((r) => r.clone()) });
      },
    },
    CreateSIPDispatchRule: {
      service: "SIP",
      request: CreateSIPDispatchRuleRequest,
      // pkg/service/sip.go CreateSIPDispatchRule; protocol livekit/sip.go DispatchRuleInfo (the
      // legacy top-level fields when dispatch_rule is not set) and Validate.
      handle(req: CreateSIPDispatchRuleRequest) {
        if (req.dispatchRule?.sipDispatchRuleId) throw invalid("rule id must not be set");
        const rule = req.dispatchRule
          ? req.dispatchRule.clone()
          : new SIPDispatchRuleInfo({
              rule: req.rule?.clone(),
              trunkIds: [...req.trunkIds],
              hidePhoneNumber: req.hidePhoneNumber,
              inboundNumbers: [...req.inboundNumbers],
              name: req.name,
              metadata: req.metadata,
              attributes: { ...req.attributes },
              roomPreset: req.roomPreset,
              roomConfig: req.roomConfig?.clone(),
            });
        if (!rule.rule) throw invalid("missing rule");
        rule.sipDispatchRuleId = livekitId("SDR_");
        rules.set(rule.sipDispatchRuleId, rule);
        return rule.clone();
      },
    },
    UpdateSIPDispatchRule: {
      service: "SIP",
      request: UpdateSIPDispatchRuleRequest,
      // livekit/livekit pkg/service/sip.go UpdateSIPDispatchRule: req.Validate() (a 400), load
      // (404 "requested sip dispatch rule does not exist"), then the action's Apply (livekit/protocol
      // livekit/sip.go):
      // - replace: the whole SIPDispatchRuleInfo as sent (proto.CloneOf), keeping the rule's id;
      //   every field not sent is gone. The only way to change hide_phone_number, room_config,
      //   room_preset, inbound_numbers, numbers or krisp_enabled: SIPDispatchRuleUpdate has none of them.
      // - update (SIPDispatchRuleUpdate.Apply): trunk_ids by ListUpdate, rule if set, name and
      //   metadata if set (optional fields: "" clears), attributes merged key by key ("" removes),
      //   media. An Apply error is a plain error: twirp answers 500 "internal".
      handle(req: UpdateSIPDispatchRuleRequest) {
        if (!req.sipDispatchRuleId) throw invalid("rule id must be set");
        const action = req.action;
        switch (action.case) {
          case "replace":
            if (action.value.sipDispatchRuleId && action.value.sipDispatchRuleId !== req.sipDispatchRuleId) {
              throw invalid("rule id in the info must be empty or match the id in the update");
            }
            if (!action.value.rule) throw invalid("missing rule");
            break;
          case "update": {
            const error = listUpdateError(action.value.trunkIds);
            if (error) throw invalid(error);
            break;
          }
          default:
            throw invalid("missing or unsupported update action");
        }
        const existing = rules.get(req.sipDispatchRuleId);
        if (!existing) throw new TwirpFailure(404, "not_found", "requested sip dispatch rule does not exist");
        let next: SIPDispatchRuleInfo;
        if (action.case === "replace") {
          next = action.value.clone();
        } else {
          const u = action.value;
          next = existing.clone();
          next.trunkIds = applyListUpdate(next.trunkIds, u.trunkIds);
          if (u.rule !== undefined) next.rule = u.rule.clone();
          if (u.name !== undefined) next.name = u.name;
          if (u.metadata !== undefined) next.metadata = u.metadata;
          next.attributes = applyMapDiff(next.attributes, u.attributes);
          if (u.mediaEncryption !== undefined) next.mediaEncryption = u.mediaEncryption;
          if (u.media !== undefined) next.media = u.media.clone();
          if (!next.rule) throw internal("missing rule");
        }
        next.sipDispatchRuleId = existing.sipDispatchRuleId;
        rules.set(next.sipDispatchRuleId, next);
        return next.clone();
      },
    },
    DeleteSIPDispatchRule: {
      service: "SIP",
      request: DeleteSIPDispatchRuleRequest,
      // pkg/service/sip.go DeleteSIPDispatchRule: answers the rule it deleted.
      handle(req: DeleteSIPDispatchRuleRequest) {
        if (!req.sipDispatchRuleId) throw invalid("dispatch rule ID is required");
        const existing = rules.get(req.sipDispatchRuleId);
        if (!existing) throw new TwirpFailure(404, "not_found", "requested sip dispatch rule does not exist");
        rules.delete(req.sipDispatchRuleId);
        return existing.clone();
      },
    },

    // ---- RoomService (livekit/livekit pkg/service/roomservice.go) ----
    RemoveParticipant: {
      service: "RoomService",
      request: RoomParticipantIdentity,
      room: (req: RoomParticipantIdentity) => req.room,
      handle(req: RoomParticipantIdentity) {
        // HasParticipant: a room that is not live has no participants either.
        const room = rooms.get(req.room);
        if (!room?.participants.has(req.identity)) throw new TwirpFailure(404, "not_found", "participant does not exist");
        removeParticipant(room, req.identity, "RemoveParticipant", DisconnectReason.PARTICIPANT_REMOVED);
        return new RemoveParticipantResponse();
      },
    },

    // ---- SIP: transfer (livekit/livekit pkg/service/sip.go TransferSIPParticipant) ----
    TransferSIPParticipant: {
      service: "SIP",
      request: TransferSIPParticipantRequest,
      authorize(req: TransferSIPParticipantRequest, grants: ClaimGrants) {
        if (!req.roomName) return invalid("Missing room name");
        if (!req.participantIdentity) return invalid("Missing participant identity");
        if (!grants.sip?.call) return permissionDenied(); // EnsureSIPCallPermission
        if (!hasRoomAdmin(grants, req.roomName)) return permissionDenied(); // EnsureAdminPermission
        return undefined;
      },
      handle(req: TransferSIPParticipantRequest) {
        const validated = validateTransfer(req);
        if ("error" in validated) throw invalid(validated.error);
        const room = rooms.get(req.roomName);
        const participant = room?.participants.get(req.participantIdentity);
        if (!room || !participant) throw new TwirpFailure(404, "not_found", "participant does not exist");
        const sipCallId = participant.attributes["sip.callID"];
        if (sipCallId === undefined) throw invalid("no SIP session associated with participant");
        // No SIP node serves this call id's topic (the fake's only SIP calls are SIP participants).
        if (participant.kind !== ParticipantInfo_Kind.SIP) throw new TwirpFailure(503, "unavailable", "no response from servers");
        // livekit/sip newReferReq: no 200 OK yet (inviteOk nil) -> FailedPrecondition, which twirp answers 412.
        if (!ESTABLISHED_STATUSES.has(participant.attributes["sip.callStatus"] ?? "")) {
          throw new TwirpFailure(412, "failed_precondition", "can't transfer non established call");
        }
        const ringing = req.ringingTimeout;
        transferred.push({
          room: req.roomName,
          identity: req.participantIdentity,
          participantSid: participant.sid,
          sipCallId,
          transferTo: req.transferTo,
          referTo: validated.referTo,
          playDialtone: req.playDialtone,
          headers: { ...req.headers },
          ringingTimeoutMs: ringing ? Number(ringing.seconds) * 1000 + Math.floor(ringing.nanos / 1e6) : 30_000,
          at: new Date(),
        });
        // The bridge hangs up after the REFER succeeded (within referByeTimeout, 1 s): the
        // participant leaves with a leave request of UNKNOWN_REASON, taken as CLIENT_INITIATED.
        removeParticipant(room, req.participantIdentity, "TransferSIPParticipant", DisconnectReason.CLIENT_INITIATED);
        return new TransferSIPParticipantResponse();
      },
    },

    // ---- SIP: dial out (livekit/livekit pkg/service/sip.go CreateSIPParticipant) ----
    CreateSIPParticipant: {
      service: "SIP",
      request: CreateSIPParticipantRequest,
      // EnsureSIPCallPermission only, before any validation; no room grant is needed.
      authorize: (_req: CreateSIPParticipantRequest, grants: ClaimGrants) => (grants.sip?.call ? undefined : permissionDenied()),
      handle(req: CreateSIPParticipantRequest) {
        const error = validateCreateSIPParticipant(req);
        if (error) throw invalid(error);
        let trunk: SIPOutboundTrunkInfo | undefined;
        if (req.sipTrunkId) {
          trunk = outboundTrunks.get(req.sipTrunkId);
          if (!trunk) throw new TwirpFailure(404, "not_found", "requested sip trunk does not exist");
        }
        const hostname = trunk ? trunk.address : (req.trunk?.hostname ?? "");
        let fromNumber = req.sipNumber;
        if (!fromNumber) {
          if (!trunk || trunk.numbers.length === 0) throw new TwirpFailure(412, "failed_precondition", "no numbers on outbound trunk");
          fromNumber = trunk.numbers[Math.floor(Math.random() * trunk.numbers.length)]!;
        }
        if (hostname.endsWith("twilio.com") && !fromNumber.startsWith("+")) fromNumber = `+${fromNumber}`;
        // livekit/sip buildOutboundHeaders -> buildRequestURI -> buildLegacyURI.
        if (!req.sipRequestUri && hostname === "") throw invalid("invalid request URI: address must be set");

        const sipCallId = livekitId("SCL_");
        const identity = req.participantIdentity || `sip_${req.sipCallTo}`;
        const attributes: Record<string, string> = { ...req.participantAttributes, "sip.callID": sipCallId };
        // An empty trunk id would be an empty attribute, which LiveKit does not keep.
        if (req.sipTrunkId) attributes["sip.trunkID"] = req.sipTrunkId;
        if (!req.hidePhoneNumber) {
          attributes["sip.phoneNumber"] = req.sipCallTo;
          if (hostname) attributes["sip.hostname"] = hostname;
          attributes["sip.trunkPhoneNumber"] = fromNumber;
        }
        attributes["sip.callStatus"] = req.waitUntilAnswered ? "active" : "dialing";
        // The SIP bridge's join; a missing room is created by it (whatever room.auto_create says).
        const participant = fake.addParticipant(req.roomName, {
          identity,
          name: req.participantName,
          metadata: req.participantMetadata,
          kind: ParticipantInfo_Kind.SIP,
          attributes,
        });
        const ringing = req.ringingTimeout;
        dialed.push({
          room: req.roomName,
          trunkId: req.sipTrunkId,
          number: req.sipCallTo,
          fromNumber,
          identity,
          name: req.participantName,
          attributes: { ...attributes },
          waitUntilAnswered: req.waitUntilAnswered,
          participantSid: participant.sid,
          sipCallId,
          dtmf: req.dtmf,
          playDialtone: req.playDialtone || req.playRingtone,
          headers: { ...req.headers },
          ringingTimeoutMs: ringing ? Number(ringing.seconds) * 1000 + Math.floor(ringing.nanos / 1e6) : undefined,
          at: new Date(),
        });
        return new SIPParticipantInfo({ participantId: participant.sid, participantIdentity: identity, roomName: req.roomName, sipCallId });
      },
    },
  };

  async function handle(httpReq: Request): Promise<Response> {
    const at = new Date();
    const path = new URL(httpReq.url).pathname;
    const match = /^\/twirp\/livekit\.([A-Za-z]+)\/([A-Za-z]+)$/.exec(path);
    const authorization = httpReq.headers.get("authorization");
    const record: RecordedCall = {
      service: match?.[1] ?? "",
      method: match?.[2] ?? path,
      request: undefined,
      at,
      status: 0,
      authorization,
    };
    recorded.push(record);
    const fail = (status: number, code: string, msg: string) => {
      record.status = status;
      record.errorCode = code;
      return twirpError(status, code, msg);
    };

    if (httpReq.method !== "POST") return fail(404, "bad_route", `unsupported method ${httpReq.method} ${path}`);
    const route = match ? routes[match[2] as FakeLiveKitMethod] : undefined;
    if (!match || !route || route.service !== match[1]) return fail(404, "bad_route", `no handler for path "${path}"`);

    // Decode the request as JSON (what the SDK sends) or protobuf binary.
    const contentType = (httpReq.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    const binary = contentType === "application/protobuf";
    if (!binary && contentType !== "application/json") {
      return fail(404, "bad_route", `unexpected Content-Type: "${httpReq.headers.get("content-type") ?? ""}"`);
    }
    try {
      if (binary) {
        record.request = route.request.fromBinary(new Uint8Array(await httpReq.arrayBuffer()));
      } else {
        const text = await httpReq.text();
        // Twirp servers discard unknown fields.
        record.request = route.request.fromJson(JSON.parse(text || "{}") as never, { ignoreUnknownFields: true });
      }
    } catch (err) {
      return fail(400, "malformed", `failed to parse request json: ${(err as Error).message}`);
    }

    // Injected failures come before auth: they stand for a proxy or an overloaded server.
    const queue = failures.get(record.method);
    const injected = queue?.shift();
    if (queue && queue.length === 0) failures.delete(record.method);
    if (injected) return fail(injected.status, injected.code, injected.msg);

    // Authentication, as livekit/livekit's APIKeyAuthMiddleware + Ensure*Permission do: a request
    // without a token goes on with no grants, and the method's permission check refuses it.
    let grants: ClaimGrants = {};
    if (authorization) {
      if (!authorization.startsWith("Bearer ")) {
        return fail(401, "unauthenticated", "invalid authorization header. Must start with Bearer ");
      }
      try {
        grants = await verifier.verify(authorization.slice("Bearer ".length));
      } catch (err) {
        return fail(401, "unauthenticated", `invalid token, error: ${(err as Error).message}`);
      }
      record.grants = grants;
    }
    const refused = route.authorize
      ? route.authorize(record.request, grants)
      : route.room
        ? hasRoomAdmin(grants, route.room(record.request))
          ? undefined
          : permissionDenied()
        : grants.sip?.admin
          ? undefined
          : permissionDenied();
    if (refused) return fail(refused.status, refused.code, refused.message);

    let result: Message;
    try {
      result = await route.handle(record.request, grants);
    } catch (err) {
      if (err instanceof TwirpFailure) return fail(err.status, err.code, err.message);
      return fail(500, "internal", (err as Error).message);
    }
    record.status = 200;
    if (binary) {
      return new Response(result.toBinary(), { headers: { "content-type": "application/protobuf" } });
    }
    return new Response(result.toJsonString(), { headers: { "content-type": "application/json" } });
  }

  const handleWithDelay = async (httpReq: Request) => {
    const method = /\/([A-Za-z]+)$/.exec(new URL(httpReq.url).pathname)?.[1] ?? "";
    const delay = delays.get(method)?.shift();
    const response = await handle(httpReq);
    if (delay) await Bun.sleep(delay);
    return response;
  };
  const listen = (port: number) => Bun.serve({ hostname: "127.0.0.1", port, fetch: handleWithDelay, idleTimeout: 60 });
  let server: ReturnType<typeof listen> | undefined = listen(options.port ?? 0);
  const port = server.port as number;
  const url = `http://127.0.0.1:${port}`;

  const fake: FakeLiveKit = {
    url,
    port,
    apiKey,
    apiSecret,
    get down() {
      return server === undefined;
    },
    calls(method) {
      return method === undefined ? [...recorded] : recorded.filter((c) => c.method === method);
    },
    delayNext(method, ms, n = 1) {
      const queue = delays.get(method) ?? [];
      for (let i = 0; i < n; i++) queue.push(ms);
      delays.set(method, queue);
    },
    failNext(method, n = 1, status = 503) {
      const spec: FailureSpec = typeof status === "number" ? { status } : status;
      const code = spec.code ?? CODE_BY_STATUS[spec.status ?? 503] ?? "unknown";
      const entry = {
        status: spec.status ?? 503,
        code,
        msg: spec.msg ?? `injected failure (${code})`,
      };
      const queue = failures.get(method) ?? [];
      for (let i = 0; i < n; i++) queue.push(entry);
      failures.set(method, queue);
    },
    async setDown(down) {
      if (down) {
        if (!server) return;
        const s = server;
        server = undefined;
        await s.stop(true);
      } else {
        if (server) return;
        server = listen(port);
      }
    },
    dispatches(room) {
      const all = room === undefined ? [...rooms.values()].flatMap((r) => r.dispatches) : (rooms.get(room)?.dispatches ?? []);
      return all.map((d) => d.clone());
    },
    agentDispatches(room) {
      return fake.dispatches(room).filter((d) => d.agentName !== "");
    },
    createRoom(name, options) {
      return getOrCreateRoom(name, options).info.clone();
    },
    rooms() {
      return [...rooms.values()].map((r) => r.info.clone());
    },
    room(name) {
      return rooms.get(name)?.info.clone();
    },
    deleteRoom(name) {
      return rooms.delete(name);
    },
    addParticipant(roomName, init) {
      const room = getOrCreateRoom(roomName);
      const joined = new Date();
      const participant = new ParticipantInfo({
        sid: livekitId("PA_"),
        state: ParticipantInfo_State.ACTIVE,
        joinedAt: BigInt(Math.floor(joined.getTime() / 1000)),
        joinedAtMs: BigInt(joined.getTime()),
        ...(Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined)) as ParticipantInit),
      });
      const existing = room.participants.get(participant.identity);
      if (existing && existing.sid !== participant.sid) {
        removeParticipant(room, participant.identity, "DuplicateIdentity", DisconnectReason.DUPLICATE_IDENTITY);
      }
      // A Map keeps the first insertion's place: an update in place keeps the join order.
      room.participants.set(participant.identity, participant);
      room.info.numParticipants = room.participants.size;
      return participant.clone();
    },
    participants(roomName) {
      return [...(rooms.get(roomName)?.participants.values() ?? [])].map((p) => p.clone());
    },
    removedParticipants(room) {
      return removed.filter((r) => room === undefined || r.room === room).map((r) => ({ ...r, participant: r.participant.clone() }));
    },
    transfers(room) {
      return transferred.filter((t) => room === undefined || t.room === room).map((t) => ({ ...t, headers: { ...t.headers } }));
    },
    answerCall(roomName, identity) {
      const participant = rooms.get(roomName)?.participants.get(identity);
      if (!participant) throw new Error(`fake LiveKit: no participant ${identity} in room ${roomName}`);
      participant.attributes = { ...participant.attributes, "sip.callStatus": "active" };
      return participant.clone();
    },
    outboundCalls(room) {
      return dialed
        .filter((c) => room === undefined || c.room === room)
        .map((c) => ({ ...c, attributes: { ...c.attributes }, headers: { ...c.headers } }));
    },
    createOutboundTrunk(init) {
      const trunk = new SIPOutboundTrunkInfo(init);
      if (!trunk.sipTrunkId) trunk.sipTrunkId = livekitId("ST_");
      outboundTrunks.set(trunk.sipTrunkId, trunk);
      return trunk.clone();
    },
    outboundTrunks() {
      return [...outboundTrunks.values()].map((t) => t.clone());
    },
    trunks() {
      return [...trunks.values()].map((t) => t.clone());
    },
    rules() {
      return [...rules.values()].map((r) => r.clone());
    },
    reset() {
      delays.clear();
      rooms.clear();
      trunks.clear();
      rules.clear();
      removed.length = 0;
      transferred.length = 0;
      outboundTrunks.clear();
      dialed.length = 0;
      recorded.length = 0;
      failures.clear();
    },
    async close() {
      const s = server;
      server = undefined;
      if (s) await s.stop(true);
    },
  };
  return fake;
}
