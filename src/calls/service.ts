// The routing decision and the call record. Every entry point (sip-inbound, the LiveKit
// participant_joined webhook, the test endpoint) routes through routeInboundCall, in four
// steps: look the dialed number up in the in-memory directory, decide the agent, apply the
// policies (policy.ts: blocklist, business hours, caps), record the call. The record waits on
// the database only briefly (a capped call: for the database's decision): past that, or while the
// database is down, the decision goes to the journal on disk and is written once the database answers.
import type { Database } from "../db/client";
import { isDatabaseUnavailable } from "../db/errors";
import { withDeadline } from "../errors";
import type { Journal } from "../journal/journal";
import type { Logger } from "../logger";
import { type CallerContext, callerOf } from "./context";
import type { DirectoryEntry, RoutingDirectory } from "./directory";
import type { PhoneNumberReader } from "./phone";
import { applyPolicies, type CapCheck, type RoutedOutcome } from "./policy";
import { type CallRecorder, type DispatchClaim, type StoredCall, writeCall } from "./recorder";

export interface RoutingSettings {
  systemDefaultAgent: string;
  /** How long a caller waits for the call's record before it goes to the journal instead. */
  recordWaitMs: number;
  /** A call no longer holds a concurrency slot after this long, ended or not. */
  maxCallSeconds: number;
}

export interface RoutingDeps {
  database: Database;
  directory: RoutingDirectory;
  /** A call's numbers in E.164, national ones read in the configured region (DEFAULT_REGION). */
  readNumber: PhoneNumberReader;
  /** Writes call records, concurrent calls sharing a statement. */
  recorder: CallRecorder;
  /** Where records the database cannot take go; without one they are only logged. */
  journal?: Pick<Journal, "append">;
  /** Journal entries of calls whose write landed after all: their replay is skipped. */
  lateRecords?: LateRecords;
  settings: RoutingSettings;
  logger: Logger;
  /** Told of every routing decision and how long it took (metrics). */
  onRouted?: (routing: CallRouting, seconds: number) => void;
  /** The time business hours are judged at; the system clock unless a test says otherwise. */
  now?: () => Date;
  /** Set when replaying calls kept while the database was down: they were admitted then (caps fail open). */
  ignoreCaps?: boolean;
}

export interface InboundCall {
  callId: string;
  from?: string | null;
  to?: string | null;
  trunkId?: string | null;
  roomName?: string | null;
  /** The room's unique id (LiveKit's RM_...), when known; room names are reused, sids are not. */
  roomSid?: string | null;
  /** Where the call was first seen (sip-inbound, livekit, test); kept in the call log's metadata. */
  source: string;
  /** Extra facts worth keeping with the call (SIP attributes, provider ids). */
  details?: Record<string, unknown>;
  /** The SIP X- headers the trunk passed on (header name -> value), for the agent's metadata. */
  sipHeaders?: Record<string, string>;
  /**
   * The caller is in the call's room (a LiveKit join): when they joined, and, when this delivery
   * is to send the agent, how long its claim on the dispatch holds against other deliveries.
   * Recorded with the call, in the same statement.
   */
  joined?: { at: Date; claimDispatchForMs?: number };
}

/**
 * What happens to a call and why: everything its record needs. The journal keeps it as is (an
 * entry written before policies existed has no outcome: it was dispatched). A cap, when there is
 * one, is applied by the record; a journaled call was admitted (caps fail open).
 */
export type CallDecision = {
  call: InboundCall;
  fromNumber: string | null;
  toNumber: string | null;
  tenantId: string | null;
  campaignId: string | null;
  phoneNumberId: string | null;
  cap?: (CapCheck & { maxCallSeconds: number }) | null;
} & RoutedOutcome;

/**
 * Where the call's record is: in the database; pending (on disk in the journal, written once
 * the database answers); or unrecorded (neither could take it: only the log line has it).
 */
export type RecordState = "recorded" | "pending" | "unrecorded";

/** What happens to the call (its agent, or why none) and which records it belongs to. */
export type CallRouting = RoutingRecord & RoutedOutcome;
/** A call routed to an agent. */
export type DispatchedRouting = Extract<CallRouting, { outcome: "dispatched" }>;

