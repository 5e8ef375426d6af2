// The admin API over HTTP: every route needs a bearer key, resolved to a principal before the
// request is validated, so an unauthenticated caller learns nothing about the API's rules.
import { Elysia } from "elysia";
import { authenticate, revokeApiKey } from "./keys";
import * as m from "./model";
import * as admin from "./service";

const errors = {
  400: m.ErrorBody,
  401: m.ErrorBody,
  403: m.ErrorBody,
  404: m.ErrorBody,
  409: m.ErrorBody,
  422: m.ErrorBody,
  503: m.ErrorBody,
};
const doc = (tag: string, summary: string) => ({ tags: [tag], summary, security: [{ bearerAuth: [] }] });
/**
 * Deletes answer 204 with no body. The OpenAPI plugin turns a void response schema into an
 * invalid document, so the summary says it instead.
 */
const deleted = (tag: string, summary: string) => doc(tag, `${summary}; answers 204, no body`);

export function adminRoutes(deps: admin.AdminDeps) {
  const db = deps.database.db;
  return (
    new Elysia({ name: "admin", prefix: "/api/v1" })
      .derive(async ({ request }) => ({
        principal: await authenticate(deps.database, request.headers.get("authorization")),
      }))
      // Who changed what: one line per write, naming the key (never the key itself).
      .onAfterResponse(({ request, set, principal }) => {
        if (request.method === "GET") return;
        deps.logger.info(
          {
            key_id: principal?.keyId ?? null,
            key_tenant: principal?.kind === "tenant" ? principal.tenantId : null,
            method: request.method,
            path: new URL(request.url).pathname,
            status: set.status,
          },
          "admin write",
        );
      })

      // Tenants: admin keys only.
      .get(
        "/tenants",
        ({ principal, query }) => {
          admin.assertAdmin(principal);
          return admin.listTenants(db, query);
        },
        { query: m.TenantQuery, response: { 200: m.Page(m.Tenant), ...errors }, detail: doc("tenants", "List tenants") },
      )
      .post(
        "/tenants",
        async ({ principal, body, set }) => {
          admin.assertAdmin(principal);
          set.status = 201;
          return admin.createTenant(db, body);
        },
        { parse: "json", body: m.TenantCreate, response: { 201: m.Tenant, ...errors }, detail: doc("tenants", "Create a tenant") },
      )
      .get(
        "/tenants/:id",
        ({ principal, params }) => {
          admin.assertAdmin(principal);
          return admin.getTenant(db, params.id);
        },
        { params: m.IdParams, response: { 200: m.Tenant, ...errors }, detail: doc("tenants", "Get a tenant") },
      )
      .patch(
        "/tenants/:id",
        ({ principal, params, body }) => {
          admin.assertAdmin(principal);
          return admin.updateTenant(db, params.id, body);
        },
        { params: m.IdParams, parse: "json", body: m.TenantUpdate, response: { 200: m.Tenant, ...errors }, detail: doc("tenants", "Update a tenant") },
      )
      .post(
        "/tenants/:id/deactivate",
        ({ principal, params }) => {
          admin.assertAdmin(principal);
          return admin.updateTenant(db, params.id, { is_active: false });
        },
        {
          params: m.IdParams,
          response: { 200: m.Tenant, ...errors },
          detail: doc("tenants", "Deactivate a tenant: its numbers get the system default agent and its keys stop working"),
        },
      )

      // Agents
      .get("/agents", ({ principal, query }) => admin.listAgents(db, principal, query), {
        query: m.AgentQuery,
        response: { 200: m.Page(m.Agent), ...errors },
        detail: doc("agents", "List agents (a tenant key also sees system-wide agents)"),
      })
      .post(
        "/agents",
        async ({ principal, body, set }) => {
          set.status = 201;
          return admin.createAgent(deps, principal, body);
        },
        { parse: "json", body: m.AgentCreate, response: { 201: m.Agent, ...errors }, detail: doc("agents", "Create an agent") },
      )
      .get("/agents/:id", ({ principal, params }) => admin.getAgent(db, principal, params.id), {
        params: m.IdParams,
        response: { 200: m.Agent, ...errors },
        detail: doc("agents", "Get an agent"),
      })
      .patch("/agents/:id", ({ principal, params, body }) => admin.updateAgent(deps, principal, params.id, body), {
        params: m.IdParams,
        parse: "json", body: m.AgentUpdate,
        response: { 200: m.Agent, ...errors },
        detail: doc("agents", "Update an agent"),
      })
      .delete(
        "/agents/:id",
        async ({ principal, params, query, set }) => {
          await admin.deleteAgent(db, principal, params.id, query.unlink ?? false);
          set.status = 204;
        },
        {
          params: m.IdParams,
          query: m.AgentDeleteQuery,
          response: errors,
          detail: deleted("agents", "Delete an agent (409 while campaigns use it, unless unlink=true)"),
        },
      )

      // Campaigns
      .get("/campaigns", ({ principal, query }) => admin.listCampaigns(db, principal, query), {
        query: m.CampaignQuery,
        response: { 200: m.Page(m.Campaign), ...errors },
        detail: doc("campaigns", "List campaigns"),
      })
      .post(
        "/campaigns",
        async ({ principal, body, set }) => {
          set.status = 201;
          return admin.createCampaign(db, principal, body);
        },
        { parse: "json", body: m.CampaignCreate, response: { 201: m.Campaign, ...errors }, detail: doc("campaigns", "Create a campaign") },
      )
      .get("/campaigns/:id", ({ principal, params }) => admin.getCampaign(db, principal, params.id), {
        params: m.IdParams,
        response: { 200: m.Campaign, ...errors },
        detail: doc("campaigns", "Get a campaign"),
      })
      .patch("/campaigns/:id", ({ principal, params, body }) => admin.updateCampaign(db, principal, params.id, body), {
        params: m.IdParams,
        parse: "json", body: m.CampaignUpdate,
        response: { 200: m.Campaign, ...errors },
        detail: doc("campaigns", "Update a campaign"),
      })
      .delete(
        "/campaigns/:id",
        async ({ principal, params, set }) => {
          await admin.deleteCampaign(db, principal, params.id);
          set.status = 204;
        },
        {
          params: m.IdParams,
          response: errors,
          detail: deleted("campaigns", "Delete a campaign (its numbers are unlinked; its leads and call logs are kept)"),
        },
      )

      // Phone numbers
      .get("/phone-numbers", ({ principal, query }) => admin.listPhoneNumbers(deps, principal, query), {
        query: m.PhoneNumberQuery,
        response: { 200: m.Page(m.PhoneNumber), ...errors },
        detail: doc("phone-numbers", "List phone numbers"),
      })
      .post(
        "/phone-numbers",
        async ({ principal, body, set }) => {
          set.status = 201;
          return admin.createPhoneNumber(deps, principal, body);
        },
        {
          parse: "json", body: m.PhoneNumberCreate,
          response: { 201: m.PhoneNumber, ...errors },
          detail: doc("phone-numbers", "Add a phone number (any common shape; stored as E.164)"),
        },
      )
      .get("/phone-numbers/:id", ({ principal, params }) => admin.getPhoneNumber(db, principal, params.id), {
        params: m.IdParams,
        response: { 200: m.PhoneNumber, ...errors },
        detail: doc("phone-numbers", "Get a phone number"),
      })
      .patch("/phone-numbers/:id", ({ principal, params, body }) => admin.updatePhoneNumber(deps, principal, params.id, body), {
        params: m.IdParams,
        parse: "json", body: m.PhoneNumberUpdate,
        response: { 200: m.PhoneNumber, ...errors },
        detail: doc("phone-numbers", "Update a phone number"),
      })
      .delete(
        "/phone-numbers/:id",
        async ({ principal, params, set }) => {
          await admin.deletePhoneNumber(db, principal, params.id);
          set.status = 204;
        },
        {
          params: m.IdParams,
          response: errors,
          detail: deleted("phone-numbers", "Delete a phone number (past calls keep the number they dialed)"),
        },
      )

      // Leads: made by calls, never created here.
      .get("/leads", ({ principal, query }) => admin.listLeads(deps, principal, query), {
        query: m.LeadQuery,
        response: { 200: m.Page(m.Lead), ...errors },
        detail: doc("leads", "List leads"),
      })
      .get("/leads/:id", ({ principal, params }) => admin.getLead(db, principal, params.id), {
        params: m.IdParams,
        response: { 200: m.Lead, ...errors },
        detail: doc("leads", "Get a lead"),
      })
      .patch("/leads/:id", ({ principal, params, body }) => admin.updateLead(db, principal, params.id, body), {
        params: m.IdParams,
        parse: "json", body: m.LeadUpdate,
        response: { 200: m.Lead, ...errors },
        detail: doc("leads", "Update a lead"),
      })
      .delete(
        "/leads/:id",
        async ({ principal, params, set }) => {
          await admin.deleteLead(db, principal, params.id);
          set.status = 204;
        },
        {
          params: m.IdParams,
          response: errors,
          detail: deleted("leads", "Delete a lead (its call logs are kept, unlinked)"),
        },
      )

      // Call logs: read-only but for a forward-only status fix.
      .get("/call-logs", ({ principal, query }) => admin.listCallLogs(deps, principal, query), {
        query: m.CallLogQuery,
        response: { 200: m.Page(m.CallLog), ...errors },
        detail: doc("call-logs", "List call logs"),
      })
      .get(
        "/call-logs/by-call-id/:provider_call_id",
        ({ principal, params }) => admin.getCallLog(db, principal, { providerCallId: params.provider_call_id }),
        {
          params: m.CallIdParams,
          response: { 200: m.CallLog, ...errors },
          detail: doc("call-logs", "Get a call log by the SIP provider's call id"),
        },
      )
      .get("/call-logs/:id", ({ principal, params }) => admin.getCallLog(db, principal, { id: params.id }), {
        params: m.IdParams,
        response: { 200: m.CallLog, ...errors },
        detail: doc("call-logs", "Get a call log"),
      })
      .patch(
        "/call-logs/:id",
        ({ principal, params, body }) => admin.updateCallLogStatus(deps, principal, params.id, body.status),
        {
          params: m.IdParams,
          parse: "json", body: m.CallLogUpdate,
          response: { 200: m.CallLog, ...errors },
          detail: doc("call-logs", "Fix a call's status (forward only: ringing, in_progress, then a final status)"),
        },
      )

      // API keys
      .get("/api-keys", ({ principal, query }) => admin.listApiKeys(db, principal, query), {
        query: m.ApiKeyQuery,
        response: { 200: m.Page(m.ApiKey), ...errors },
        detail: doc("api-keys", "List API keys (never the keys themselves)"),
      })
      .post(
        "/api-keys",
        async ({ principal, body, set }) => {
          const { key, apiKey } = await admin.issueApiKey(db, principal, body);
          set.status = 201;
          return { ...apiKey, key };
        },
        {
          parse: "json", body: m.ApiKeyCreate,
          response: { 201: m.NewApiKey, ...errors },
          detail: doc("api-keys", "Create an API key (the key is in this answer only)"),
        },
      )
      .get("/api-keys/:id", ({ principal, params }) => admin.getApiKey(db, principal, params.id), {
        params: m.IdParams,
        response: { 200: m.ApiKey, ...errors },
        detail: doc("api-keys", "Get an API key's description"),
      })
      .delete(
        "/api-keys/:id",
        async ({ principal, params, set }) => {
          await revokeApiKey(db, principal, params.id);
          set.status = 204;
        },
        { params: m.IdParams, response: errors, detail: deleted("api-keys", "Revoke an API key") },
      )
  );
}
