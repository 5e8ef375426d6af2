// Tenants: admin keys only (the routes say so), so nothing here is scoped.
import { eq } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { tenants } from "../../db/schema";
import { Tenant, type TenantCreate, type TenantQuery, type TenantUpdate } from "../model";
import { filter, listPage } from "../pages";
import { found, updateOrRead, viewOf } from "../rows";

const tenantView = viewOf(Tenant, { is_active: "active" });

export const listTenants = (db: Drizzle, query: typeof TenantQuery.static) =>
  listPage(db, tenants, [filter(tenants.active, query.is_active)], query, tenantView);

export async function getTenant(db: Drizzle, id: string) {
  return tenantView(found(await db.select().from(tenants).where(eq(tenants.id, id)), "tenant", id));
}

export async function createTenant(db: Drizzle, body: typeof TenantCreate.static) {
  const [row] = await db.insert(tenants).values({ name: body.name, active: body.is_active ?? true }).returning();
  return tenantView(row!);
}

export async function updateTenant(db: Drizzle, id: string, body: typeof TenantUpdate.static) {
  const rows = await updateOrRead(db, tenants, { name: body.name, active: body.is_active }, eq(tenants.id, id));
  return tenantView(found(rows, "tenant", id));
}
