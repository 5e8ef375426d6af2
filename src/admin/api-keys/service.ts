// API keys over HTTP: listed and described (never the keys themselves), issued, revoked (keys.ts).
import { and, eq } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { apiKeys } from "../../db/schema";
import { BadRequestError } from "../../errors";
import { apiKeyView, createApiKey, type Principal } from "../keys";
import type { ApiKeyCreate, ApiKeyQuery } from "../model";
import { filter, listPage } from "../pages";
import { found } from "../rows";
import { assertAdmin, tenantForCreate, visible } from "../scope";

export const listApiKeys = (db: Drizzle, principal: Principal, query: typeof ApiKeyQuery.static) =>
  listPage(
    db,
    apiKeys,
    [visible(principal, apiKeys.tenantId), filter(apiKeys.tenantId, query.tenant_id)],
    query,
    apiKeyView,
  );

export async function getApiKey(db: Drizzle, principal: Principal, id: string) {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id), visible(principal, apiKeys.tenantId)));
  return apiKeyView(found(rows, "api key", id));
}

/** A tenant key issues keys for its tenant; only an admin key issues admin keys. */
export async function issueApiKey(db: Drizzle, principal: Principal, body: typeof ApiKeyCreate.static) {
  if (body.admin) {
    assertAdmin(principal);
    if (body.tenant_id) throw new BadRequestError("tenant_id: an admin key has no tenant", "tenant_id");
    return createApiKey(db, { tenantId: null, label: body.label });
  }
  const tenantId = tenantForCreate(principal, body.tenant_id);
  return createApiKey(db, { tenantId, label: body.label });
}
