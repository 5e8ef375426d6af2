// Agents: a tenant key manages its tenant's and sees the system-wide ones.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { Agent, AgentCreate, AgentDeleteQuery, AgentQuery, AgentUpdate, IdParams, Page } from "../model";
import { createAgent, deleteAgent, getAgent, listAgents, updateAgent } from "./service";

export function agentRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("agents"))
    .get("/agents", ({ principal, query }) => listAgents(db, principal, query), {
      query: AgentQuery,
      response: { 200: Page(Agent) },
      detail: { summary: "List agents (a tenant key also sees system-wide agents)" },
    })
    .post(
      "/agents",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createAgent(deps, principal, body);
      },
      { parse: "json", body: AgentCreate, response: { 201: Agent }, detail: { summary: "Create an agent" } },
    )
    .get("/agents/:id", ({ principal, params }) => getAgent(db, principal, params.id), {
      params: IdParams,
      response: { 200: Agent },
      detail: { summary: "Get an agent" },
    })
    .patch("/agents/:id", ({ principal, params, body }) => updateAgent(deps, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: AgentUpdate,
      response: { 200: Agent },
      detail: { summary: "Update an agent" },
    })
    .delete(
      "/agents/:id",
      async ({ principal, params, query, set }) => {
        await deleteAgent(db, principal, params.id, query.unlink ?? false);
        set.status = 204;
      },
      {
        params: IdParams,
        query: AgentDeleteQuery,
        detail: deleted("Delete an agent (409 while campaigns use it, unless unlink=true)"),
      },
    );
}
