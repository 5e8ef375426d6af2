// Writes call records, many calls to a statement. A durable commit costs the database about the
// same for one row as for fifty, so calls that arrive while a write is in flight ride the next
// one together (group commit): under load each statement carries everything that queued behind
// the last, and an idle server still writes a lone call at once, with nothing added to its wait.
// Each caller is answered only once the statement holding its row has committed.
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { isDatabaseUnavailable } from "../db/errors";
import type { AgentSource, CallOutcome, CallStatus, OutcomeReason } from "../db/schema";
import { capQueue } from "./cap-queue";
import type { RoutedOutcome } from "./policy";
import type { CallDecision } from "./service";

/** A call's record as stored: the decision that stands, whoever wrote it first. */
export type StoredCall = {
  call_log_id: string;
  lead_id: string | null;
  tenant_id: string | null;
  campaign_id: string | null;
  phone_number_id: string | null;
  agent_name: string | null;
  agent_source: AgentSource | null;
  from_number: string | null;
  to_number: string | null;
  outcome: CallOutcome;
  outcome_reason: OutcomeReason | null;
  transfer_to: string | null;
  /** The caller's lead as it was before this call (null without a lead), kept in the call's metadata. */
  caller: StoredCaller | null;
};

/** The caller's lead as record_calls saw it before the call (0010_policies.sql). */
export type StoredCaller = {
  lead_id: string;
  name: string | null;
  email: string | null;
  status: string | null;
  previous_calls: number;
  last_call_at: string | null;
};

export interface WrittenCall {
  row: StoredCall;
  /** False when the call id was recorded before (an earlier delivery's decision stands). */
  inserted: boolean;
  /** For a call whose record was asked to claim its agent's dispatch: what the claim found. */
  dispatchClaim: DispatchClaim | null;
}

/**
 * Whether this delivery may send the call's agent (claimed), or why not; and how many deliveries
 * have taken the claim so far, this one included.
 */
export type DispatchClaim = { outcome: "claimed" | "already_dispatched" | "call_ended" | "in_progress"; attempts: number };

export interface CallRecorder {
  /** Records the call (its lead created or refreshed), sharing a statement with concurrent calls. */
  write(decision: CallDecision): Promise<WrittenCall>;
}

export interface RecorderOptions {
  /** Statements in flight at once: more overlap the network's round trip, one suits an in-process database. */
  lanes: number;
  /**
   * Hold a batch until the event loop's next turn before writing it. For an in-process database,
   * whose statements run synchronously: no request is read while one runs, so without the wait
   * every batch would hold the one call that started it.
   */
  gather: boolean;
  /** Calls in one statement at most. */
  maxBatch: number;
}

interface Queued {
  decision: CallDecision;
  at: Date;
  resolve: (written: WrittenCall) => void;
  reject: (error: unknown) => void;
}

export function createCallRecorder(database: Database, options: RecorderOptions): CallRecorder {
  const queue: Queued[] = [];
  let inFlight = 0;
  let gathering = false;
  const flush = () => {
    if (options.gather && !gathering && inFlight < options.lanes && queue.length > 0) {
      gathering = true;
      setImmediate(() => {
        gathering = false;
        write();
      });
      return;
    }
    if (!gathering) write();
  };
  const write = () => {
    while (inFlight < options.lanes && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch);
      inFlight++;
      settleBatch(database, batch).finally(() => {
        inFlight--;
        flush();
      });
    }
  };
  const inTurn = capQueue();
  const enqueue = (decision: CallDecision) =>
    new Promise<WrittenCall>((resolve, reject) => {
      queue.push({ decision, at: new Date(), resolve, reject });
      flush();
    });
  return {
    write: (decision) => {
      if (!decision.cap) return enqueue(decision);
      // A capped call is counted against its cap and written in one statement of its own (see
      // writeCall), in its turn; it is recorded as of when it came in, however long it waited.
      const at = new Date();
      return inTurn(decision, () => writeCall(database, decision, at));
    },
  };
}

