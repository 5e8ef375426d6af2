// A call's life after its routing, as the record keeps it: answered when an agent is in the room,
// ended when the caller leaves or the room finishes, and a person's correction of its status.
// Every statement moves a call only forward, so repeated and late events change nothing.
import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { CALL_STATUS_RANK, type CallOutcome, type CallStatus } from "../db/schema";

/** A room as events name it: by its sid when they carry one, else by its (reusable) name. */
export interface RoomRef {
  name: string;
  sid: string | null;
}

/** The calls of this room and no other: by sid, so a later room of the same name is not matched. */
const inRoom = (room: RoomRef) => (room.sid ? sql`room_sid = ${room.sid}` : sql`room_name = ${room.name}`);

/**
 * A change to calls as common table expressions for a statement of the caller's: `changed` names
 * the one whose rows are the calls changed. `onlyIf`, a condition the caller's own expressions
 * decide (an event claimed in the same statement), makes the change happen only when it holds.
 */
export interface CallChange {
  ctes: SQL;
  changed: string;
}

export interface CallAnswer {
  room: RoomRef;
  answeredAt: Date;
  agentIdentity?: string;
}

/**
 * Whether the call is still ringing, checked on the rows the room's index found. Written as an
 * expression so that no index can answer it: every call rings first, and until the next vacuum
 * call_logs_status_created_idx keeps an entry 'ringing' for each call that rang since. Given
 * statistics taken while no call was ringing, the planner expects one ringing call and prefers that
 * index to the room's, and then reads all of those entries for each agent's join: their index pages,
 * and the rows too until a scan has marked them dead (tests/record-calls-scale.test.ts: 30,000 pages
 * once 30,000 calls had rung in its transaction; 143 pages per join in the LiveKit benchmark, 55 now).
 */
const stillRinging = sql`(status || '') = 'ringing'`;

/** An agent is in the room: the ringing call there is answered. Status only moves forward. */
export function callAnsweredChange(answer: CallAnswer, onlyIf: SQL = sql`true`): CallChange {
  const ctes = sql`answered as (
    update call_logs
    set status = 'in_progress',
        answered_at = coalesce(answered_at, ${answer.answeredAt.toISOString()}::timestamptz),
        metadata = metadata || jsonb_build_object('answered_by', ${answer.agentIdentity ?? null}::text),
        updated_at = now()
    where ${inRoom(answer.room)} and ${stillRinging} and ${onlyIf}
    returning id)`;
  return { ctes, changed: "answered" };
}

/** Whether the call with this provider id has a record, as SQL for a statement of the caller's. */
export const callRecorded = (callId: string): SQL => sql`exists (select 1 from call_logs where provider_call_id = ${callId})`;

/** A call a change touched: `status` and `outcome` are there for calls that ended. */
export type ChangedCall = { id: string; status?: string; outcome?: CallOutcome };

/** Makes a change in a statement of its own; answers the calls it changed. */
export function applyCallChange(database: Database, { ctes, changed }: CallChange): Promise<ChangedCall[]> {
  return database.rows<ChangedCall>(sql`with ${ctes} select * from ${sql.raw(changed)}`);
}

/** The ringing call in the room answered (callAnsweredChange); answers how many were. */
export const recordCallAnswered = async (database: Database, answer: CallAnswer) => (await applyCallChange(database, callAnsweredChange(answer))).length;

export interface CallEnd {
  /** End the call with this provider id, or every unfinished call in this room. */
  callId?: string;
  room?: RoomRef;
  endedAt: Date;
  /** When the caller joined, if the ending event knows it better than the record does. */
  joinedAt?: Date | null;
  /** When an agent answered, if that is known from elsewhere (an agent join the record missed); SQL when a statement of the caller's knows it. */
  answeredAt?: Date | SQL | null;
  disconnectReason: string;
  /** Final status when no agent ever answered: abandoned (caller hung up) or failed. */
  unansweredStatus: "abandoned" | "failed";
}

/**
 * Closes calls: ended time, duration from the caller's join, reason and final status
 * (completed when an agent answered, or the call was transferred), and moves the caller's lead on.
 * Calls already ended are left alone, so repeated and late events change nothing.
 */
export function callEndedChange(end: CallEnd, onlyIf: SQL = sql`true`): CallChange {
  if (!end.callId && !end.room) throw new Error("a call's end needs a callId or a room");
  const endedAt = end.endedAt.toISOString();
  const joinedAt = end.joinedAt ? end.joinedAt.toISOString() : null;
  const answeredAt = end.answeredAt instanceof Date ? end.answeredAt.toISOString() : (end.answeredAt ?? null);
  const which = end.callId ? sql`provider_call_id = ${end.callId}` : inRoom(end.room!);
  const ctes = sql`ended as (
      update call_logs
      set ended_at = ${endedAt}::timestamptz,
          caller_joined_at = coalesce(caller_joined_at, ${joinedAt}::timestamptz),
          -- Negative (events out of order) is 0; beyond a week is no call's duration: left unknown.
          duration_ms = (select case when d <= 604800000 then greatest(0, d)::int end
                         from (select round(extract(epoch from (${endedAt}::timestamptz
                                 - coalesce(caller_joined_at, ${joinedAt}::timestamptz))) * 1000) as d) as span),
          disconnect_reason = ${end.disconnectReason},
          answered_at = coalesce(answered_at, ${answeredAt}::timestamptz),
          status = case when coalesce(answered_at, ${answeredAt}::timestamptz) is not null or outcome = 'transferred' then 'completed'
                        else ${end.unansweredStatus} end,
          updated_at = now()
      where ${which} and ended_at is null and ${onlyIf}
      returning id, lead_id, status, ended_at, outcome
    ), lead_moved as (
      update leads
      set status = case when ended.status = 'completed' then 'contacted' else 'missed' end,
          last_call_at = greatest(leads.last_call_at, ended.ended_at),
          updated_at = now()
      from ended
      where leads.id = ended.lead_id
      returning leads.id
    )`;
  return { ctes, changed: "ended" };
}

/** Closes calls (callEndedChange) in one statement; answers the calls it ended. */
export const recordCallEnded = (database: Database, end: CallEnd) => applyCallChange(database, callEndedChange(end));

/** A status's place in the only order calls move through, as SQL over the status column. */
const statusRank = sql.raw(
  `case status ${Object.entries(CALL_STATUS_RANK)
    .map(([status, rank]) => `when '${status}' then ${rank}`)
    .join(" ")} end`,
);

/**
 * A person's correction of a call's status, held to the webhooks' rule: forward only (a final
 * status is final). Returns false when the call is already at or past that point.
 */
export async function correctCallStatus(
  database: Database,
  fix: { id: string; status: CallStatus; /** Only a call of this tenant. */ tenantId?: string },
): Promise<boolean> {
  const rank = CALL_STATUS_RANK[fix.status];
  const final = rank === CALL_STATUS_RANK.completed;
  const rows = await database.rows(sql`
    update call_logs
    set status = ${fix.status},
        answered_at = case when ${fix.status} = 'in_progress' then coalesce(answered_at, now()) else answered_at end,
        ended_at = case when ${final} then coalesce(ended_at, now()) else ended_at end,
        updated_at = now()
    where id = ${fix.id} and ${statusRank} < ${rank}
      and (${fix.tenantId ?? null}::uuid is null or tenant_id = ${fix.tenantId ?? null}::uuid)
    returning id`);
  return rows.length > 0;
}
