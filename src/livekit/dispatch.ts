// Puts the routed agent into the call's room through LiveKit's AgentDispatchService, once.
// LiveKit does not deduplicate dispatches, so a repeated webhook would start a second agent:
// the call log carries a claim (one delivery at a time may dispatch) and the dispatch id,
// and LiveKit's own list of the room's dispatches is checked before creating one.
//
// That list is not empty in a fresh room: livekit-server gives every room created without
// room_config agents one dispatch with an empty agent name (livekit/livekit pkg/rtc/room.go,
// createAgentDispatchesFromRoomAgent), which reaches only workers registered without a name.
// It is not this call's agent. A *named* dispatch already there (a dispatch rule's room_config,
// or an earlier delivery of this call) is, and no second agent is sent.
import type { AgentDispatch } from "@livekit/protocol";
import { sql } from "drizzle-orm";
import { type CallRouting, callMetadata } from "../calls/service";
import type { Database } from "../db/client";
import type { AgentSource } from "../db/schema";
import { withDeadline } from "../errors";
import type { Logger } from "../logger";

/** The part of livekit-server-sdk's AgentDispatchClient Switchboard uses. */
export interface AgentDispatcher {
  listDispatch(roomName: string): Promise<AgentDispatch[]>;
  createDispatch(roomName: string, agentName: string, options?: { metadata?: string }): Promise<AgentDispatch>;
}

export interface DispatchDeps {
  database: Database;
  logger: Logger;
  /** To tell, of an agent already in the room, whether it is the system default (sent during an outage). */
  systemDefaultAgent: string;
  dispatcher: AgentDispatcher;
  retries: number;
  retryBaseMs: number;
  /** All attempts and back-off together stay within this; LiveKit's redelivery does the rest. */
  budgetMs: number;
  sleep?: (ms: number) => Promise<void>;
}

export type DispatchOutcome = (
  | { kind: "dispatched"; dispatchId: string; agentName: string; reused: boolean }
  /** in_progress: another delivery holds the claim; if it dies, a redelivery must try again. */
  | { kind: "skipped"; reason: "already_dispatched" | "call_ended" | "in_progress" }
  /**
   * deliveries: how many deliveries have tried to dispatch this call, this one included (0: unknown).
   * createMayHaveLanded: a CreateDispatch went unanswered, so LiveKit may yet start the agent.
   */
  | { kind: "failed"; retryable: boolean; error: string; deliveries: number; createMayHaveLanded: boolean }
) & {
  /** False when the database could not hold the claim or the result; the webhook should be redelivered. */
  bookkept: boolean;
};

/**
 * How long a delivery may hold an event (service.ts) or a call's dispatch claim (here) before
 * another may take it over. Longer than handling can take (each database step and the dispatch
 * are bounded, and the SDK's request timeout is shorter), shorter than LiveKit's retry window
 * (1+2+4+8 s), so the last redelivery of a crashed attempt finds both lapsed and acts.
 */
export const HOLD_MS = 10_000;
export const HOLD = sql`make_interval(secs => ${HOLD_MS / 1000})`;

/**
 * Sends the call's agent, when its record's claim lets this delivery (routing.dispatchClaim).
 * `eventId`, the webhook event this answers, is marked processed in the statement that records
 * the dispatch: the join's last round trip.
 */
