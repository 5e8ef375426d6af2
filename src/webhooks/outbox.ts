// The outbox's statements: claiming due deliveries (FOR UPDATE SKIP LOCKED, so every process can
// deliver and each delivery is taken by one), recording an attempt, and forgetting old ones.
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";

export interface ClaimedDelivery {
  id: string;
  /** Attempts made before this one. */
  attempts: number;
  url: string;
  secret: string;
  /** A rotated-out secret still inside its 24 hours. */
  previous_secret: string | null;
  type: string;
  /** ISO 8601, UTC. */
  occurred_at: string;
  data: Record<string, unknown>;
  /** The claim's lease, as written (ISO 8601): the attempt is recorded only while it is still this worker's. */
  lease: string;
}

/**
 * Takes up to `batch` due deliveries of enabled endpoints, holding each for `leaseMs`: a worker
 * that dies mid-attempt lets go when that lapses, and the delivery is tried again (same
 * webhook-id). A delivery waits while an earlier event of the same call or lead for the same
 * endpoint is pending, so one subject's events reach an endpoint in order.
 */
export function claimDue(database: Database, batch: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  return database.rows<ClaimedDelivery & Record<string, unknown>>(sql`
    with due as (
      select d.id from webhook_deliveries d
      join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
      where d.status = 'pending' and d.next_attempt_at <= now() and (d.leased_until is null or d.leased_until < now())
        and not exists (
          select 1 from webhook_deliveries p
          where p.endpoint_id = d.endpoint_id and p.subject = d.subject and p.status = 'pending' and p.event_id < d.event_id)
      order by d.next_attempt_at
      limit ${batch}
      for update of d skip locked
    ), claimed as (
      update webhook_deliveries d set leased_until = now() + ${leaseMs} * interval '1 millisecond'
      from due where d.id = due.id
      returning d.id, d.event_id, d.endpoint_id, d.attempts, d.leased_until
    )
    select c.id, c.attempts, e.url, e.secret,
           case when e.previous_secret_expires_at > now() then e.previous_secret end as previous_secret,
           -- As JSON writes them: ISO 8601 whatever the session's DateStyle, microseconds kept.
           o.type, to_json(o.occurred_at)#>>'{}' as occurred_at, o.data, to_json(c.leased_until)#>>'{}' as lease
    from claimed c
    join webhook_endpoints e on e.id = c.endpoint_id
    join outbox_events o on o.id = c.event_id
    order by o.id`);
}

export interface AttemptRecord {
  deliveryId: string;
  /** The claim's lease: a worker whose lease lapsed (another took the delivery over) records nothing. */
  lease: string;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  /** When to try again; null: no more tries (delivered, or the schedule is spent). */
  nextAttemptAt: Date | null;
  delivered: boolean;
  /** 410 Gone: the receiver says the endpoint is no more. */
  gone: boolean;
  /** Failing this long without a success disables the endpoint. */
  disableAfterMs: number;
}

/**
 * Records an attempt and its consequences in one statement: the attempt's row, the delivery's
 * state, and the endpoint's health (a success clears failing_since; 410 or failing for too long
 * disables it, saying why). The health is computed from the endpoint's row as this statement
 * updates it (after any concurrent attempt's record), never from the statement's snapshot, so a
 * failure recorded alongside a success or a re-enable cannot put back an old failing_since.
 * Returns undefined when nothing was recorded (the lease was lost), else the endpoint's reason
 * when this attempt disabled it.
 */
export async function recordAttempt(database: Database, a: AttemptRecord): Promise<{ disabledReason: string | null } | undefined> {
  const status = a.delivered ? "delivered" : a.nextAttemptAt ? "pending" : "failed";
  const [row] = await database.rows<{ enabled: boolean; disabled_reason: string | null }>(sql`
    with delivery as (
      update webhook_deliveries set attempts = attempts + 1, status = ${status},
             next_attempt_at = coalesce(${a.nextAttemptAt?.toISOString() ?? null}::timestamptz, next_attempt_at),
             leased_until = null, last_status_code = ${a.statusCode}, last_error = ${a.error}, last_latency_ms = ${a.latencyMs},
             delivered_at = case when ${a.delivered} then now() else delivered_at end
      where id = ${a.deliveryId} and status = 'pending' and leased_until = ${a.lease}::timestamptz
      returning id, attempts, endpoint_id
    ), attempt as (
      insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms, error)
      select id, attempts, ${a.statusCode}, ${a.latencyMs}, ${a.error} from delivery
    )
    update webhook_endpoints e set
      failing_since = case when ${a.delivered} then null else coalesce(e.failing_since, now()) end,
      enabled = e.enabled and not ${a.gone} and (${a.delivered} or coalesce(e.failing_since, now()) > now() - ${a.disableAfterMs} * interval '1 millisecond'),
      disabled_reason = case
        when ${a.gone} then 'the receiver answered 410 Gone'
        when not ${a.delivered} and e.failing_since <= now() - ${a.disableAfterMs} * interval '1 millisecond'
          then 'failing since ' || to_char(e.failing_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ' without a success'
        else e.disabled_reason end,
      updated_at = case when ${a.gone} or not ${a.delivered} then now() else e.updated_at end
    from delivery d where e.id = d.endpoint_id
    returning e.enabled, e.disabled_reason`);
  if (!row) return undefined;
  return { disabledReason: row.enabled ? null : row.disabled_reason };
}

/** Gives a claimed delivery back untried (the process is stopping): the next worker takes it at once. */
export async function releaseClaim(database: Database, delivery: Pick<ClaimedDelivery, "id" | "lease">): Promise<void> {
  await database.rows(sql`update webhook_deliveries set leased_until = null
    where id = ${delivery.id} and status = 'pending' and leased_until = ${delivery.lease}::timestamptz`);
}

/** Deliveries no longer pending and older than the retention, with their attempts and events. */
export async function forgetOld(database: Database, retentionMs: number): Promise<void> {
  const before = sql`now() - ${retentionMs} * interval '1 millisecond'`;
  await database.rows(sql`delete from webhook_deliveries where created_at < ${before} and status <> 'pending'`);
  await database.rows(sql`delete from outbox_events o where o.created_at < ${before}
    and not exists (select 1 from webhook_deliveries d where d.event_id = o.id)`);
}

/** Pending deliveries of enabled endpoints, and how long the longest-due has waited. */
export async function outboxDepth(database: Database): Promise<{ depth: number; oldestDueSeconds: number }> {
  const [row] = await database.rows<{ depth: number; oldest: number | null }>(sql`
    select count(*)::int as depth,
           coalesce(extract(epoch from now() - min(d.next_attempt_at) filter (where d.next_attempt_at <= now())), 0)::float8 as oldest
    from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
    where d.status = 'pending'`);
  return { depth: Number(row?.depth ?? 0), oldestDueSeconds: Number(row?.oldest ?? 0) };
}
