// What Switchboard does with each LiveKit webhook event. Deliveries repeat and rooms can
// surprise (left before joined, finished before joined): every action here is idempotent,
// call status only moves forward, and an event id is acted on once. Events find their call by
// the room's sid, never by its name alone: LiveKit reuses room names, not sids.
import { DisconnectReason, ParticipantInfo_Kind, type ParticipantInfo, WebhookEvent } from "@livekit/protocol";
import { sql } from "drizzle-orm";
import {
  type CallEnd,
  type CallRouting,
  type RoomRef,
  type RoutingDeps,
  recordCallAnswered,
  recordCallEnded,
  routeInboundCall,
} from "../calls/service";
import { constraintViolation, isDatabaseUnavailable } from "../db/errors";
import { AppError, TimeoutError, UnavailableError, UnprocessableError, withDeadline } from "../errors";
import type { Logger } from "../logger";
import { type DispatchDeps, type DispatchOutcome, dispatchAgent, HOLD, HOLD_MS, recordLateDispatch } from "./dispatch";
import { isLastDelivery } from "./delivery";
import { eventKey, eventRoom, participantIdentity, sipCall } from "./event-values";

export interface LiveKitEventDeps extends RoutingDeps {
  /** Absent when dispatch is switched off (LIVEKIT_DISPATCH=false) or LiveKit is not configured. */
  dispatch?: Omit<DispatchDeps, "database" | "logger" | "systemDefaultAgent">;
  /**
   * The longest one delivery may take before it is answered. LiveKit sends a room's events one at
   * a time and drops those that waited too long (delivery.ts): a delivery that held the queue
   * would get the room's next events (the caller's leave, the agent's join) dropped.
   */
  deliveryBudgetMs: number;
  clock: () => Date;
}

export type EventOutcome =
  | { result: "ignored"; reason: string }
  | { result: "duplicate" }
  | { result: "handled"; action: string; dispatch?: DispatchOutcome }
  /** Acted on (the caller has an agent) but written to the journal: the database was unavailable. */
  | { result: "journaled"; action: string };

/** The journal entry kind of a LiveKit event the database could not take. */
export const LIVEKIT_EVENT_ENTRY = "livekit_event";

/**
 * The event was acted on as far as it could be, but the database could not record it: with a
 * journal it is kept there and answered 200; without one LiveKit is asked to deliver it again.
 */
class NotRecordedError extends Error {
  readonly code = "CONNECTION_DOWN";
  constructor(
    message: string,
    cause?: unknown,
    /** The agent this delivery put in the room, for the journal to record once the call log can be written. */
    readonly dispatched?: JournaledDispatch,
  ) {
    super(message, { cause });
    this.name = "NotRecordedError";
  }
}

type JournaledDispatch = { id: string; agentName: string };

/** What the journal keeps of a LiveKit event: the event as LiveKit sent it, and the agent it dispatched. */
type JournaledEvent = { event: unknown; dispatched?: JournaledDispatch };

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

/** disconnect_reason of a call whose agent could not be dispatched in all of LiveKit's deliveries. */
export const DISPATCH_FAILED_REASON = "AGENT_DISPATCH_FAILED";

export async function handleLiveKitEvent(deps: LiveKitEventDeps, event: WebhookEvent): Promise<EventOutcome> {
  const action = actionFor(event);
  if (!action) return { result: "ignored", reason: `${event.event || "unnamed"} is not about an inbound SIP call` };
  const room = eventRoom(event);
  const log = deps.logger.child({ event: event.event, event_id: eventKey(event), room: room.name, room_sid: room.sid });
  try {
    // Work past the budget goes on (every step is bounded on its own) and its redelivery finds
    // the event held or done; what matters is that the room's queue moves on.
    return await withDeadline(handleAction(deps, event, room, action, log), deps.deliveryBudgetMs, "webhook delivery");
  } catch (error) {
    if (error instanceof AppError) throw error;
    if (deps.journal && !isBudgetTimeout(error) && isDatabaseUnavailable(error)) {
      try {
        const entry: JournaledEvent = { event: event.toJson(), dispatched: (error as Partial<NotRecordedError>).dispatched };
        await deps.journal.append(LIVEKIT_EVENT_ENTRY, entry);
        log.warn({ err: error, action }, "event journaled: database unavailable");
        return { result: "journaled", action };
      } catch (journalError) {
        log.error({ err: journalError }, "event could not be journaled either");
      }
    }
    throw deliveryError(error, log);
  }
}

const dispatchRecorded = (outcome: EventOutcome) =>
  outcome.result === "handled" && outcome.dispatch?.kind === "dispatched" && outcome.dispatch.bookkept;

