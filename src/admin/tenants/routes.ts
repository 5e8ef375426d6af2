// Tenants: admin keys only.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, resource } from "../context";
import { IdParams, Page, Tenant, TenantCreate, TenantQuery, TenantUpdate } from "../model";
import { overflowShape } from "../policies";
import { createTenant, getTenant, listTenants, updateTenant } from "./service";

export function tenantRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard({ adminOnly: true, ...resource("tenants") })
    .get("/tenants", ({ query }) => listTenants(db, query), {
      query: TenantQuery,
      response: { 200: Page(Tenant) },
      detail: { summary: "List tenants" },
    })
    .post(
      "/tenants",
      async ({ body, set }) => {
        set.status = 201;
        return createTenant(deps, body);
      },
      {
        parse: "json",
        transform: overflowShape,
        body: TenantCreate,
        response: { 201: Tenant },
        detail: { summary: "Create a tenant" },
      },
    )
    .get("/tenants/:id", ({ params }) => getTenant(db, params.id), {
      params: IdParams,
      response: { 200: Tenant },
      detail: { summary: "Get a tenant" },
    })
    .patch("/tenants/:id", ({ params, body }) => updateTenant(deps, params.id, body), {
      params: IdParams,
      parse: "json",
      transform: overflowShape,
      body: TenantUpdate,
      response: { 200: Tenant },
      detail: { summary: "Update a tenant" },
    })
    .post("/tenants/:id/deactivate", ({ params }) => updateTenant(deps, params.id, { is_active: false }), {
      params: IdParams,
      response: { 200: Tenant },
      detail: { summary: "Deactivate a tenant: its numbers get the system default agent and its keys stop working" },
    });
}
