// What Switchboard does with each LiveKit webhook event. Deliveries repeat and rooms can
// surprise (left before joined, finished before joined): every action here is idempotent,
// call status only moves forward, and an event id is acted on once.
import { DisconnectReason, ParticipantInfo_Kind, type ParticipantInfo, type WebhookEvent } from "@livekit/protocol";
import { sql } from "drizzle-orm";
import {
  type CallRouting,
  type RoutingDeps,
  recordCallAnswered,
  recordCallEnded,
  recordCallerJoined,
  routeInboundCall,
} from "../calls/service";
import { AppError, UnavailableError } from "../errors";
import { type DispatchDeps, type DispatchOutcome, dispatchAgent, HOLD } from "./dispatch";

export interface LiveKitEventDeps extends RoutingDeps {
  /** Absent when dispatch is switched off (LIVEKIT_DISPATCH=false) or LiveKit is not configured. */
  dispatch?: Omit<DispatchDeps, "database" | "logger">;
  clock: () => Date;
}

export type EventOutcome =
  | { result: "ignored"; reason: string }
  | { result: "duplicate" }
  | { result: "handled"; action: string; dispatch?: DispatchOutcome };

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


export async function handleLiveKitEvent(deps: LiveKitEventDeps, event: WebhookEvent): Promise<EventOutcome> {
  const action = actionFor(event);
  if (!action) return { result: "ignored", reason: `${event.event || "unnamed"} is not about an inbound SIP call` };
  const log = deps.logger.child({ event: event.event, event_id: event.id, room: event.room?.name });

  const at = eventTime(event, deps.clock());
  const occurredAt = action === "agent_joined" ? (joinedAt(event.participant!, at) ?? at) : at;
  let claim: EventClaim = { state: "owned", roomFinished: false, agentJoinedAt: null };
  if (event.id) {
    try {
      claim = await claimEvent(deps, event, action, occurredAt);
    } catch (error) {
      // A caller joining still gets an agent with the database down; everything else waits for a retry.
      if (action !== "caller_joined") {
        log.warn({ err: error }, "event claim failed");
        throw new UnavailableError("database unavailable");
      }
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
    const outcome = await perform(deps, event, action, at, claim);
    if (claim.state === "unknown") throw new UnavailableError("event handled without the database; asking LiveKit to redeliver");
    if (event.id) await markProcessed(deps, event.id);
    return outcome;
  } catch (error) {
    // Give the event back so LiveKit's redelivery acts on it (or the lease runs out if this fails too).
    if (event.id && claim.state === "owned") await releaseEvent(deps, event.id).catch(() => {});
    if (error instanceof AppError) throw error;
    // What fails here is the database (bad input was refused before): worth a redelivery.
    // The details (SQL, values) go to the log, not into the answer.
    log.error({ err: error }, "event handling failed");
    throw new UnavailableError("event handling failed: database unavailable");
  }
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
      return event.room?.name ? "room_finished" : null;
    default:
      return null;
  }
}

