// API keys: described, issued and revoked; the key itself is shown once, when issued.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { revokeApiKey } from "../keys";
import { ApiKey, ApiKeyCreate, ApiKeyQuery, IdParams, NewApiKey, Page } from "../model";
import { getApiKey, issueApiKey, listApiKeys } from "./service";

export function apiKeyRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("api-keys"))
    .get("/api-keys", ({ principal, query }) => listApiKeys(db, principal, query), {
      query: ApiKeyQuery,
      response: { 200: Page(ApiKey) },
      detail: { summary: "List API keys (never the keys themselves)" },
    })
    .post(
      "/api-keys",
      async ({ principal, body, set }) => {
        const { key, apiKey } = await issueApiKey(db, principal, body);
        set.status = 201;
        return { ...apiKey, key };
      },
      {
        parse: "json",
        body: ApiKeyCreate,
        response: { 201: NewApiKey },
        detail: { summary: "Create an API key (the key is in this answer only)" },
      },
    )
    .get("/api-keys/:id", ({ principal, params }) => getApiKey(db, principal, params.id), {
      params: IdParams,
      response: { 200: ApiKey },
      detail: { summary: "Get an API key's description" },
    })
    .delete(
      "/api-keys/:id",
      async ({ principal, params, set }) => {
        await revokeApiKey(db, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Revoke an API key") },
    );
}
