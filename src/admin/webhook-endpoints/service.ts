// Webhook endpoints: where a tenant's systems hear of its calls and leads (webhooks/), and the
// deliveries kept for each. A secret is answered when made (create, rotate) and never again.
import { randomBytes } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { webhookEndpoints } from "../../db/schema";
import { BadRequestError } from "../../errors";
import {
  WebhookEndpoint,
  type WebhookEndpointCreate,
  type WebhookEndpointQuery,
  type WebhookEndpointUpdate,
} from "../../webhooks/model";
import type { AdminDeps } from "../context";
import type { Principal } from "../keys";
import { filter, listPage } from "../pages";
import { found, updateOrRead, viewOf } from "../rows";
import { tenantForCreate, visible } from "../scope";

/** A rotated-out secret keeps signing, alongside the new one, this long. */
const ROTATION_OVERLAP = "24 hours";

const endpointView = viewOf(WebhookEndpoint);
const withSecret = (row: typeof webhookEndpoints.$inferSelect) => ({ ...endpointView(row), secret: row.secret });
export const endpointTarget = (principal: Principal, id: string) =>
  and(eq(webhookEndpoints.id, id), visible(principal, webhookEndpoints.tenantId));

/** whsec_ and base64 of 32 random bytes, as the Standard Webhooks specification defines a secret. */
const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

/**
 * An absolute http(s) URL with a host (https only in production), as the URL parser reads it: what
 * is stored is what the worker connects to, and the database's check sees the scheme in lower case.
 */
function targetOf(url: string | undefined, requireHttps: boolean): string | undefined {
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BadRequestError(`url: not an absolute URL ("${url.slice(0, 100)}")`, "url");
  }
  const allowed = requireHttps ? ["https:"] : ["https:", "http:"];
  if (!allowed.includes(parsed.protocol)) {
    const why = requireHttps ? "must be https:// in production" : "must be https:// or http://";
    throw new BadRequestError(`url: ${why} (got ${parsed.protocol}//)`, "url");
  }
  if (!parsed.hostname) throw new BadRequestError("url: has no host", "url");
  return parsed.href;
}

export const listWebhookEndpoints = (db: Drizzle, principal: Principal, query: typeof WebhookEndpointQuery.static) =>
  listPage(
    db,
    webhookEndpoints,
    [
      visible(principal, webhookEndpoints.tenantId),
      filter(webhookEndpoints.tenantId, query.tenant_id),
      filter(webhookEndpoints.enabled, query.enabled),
    ],
    query,
    endpointView,
  );

export async function getWebhookEndpoint(db: Drizzle, principal: Principal, id: string) {
  return endpointView(found(await db.select().from(webhookEndpoints).where(endpointTarget(principal, id)), "webhook endpoint", id));
}

export async function createWebhookEndpoint(deps: AdminDeps, principal: Principal, body: typeof WebhookEndpointCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const url = targetOf(body.url, deps.requireHttpsWebhooks)!;
  const [row] = await deps.database.db
    .insert(webhookEndpoints)
    .values({
      tenantId,
      url,
      events: body.events ?? [],
      description: body.description ?? null,
      enabled: body.enabled ?? true,
      secret: newSecret(),
    })
    .returning();
  return withSecret(row!);
}

/** Enabling an endpoint again forgets why it was disabled and how long it had been failing. */
export async function updateWebhookEndpoint(deps: AdminDeps, principal: Principal, id: string, body: typeof WebhookEndpointUpdate.static) {
  const set = {
    url: targetOf(body.url, deps.requireHttpsWebhooks),
    events: body.events,
    description: body.description,
    enabled: body.enabled,
    ...(body.enabled === true ? { disabledReason: null, failingSince: null } : {}),
  };
  const rows = await updateOrRead(deps.database.db, webhookEndpoints, set, endpointTarget(principal, id), { updatedAt: new Date() });
  return endpointView(found(rows, "webhook endpoint", id));
}

/** Its deliveries and their attempts go with it. */
export async function deleteWebhookEndpoint(db: Drizzle, principal: Principal, id: string) {
  const rows = await db.delete(webhookEndpoints).where(endpointTarget(principal, id)).returning({ id: webhookEndpoints.id });
  found(rows, "webhook endpoint", id);
}

/**
 * A new secret, answered once; the one it replaces keeps signing beside it for 24 hours. Only one
 * old secret is kept: a second rotation within the 24 hours ends the first one's overlap.
 */
export async function rotateWebhookSecret(db: Drizzle, principal: Principal, id: string) {
  const rows = await db
    .update(webhookEndpoints)
    .set({
      previousSecret: sql`${webhookEndpoints.secret}`,
      previousSecretExpiresAt: sql`now() + interval '${sql.raw(ROTATION_OVERLAP)}'`,
      secret: newSecret(),
      updatedAt: new Date(),
    })
    .where(endpointTarget(principal, id))
    .returning();
  return withSecret(found(rows, "webhook endpoint", id));
}
