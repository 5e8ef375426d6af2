// What Switchboard does for each kind of event about an inbound SIP call: one function per
// action. Each is idempotent and moves a call's status only forward (calls/recorder.ts's
// statements see to that), so a repeated or overtaken delivery does no harm. Events find their
// call by the room's sid, never by its name alone: LiveKit reuses room names, not sids.
import { DisconnectReason, ParticipantInfo_Kind, type WebhookEvent } from "@livekit/protocol";
import type { SQL } from "drizzle-orm";
import {
  applyCallChange,
  type CallChange,
  type CallEnd,
  type ChangedCall,
  callAnsweredChange,
  callEndedChange,
  callRecorded,
  type RoomRef,
  recordCallAnswered,
  recordCallEnded,
} from "../calls/lifecycle";
import { type CallRouting, type DispatchedRouting, routeInboundCall } from "../calls/service";
import { UnavailableError } from "../errors";
import { isLastDelivery } from "./delivery";
import { dispatchAgent } from "./dispatch";
import { agentJoinedAtIn, type EventClaim, HOLD_MS } from "./event-lease";
import { handOff, isGone, transferDestinationLeft, transferIdentity, transferredCallOf } from "./handoff";
import { joinedAt } from "./event-time";
import { eventKey, participantIdentity, sipCall } from "./event-values";
import type { EventOutcome, LiveKitEventDeps } from "./service";

export type Action = "caller_joined" | "agent_joined" | "caller_left" | "transfer_left" | "room_finished";

/** One delivery of an event: what it asks for, its room as the database keys it, when it happened, what its claim found. */
export interface Delivery {
  event: WebhookEvent;
  action: Action;
  room: RoomRef;
  at: Date;
  claim: EventClaim;
}

/** The agent a delivery put in the room, for the journal to record once the call log can be written. */
export type JournaledDispatch = { id: string; agentName: string };

/**
 * The event was acted on as far as it could be, but the database could not record it: with a
 * journal it is kept there and answered 200; without one LiveKit is asked to deliver it again.
 */
export class NotRecordedError extends Error {
  readonly code = "CONNECTION_DOWN";
  constructor(
    message: string,
    cause?: unknown,
    readonly dispatched?: JournaledDispatch,
  ) {
    super(message, { cause });
    this.name = "NotRecordedError";
  }
}

/** disconnect_reason of a call whose agent could not be dispatched in all of LiveKit's deliveries. */
const DISPATCH_FAILED_REASON = "AGENT_DISPATCH_FAILED";

/** Disconnect reasons that mean the call never connected, as opposed to the caller hanging up. */
const FAILED_REASONS = new Set([
  DisconnectReason.USER_UNAVAILABLE,
  DisconnectReason.USER_REJECTED,
  DisconnectReason.SIP_TRUNK_FAILURE,
  DisconnectReason.JOIN_FAILURE,
  DisconnectReason.CONNECTION_TIMEOUT,
  DisconnectReason.MEDIA_FAILURE,
  DisconnectReason.SERVER_SHUTDOWN,
]);

/** The action an event asks for, or null when it is not about an inbound SIP call. */
export function actionFor(event: WebhookEvent): Action | null {
  const participant = event.participant;
  // sip.ruleID is set only on callers who came in through a dispatch rule: outbound SIP
  // participants (calls an agent places) are not inbound calls and are left alone.
  const inboundCaller = participant?.kind === ParticipantInfo_Kind.SIP && Boolean(participant.attributes["sip.ruleID"]);
  switch (event.event) {
    case "participant_joined":
      if (inboundCaller) return "caller_joined";
      if (participant?.kind === ParticipantInfo_Kind.AGENT) return "agent_joined";
      return null;
    case "participant_left":
    case "participant_connection_aborted":
      if (inboundCaller) return "caller_left";
      // The destination a transfer dialed into the room (handoff.ts): without it the caller is alone.
      if (participant?.kind === ParticipantInfo_Kind.SIP && transferredCallOf(participant.identity)) return "transfer_left";
      return null;
    case "room_finished":
      return event.room?.name || event.room?.sid ? "room_finished" : null;
    default:
      return null;
  }
}

