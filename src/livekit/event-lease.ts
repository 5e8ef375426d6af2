// The event lease: LiveKit redelivers an event (same id) when an answer is slow or fails, so each
// delivery first takes the event's row in webhook_events. A row taken and not yet processed is held
// for HOLD_MS; a redelivery within that time finds it busy, a later one takes it over (its holder
// died). Taking the row, and what the room's earlier events tell, is one statement; so is every
// change after it: the database, not a read in between, decides who acts.
import { type SQL, sql } from "drizzle-orm";
import type { CallChange, RoomRef } from "../calls/lifecycle";
import type { Database } from "../db/client";

/**
 * How long a delivery may hold an event (here) or a call's dispatch claim (calls/recorder.ts)
 * before another may take it over. Longer than handling can take (each database step and the
 * dispatch are bounded, and the SDK's request timeout is shorter), shorter than LiveKit's retry
 * window (1+2+4+8 s), so the last redelivery of a crashed attempt finds both lapsed and acts.
 */
export const HOLD_MS = 10_000;

export type EventClaim = {
  /** owned: this delivery holds the event; done: acted on already; busy: another delivery holds it; unknown: no database to ask. */
  state: "owned" | "done" | "busy" | "unknown";
  /** The room (by sid) has already finished. */
  roomFinished: boolean;
  /** When an agent first joined the room, if one did before now. */
  agentJoinedAt: Date | null;
};

/** What a claim stores of the event: its room's later events look it up by room sid and action. */
export interface ClaimRequest {
  id: string;
  eventName: string;
  action: string;
  occurredAt: Date;
  room: RoomRef;
}

/**
 * A claim that tells nothing of its room: for an event with nothing to hold (no id), with no
 * database to hold it in, or taken by claimAndApply (whose changes read the room themselves).
 */
export const claimWithoutRoom = (state: EventClaim["state"]): EventClaim => ({ state, roomFinished: false, agentJoinedAt: null });

/** What the room's earlier events tell, as columns of a claim's statement (its snapshot: not the event it takes). */
const roomSoFar = (sid: string | null) => sql`
  exists (select 1 from webhook_events where room_sid = ${sid}::text and action = 'room_finished') as room_finished,
  ${agentJoinedAtIn(sid)} as agent_joined_at`;

/** When an agent first joined the room, as far as the processed events tell; null if none did. */
export const agentJoinedAtIn = (sid: string | null) => sql`(select min(occurred_at) from webhook_events
  where room_sid = ${sid}::text and action = 'agent_joined' and processed_at is not null)`;

type ClaimRow = { owned: boolean; done: boolean; room_finished: boolean; agent_joined_at: string | Date | null };

/** Taken by this delivery, done before it, or held by another. */
const stateOf = (row: { owned: boolean; done: boolean }) => (row.owned ? "owned" : row.done ? "done" : "busy");

const claimOf = (row: ClaimRow): EventClaim => ({
  state: stateOf(row),
  roomFinished: row.room_finished,
  agentJoinedAt: row.agent_joined_at ? new Date(row.agent_joined_at) : null,
});

/**
 * Takes the event for this delivery: new, or held by a delivery whose lease ran out. Tells
 * whether it was already acted on, and what already happened in its room, in one statement.
 */
export async function claimEvent(database: Database, { id, eventName, action, occurredAt, room }: ClaimRequest): Promise<EventClaim> {
  const [row] = await database.rows<ClaimRow>(sql`
    with claimed as (
      insert into webhook_events (id, event, action, occurred_at, room_name, room_sid)
      values (${id}, ${eventName}, ${action}, ${occurredAt.toISOString()}::timestamptz, ${room.name || null}, ${room.sid})
      on conflict (id) do update set claimed_at = now()
        where webhook_events.processed_at is null and webhook_events.claimed_at < now() - make_interval(secs => ${HOLD_MS / 1000})
      returning id
    )
    select exists (select 1 from claimed) as owned,
           exists (select 1 from webhook_events where id = ${id} and processed_at is not null) as done,
           ${roomSoFar(room.sid)}`);
  return claimOf(row!);
}

/** A claim that made its change in the same statement: the calls changed, and whether the event is done with it. */
export type AppliedClaim<Row> = { state: "owned" | "done" | "busy"; changed: Row[]; processed: boolean };

/**
 * For an event whose action is one change to the record: takes the event, makes the change and,
 * when `doneIf` holds, marks the event processed, in one statement, so a failure leaves none of
 * it. The change happens only when this delivery took the event. When `doneIf` does not hold
 * (the change found nothing it can act on), the event is held like any claim (claimEvent).
 */
export async function claimAndApply<Row>(
  database: Database,
  { id, eventName, action, occurredAt, room }: ClaimRequest,
  change: (claimed: SQL) => CallChange,
  doneIf: SQL = sql`true`,
): Promise<AppliedClaim<Row>> {
  const { ctes, changed } = change(sql`exists (select 1 from claimed)`);
  const [row] = await database.rows<{ owned: boolean; done: boolean; changed: Row[]; processed: boolean }>(sql`
    with claimed as (
      insert into webhook_events (id, event, action, occurred_at, room_name, room_sid, processed_at)
      values (${id}, ${eventName}, ${action}, ${occurredAt.toISOString()}::timestamptz, ${room.name || null}, ${room.sid},
              case when ${doneIf} then now() end)
      on conflict (id) do update set claimed_at = now(), processed_at = excluded.processed_at
        where webhook_events.processed_at is null and webhook_events.claimed_at < now() - make_interval(secs => ${HOLD_MS / 1000})
      returning processed_at is not null as processed
    ), ${ctes}
    select exists (select 1 from claimed) as owned,
           exists (select 1 from webhook_events where id = ${id} and processed_at is not null) as done,
           coalesce((select bool_or(processed) from claimed), false) as processed,
           (select coalesce(json_agg(c), '[]'::json) from ${sql.raw(changed)} c) as changed`);
  return { state: stateOf(row!), changed: row!.changed, processed: row!.processed };
}

/**
 * Whether the event is done, read afresh. A claim that waited on another delivery's uncommitted
 * statement for the same event judged it by a snapshot from before that commit, so "busy" may
 * already mean done.
 */
export async function eventProcessed(database: Database, id: string): Promise<boolean> {
  const rows = await database.rows(sql`select 1 as done from webhook_events where id = ${id} and processed_at is not null`);
  return rows.length > 0;
}

/** The event was acted on: no redelivery acts on it again. */
export async function markEventProcessed(database: Database, id: string): Promise<void> {
  await database.rows(sql`update webhook_events set processed_at = now() where id = ${id} returning id`);
}

/** Gives the event back unprocessed, so that LiveKit's redelivery acts on it. */
export async function releaseEvent(database: Database, id: string): Promise<void> {
  await database.rows(sql`delete from webhook_events where id = ${id} and processed_at is null returning id`);
}

/** webhook_events only has to outlive LiveKit's redeliveries and a room's lifetime. */
export async function pruneWebhookEvents(deps: { database: Database }, olderThanDays = 7): Promise<number> {
  const rows = await deps.database.rows(sql`
    delete from webhook_events where received_at < now() - make_interval(days => ${olderThanDays}) returning id`);
  return rows.length;
}
