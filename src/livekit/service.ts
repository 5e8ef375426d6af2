// A LiveKit webhook delivery, from event to answer: which action the event asks for, the event's
// lease (event-lease.ts: an event id is acted on once), the action (actions.ts), and what a failure
// means to LiveKit. Deliveries repeat and rooms can surprise (left before joined, finished before
// joined): every action is idempotent and call status only moves forward.
import { WebhookEvent } from "@livekit/protocol";
import type { SQL } from "drizzle-orm";
import type { ChangedCall, RoomRef } from "../calls/lifecycle";
import { type RoutingDeps, routeInboundCall } from "../calls/service";
import { constraintViolation, isDatabaseUnavailable } from "../db/errors";
import { AppError, TimeoutError, UnavailableError, UnprocessableError, withDeadline } from "../errors";
import type { Logger } from "../logger";
import {
  type Action,
  actionFor,
  actOn,
  callRecordFailure,
  type JournaledDispatch,
  NotRecordedError,
  ONE_CHANGE_ACTIONS,
  occurredAt,
} from "./actions";
import { type DispatchDeps, type DispatchOutcome, recordLateDispatch } from "./dispatch";
import {
  type ClaimRequest,
  claimAndApply,
  claimEvent,
  claimWithoutRoom,
  type EventClaim,
  eventProcessed,
  markEventProcessed,
  releaseEvent,
} from "./event-lease";
import type { CallHandoff } from "./handoff";
import { eventTime } from "./event-time";
import { eventKey, eventRoom, sipCall } from "./event-values";

export interface LiveKitEventDeps extends RoutingDeps {
  /** Absent when dispatch is switched off (LIVEKIT_DISPATCH=false) or LiveKit is not configured. */
  dispatch?: Omit<DispatchDeps, "database" | "logger" | "systemDefaultAgent">;
  /** Removes and transfers callers the policies give no agent; set whenever `dispatch` is. */
  handoff?: CallHandoff;
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

/** What the journal keeps of a LiveKit event: the event as LiveKit sent it, and the agent it dispatched. */
type JournaledEvent = { event: unknown; dispatched?: JournaledDispatch };

/** The delivery budget's name: it tells its TimeoutError from that of a step inside it. */
const DELIVERY_DEADLINE = "webhook delivery";

export async function handleLiveKitEvent(deps: LiveKitEventDeps, event: WebhookEvent): Promise<EventOutcome> {
  const action = actionFor(event);
  if (!action) return { result: "ignored", reason: `${event.event || "unnamed"} is not about an inbound SIP call` };
  const room = eventRoom(event);
  const log = deps.logger.child({ event: event.event, event_id: eventKey(event), room: room.name, room_sid: room.sid });
  try {
    // Work past the budget goes on (every step is bounded on its own) and its redelivery finds
    // the event held or done; what matters is that the room's queue moves on.
    return await withDeadline(handleDelivery(deps, event, room, action, log), deps.deliveryBudgetMs, DELIVERY_DEADLINE);
  } catch (error) {
    if (error instanceof AppError) throw error;
    if (deps.journal && !isBudgetTimeout(error) && isDatabaseUnavailable(error) && (await journalEvent(deps, event, error, log))) {
      log.warn({ err: error, action }, "event journaled: database unavailable");
      return { result: "journaled", action };
    }
    throw deliveryError(error, log);
  }
}

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
  // Judged as when it came in: business hours at that time, and no cap (caps fail open while the database is down).
  const replaying = { ...deps, dispatch: undefined, journal: undefined, clock: () => at, now: () => at, ignoreCaps: true, deliveryBudgetMs: 60_000 };
  await handleLiveKitEvent(replaying, event);
  if (dispatched && event.participant) {
    // The agent sent when the join came in belongs on the call log now that there is one.
    const routing = await routeInboundCall(replaying, sipCall(event.participant, eventRoom(event)));
    const recordFailure = callRecordFailure(routing);
    if (recordFailure) throw recordFailure;
    // A call the journal kept was dispatched when it came in, as routing decided then.
    if (routing.outcome === "dispatched") await recordLateDispatch(deps.database, routing, dispatched, deps.settings.systemDefaultAgent);
  }
}