const isBudgetTimeout = (error: unknown): error is TimeoutError =>
  error instanceof TimeoutError && error.what === "webhook delivery";

/**
 * Writes a journaled event to the database as if it were delivered at `at`, without dispatching
 * (its agent was sent when it came in). A retryable failure (503) leaves it in the journal.
 */
export async function replayLiveKitEvent(deps: LiveKitEventDeps, data: unknown, at: Date): Promise<void> {
  const { event: json, dispatched } = data as JournaledEvent;
  let event: WebhookEvent;
  try {
    // Fields a newer protocol added are no reason to lose the event.
    event = WebhookEvent.fromJson(json as never, { ignoreUnknownFields: true });
  } catch (error) {
    throw new UnprocessableError(`journaled event: not a webhook event (${(error as Error).message})`, "event");
  }
  const replaying = { ...deps, dispatch: undefined, journal: undefined, clock: () => at, deliveryBudgetMs: 60_000 };
  await handleLiveKitEvent(replaying, event);
  if (dispatched && event.participant) {
    // The agent sent when the join came in belongs on the call log now that there is one.
    const routing = await routeInboundCall(replaying, sipCall(event.participant, eventRoom(event)));
    if (routing.record !== "recorded") throw new NotRecordedError(`call record ${routing.record}`, routing.recordError);
    await recordLateDispatch(deps.database, routing, dispatched, deps.settings.systemDefaultAgent);
  }
}

/** One delivery of an event: its room as the database keys it, when it happened, what its claim found. */
interface Delivery {
  event: WebhookEvent;
  room: RoomRef;
  at: Date;
  claim: EventClaim;
}

async function handleAction(
  deps: LiveKitEventDeps,
  event: WebhookEvent,
  room: RoomRef,
  action: Action,
  log: Logger,
): Promise<EventOutcome> {
  const at = eventTime(event, deps.clock());
  const occurredAt = action === "agent_joined" ? (joinedAt(event.participant!, at) ?? at) : at;
  const id = eventKey(event);
  let claim: EventClaim = { state: "owned", roomFinished: false, agentJoinedAt: null };
  if (id) {
    try {
      claim = await claimEvent(deps, { event, id, room, action, occurredAt });
    } catch (error) {
      // A caller joining still gets an agent with the database down; everything else waits for a retry.
      if (action !== "caller_joined") throw error;
      log.warn({ err: error }, "event claim failed: handling the join without the database");
      claim = { state: "unknown", roomFinished: false, agentJoinedAt: null };
    }
  }
  if (claim.state === "done") {
    log.info("repeated delivery ignored");
    return { result: "duplicate" };
  }
  if (claim.state === "busy") {
    // Another delivery is working on it; if that one fails, this redelivery must still act.
    throw new UnavailableError("this event is being handled by another delivery; retry later");
  }

  try {
    const outcome = await perform(deps, { event, room, at, claim }, action);
    if (claim.state === "unknown") throw new NotRecordedError("event handled without the database");
    // A join whose dispatch was recorded had its event marked processed in the same statement.
    if (id && !dispatchRecorded(outcome)) await markProcessed(deps, id);
    return outcome;
  } catch (error) {
    // Give the event back so LiveKit's redelivery acts on it (or the lease runs out if this fails too).
    if (id && claim.state === "owned") await releaseEvent(deps, id).catch(() => {});
    throw error;
  }
}

/**
 * What a failure means to LiveKit, which retries 5xx and takes any other 4xx as final: 503 only
 * when the database is unavailable or the delivery ran out of its budget (a retry may pass; the
 * work goes on, and the redelivery finds the event held or done); 422 when the database refused
 * a value (no retry can mend that; event values are cleaned first, so this is a bug to look at).
 */
function deliveryError(error: unknown, log: Logger): AppError {
  if (isBudgetTimeout(error)) {
    log.warn({ err: error }, "webhook delivery over its budget: answered 503, its work goes on");
    return new UnavailableError(`${error.message}; retry later`);
  }
  if (isDatabaseUnavailable(error)) {
    log.warn({ err: error }, "event handling failed: database unavailable or too slow");
    return new UnavailableError("database unavailable; retry later");
  }
  log.error({ err: error }, "event handling failed");
  if (constraintViolation(error)) {
    return new UnprocessableError("event: holds a value the database refuses; redelivering cannot help", "event");
  }
  return new AppError(500, "internal", "event handling failed");
}

type Action = "caller_joined" | "agent_joined" | "caller_left" | "room_finished";

function actionFor(event: WebhookEvent): Action | null {
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
      return inboundCaller ? "caller_left" : null;
    case "room_finished":
      return event.room?.name || event.room?.sid ? "room_finished" : null;
    default:
      return null;
  }
}