export async function dispatchAgent(deps: DispatchDeps, routing: CallRouting, roomName: string, eventId?: string): Promise<DispatchOutcome> {
  const { logger } = deps;
  const fields = { call_id: routing.callId, room: roomName, agent: routing.agentName, call_log_id: routing.callLogId };
  const callLogId = routing.callLogId;
  // Without a call log (the database could not take it) the caller still gets an agent:
  // LiveKit's list of the room's dispatches is the guard then.
  const claim = callLogId ? routing.dispatchClaim : null;
  if (callLogId && !claim) throw new Error(`call ${routing.callId} was recorded without a dispatch claim`);
  if (claim && claim.outcome !== "claimed") {
    logger.info({ ...fields, reason: claim.outcome }, "dispatch skipped");
    return { kind: "skipped", reason: claim.outcome, bookkept: true };
  }
  let bookkept = callLogId !== null;
  const attempt = await findOrCreateDispatch(deps, routing, roomName, fields);
  const note = async (write: () => Promise<void>) => {
    if (!callLogId) return;
    try {
      await write();
    } catch (error) {
      bookkept = false;
      logger.warn({ ...fields, err: error }, "could not record the dispatch on the call log");
    }
  };
  if (attempt.ok) {
    const source = servingAgentSource(attempt.dispatch.agentName, routing, deps.systemDefaultAgent);
    await note(() => recordDispatch(deps.database, callLogId!, attempt.dispatch, source, eventId));
    return { kind: "dispatched", dispatchId: attempt.dispatch.id, agentName: attempt.dispatch.agentName, reused: attempt.reused, bookkept };
  }
  const message = attempt.error instanceof Error ? attempt.error.message : String(attempt.error);
  const retryable = attempt.createMayHaveLanded || isRetryable(attempt.error);
  // A CreateDispatch whose answer never came may still land: keep the claim until it expires
  // (longer than the SDK's request timeout), so no redelivery creates a second agent meanwhile.
  await note(() => recordDispatchFailure(deps.database, callLogId!, message, !attempt.createMayHaveLanded));
  logger.error({ ...fields, retryable, create_may_have_landed: attempt.createMayHaveLanded, err: attempt.error }, "agent dispatch failed");
  const deliveries = claim?.attempts ?? 0;
  return { kind: "failed", retryable, error: message, deliveries, createMayHaveLanded: attempt.createMayHaveLanded, bookkept };
}

type DispatchAttempt = { dispatch: AgentDispatch; reused: boolean };

/** Finds the room's dispatch or creates one, retrying with back-off within the budget. */
async function findOrCreateDispatch(
  deps: DispatchDeps,
  routing: CallRouting,
  roomName: string,
  fields: Record<string, unknown>,
): Promise<({ ok: true } & DispatchAttempt) | { ok: false; error: unknown; createMayHaveLanded: boolean }> {
  const sleep = deps.sleep ?? ((ms: number) => Bun.sleep(ms));
  const deadline = Date.now() + deps.budgetMs;
  let lastError: unknown = new Error("no dispatch attempt fit in the budget");
  // Set while a CreateDispatch may have reached LiveKit without us hearing back (a timeout, a
  // dropped connection): from then on only LiveKit's list may answer, or the caller gets two agents.
  const state = { createMayHaveLanded: false };
  for (let attempt = 1; attempt <= deps.retries + 1; attempt++) {
    try {
      const result = await withDeadline(findOrCreateOnce(deps, routing, roomName, state), Math.max(1, deadline - Date.now()), "agent dispatch");
      deps.logger.info(
        { ...fields, dispatch_id: result.dispatch.id, dispatched_agent: result.dispatch.agentName, reused: result.reused, attempt },
        "agent dispatched",
      );
      return { ok: true, ...result };
    } catch (error) {
      lastError = error;
      const retryable = isRetryable(error);
      deps.logger.warn({ ...fields, attempt, retryable, err: error }, "agent dispatch attempt failed");
      const wait = deps.retryBaseMs * 2 ** (attempt - 1);
      if (!retryable || attempt > deps.retries || Date.now() + wait >= deadline) break;
      await sleep(wait);
    }
  }
  return { ok: false, error: lastError, createMayHaveLanded: state.createMayHaveLanded };
}

/** One look at the room's dispatches, and a CreateDispatch when none serves the caller. */
async function findOrCreateOnce(
  deps: DispatchDeps,
  routing: CallRouting,
  roomName: string,
  state: { createMayHaveLanded: boolean },
): Promise<DispatchAttempt> {
  const existing = servingDispatch(await deps.dispatcher.listDispatch(roomName), routing.agentName, deps.systemDefaultAgent);
  if (existing) return { dispatch: existing, reused: true };
  if (state.createMayHaveLanded) throw new Error("an earlier CreateDispatch may still land; not sending another");
  const metadata = JSON.stringify(callMetadata(routing));
  state.createMayHaveLanded = true;
  try {
    return { dispatch: await deps.dispatcher.createDispatch(roomName, routing.agentName, { metadata }), reused: false };
  } catch (error) {
    state.createMayHaveLanded = !certainlyNotCreated(error);
    throw error;
  }
}

