// Leads: made by calls (one per tenant and caller's number), read, corrected and deleted here.
import { and, eq, sql } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { leads } from "../../db/schema";
import type { AdminDeps } from "../context";
import { assertStorableJson, phoneFilter } from "../input";
import type { Principal } from "../keys";
import { Lead, type LeadQuery, type LeadUpdate } from "../model";
import { filter, listPage } from "../pages";
import { found, updateOrRead, viewOf } from "../rows";
import { visible } from "../scope";

const leadView = viewOf(Lead);

const leadTarget = (principal: Principal, id: string) => and(eq(leads.id, id), visible(principal, leads.tenantId));

export const listLeads = (deps: AdminDeps, principal: Principal, query: typeof LeadQuery.static) =>
  listPage(
    deps.database.db,
    leads,
    [
      visible(principal, leads.tenantId),
      filter(leads.tenantId, query.tenant_id),
      filter(leads.campaignId, query.campaign_id),
      filter(leads.status, query.status),
      phoneFilter(leads.phoneNumber, query.phone_number, "phone_number", deps.region),
    ],
    query,
    leadView,
  );

export async function getLead(db: Drizzle, principal: Principal, id: string) {
  return leadView(found(await db.select().from(leads).where(leadTarget(principal, id)), "lead", id));
}

export async function updateLead(db: Drizzle, principal: Principal, id: string, body: typeof LeadUpdate.static) {
  if (body.metadata !== undefined) assertStorableJson(body.metadata, "metadata");
  const set = { name: body.name, status: body.status, email: body.email, metadata: body.metadata };
  const rows = await updateOrRead(db, leads, set, leadTarget(principal, id), { updatedAt: sql`now()` });
  return leadView(found(rows, "lead", id));
}

/** The lead's calls stay, unlinked (the database clears their lead_id). */
export async function deleteLead(db: Drizzle, principal: Principal, id: string) {
  found(await db.delete(leads).where(leadTarget(principal, id)).returning({ id: leads.id }), "lead", id);
}