async function perform(deps: LiveKitEventDeps, delivery: Delivery, action: Action): Promise<EventOutcome> {
  const { event, room, at } = delivery;
  switch (action) {
    case "caller_joined":
      return callerJoined(deps, delivery);
    case "agent_joined": {
      const answered = await recordCallAnswered(deps.database, {
        room,
        answeredAt: joinedAt(event.participant!, at) ?? at,
        agentIdentity: participantIdentity(event.participant),
      });
      // With no ringing call, the join stays in webhook_events for the call's record to find.
      return { result: "handled", action: answered ? "call answered" : "agent joined (no ringing call)" };
    }
    case "caller_left":
      return callerLeft(deps, delivery);
    case "room_finished": {
      const ended = await recordCallEnded(deps.database, {
        room,
        endedAt: at,
        disconnectReason: "ROOM_FINISHED",
        unansweredStatus: "abandoned",
      });
      return { result: "handled", action: `room finished, ${ended.length} call(s) ended` };
    }
  }
}

/** An agent join that came before this call had a record (the database was down when the caller joined) still counts. */
async function applyEarlierAnswer(deps: LiveKitEventDeps, { room, claim }: Delivery) {
  if (claim.agentJoinedAt) await recordCallAnswered(deps.database, { room, answeredAt: claim.agentJoinedAt });
}

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
  let unrecorded: unknown =
    routing.record === "recorded" ? undefined : new NotRecordedError(`call record ${routing.record}`, routing.recordError);
  if (!unrecorded) {
    try {
      await applyEarlierAnswer(deps, delivery);
    } catch (error) {
      unrecorded = error;
    }
  }
  if (claim.roomFinished) {
    // room_finished overtook this join: the call was over before it rang; no agent to send.
    if (unrecorded) throw unrecorded;
    await recordCallEnded(deps.database, { callId: routing.callId, endedAt: at, disconnectReason: "ROOM_FINISHED", unansweredStatus: "abandoned" });
    return { result: "handled", action: "caller joined a finished room; call ended" };
  }
  const outcome: EventOutcome = deps.dispatch
    ? await sendAgent(deps, delivery, routing, unrecorded ? undefined : (eventKey(event) ?? undefined))
    : { result: "handled", action: "caller_joined (dispatch off)" };
  if (unrecorded) throw unrecorded;
  return outcome;
}

/**
 * Sends the call's agent into the room, once. A dispatch that fails is answered 503 while
 * LiveKit has deliveries left; on its last one (or when LiveKit refuses for good) the call ends
 * failed, unless a CreateDispatch whose answer never came may still start the agent. `eventId`
 * is marked processed with the dispatch's record.
 */