/** A call's record written, or why not. */
type Settled = { ok: true; written: WrittenCall } | { ok: false; error: unknown };

/**
 * Writes a batch. A batch the database refuses (one bad value) is written again call by call,
 * one after the other within this lane, so one call's problem is that call's alone; a database
 * that is down or slow fails them all, each caller's record then going to the journal.
 */
async function settleBatch(database: Database, batch: Queued[]): Promise<void> {
  let settled: Settled[];
  try {
    settled = await writeCalls(database, batch);
  } catch (error) {
    if (batch.length === 1 || isDatabaseUnavailable(error)) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    for (const queued of batch) await settleBatch(database, [queued]);
    return;
  }
  batch.forEach((queued, i) => {
    const outcome = settled[i]!;
    if (outcome.ok) queued.resolve(outcome.written);
    else queued.reject(outcome.error);
  });
}

/**
 * Writes one call as it was decided at `at` (a journaled call is written later than it came in).
 * A call under a cap is admitted or overflowed by the database (record_capped_call, 0010_policies.sql).
 */
export async function writeCall(database: Database, decision: CallDecision, at: Date): Promise<WrittenCall> {
  const insert = decision.cap ? cappedInsert(decision.cap) : undefined;
  const [outcome] = await writeCalls(database, [{ decision, at }], insert);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.written;
}

/**
 * One statement for the whole batch: record_calls (drizzle/0008_record_calls.sql) upserts each
 * caller's lead and inserts each call log, and answers the call logs it inserted; if it fails,
 * nothing of the batch was written. The calls it did not insert were recorded before, by an
 * earlier delivery or earlier in this very batch: a second statement reads them (and applies a
 * LiveKit join's facts to them), only when there are any. Its failure is theirs alone: the
 * calls the first statement inserted are recorded whatever happens to it.
 */
async function writeCalls(
  database: Database,
  batch: { decision: CallDecision; at: Date }[],
  insert = (calls: CallRow[]) => sql`select * from record_calls(${JSON.stringify(calls)}::jsonb)`,
): Promise<Settled[]> {
  const calls = batch.map(({ decision, at }, ord) => callRow(decision, at, ord));
  const inserted = await database.rows<StoredRow>(insert(calls));
  const fresh = new Map(inserted.map((row) => [row.call_id, row]));
  const written: (WrittenCall | null)[] = calls.map((call) => {
    const row = fresh.get(call.call_id);
    // Only the first of a call id in the batch wrote it; a later one is a repeat, like any other.
    fresh.delete(call.call_id);
    return row ? { row, inserted: true, dispatchClaim: call.claim_hold_ms === null ? null : { outcome: "claimed", attempts: 1 } } : null;
  });
  const repeats = calls.filter((_, i) => !written[i]);
  let stored = new Map<string, StoredRow>();
  let revisitError: unknown;
  if (repeats.length > 0) {
    try {
      stored = await revisitCalls(database, repeats);
    } catch (error) {
      revisitError = error;
    }
  }
  return calls.map((call, i): Settled => {
    if (written[i]) return { ok: true, written: written[i] };
    if (revisitError) return { ok: false, error: revisitError };
    const row = stored.get(call.call_id);
    if (!row) return { ok: false, error: new Error(`call log for ${call.call_id} vanished`) };
    // A claim is taken once: the same call id again in this batch finds it held.
    stored.set(call.call_id, { ...row, dispatch_claimed: false });
    return { ok: true, written: { row, inserted: false, dispatchClaim: call.claim_hold_ms === null ? null : claimOf(row) } };
  });
}

type CallRow = ReturnType<typeof callRow>;