/** Claims the event, acts on it, and marks it processed; a failed action gives the event back. */
async function handleDelivery(deps: LiveKitEventDeps, event: WebhookEvent, room: RoomRef, action: Action, log: Logger): Promise<EventOutcome> {
  const at = eventTime(event, deps.clock());
  const id = eventKey(event);
  const request = id ? { id, eventName: event.event, action, occurredAt: occurredAt(event, action, at), room } : undefined;
  const delivery = { event, action, room, at };
  const oneChange = ONE_CHANGE_ACTIONS[action];
  let claim: EventClaim;
  if (request && oneChange) {
    // Taken, changed and done in one statement, unless the change found nothing it can act on.
    const change = (claimed: SQL) => oneChange.change(delivery, claimed);
    const applied = await claimAndApply<ChangedCall>(deps.database, request, change, oneChange.doneIf?.(delivery));
    if (applied.processed) return { result: "handled", action: await oneChange.finish(deps, delivery, applied.changed) };
    // Busy after waiting on another delivery's statement for this event may mean done by now.
    const doneMeanwhile = applied.state === "busy" && (await eventProcessed(deps.database, request.id));
    // Held, not done: the change found nothing to act on and the usual way follows, or another has it.
    claim = claimWithoutRoom(doneMeanwhile ? "done" : applied.state);
  } else {
    claim = request ? await claimOrProceed(deps, request, log) : claimWithoutRoom("owned");
  }
  if (claim.state === "done" || claim.state === "busy") return unclaimed(claim.state, log);
  try {
    const outcome = await actOn(deps, { ...delivery, claim });
    if (claim.state === "unknown") throw new NotRecordedError("event handled without the database");
    // A join whose dispatch was recorded had its event marked processed in the same statement.
    if (id && !dispatchRecorded(outcome)) await markEventProcessed(deps.database, id);
    return outcome;
  } catch (error) {
    // Give the event back so LiveKit's redelivery acts on it (or the lease runs out if this fails too).
    if (id && claim.state === "owned") await releaseEvent(deps.database, id).catch(() => {});
    throw error;
  }
}

/** An event this delivery did not take: done already (a repeat), or being handled by another delivery. */
function unclaimed(state: "done" | "busy", log: Logger): EventOutcome {
  if (state === "busy") {
    // Another delivery is working on it; if that one fails, this redelivery must still act.
    throw new UnavailableError("this event is being handled by another delivery; retry later");
  }
  log.info("repeated delivery ignored");
  return { result: "duplicate" };
}

/** The event's claim; a caller joining still gets an agent with the database down, everything else waits for a retry. */
async function claimOrProceed(deps: LiveKitEventDeps, request: ClaimRequest, log: Logger): Promise<EventClaim> {
  try {
    return await claimEvent(deps.database, request);
  } catch (error) {
    if (request.action !== "caller_joined") throw error;
    log.warn({ err: error }, "event claim failed: handling the join without the database");
    return claimWithoutRoom("unknown");
  }
}

const dispatchRecorded = (outcome: EventOutcome) =>
  outcome.result === "handled" && outcome.dispatch?.kind === "dispatched" && outcome.dispatch.recorded;

const isBudgetTimeout = (error: unknown): error is TimeoutError => error instanceof TimeoutError && error.what === DELIVERY_DEADLINE;

/** Keeps the event (and the agent it dispatched, if any) in the journal; false when the journal cannot take it either. */
async function journalEvent(deps: LiveKitEventDeps, event: WebhookEvent, error: unknown, log: Logger): Promise<boolean> {
  try {
    const entry: JournaledEvent = { event: event.toJson(), dispatched: (error as Partial<NotRecordedError>).dispatched };
    await deps.journal!.append(LIVEKIT_EVENT_ENTRY, entry);
    return true;
  } catch (journalError) {
    log.error({ err: journalError }, "event could not be journaled either");
    return false;
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