async function sendAgent(deps: LiveKitEventDeps, { event }: Delivery, routing: CallRouting, eventId?: string): Promise<EventOutcome> {
  const dispatch = await dispatchAgent(
    { ...deps.dispatch!, database: deps.database, logger: deps.logger, systemDefaultAgent: deps.settings.systemDefaultAgent },
    routing,
    event.room?.name ?? "",
    eventId,
  );
  if (dispatch.kind === "skipped" && dispatch.reason === "in_progress") {
    throw new UnavailableError("another delivery is dispatching this call's agent; retry later");
  }
  if (dispatch.kind !== "failed") {
    if (!dispatch.bookkept) {
      const dispatched = dispatch.kind === "dispatched" ? { id: dispatch.dispatchId, agentName: dispatch.agentName } : undefined;
      throw new NotRecordedError("call handled but not fully recorded: database unavailable", undefined, dispatched);
    }
    return { result: "handled", action: "caller_joined", dispatch };
  }
  const lastTry = !dispatch.retryable || isLastDelivery(event.createdAt, deps.clock(), dispatch.deliveries);
  if (!lastTry || !dispatch.bookkept) throw new UnavailableError(`agent dispatch failed: ${dispatch.error}`);
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

/**
 * The caller hung up (or never connected): the call ends, in one statement when its record is
 * there. A leave that overtook its join still leaves a complete record: the call is recorded
 * first, then ended. An agent join that came before the call had a record still counts.
 */
async function callerLeft(deps: LiveKitEventDeps, delivery: Delivery): Promise<EventOutcome> {
  const { event, room, at, claim } = delivery;
  const participant = event.participant!;
  const call = sipCall(participant, room);
  const reason = participant.disconnectReason;
  const end: CallEnd = {
    callId: call.callId,
    endedAt: at,
    joinedAt: joinedAt(participant, at),
    answeredAt: claim.agentJoinedAt,
    disconnectReason: DisconnectReason[reason] ?? String(reason),
    unansweredStatus: FAILED_REASONS.has(reason) ? "failed" : "abandoned",
  };
  let ended = await recordCallEnded(deps.database, end);
  if (ended.length === 0) {
    const routing = await routeInboundCall(deps, call);
    if (routing.record !== "recorded") throw new NotRecordedError(`call record ${routing.record}`, routing.recordError);
    ended = await recordCallEnded(deps.database, end);
  }
  return { result: "handled", action: ended.length ? `call ended (${ended[0]!.status})` : "call already ended" };
}

function eventTime(event: WebhookEvent, now: Date): Date {
  const created = validDate(Number(event.createdAt) * 1000, now);
  if (!created) return now;
  // createdAt has whole seconds only; a delivery received within that second is timed to the millisecond.
  const lag = now.getTime() - created.getTime();
  return lag >= 0 && lag < 1000 ? now : created;
}

/** When the participant joined: close to the event that reports it (no call lasts a week). */
function joinedAt(participant: ParticipantInfo, eventAt: Date): Date | null {
  const week = 7 * DAY_MS;
  return (
    validDate(Number(participant.joinedAtMs), eventAt, week) ?? validDate(Number(participant.joinedAt) * 1000, eventAt, week)
  );
}

const DAY_MS = 24 * 60 * 60 * 1000;
const YEAR_2000_MS = Date.UTC(2000, 0, 1);

/**
 * int64 times arrive as bigint; zero means unset, and a nonsense value must not become a 500
 * or a record: a time must lie after 2000 and within a day ahead of `reference` (clocks disagree
 * a little), and no more than `maxBehindMs` before it.
 */
function validDate(ms: number, reference: Date, maxBehindMs = Number.POSITIVE_INFINITY): Date | null {
  const ref = reference.getTime();
  if (!(ms > YEAR_2000_MS && ms < ref + DAY_MS && ms > ref - maxBehindMs)) return null;
  return new Date(ms);
}

type EventClaim = {
  state: "owned" | "done" | "busy" | "unknown";
  /** The room (by sid) has already finished. */
  roomFinished: boolean;
  /** When an agent first joined the room, if one did before now. */
  agentJoinedAt: Date | null;
};

/**
 * Takes the event for this delivery: new, or held by a delivery whose lease ran out. Tells
 * whether it was already acted on, and what already happened in its room, in one statement.
 */
async function claimEvent(
  deps: LiveKitEventDeps,
  { event, id, room, action, occurredAt }: { event: WebhookEvent; id: string; room: RoomRef; action: Action; occurredAt: Date },
): Promise<EventClaim> {
  const sid = room.sid;
  const [row] = await deps.database.rows<{
    owned: boolean;
    done: boolean;
    room_finished: boolean;
    agent_joined_at: string | Date | null;
  }>(sql`
    with claimed as (
      insert into webhook_events (id, event, action, occurred_at, room_name, room_sid)
      values (${id}, ${event.event}, ${action}, ${occurredAt.toISOString()}::timestamptz, ${room.name || null}, ${sid})
      on conflict (id) do update set claimed_at = now()
        where webhook_events.processed_at is null and webhook_events.claimed_at < now() - ${HOLD}
      returning id
    )
    select exists (select 1 from claimed) as owned,
           exists (select 1 from webhook_events where id = ${id} and processed_at is not null) as done,
           exists (select 1 from webhook_events where room_sid = ${sid}::text and action = 'room_finished') as room_finished,
           (select min(occurred_at) from webhook_events
             where room_sid = ${sid}::text and action = 'agent_joined' and processed_at is not null) as agent_joined_at`);
  const state = row!.owned ? "owned" : row!.done ? "done" : "busy";
  const agentJoinedAt = row!.agent_joined_at ? new Date(row!.agent_joined_at) : null;
  return { state, roomFinished: row!.room_finished, agentJoinedAt };
}

async function markProcessed(deps: LiveKitEventDeps, id: string): Promise<void> {
  await deps.database.rows(sql`update webhook_events set processed_at = now() where id = ${id} returning id`);
}

async function releaseEvent(deps: LiveKitEventDeps, id: string): Promise<void> {
  await deps.database.rows(sql`delete from webhook_events where id = ${id} and processed_at is null returning id`);
}

/** webhook_events only has to outlive LiveKit's redeliveries and a room's lifetime. */
export async function pruneWebhookEvents(deps: Pick<LiveKitEventDeps, "database">, olderThanDays = 7): Promise<number> {
  const rows = await deps.database.rows(sql`
    delete from webhook_events where received_at < now() - make_interval(days => ${olderThanDays}) returning id`);
  return rows.length;
}