/** When what the event reports happened: an agent's join is timed by the agent's joinedAt. */
export function occurredAt(event: WebhookEvent, action: Action, at: Date): Date {
  return action === "agent_joined" ? (joinedAt(event.participant!, at) ?? at) : at;
}

/** A delivery before its claim: what a one-change action is built from. */
export type UnclaimedDelivery = Omit<Delivery, "claim">;

/**
 * An action that is one change to the record (and nothing the event's redelivery would have to
 * redo): service.ts takes the event, makes the change and marks the event done in one statement.
 */
export interface OneChangeAction {
  change: (delivery: UnclaimedDelivery, onlyIf?: SQL) => CallChange;
  /** Whether the change can act on the event; when not, the event is held and handled the usual way (actOn). */
  doneIf?: (delivery: UnclaimedDelivery) => SQL;
  /** What was done, by the calls the change touched (its rows as JSON); best-effort work after it. */
  finish: (deps: LiveKitEventDeps, delivery: UnclaimedDelivery, changed: ChangedCall[]) => Promise<string>;
}

export const ONE_CHANGE_ACTIONS: Partial<Record<Action, OneChangeAction>> = {
  // An agent is in the room: its ringing call is answered. With none, the join stays in
  // webhook_events for the call's record to find (event-lease.ts).
  agent_joined: {
    change: ({ event, room, at }, onlyIf) =>
      callAnsweredChange({ room, answeredAt: joinedAt(event.participant!, at) ?? at, agentIdentity: participantIdentity(event.participant) }, onlyIf),
    finish: async (_deps, _delivery, changed) => (changed.length ? "call answered" : "agent joined (no ringing call)"),
  },
  // The caller hung up: the call ends, answered if an agent's join came before its record. A leave
  // that is the first news of its call is handled the usual way (callerLeft): recorded, then ended.
  caller_left: {
    change: (delivery, onlyIf) => callEndedChange(callerEnd(delivery, agentJoinedAtIn(delivery.room.sid)), onlyIf),
    doneIf: ({ event, room }) => callRecorded(sipCall(event.participant!, room).callId),
    finish: (deps, delivery, ended) => callerLeftFinish(deps, delivery, ended),
  },
  // The room is gone: every call in it that has not ended ends, unanswered ones as abandoned.
  room_finished: {
    change: ({ room, at }, onlyIf) => callEndedChange({ room, endedAt: at, disconnectReason: "ROOM_FINISHED", unansweredStatus: "abandoned" }, onlyIf),
    finish: async (_deps, _delivery, changed) => `room finished, ${changed.length} call(s) ended`,
  },
};

/** A one-change action on its own (an event without an id to claim). */
const applyOneChange =
  (action: OneChangeAction) =>
  async (deps: LiveKitEventDeps, delivery: Delivery): Promise<EventOutcome> => {
    const changed = await applyCallChange(deps.database, action.change(delivery));
    return { result: "handled", action: await action.finish(deps, delivery, changed) };
  };

const HANDLERS: Record<Action, (deps: LiveKitEventDeps, delivery: Delivery) => Promise<EventOutcome>> = {
  caller_joined: callerJoined,
  agent_joined: applyOneChange(ONE_CHANGE_ACTIONS.agent_joined!),
  caller_left: callerLeft,
  transfer_left: transferLeft,
  room_finished: applyOneChange(ONE_CHANGE_ACTIONS.room_finished!),
};

export const actOn = (deps: LiveKitEventDeps, delivery: Delivery) => HANDLERS[delivery.action](deps, delivery);

/** Why the routed call has no complete record, or undefined when it has one. */
export const callRecordFailure = (routing: CallRouting) =>
  routing.record === "recorded" ? undefined : new NotRecordedError(`call record ${routing.record}`, routing.recordError);

