// An endpoint's deliveries, newest first, each with its attempts (kept 30 days), and a person's
// retry of one: it is tried again at once, with the same webhook-id.
import { and, asc, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { outboxEvents, webhookAttempts, webhookDeliveries, webhookEndpoints } from "../../db/schema";
import { ConflictError } from "../../errors";
import { WebhookAttempt, type WebhookDelivery, type WebhookDeliveryQuery } from "../../webhooks/model";
import type { Principal } from "../keys";
import { filter, listPage } from "../pages";
import { found, viewOf } from "../rows";
import { visible } from "../scope";
import { endpointTarget } from "./service";

type DeliveryRow = typeof webhookDeliveries.$inferSelect;
const attemptView = viewOf(WebhookAttempt);
const iso = (time: Date | null) => time?.toISOString() ?? null;

export async function listDeliveries(db: Drizzle, principal: Principal, endpointId: string, query: typeof WebhookDeliveryQuery.static) {
  found(await db.select({ id: webhookEndpoints.id }).from(webhookEndpoints).where(endpointTarget(principal, endpointId)), "webhook endpoint", endpointId);
  const page = await listPage(
    db,
    webhookDeliveries,
    [eq(webhookDeliveries.endpointId, endpointId), filter(webhookDeliveries.status, query.status)],
    query,
    (row: DeliveryRow) => row,
  );
  return { data: await withEventsAndAttempts(db, page.data), next_cursor: page.next_cursor };
}

/** The page's event types and attempts, two reads for the whole page. */
async function withEventsAndAttempts(db: Drizzle, rows: DeliveryRow[]): Promise<(typeof WebhookDelivery.static)[]> {
  if (rows.length === 0) return [];
  const events = await db
    .select({ id: outboxEvents.id, type: outboxEvents.type })
    .from(outboxEvents)
    .where(inArray(outboxEvents.id, rows.map((r) => r.eventId)));
  const attempts = await db
    .select()
    .from(webhookAttempts)
    .where(inArray(webhookAttempts.deliveryId, rows.map((r) => r.id)))
    .orderBy(asc(webhookAttempts.attempt), asc(webhookAttempts.id));
  const typeOf = new Map(events.map((e) => [e.id, e.type]));
  return rows.map((row) => deliveryView(row, typeOf.get(row.eventId) ?? "", attempts.filter((a) => a.deliveryId === row.id).map(attemptView)));
}

const deliveryView = (row: DeliveryRow, type: string, attemptLog: (typeof WebhookAttempt.static)[]): typeof WebhookDelivery.static => ({
  id: row.id,
  webhook_id: `msg_${row.id}`,
  endpoint_id: row.endpointId,
  event_type: type,
  subject: row.subject,
  status: row.status,
  attempts: row.attempts,
  last_status_code: row.lastStatusCode,
  last_latency_ms: row.lastLatencyMs,
  last_error: row.lastError,
  next_attempt_at: row.status === "pending" ? iso(row.nextAttemptAt) : null,
  delivered_at: iso(row.deliveredAt),
  created_at: row.createdAt.toISOString(),
  attempt_log: attemptLog,
});

/**
 * Due now, whatever became of it before; refused while its endpoint is disabled (it would not be
 * sent) and while an attempt is in flight (a second copy would race the first, and a call's next
 * event could overtake it).
 */
export async function retryDelivery(db: Drizzle, principal: Principal, id: string) {
  const target = and(eq(webhookDeliveries.id, id), visible(principal, webhookDeliveries.tenantId));
  const [delivery] = await db
    .select({ enabled: webhookEndpoints.enabled })
    .from(webhookDeliveries)
    .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
    .where(target);
  if (delivery && !delivery.enabled) {
    throw new ConflictError(`webhook delivery ${id}: its endpoint is disabled; enable it (PATCH enabled: true) first`);
  }
  const rows = await db
    .update(webhookDeliveries)
    .set({ status: "pending", nextAttemptAt: sql`now()`, leasedUntil: null })
    .where(and(target, or(isNull(webhookDeliveries.leasedUntil), lte(webhookDeliveries.leasedUntil, sql`now()`))))
    .returning();
  if (delivery && rows.length === 0) {
    throw new ConflictError(`webhook delivery ${id}: an attempt is in flight; retry once it has been recorded`);
  }
  const row = found(rows, "webhook delivery", id);
  return (await withEventsAndAttempts(db, [row]))[0]!;
}
