// Writes call records, many calls to a statement. A durable commit costs the database about the
// same for one row as for fifty, so calls that arrive while a write is in flight ride the next
// one together (group commit): under load each statement carries everything that queued behind
// the last, and an idle server still writes a lone call at once, with nothing added to its wait.
// Each caller is answered only once the statement holding its row has committed.
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { isDatabaseUnavailable } from "../db/errors";
import type { AgentSource } from "../db/schema";
import type { CallDecision } from "./service";

/** A call's record as stored: the decision that stands, whoever wrote it first. */
export type StoredCall = {
  call_log_id: string;
  lead_id: string | null;
  tenant_id: string | null;
  campaign_id: string | null;
  phone_number_id: string | null;
  agent_name: string;
  agent_source: AgentSource;
  from_number: string | null;
  to_number: string | null;
};

export interface WrittenCall {
  row: StoredCall;
  /** False when the call id was recorded before (an earlier delivery's decision stands). */
  inserted: boolean;
}

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
  return {
    write: (decision) =>
      new Promise<WrittenCall>((resolve, reject) => {
        queue.push({ decision, at: new Date(), resolve, reject });
        flush();
      }),
  };
}

/**
 * Writes a batch in one statement. A batch the database refuses (one bad row, a deadlock) is
 * written again call by call, so one call's problem is that call's alone; a database that is
 * down or slow fails them all, each caller's record then going to the journal.
 */
async function settleBatch(database: Database, batch: Queued[]): Promise<void> {
  try {
    const written = await writeCalls(database, batch);
    batch.forEach((queued, i) => queued.resolve(written[i]!));
  } catch (error) {
    if (batch.length === 1 || isDatabaseUnavailable(error)) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    await Promise.all(batch.map((queued) => settleBatch(database, [queued])));
  }
}

/** Writes one call as it was decided at `at` (a journaled call is written later than it came in). */
export async function writeCall(database: Database, decision: CallDecision, at: Date): Promise<WrittenCall> {
  const [written] = await writeCalls(database, [{ decision, at }]);
  return written!;
}

/**
 * One statement for the whole batch: record_calls (drizzle/0008_record_calls.sql) upserts each
 * caller's lead and inserts each call log, and answers the call logs it inserted. The calls it
 * did not insert were recorded before, by an earlier delivery or earlier in this very batch.
 */
async function writeCalls(database: Database, batch: { decision: CallDecision; at: Date }[]): Promise<WrittenCall[]> {
  const calls = batch.map(({ decision, at }, ord) => callRow(decision, at, ord));
  const inserted = await database.rows<StoredCall & { call_id: string }>(
    sql`select * from record_calls(${JSON.stringify(calls)}::jsonb)`,
  );
  const fresh = new Map(inserted.map((row) => [row.call_id, row]));
  // Call ids recorded before (or twice in this batch): the decision that stands is the stored one.
  const seen = calls.filter((call) => !fresh.has(call.call_id)).map((call) => call.call_id);
  const stored = seen.length > 0 ? await storedCalls(database, seen) : new Map<string, StoredCall>();
  return calls.map((call) => {
    const row = fresh.get(call.call_id);
    if (row) {
      // Only the first of a call id in the batch wrote it; any later one finds it stored.
      fresh.delete(call.call_id);
      stored.set(call.call_id, row);
      return { row, inserted: true };
    }
    const existing = stored.get(call.call_id);
    if (!existing) throw new Error(`call log for ${call.call_id} vanished`);
    return { row: existing, inserted: false };
  });
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
    agent_name: decision.agentName,
    agent_source: decision.agentSource,
    metadata: { source: call.source, ...call.details },
    created_at: at.toISOString(),
  };
}

async function storedCalls(database: Database, callIds: string[]): Promise<Map<string, StoredCall>> {
  const rows = await database.rows<StoredCall & { call_id: string }>(sql`
    select provider_call_id as call_id, id as call_log_id, lead_id, tenant_id, campaign_id, phone_number_id,
           agent_name, agent_source, from_number, to_number
    from call_logs
    where provider_call_id in (select jsonb_array_elements_text(${JSON.stringify(callIds)}::jsonb))`);
  return new Map(rows.map(({ call_id, ...row }) => [call_id, row]));
}
