// Leads: made by calls, never created here.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { IdParams, Lead, LeadQuery, LeadUpdate, Page } from "../model";
import { deleteLead, getLead, listLeads, updateLead } from "./service";

export function leadRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("leads"))
    .get("/leads", ({ principal, query }) => listLeads(deps, principal, query), {
      query: LeadQuery,
      response: { 200: Page(Lead) },
      detail: { summary: "List leads" },
    })
    .get("/leads/:id", ({ principal, params }) => getLead(db, principal, params.id), {
      params: IdParams,
      response: { 200: Lead },
      detail: { summary: "Get a lead" },
    })
    .patch("/leads/:id", ({ principal, params, body }) => updateLead(db, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: LeadUpdate,
      response: { 200: Lead },
      detail: { summary: "Update a lead" },
    })
    .delete(
      "/leads/:id",
      async ({ principal, params, set }) => {
        await deleteLead(db, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Delete a lead (its call logs are kept, unlinked)") },
    );
}
