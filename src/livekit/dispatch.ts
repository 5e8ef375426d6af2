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
import { callMetadata } from "../calls/context";
import type { DispatchedRouting } from "../calls/service";
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
  /** False when the call log could not hold the claim or the result; the webhook should be redelivered. */
  recorded: boolean;
};

type LogFields = Record<string, unknown>;

/**
 * Sends the call's agent, when its record's claim lets this delivery (routing.dispatchClaim).
 * `eventId`, the webhook event this answers, is marked processed in the statement that records
 * the dispatch: the join's last round trip.
 */
export async function dispatchAgent(deps: DispatchDeps, routing: DispatchedRouting, roomName: string, eventId?: string): Promise<DispatchOutcome> {
  const logFields = { call_id: routing.callId, room: roomName, agent: routing.agentName, call_log_id: routing.callLogId };
  const claim = dispatchClaim(routing);
  if (claim && claim.outcome !== "claimed") {
    deps.logger.info({ ...logFields, reason: claim.outcome }, "dispatch skipped");
    return { kind: "skipped", reason: claim.outcome, recorded: true };
  }
  const attempt = await findOrCreateDispatch(deps, routing, roomName, logFields);
  if (attempt.ok) {
    const { dispatch, reused } = attempt;
    const source = servingAgentSource(dispatch.agentName, routing, deps.systemDefaultAgent);
    const recorded = await writeToCallLog(deps, routing, logFields, (id) => recordDispatch(deps.database, id, dispatch, source, eventId));
    return { kind: "dispatched", dispatchId: dispatch.id, agentName: dispatch.agentName, reused, recorded };
  }
  const { error, createMayHaveLanded } = attempt;
  const message = error instanceof Error ? error.message : String(error);
  const retryable = createMayHaveLanded || isRetryable(error);
  // A CreateDispatch whose answer never came may still land: keep the claim until it expires
  // (longer than the SDK's request timeout), so no redelivery creates a second agent meanwhile.
  const recorded = await writeToCallLog(deps, routing, logFields, (id) => recordDispatchFailure(deps.database, id, message, !createMayHaveLanded));
  deps.logger.error({ ...logFields, retryable, create_may_have_landed: createMayHaveLanded, err: error }, "agent dispatch failed");
  return { kind: "failed", retryable, error: message, deliveries: claim?.attempts ?? 0, createMayHaveLanded, recorded };
}

/**
 * This delivery's claim on the dispatch, taken with the call's record. Without a call log (the
 * database could not take it) there is none, and the caller still gets an agent: LiveKit's list
 * of the room's dispatches is the guard then.
 */
function dispatchClaim(routing: DispatchedRouting) {
  if (!routing.callLogId) return null;
  if (!routing.dispatchClaim) throw new Error(`call ${routing.callId} was recorded without a dispatch claim`);
  return routing.dispatchClaim;
}

/** Runs `write` on the call's log; false when there is no log or the write failed (logged). */
async function writeToCallLog(
  deps: DispatchDeps,
  routing: DispatchedRouting,
  logFields: LogFields,
  write: (callLogId: string) => Promise<void>,
): Promise<boolean> {
  if (!routing.callLogId) return false;
  try {
    await write(routing.callLogId);
    return true;
  } catch (error) {
    deps.logger.warn({ ...logFields, err: error }, "could not record the dispatch on the call log");
    return false;
  }
}

type DispatchAttempt = { dispatch: AgentDispatch; reused: boolean };

/** Finds the room's dispatch or creates one, retrying with back-off within the budget. */
async function findOrCreateDispatch(
  deps: DispatchDeps,
  routing: DispatchedRouting,
  roomName: string,
  logFields: LogFields,
): Promise<({ ok: true } & DispatchAttempt) | { ok: false; error: unknown; createMayHaveLanded: boolean }> {
  const deadline = Date.now() + deps.budgetMs;
  let lastError: unknown = new Error("no dispatch attempt fit in the budget");
  // Set while a CreateDispatch may have reached LiveKit without us hearing back (a timeout, a
  // dropped connection): from then on only LiveKit's list may answer, or the caller gets two agents.
  const create = { mayHaveLanded: false };
  for (let attempt = 1; attempt <= deps.retries + 1; attempt++) {
    try {
      const result = await withDeadline(findOrCreateOnce(deps, routing, roomName, create), Math.max(1, deadline - Date.now()), "agent dispatch");
      deps.logger.info(
        { ...logFields, dispatch_id: result.dispatch.id, dispatched_agent: result.dispatch.agentName, reused: result.reused, attempt },
        "agent dispatched",
      );
      return { ok: true, ...result };
    } catch (error) {
      lastError = error;
      const retryable = isRetryable(error);
      deps.logger.warn({ ...logFields, attempt, retryable, err: error }, "agent dispatch attempt failed");
      const wait = deps.retryBaseMs * 2 ** (attempt - 1);
      if (!retryable || attempt > deps.retries || Date.now() + wait >= deadline) break;
      await Bun.sleep(wait);
    }
  }
  return { ok: false, error: lastError, createMayHaveLanded: create.mayHaveLanded };
}

/** One look at the room's dispatches, and a CreateDispatch when none serves the caller. */
async function findOrCreateOnce(
  deps: DispatchDeps,
  routing: DispatchedRouting,
  roomName: string,
  create: { mayHaveLanded: boolean },
): Promise<DispatchAttempt> {
  const existing = servingDispatch(await deps.dispatcher.listDispatch(roomName), routing.agentName, deps.systemDefaultAgent);
  if (existing) return { dispatch: existing, reused: true };
  if (create.mayHaveLanded) throw new Error("an earlier CreateDispatch may still land; not sending another");
  const metadata = JSON.stringify(callMetadata(routing));
  create.mayHaveLanded = true;
  try {
    return { dispatch: await deps.dispatcher.createDispatch(roomName, routing.agentName, { metadata }), reused: false };
  } catch (error) {
    create.mayHaveLanded = !certainlyNotCreated(error);
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
function servingAgentSource(agentName: string, routing: DispatchedRouting, systemDefaultAgent: string): AgentSource {
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
  routing: DispatchedRouting,
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