/** The statement that writes a lone capped call: the cap's overflows as the columns they change. */
function cappedInsert(cap: NonNullable<CallDecision["cap"]>) {
  const limits = {
    tenant_limit: cap.tenant?.limit,
    number_limit: cap.number?.limit,
    number_overflow: cap.number && outcomeColumns(cap.number.overflow),
    tenant_overflow: cap.tenant && outcomeColumns(cap.tenant.overflow),
    max_call_seconds: cap.maxCallSeconds,
  };
  return ([call]: CallRow[]) => {
    const scope = { ...limits, tenant_id: call!.tenant_id, phone_number_id: call!.phone_number_id };
    return sql`select * from record_capped_call(${JSON.stringify(call)}::jsonb, ${JSON.stringify(scope)}::jsonb)`;
  };
}

/**
 * What a call's record starts as, by outcome, and what its caller's lead becomes. A rejected call
 * is over when routed. A transferred one goes on, to its destination: it ends like any call, when
 * the caller leaves (then completed: Switchboard's part was done).
 */
const STARTS: Record<CallOutcome, { ended_status: CallStatus | null; end_reason: string | null; lead_status: string }> = {
  dispatched: { ended_status: null, end_reason: null, lead_status: "calling" },
  rejected: { ended_status: "failed", end_reason: "REJECTED", lead_status: "missed" },
  transferred: { ended_status: null, end_reason: null, lead_status: "transferred" },
};

/** The record's columns for an outcome (record_calls' input); a journal entry older than outcomes was dispatched. */
function outcomeColumns(outcome: Partial<RoutedOutcome>) {
  const kind = outcome.outcome ?? "dispatched";
  return {
    outcome: kind,
    outcome_reason: outcome.outcomeReason ?? null,
    agent_name: outcome.agentName ?? null,
    agent_source: outcome.agentSource ?? null,
    transfer_to: outcome.transferTo ?? null,
    // Spam is not a lead: a caller refused by a blocklist, or for withholding their number, makes none.
    makes_lead: outcome.outcomeReason !== "blocklist" && outcome.outcomeReason !== "anonymous_blocked",
    ...STARTS[kind],
  };
}

function callRow(decision: CallDecision, at: Date, ord: number) {
  const { call } = decision;
  return {
    ord,
    call_id: call.callId,
    room_name: call.roomName ?? null,
    room_sid: call.roomSid ?? null,
    trunk_id: call.trunkId ?? null,
    from_number: decision.fromNumber,
    from_raw: call.from ?? null,
    to_number: decision.toNumber,
    to_raw: call.to ?? null,
    tenant_id: decision.tenantId,
    campaign_id: decision.campaignId,
    phone_number_id: decision.phoneNumberId,
    ...outcomeColumns(decision),
    metadata: { source: call.source, ...call.details },
    created_at: at.toISOString(),
    caller_joined_at: call.joined?.at.toISOString() ?? null,
    claim_dispatch: call.joined?.claimDispatchForMs !== undefined,
    claim_hold_ms: call.joined?.claimDispatchForMs ?? null,
  };
}

function claimOf(row: StoredRow): DispatchClaim {
  const outcome = row.dispatch_claimed ? "claimed" : row.dispatched ? "already_dispatched" : row.ended ? "call_ended" : "in_progress";
  return { outcome, attempts: Number(row.dispatch_attempts) };
}

type StoredRow = StoredCall & {
  call_id: string;
  dispatch_claimed: boolean;
  dispatch_attempts?: number;
  dispatched?: boolean;
  ended?: boolean;
};

/**
 * Reads calls recorded before. A repeat that is a LiveKit join first records the join on the
 * call (first values win) and, when asked, takes the right to dispatch its agent: only while no
 * agent was dispatched, the call goes on, and no other delivery holds the claim. A claim this
 * statement took shows as dispatch_claimed. revisit_calls (drizzle/0014_revisit_calls_by_index.sql)
 * runs it with record_calls' planner settings.
 */
async function revisitCalls(database: Database, calls: CallRow[]): Promise<Map<string, StoredRow>> {
  const rows = await database.rows<StoredRow>(sql`select * from revisit_calls(${JSON.stringify(calls)}::jsonb)`);
  return new Map(rows.map((row) => [row.call_id, row]));
}
