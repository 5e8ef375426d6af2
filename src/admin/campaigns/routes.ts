// Campaigns: a tenant's; deleting one keeps its leads and call logs.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { Campaign, CampaignCreate, CampaignQuery, CampaignUpdate, IdParams, Page } from "../model";
import { createCampaign, deleteCampaign, getCampaign, listCampaigns, updateCampaign } from "./service";

export function campaignRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("campaigns"))
    .get("/campaigns", ({ principal, query }) => listCampaigns(db, principal, query), {
      query: CampaignQuery,
      response: { 200: Page(Campaign) },
      detail: { summary: "List campaigns" },
    })
    .post(
      "/campaigns",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createCampaign(db, principal, body);
      },
      { parse: "json", body: CampaignCreate, response: { 201: Campaign }, detail: { summary: "Create a campaign" } },
    )
    .get("/campaigns/:id", ({ principal, params }) => getCampaign(db, principal, params.id), {
      params: IdParams,
      response: { 200: Campaign },
      detail: { summary: "Get a campaign" },
    })
    .patch("/campaigns/:id", ({ principal, params, body }) => updateCampaign(db, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: CampaignUpdate,
      response: { 200: Campaign },
      detail: { summary: "Update a campaign" },
    })
    .delete(
      "/campaigns/:id",
      async ({ principal, params, set }) => {
        await deleteCampaign(db, principal, params.id);
        set.status = 204;
      },
      {
        params: IdParams,
        detail: deleted("Delete a campaign (its numbers are unlinked; its leads and call logs are kept)"),
      },
    );
}