interface RoutingRecord {
  callId: string;
  /** Who is calling, from their lead before this call; null without a lead (or before the record is written). */
  caller: CallerContext | null;
  /** The tenant's custom variables, overridden key by key by the campaign's. */
  variables: Record<string, unknown>;
  sipHeaders: Record<string, string>;
  callLogId: string | null;
  leadId: string | null;
  tenantId: string | null;
  campaignId: string | null;
  phoneNumberId: string | null;
  fromNumber: string | null;
  toNumber: string | null;
  record: RecordState;
  /** Why the call is not in the database yet, when it is not. */
  recordError?: unknown;
  /** True when this call id had been routed before and the stored decision was returned. */
  replayed: boolean;
  /** When the call was asked to claim its agent's dispatch (InboundCall.joined) and is recorded: what the claim found. */
  dispatchClaim: DispatchClaim | null;
}

/** The routing rule: the campaign's agent, else the tenant's default, else the system default. */
export function chooseAgent(entry: DirectoryEntry | null, systemDefaultAgent: string) {
  if (entry?.campaignActive && entry.campaignAgent) {
    return { agentName: entry.campaignAgent, agentSource: "campaign" as const };
  }
  if (entry?.tenantDefaultAgent) {
    return { agentName: entry.tenantDefaultAgent, agentSource: "tenant_default" as const };
  }
  return { agentName: systemDefaultAgent, agentSource: "system_default" as const };
}

/**
 * Decides who answers an inbound call and records it: the caller's lead created or refreshed,
 * the call logged. A call id seen before gets its stored decision back and nothing changes.
 * The caller always gets an agent: a database that fails or is slow never fails the call.
 */
export async function routeInboundCall(deps: RoutingDeps, call: InboundCall): Promise<CallRouting> {
  const started = performance.now();
  const { settings } = deps;
  const fromNumber = deps.readNumber(call.from);
  const toNumber = deps.readNumber(call.to);
  const entry = await deps.directory.lookup(toNumber);
  const usual = chooseAgent(entry, settings.systemDefaultAgent);
  const { outcome, cap } = applyPolicies(deps.directory.policies(entry), fromNumber, deps.now?.() ?? new Date(), usual);
  const decision: CallDecision = {
    call,
    fromNumber,
    toNumber,
    ...outcome,
    tenantId: entry?.tenantId ?? null,
    campaignId: entry?.campaignId ?? null,
    phoneNumberId: entry?.phoneNumberId ?? null,
    cap: cap && !deps.ignoreCaps ? { ...cap, maxCallSeconds: settings.maxCallSeconds } : null,
  };
  const context = { variables: deps.directory.variables(entry), sipHeaders: call.sipHeaders ?? {} };
  const routing = { ...(await recordCall(deps, decision)), ...context } as CallRouting;
  deps.onRouted?.(routing, (performance.now() - started) / 1000);
  const fields = { ...logFields(routing), source: call.source, room: call.roomName ?? null, ms: elapsed(started) };
  if (routing.record === "recorded") {
    deps.logger.info(fields, routing.replayed ? "call routed again (stored decision)" : "call routed");
  } else {
    // The log line keeps everything needed to rebuild the record by hand if even the journal failed.
    const level = routing.record === "pending" ? "warn" : "error";
    deps.logger[level](
      { ...fields, record: routing.record, trunk: call.trunkId ?? null, err: routing.recordError },
      routing.record === "pending" ? "call routed, record journaled: the database is away or slower than CALL_RECORD_WAIT_MS" : "call routed without a record",
    );
  }
  return routing;
}

/** A routed call as its record has it; routeInboundCall adds what the directory and the call say. */
type RecordedCall = Omit<RoutingRecord, "variables" | "sipHeaders"> & RoutedOutcome;