/**
 * The caller is in the room, ringing: record the call, its join and this delivery's claim on the
 * dispatch in one statement, send its agent, and record the dispatch with the event done in another.
 */
async function callerJoined(deps: LiveKitEventDeps, delivery: Delivery): Promise<EventOutcome> {
  const { event, room, at, claim } = delivery;
  const participant = event.participant!;
  const joined = { at: joinedAt(participant, at) ?? at, claimDispatchForMs: deps.dispatch ? HOLD_MS : undefined };
  const routing = await routeInboundCall(deps, { ...sipCall(participant, room), joined });
  // Why the call has no complete record, if so: the delivery fails for it, after the caller got an agent.
  const recordFailure = callRecordFailure(routing) ?? (await applyEarlierAnswer(deps, delivery));
  if (claim.roomFinished) {
    // room_finished overtook this join: the call was over before it rang; no agent to send.
    if (recordFailure) throw recordFailure;
    await recordCallEnded(deps.database, { callId: routing.callId, endedAt: at, disconnectReason: "ROOM_FINISHED", unansweredStatus: "abandoned" });
    return { result: "handled", action: "caller joined a finished room; call ended" };
  }
  let outcome: EventOutcome;
  if (!deps.dispatch) outcome = { result: "handled", action: "caller_joined (dispatch off)" };
  else if (routing.outcome === "dispatched") outcome = await sendAgent(deps, delivery, routing, recordFailure ? undefined : (eventKey(event) ?? undefined));
  else {
    // Rejected or transferred by a policy: no agent; the caller is removed or passed on.
    const handoffDeps = { handoff: deps.handoff!, database: deps.database, logger: deps.logger, budgetMs: deps.dispatch.budgetMs };
    outcome = { result: "handled", action: await handOff(handoffDeps, routing, event.room?.name ?? "", participant.identity) };
  }
  if (recordFailure) throw recordFailure;
  return outcome;
}

/**
 * An agent join that came before this call had a record (the database was down when the caller
 * joined) still counts. Returns the error that kept it from the record, if one did.
 */
async function applyEarlierAnswer(deps: LiveKitEventDeps, { room, claim }: Delivery): Promise<unknown> {
  if (!claim.agentJoinedAt) return undefined;
  try {
    await recordCallAnswered(deps.database, { room, answeredAt: claim.agentJoinedAt });
    return undefined;
  } catch (error) {
    return error;
  }
}

/**
 * Sends the call's agent into the room, once. A dispatch that fails is answered 503 while
 * LiveKit has deliveries left; on its last one (or when LiveKit refuses for good) the call ends
 * failed, unless a CreateDispatch whose answer never came may still start the agent. `eventId`
 * is marked processed with the dispatch's record.
 */
async function sendAgent(deps: LiveKitEventDeps, { event }: Delivery, routing: DispatchedRouting, eventId?: string): Promise<EventOutcome> {
  const dispatchDeps = { ...deps.dispatch!, database: deps.database, logger: deps.logger, systemDefaultAgent: deps.settings.systemDefaultAgent };
  const dispatch = await dispatchAgent(dispatchDeps, routing, event.room?.name ?? "", eventId);
  if (dispatch.kind === "skipped" && dispatch.reason === "in_progress") {
    throw new UnavailableError("another delivery is dispatching this call's agent; retry later");
  }
  if (dispatch.kind !== "failed") {
    if (!dispatch.recorded) {
      const dispatched = dispatch.kind === "dispatched" ? { id: dispatch.dispatchId, agentName: dispatch.agentName } : undefined;
      throw new NotRecordedError("call handled but not fully recorded: database unavailable", undefined, dispatched);
    }
    return { result: "handled", action: "caller_joined", dispatch };
  }
  const lastTry = !dispatch.retryable || isLastDelivery(event.createdAt, deps.clock(), dispatch.deliveries);
  if (!lastTry || !dispatch.recorded) throw new UnavailableError(`agent dispatch failed: ${dispatch.error}`);
  if (dispatch.createMayHaveLanded) {
    return { result: "handled", action: "agent dispatch unconfirmed after LiveKit's last delivery; the call rings on", dispatch };
  }
  await recordCallEnded(deps.database, {
    callId: routing.callId,
    endedAt: deps.clock(),
    disconnectReason: DISPATCH_FAILED_REASON,
    unansweredStatus: "failed",
  });
  return { result: "handled", action: "agent dispatch failed for good; call marked failed", dispatch };
}

