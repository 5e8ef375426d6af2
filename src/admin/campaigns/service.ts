// Campaigns: a tenant's, deleted softly (leads and call logs keep pointing at them).
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Drizzle } from "../../db/client";
import { campaigns, phoneNumbers } from "../../db/schema";
import { assertVariables } from "../input";
import type { Principal } from "../keys";
import { Campaign, type CampaignCreate, type CampaignQuery, type CampaignUpdate } from "../model";
import { filter, listPage } from "../pages";
import { found, updateOrRead, viewOf } from "../rows";
import { tenantForCreate, visible } from "../scope";

const campaignView = viewOf(Campaign);

const liveCampaign = (principal: Principal, id: string) =>
  and(eq(campaigns.id, id), isNull(campaigns.deletedAt), visible(principal, campaigns.tenantId));

export const listCampaigns = (db: Drizzle, principal: Principal, query: typeof CampaignQuery.static) =>
  listPage(
    db,
    campaigns,
    [
      isNull(campaigns.deletedAt),
      visible(principal, campaigns.tenantId),
      filter(campaigns.tenantId, query.tenant_id),
      filter(campaigns.status, query.status),
      filter(campaigns.agentId, query.agent_id),
    ],
    query,
    campaignView,
  );

export async function getCampaign(db: Drizzle, principal: Principal, id: string) {
  return campaignView(found(await db.select().from(campaigns).where(liveCampaign(principal, id)), "campaign", id));
}

/** The columns a body sets (undefined: left alone); the schedule's tenant is the foreign key's to check. */
function campaignValues(body: typeof CampaignUpdate.static) {
  if (body.variables !== undefined) assertVariables(body.variables);
  return { name: body.name, agentId: body.agent_id, status: body.status, scheduleId: body.schedule_id, variables: body.variables };
}

export async function createCampaign(db: Drizzle, principal: Principal, body: typeof CampaignCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const [row] = await db
    .insert(campaigns)
    .values({ ...campaignValues(body), tenantId, name: body.name, agentId: body.agent_id ?? null, status: body.status ?? "active" })
    .returning();
  return campaignView(row!);
}

export async function updateCampaign(db: Drizzle, principal: Principal, id: string, body: typeof CampaignUpdate.static) {
  const rows = await updateOrRead(db, campaigns, campaignValues(body), liveCampaign(principal, id));
  return campaignView(found(rows, "campaign", id));
}

/**
 * Deletes a campaign softly: leads and call logs keep pointing at it, its numbers are unlinked
 * (calls to them go to the tenant's default agent) and its name is free again. It lets go of its
 * schedule, which could otherwise never be deleted (see deleteSchedule).
 */
export async function deleteCampaign(db: Drizzle, principal: Principal, id: string) {
  await db.transaction(async (tx) => {
    const rows = await tx
      .update(campaigns)
      .set({ deletedAt: sql`now()`, agentId: null, scheduleId: null, status: "archived" })
      .where(liveCampaign(principal, id))
      .returning({ id: campaigns.id });
    found(rows, "campaign", id);
    await tx.update(phoneNumbers).set({ campaignId: null }).where(eq(phoneNumbers.campaignId, id));
  });
}