async function perform(
  deps: LiveKitEventDeps,
  event: WebhookEvent,
  action: Action,
  at: Date,
  { roomFinished, agentJoinedAt }: EventClaim,
): Promise<EventOutcome> {
  const roomName = event.room?.name ?? "";
  // An agent join that came before this call had a record (the database was down when the
  // caller joined) still counts: the call was answered.
  const applyEarlierAnswer = async () => {
    if (agentJoinedAt) await recordCallAnswered(deps.database, { roomName, answeredAt: agentJoinedAt });
  };
  switch (action) {
    case "caller_joined": {
      const participant = event.participant!;
      const routing = await routeSipParticipant(deps, participant, roomName);
      let recorded = routing.recorded;
      if (recorded) {
        try {
          await recordCallerJoined(deps.database, { callId: routing.callId, roomName, joinedAt: joinedAt(participant, at) ?? at });
        } catch (error) {
          deps.logger.warn({ call_id: routing.callId, err: error }, "could not record the caller's join time");
          recorded = false;
        }
      }
      if (recorded) await applyEarlierAnswer();
      if (roomFinished) {
        // room_finished overtook this join: the call was over before it rang; no agent to send.
        if (!recorded) throw new UnavailableError("database unavailable");
        await recordCallEnded(deps.database, {
          callId: routing.callId,
          endedAt: at,
          disconnectReason: "ROOM_FINISHED",
          unansweredStatus: "abandoned",
        });
        return { result: "handled", action: "caller joined a finished room; call ended" };
      }
      let dispatch: DispatchOutcome | undefined;
      if (deps.dispatch) {
        dispatch = await dispatchAgent({ ...deps.dispatch, database: deps.database, logger: deps.logger }, routing, roomName);
        if (dispatch.kind === "failed" && dispatch.retryable) {
          throw new UnavailableError(`agent dispatch failed: ${dispatch.error}`);
        }
        if (dispatch.kind === "skipped" && dispatch.reason === "in_progress") {
          throw new UnavailableError("another delivery is dispatching this call's agent; retry later");
        }
        recorded &&= dispatch.bookkept;
      }
      if (!recorded) throw new UnavailableError("call handled but not fully recorded: database unavailable");
      return { result: "handled", action: deps.dispatch ? action : "caller_joined (dispatch off)", dispatch };
    }
    case "agent_joined": {
      const answered = await recordCallAnswered(deps.database, {
        roomName,
        answeredAt: joinedAt(event.participant!, at) ?? at,
        agentIdentity: event.participant?.identity,
      });
      // With no ringing call, the join stays in webhook_events for the call's record to find.
      return { result: "handled", action: answered ? "call answered" : "agent joined (no ringing call)" };
    }
    case "caller_left": {
      const participant = event.participant!;
      // A left that overtakes its join still leaves a complete record: route (or find) the call, then end it.
      const routing = await routeSipParticipant(deps, participant, roomName);
      if (!routing.recorded) throw new UnavailableError("database unavailable");
      await applyEarlierAnswer();
      const reason = participant.disconnectReason;
      const ended = await recordCallEnded(deps.database, {
        callId: routing.callId,
        endedAt: at,
        joinedAt: joinedAt(participant, at),
        disconnectReason: DisconnectReason[reason] ?? String(reason),
        unansweredStatus: FAILED_REASONS.has(reason) ? "failed" : "abandoned",
      });
      return { result: "handled", action: ended.length ? `call ended (${ended[0]!.status})` : "call already ended" };
    }
    case "room_finished": {
      const ended = await recordCallEnded(deps.database, {
        roomName,
        endedAt: at,
        disconnectReason: "ROOM_FINISHED",
        unansweredStatus: "abandoned",
      });
      return { result: "handled", action: `room finished, ${ended.length} call(s) ended` };
    }
  }
}

/** The SIP facts LiveKit puts on the caller's participant, routed exactly like sip-inbound. */
function routeSipParticipant(deps: LiveKitEventDeps, participant: ParticipantInfo, roomName: string): Promise<CallRouting> {
  // PostgreSQL text cannot hold NUL, and SIP headers copied into attributes could carry one.
  const attributes = Object.fromEntries(
    Object.entries(participant.attributes).map(([key, value]) => [key, value.replaceAll("\u0000", "")]),
  );
  const sip = Object.fromEntries(Object.entries(attributes).filter(([key]) => key.startsWith("sip.")));
  return routeInboundCall(deps, {
    // sip.callID is always set by LiveKit's SIP service; the participant sid keeps a record if it is not.
    callId: attributes["sip.callID"] || participant.sid,
    from: attributes["sip.phoneNumber"],
    to: attributes["sip.trunkPhoneNumber"],
    trunkId: attributes["sip.trunkID"],
    roomName,
    source: "livekit",
    details: { participant: { sid: participant.sid, identity: participant.identity }, sip },
  });
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
async function claimEvent(deps: LiveKitEventDeps, event: WebhookEvent, action: Action, occurredAt: Date): Promise<EventClaim> {
  const sid = event.room?.sid || null;
  const [row] = await deps.database.rows<{
    owned: boolean;
    done: boolean;
    room_finished: boolean;
    agent_joined_at: string | Date | null;
  }>(sql`
    with claimed as (
      insert into webhook_events (id, event, action, occurred_at, room_name, room_sid)
      values (${event.id}, ${event.event}, ${action}, ${occurredAt.toISOString()}::timestamptz, ${event.room?.name ?? null}, ${sid})
      on conflict (id) do update set claimed_at = now()
        where webhook_events.processed_at is null and webhook_events.claimed_at < now() - ${HOLD}
      returning id
    )
    select exists (select 1 from claimed) as owned,
           exists (select 1 from webhook_events where id = ${event.id} and processed_at is not null) as done,
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
