// Tenants: admin keys only (the routes say so), so nothing here is scoped.
import { eq } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { type PolicyAction, tenants } from "../../db/schema";
import type { AdminDeps } from "../context";
import { assertVariables } from "../input";
import { Tenant, type TenantCreate, type TenantQuery, type TenantUpdate } from "../model";
import { filter, listPage } from "../pages";
import { policyActionOf } from "../policies";
import { found, updateOrRead, viewOf } from "../rows";

const tenantView = viewOf(Tenant, { is_active: "active" });

export const listTenants = (db: Drizzle, query: typeof TenantQuery.static) =>
  listPage(db, tenants, [filter(tenants.active, query.is_active)], query, tenantView);

export async function getTenant(db: Drizzle, id: string) {
  return tenantView(found(await db.select().from(tenants).where(eq(tenants.id, id)), "tenant", id));
}

/**
 * The columns a body sets (undefined: left alone). An overflow dispatch is checked against
 * `tenantId`'s agents; a tenant being created (null) has none yet, so only system-wide ones.
 */
async function tenantValues(tx: Drizzle, deps: AdminDeps, tenantId: string | null, body: typeof TenantUpdate.static) {
  if (body.variables !== undefined) assertVariables(body.variables);
  let overflow: PolicyAction | null | undefined = body.overflow === null ? null : undefined;
  if (body.overflow) overflow = await policyActionOf(tx, body.overflow, { tenantId, field: "overflow", region: deps.region });
  return {
    name: body.name,
    active: body.is_active,
    maxConcurrentCalls: body.max_concurrent_calls,
    overflow,
    variables: body.variables,
  };
}

export async function createTenant(deps: AdminDeps, body: typeof TenantCreate.static) {
  return deps.database.db.transaction(async (tx) => {
    const values = await tenantValues(tx, deps, null, body);
    const [row] = await tx
      .insert(tenants)
      .values({ ...values, name: body.name, active: body.is_active ?? true })
      .returning();
    return tenantView(row!);
  });
}

export async function updateTenant(deps: AdminDeps, id: string, body: typeof TenantUpdate.static) {
  return deps.database.db.transaction(async (tx) => {
    const rows = await updateOrRead(tx, tenants, await tenantValues(tx, deps, id, body), eq(tenants.id, id));
    return tenantView(found(rows, "tenant", id));
  });
}