/** Writes the call, waiting at most recordWaitMs (unless capped); past that (or with the database down) journals it. */
async function recordCall(deps: RoutingDeps, decision: CallDecision): Promise<RecordedCall> {
  // While the database is known to be down this fails at once (db/client.ts): no caller waits on it.
  const write = deps.recorder.write(decision);
  let failure: unknown;
  try {
    // A capped call's outcome is the database's to decide: it waits for the answer (bounded by the
    // database's own deadlines), since a write left behind could still admit the call or overflow it
    // after this answer said otherwise. Only a database that fails it is failed open (journaled).
    const written = await (decision.cap ? write : withDeadline(write, deps.settings.recordWaitMs, "call record"));
    return { ...fromStored(decision.call.callId, written.row, !written.inserted), dispatchClaim: written.dispatchClaim } as RecordedCall;
  } catch (error) {
    // A write that finishes after all is harmless: the journal's replay finds the call there.
    write.catch(() => {});
    failure = error;
  }
  // A capped call the database could not count is admitted: caps fail open.
  const pending = {
    ...decision,
    callId: decision.call.callId,
    callLogId: null,
    leadId: null,
    caller: null,
    replayed: false,
    dispatchClaim: null,
    recordError: failure,
  };
  // Only a database that is away or slow is worth waiting out; one that refuses the record would refuse its replay too.
  if (!deps.journal || !isDatabaseUnavailable(failure)) return { ...pending, record: "unrecorded" };
  try {
    const entry: JournaledCall = { ...decision, entry: crypto.randomUUID() };
    await deps.journal.append(CALL_ENTRY, entry);
    // Once the write the caller stopped waiting for lands, this entry has nothing left to add.
    write.then(() => deps.lateRecords?.landed(entry.entry!), () => {});
    return { ...pending, record: "pending" };
  } catch (error) {
    return { ...pending, record: "unrecorded", recordError: error };
  }
}

/** The journal entry kind of a call's record. */
export const CALL_ENTRY = "call";

/** A call's journal entry: its decision, and the entry's own id (entries written before it had none). */
export type JournaledCall = CallDecision & { entry?: string };

/**
 * Journal entries of calls whose record was slower than the caller could wait for, and whose
 * write then landed after all. Replaying them would only find their calls there, at two statements
 * each, one entry after another, on a database that was just too busy: the replay skips them.
 * Entries, not calls: another entry of the same call (its LiveKit join, say) may carry facts that
 * write did not. Kept in memory only (a restart's replay writes them again, which changes
 * nothing); past `capacity` the oldest are forgotten, as are those replayed before their write landed.
 */
export interface LateRecords {
  landed(entry: string): void;
  /** Whether the entry's write landed; forgets it. */
  take(entry: string): boolean;
}

export function lateRecords(capacity = 10_000): LateRecords {
  const landed = new Set<string>();
  return {
    landed(entry) {
      if (landed.size >= capacity) landed.delete(landed.values().next().value!);
      landed.add(entry);
    },
    take: (entry) => landed.delete(entry),
  };
}

/** Writes a journaled call's record, as it was decided when the call came in (unless its own write landed late). */
export async function replayCallRecord(database: Database, decision: JournaledCall, at: Date, late?: LateRecords): Promise<void> {
  if (decision.entry && late?.take(decision.entry)) return;
  // The delivery that claimed the dispatch is long gone: a replay records the join, claims nothing.
  const joined = decision.call.joined && { at: new Date(decision.call.joined.at) };
  await writeCall(database, { ...decision, call: { ...decision.call, joined }, cap: null }, at);
}

function fromStored(callId: string, row: StoredCall, replayed: boolean): Omit<RoutingRecord, "dispatchClaim" | "variables" | "sipHeaders"> & RoutedOutcome {
  return {
    callId,
    caller: callerOf(row.caller),
    // The database holds the outcome's invariants (call_logs_dispatched_has_agent and the like).
    ...({ outcome: row.outcome, outcomeReason: row.outcome_reason, agentName: row.agent_name, agentSource: row.agent_source, transferTo: row.transfer_to } as RoutedOutcome),
    callLogId: row.call_log_id,
    leadId: row.lead_id,
    tenantId: row.tenant_id,
    campaignId: row.campaign_id,
    phoneNumberId: row.phone_number_id,
    fromNumber: row.from_number,
    toNumber: row.to_number,
    record: "recorded",
    replayed,
  };
}

function logFields(routing: CallRouting) {
  return {
    call_id: routing.callId,
    from: routing.fromNumber,
    to: routing.toNumber,
    tenant: routing.tenantId,
    campaign: routing.campaignId,
    outcome: routing.outcome,
    reason: routing.outcomeReason,
    agent: routing.agentName,
    decision: routing.agentSource,
    transfer_to: routing.transferTo,
    call_log_id: routing.callLogId,
    lead_id: routing.leadId,
  };
}

function elapsed(started: number) {
  return Math.round((performance.now() - started) * 10) / 10;
}
