// Puts the routed agent into the call's room through LiveKit's AgentDispatchService, once.
// LiveKit does not deduplicate dispatches, so a repeated webhook would start a second agent:
// the call log carries a claim (one delivery at a time may dispatch) and the dispatch id,
// and LiveKit's own list of the room's dispatches is checked before creating one.
import type { AgentDispatch } from "@livekit/protocol";
import { sql } from "drizzle-orm";
import { type CallRouting, callMetadata } from "../calls/service";
import type { Database } from "../db/client";
import type { Logger } from "../logger";

/** The part of livekit-server-sdk's AgentDispatchClient Switchboard uses. */
export interface AgentDispatcher {
  listDispatch(roomName: string): Promise<AgentDispatch[]>;
  createDispatch(roomName: string, agentName: string, options?: { metadata?: string }): Promise<AgentDispatch>;
}

export interface DispatchDeps {
  database: Database;
  logger: Logger;
  dispatcher: AgentDispatcher;
  retries: number;
  retryBaseMs: number;
  sleep?: (ms: number) => Promise<void>;
}

export type DispatchOutcome =
  | { kind: "dispatched"; dispatchId: string; reused: boolean }
  | { kind: "skipped"; reason: "already_dispatched_or_ended" }
  | { kind: "failed"; retryable: boolean; error: string };

/** A claim older than this is presumed abandoned (its process died) and may be taken over. */
const CLAIM_EXPIRY = sql`interval '60 seconds'`;

export async function dispatchAgent(deps: DispatchDeps, routing: CallRouting, roomName: string): Promise<DispatchOutcome> {
  const { logger } = deps;
  const fields = { call_id: routing.callId, room: roomName, agent: routing.agentName, call_log_id: routing.callLogId };
  // Without a call log (database down) there is nothing to claim; LiveKit's list still
  // keeps a repeated delivery from dispatching twice.
  if (routing.callLogId && !(await claimDispatch(deps.database, routing.callLogId))) {
    logger.info(fields, "dispatch skipped: already dispatched, being dispatched, or the call has ended");
    return { kind: "skipped", reason: "already_dispatched_or_ended" };
  }
  const sleep = deps.sleep ?? ((ms: number) => Bun.sleep(ms));
  let lastError: unknown;
  for (let attempt = 1; attempt <= deps.retries + 1; attempt++) {
    try {
      // A room holds one caller, so any agent already dispatched there is this call's agent,
      // even one sent while the database was down (the system default) or by a dispatch rule.
      const existing = (await deps.dispatcher.listDispatch(roomName))[0];
      const dispatch =
        existing ??
        (await deps.dispatcher.createDispatch(roomName, routing.agentName, {
          metadata: JSON.stringify(callMetadata(routing)),
        }));
      if (routing.callLogId) await recordDispatch(deps.database, routing.callLogId, dispatch);
      logger.info(
        { ...fields, dispatch_id: dispatch.id, dispatched_agent: dispatch.agentName, reused: Boolean(existing), attempt },
        "agent dispatched",
      );
      return { kind: "dispatched", dispatchId: dispatch.id, reused: Boolean(existing) };
    } catch (error) {
      lastError = error;
      const retryable = isRetryable(error);
      logger.warn({ ...fields, attempt, retryable, err: error }, "agent dispatch attempt failed");
      if (!retryable || attempt > deps.retries) break;
      await sleep(deps.retryBaseMs * 2 ** (attempt - 1));
    }
  }
  const message = lastError instanceof Error ? lastError.message : String(lastError);
  const retryable = isRetryable(lastError);
  if (routing.callLogId) await releaseDispatch(deps.database, routing.callLogId, message);
  logger.error({ ...fields, retryable, err: lastError }, "agent dispatch failed");
  return { kind: "failed", retryable, error: message };
}

/** Transport errors, 5xx and 429 may pass on a later try; other 4xx will not. */
function isRetryable(error: unknown): boolean {
  const status = (error as { status?: unknown } | undefined)?.status;
  return typeof status !== "number" || status === 0 || status >= 500 || status === 429;
}

async function claimDispatch(database: Database, callLogId: string): Promise<boolean> {
  const rows = await database.rows(sql`
    update call_logs
    set dispatch_claimed_at = now(), dispatch_attempts = dispatch_attempts + 1, updated_at = now()
    where id = ${callLogId} and dispatch_id is null and ended_at is null
      and (dispatch_claimed_at is null or dispatch_claimed_at < now() - ${CLAIM_EXPIRY})
    returning id`);
  return rows.length > 0;
}

/** Stores the dispatch; the agent actually sent is the one the record names. */
async function recordDispatch(database: Database, callLogId: string, dispatch: AgentDispatch): Promise<void> {
  await database.rows(sql`
    update call_logs
    set dispatch_id = ${dispatch.id}, dispatch_error = null, updated_at = now(),
        metadata = case when agent_name = ${dispatch.agentName} then metadata
                        else metadata || jsonb_build_object('routed_agent', agent_name) end,
        agent_name = ${dispatch.agentName}
    where id = ${callLogId} returning id`);
}

/** Keeps the error on the record and lets a redelivered webhook try again. */
async function releaseDispatch(database: Database, callLogId: string, error: string): Promise<void> {
  await database.rows(sql`
    update call_logs set dispatch_claimed_at = null, dispatch_error = ${error.slice(0, 1000)}, updated_at = now()
    where id = ${callLogId} and dispatch_id is null returning id`);
}