/** How a caller's leave ends the call: `answeredAt`, an agent's join the record may have missed. */
function callerEnd({ event, room, at }: UnclaimedDelivery, answeredAt: CallEnd["answeredAt"]): CallEnd {
  const participant = event.participant!;
  const reason = participant.disconnectReason;
  return {
    callId: sipCall(participant, room).callId,
    endedAt: at,
    joinedAt: joinedAt(participant, at),
    answeredAt,
    disconnectReason: DisconnectReason[reason] ?? String(reason),
    unansweredStatus: FAILED_REASONS.has(reason) ? "failed" : "abandoned",
  };
}

/**
 * The caller hung up (or never connected) and the call has no record yet (the leave overtook the
 * join, or the join came while the database was down): the call is recorded first, then ended.
 * An agent join that came before the call had a record still counts.
 */
async function callerLeft(deps: LiveKitEventDeps, delivery: Delivery): Promise<EventOutcome> {
  const end = callerEnd(delivery, agentJoinedAtIn(delivery.room.sid));
  let ended = await recordCallEnded(deps.database, end);
  if (ended.length === 0) {
    // A call this leave is the first news of was admitted when it rang: no cap applies now.
    const call = sipCall(delivery.event.participant!, delivery.room);
    const recordFailure = callRecordFailure(await routeInboundCall({ ...deps, ignoreCaps: true }, call));
    if (recordFailure) throw recordFailure;
    ended = await recordCallEnded(deps.database, end);
  }
  return { result: "handled", action: await callerLeftFinish(deps, delivery, ended) };
}

/** After a caller's leave ended its call: a transferred call's destination is hung up too. */
async function callerLeftFinish(deps: LiveKitEventDeps, { event, room }: UnclaimedDelivery, ended: ChangedCall[]): Promise<string> {
  if (ended.some((row) => row.outcome === "transferred")) await hangUpTransfer(deps, room, sipCall(event.participant!, room).callId);
  return ended.length ? `call ended (${ended[0]!.status})` : "call already ended";
}

/** The destination of a transfer left: the caller is removed (and the call failed, if it never answered). */
async function transferLeft(deps: LiveKitEventDeps, { event, room }: Delivery): Promise<EventOutcome> {
  const participant = event.participant!;
  if (!deps.handoff || !deps.dispatch) return { result: "handled", action: "transfer destination left (dispatch off)" };
  const reason = participant.disconnectReason;
  const destination = { callId: transferredCallOf(participant.identity)!, answered: !FAILED_REASONS.has(reason), reason: DisconnectReason[reason] ?? String(reason) };
  const handoffDeps = { handoff: deps.handoff, database: deps.database, logger: deps.logger, budgetMs: deps.dispatch.budgetMs };
  return { result: "handled", action: await transferDestinationLeft(handoffDeps, room.name, destination) };
}

/** The caller of a transferred call hung up: the destination dialed into the room is not left talking to no one. */
async function hangUpTransfer(deps: LiveKitEventDeps, room: RoomRef, callId: string) {
  if (!deps.handoff?.dialIntoRoom) return;
  await deps.handoff.removeParticipant(room.name, transferIdentity(callId)).catch((error) => {
    if (!isGone(error)) deps.logger.warn({ call_id: callId, err: error }, "transfer destination not removed");
  });
}