/**
 * The dispatch in the room that serves the caller. A room holds one caller, so a named agent
 * already dispatched there is this call's agent: the routed one if it is there, else the system
 * default (sent by a delivery during a database outage), else any other (a dispatch rule's).
 * The real server lists a room's dispatches in no set order. The implicit empty-name dispatch of
 * a room created without agents serves no one here.
 */
function servingDispatch(dispatches: AgentDispatch[], routedAgent: string, systemDefaultAgent: string): AgentDispatch | undefined {
  const named = (name: string) => dispatches.find((d) => d.agentName === name);
  return named(routedAgent) ?? named(systemDefaultAgent) ?? dispatches.find((d) => d.agentName !== "");
}

/** Why the agent in the room is the call's agent, in the call log's terms. */
function servingAgentSource(agentName: string, routing: CallRouting, systemDefaultAgent: string): AgentSource {
  if (agentName === routing.agentName) return routing.agentSource;
  // Sent by a delivery that could not read the directory (the database was down).
  if (agentName === systemDefaultAgent) return "system_default";
  return "dispatch_rule";
}

/**
 * Twirp's deadline_exceeded and canceled (408) and a gateway's 504: LiveKit gave up waiting on
 * the room's node (livekit/livekit convertErrToTwirp), which may still have made the dispatch.
 */
const MAY_HAVE_ACTED = new Set([408, 504]);

/** LiveKit answered with an error that says it did nothing, or the connection was refused. */
function certainlyNotCreated(error: unknown): boolean {
  const { status, code } = (error ?? {}) as { status?: unknown; code?: unknown };
  if (typeof status === "number" && status > 0) return !MAY_HAVE_ACTED.has(status);
  return code === "ECONNREFUSED" || code === "ConnectionRefused";
}

/** Transport errors, timeouts, 5xx and 429 may pass on a later try; other 4xx will not. */
function isRetryable(error: unknown): boolean {
  const status = (error as { status?: unknown } | undefined)?.status;
  return typeof status !== "number" || status === 0 || status >= 500 || status === 429 || MAY_HAVE_ACTED.has(status);
}

/**
 * Records on the call's log a dispatch made while the log could not be written (the database was
 * down when the caller joined: the join was journaled, and this runs when it is replayed).
 */
export async function recordLateDispatch(
  database: Database,
  routing: CallRouting,
  dispatch: Pick<AgentDispatch, "id" | "agentName">,
  systemDefaultAgent: string,
): Promise<void> {
  if (!routing.callLogId) throw new Error(`call ${routing.callId} has no call log to record its dispatch on`);
  await recordDispatch(database, routing.callLogId, dispatch, servingAgentSource(dispatch.agentName, routing, systemDefaultAgent));
}

/**
 * Stores the dispatch; the record names the agent actually serving the call, and why it is that
 * one. With `eventId`, the webhook event that sent it is marked processed in the same statement.
 */
async function recordDispatch(
  database: Database,
  callLogId: string,
  dispatch: Pick<AgentDispatch, "id" | "agentName">,
  source: AgentSource,
  eventId?: string,
): Promise<void> {
  await database.rows(sql`
    with processed as (
      update webhook_events set processed_at = now() where id = ${eventId ?? null}::text returning id
    )
    update call_logs
    set dispatch_id = ${dispatch.id}, dispatch_error = null, updated_at = now(),
        metadata = case when agent_name = ${dispatch.agentName} then metadata
                        else metadata || jsonb_build_object('routed_agent', agent_name, 'routed_agent_source', agent_source) end,
        agent_name = ${dispatch.agentName},
        agent_source = ${source}
    where id = ${callLogId} returning id`);
}

/** Keeps the error on the record and, when it is safe, lets a redelivered webhook try again at once. */
async function recordDispatchFailure(database: Database, callLogId: string, error: string, release: boolean): Promise<void> {
  await database.rows(sql`
    update call_logs
    set dispatch_claimed_at = case when ${release} then null else dispatch_claimed_at end,
        dispatch_error = ${error.slice(0, 1000)}, updated_at = now()
    where id = ${callLogId} and dispatch_id is null returning id`);
}
