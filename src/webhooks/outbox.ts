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
  occurred_at: string;
  data: Record<string, unknown>;
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
      returning d.id, d.event_id, d.endpoint_id, d.attempts
    )
    select c.id, c.attempts, e.url, e.secret,
           case when e.previous_secret_expires_at > now() then e.previous_secret end as previous_secret,
           o.type, o.occurred_at::text as occurred_at, o.data
    from claimed c
    join webhook_endpoints e on e.id = c.endpoint_id
    join outbox_events o on o.id = c.event_id
    order by o.id`);
}

export interface AttemptRecord {
  deliveryId: string;
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
 * disables it, saying why). Returns the endpoint's reason when this attempt disabled it.
 */
export async function recordAttempt(database: Database, a: AttemptRecord): Promise<{ disabledReason: string | null } | undefined> {
  const status = a.delivered ? "delivered" : a.nextAttemptAt ? "pending" : "failed";
  const [row] = await database.rows<{ enabled: boolean; disabled_reason: string | null }>(sql`
    with delivery as (
      update webhook_deliveries set attempts = attempts + 1, status = ${status},
             next_attempt_at = coalesce(${a.nextAttemptAt?.toISOString() ?? null}::timestamptz, next_attempt_at),
             leased_until = null, last_status_code = ${a.statusCode}, last_error = ${a.error}, last_latency_ms = ${a.latencyMs},
             delivered_at = case when ${a.delivered} then now() else delivered_at end
      where id = ${a.deliveryId} and status = 'pending'
      returning id, attempts, endpoint_id
    ), attempt as (
      insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms, error)
      select id, attempts, ${a.statusCode}, ${a.latencyMs}, ${a.error} from delivery
    ), health as (
      select e.id, coalesce(e.failing_since, now()) as failing_since from webhook_endpoints e join delivery d on e.id = d.endpoint_id
    )
    update webhook_endpoints e set
      failing_since = case when ${a.delivered} then null else h.failing_since end,
      enabled = e.enabled and not ${a.gone} and (${a.delivered} or h.failing_since > now() - ${a.disableAfterMs} * interval '1 millisecond'),
      disabled_reason = case
        when ${a.gone} then 'the receiver answered 410 Gone'
        when not ${a.delivered} and h.failing_since <= now() - ${a.disableAfterMs} * interval '1 millisecond'
          then 'failing since ' || to_char(h.failing_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ' without a success'
        else e.disabled_reason end,
      updated_at = case when ${a.gone} or not ${a.delivered} then now() else e.updated_at end
    from health h where e.id = h.id
    returning e.enabled, e.disabled_reason`);
  if (!row) return undefined;
  return { disabledReason: row.enabled ? null : row.disabled_reason };
}

/** Gives a claimed delivery back untried (the process is stopping): the next worker takes it at once. */
export async function releaseClaims(database: Database, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await database.rows(sql`update webhook_deliveries set leased_until = null
    where id in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)}) and status = 'pending'`);
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
