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
import { UnavailableError } from "../errors";
import { type AgentDispatcher, type DispatchOutcome, dispatchAgent } from "./dispatch";

export interface LiveKitEventDeps extends RoutingDeps {
  /** Absent when dispatch is switched off (LIVEKIT_DISPATCH=false) or LiveKit is not configured. */
  dispatcher?: AgentDispatcher;
  dispatchRetries: number;
  dispatchRetryBaseMs: number;
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
  if (!action) return { result: "ignored", reason: `${event.event || "unnamed"} event is not about a SIP call` };
  const log = deps.logger.child({ event: event.event, event_id: event.id, room: event.room?.name });

  let claimed: boolean | "unknown" = true;
  let roomFinished = false;
  if (event.id) {
    try {
      ({ claimed, roomFinished } = await claimEvent(deps, event));
    } catch (error) {
      // A caller joining still gets an agent with the database down; everything else waits for a retry.
      if (action !== "caller_joined") throw new UnavailableError(`database unavailable: ${(error as Error).message}`);
      claimed = "unknown";
    }
  }
  if (claimed === false) {
    log.info("repeated delivery ignored");
    return { result: "duplicate" };
  }

  try {
    const outcome = await perform(deps, event, action, roomFinished);
    if (claimed === "unknown") throw new UnavailableError("event handled without the database; asking LiveKit to redeliver");
    return outcome;
  } catch (error) {
    // Let LiveKit's retry act on this event again.
    if (event.id && claimed === true) await releaseEvent(deps, event.id).catch(() => {});
    throw error;
  }
}

type Action = "caller_joined" | "agent_joined" | "caller_left" | "room_finished";

function actionFor(event: WebhookEvent): Action | null {
  const kind = event.participant?.kind;
  switch (event.event) {
    case "participant_joined":
      if (kind === ParticipantInfo_Kind.SIP) return "caller_joined";
      if (kind === ParticipantInfo_Kind.AGENT) return "agent_joined";
      return null;
    case "participant_left":
    case "participant_connection_aborted":
      return kind === ParticipantInfo_Kind.SIP ? "caller_left" : null;
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
  roomFinished: boolean,
): Promise<EventOutcome> {
  const roomName = event.room?.name ?? "";
  const at = eventTime(event, deps.clock);
  switch (action) {
    case "caller_joined": {
      const participant = event.participant!;
      const routing = await routeSipParticipant(deps, participant, roomName);
      if (routing.recorded) {
        await recordCallerJoined(deps.database, {
          callId: routing.callId,
          roomName,
          joinedAt: joinedAt(participant) ?? at,
        });
      }
      if (roomFinished && routing.recorded) {
        // room_finished overtook this join: the call is over before it rang; no agent to send.
        await recordCallEnded(deps.database, {
          callId: routing.callId,
          endedAt: at,
          disconnectReason: "ROOM_FINISHED",
          unansweredStatus: "abandoned",
        });
        return { result: "handled", action: "caller joined a finished room; call ended" };
      }
      if (!deps.dispatcher) return { result: "handled", action: "caller_joined (dispatch off)" };
      const dispatch = await dispatchAgent(
        { ...deps, dispatcher: deps.dispatcher, retries: deps.dispatchRetries, retryBaseMs: deps.dispatchRetryBaseMs },
        routing,
        roomName,
      );
      if (dispatch.kind === "failed" && dispatch.retryable) {
        throw new UnavailableError(`agent dispatch failed: ${dispatch.error}`);
      }
      if (!routing.recorded) throw new UnavailableError("call dispatched but not recorded: database unavailable");
      return { result: "handled", action, dispatch };
    }
    case "agent_joined": {
      const answered = await recordCallAnswered(deps.database, {
        roomName,
        answeredAt: joinedAt(event.participant!) ?? at,
        agentIdentity: event.participant?.identity,
      });
      return { result: "handled", action: answered ? "call answered" : "agent joined (no ringing call)" };
    }
    case "caller_left": {
      const participant = event.participant!;
      // A left that overtakes its join still leaves a complete record: route (or find) the call, then end it.
      const routing = await routeSipParticipant(deps, participant, roomName);
      if (!routing.recorded) throw new UnavailableError("database unavailable");
      const reason = participant.disconnectReason;
      const ended = await recordCallEnded(deps.database, {
        callId: routing.callId,
        endedAt: at,
        joinedAt: joinedAt(participant),
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
  const attributes = participant.attributes;
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

function eventTime(event: WebhookEvent, clock: () => Date): Date {
  return event.createdAt > 0n ? new Date(Number(event.createdAt) * 1000) : clock();
}

function joinedAt(participant: ParticipantInfo): Date | null {
  if (participant.joinedAtMs > 0n) return new Date(Number(participant.joinedAtMs));
  if (participant.joinedAt > 0n) return new Date(Number(participant.joinedAt) * 1000);
  return null;
}

/** Records the event id (false: already acted on) and tells whether the room has already finished. */
async function claimEvent(deps: LiveKitEventDeps, event: WebhookEvent) {
  const room = event.room?.name ?? null;
  const [row] = await deps.database.rows<{ claimed: boolean; room_finished: boolean }>(sql`
    with claimed as (
      insert into webhook_events (id, event, room_name) values (${event.id}, ${event.event}, ${room})
      on conflict (id) do nothing
      returning id
    )
    select exists (select 1 from claimed) as claimed,
           exists (select 1 from webhook_events where room_name = ${room} and event = 'room_finished') as room_finished`);
  return { claimed: row!.claimed, roomFinished: row!.room_finished };
}

async function releaseEvent(deps: LiveKitEventDeps, id: string): Promise<void> {
  await deps.database.rows(sql`delete from webhook_events where id = ${id} returning id`);
}
