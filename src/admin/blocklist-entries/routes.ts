// Blocklist entries: a tenant's, or global (tenant_id null: admin keys only, applied to every tenant).
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { IdParams, Page } from "../model";
import { BlocklistEntry, BlocklistEntryCreate, BlocklistEntryQuery, BlocklistEntryUpdate } from "../policy-model";
import {
  createBlocklistEntry,
  deleteBlocklistEntry,
  getBlocklistEntry,
  listBlocklistEntries,
  updateBlocklistEntry,
} from "./service";

export function blocklistRoutes(deps: AdminDeps) {
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("blocklist-entries"))
    .get("/blocklist-entries", ({ principal, query }) => listBlocklistEntries(deps, principal, query), {
      query: BlocklistEntryQuery,
      response: { 200: Page(BlocklistEntry) },
      detail: { summary: "List blocklist entries (global ones with an admin key only)" },
    })
    .post(
      "/blocklist-entries",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createBlocklistEntry(deps, principal, body);
      },
      {
        parse: "json",
        body: BlocklistEntryCreate,
        response: { 201: BlocklistEntry },
        detail: {
          summary: "Block a caller's number or a prefix (stored as E.164)",
          description:
            "An admin key must pass tenant_id: a tenant's id, or null for a global entry applied to every tenant's " +
            "calls, so that no global entry is made by accident. A tenant key may leave it out (its own tenant).",
        },
      },
    )
    .get("/blocklist-entries/:id", ({ principal, params }) => getBlocklistEntry(deps, principal, params.id), {
      params: IdParams,
      response: { 200: BlocklistEntry },
      detail: { summary: "Get a blocklist entry" },
    })
    .patch("/blocklist-entries/:id", ({ principal, params, body }) => updateBlocklistEntry(deps, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: BlocklistEntryUpdate,
      response: { 200: BlocklistEntry },
      detail: { summary: "Change a blocklist entry's pattern or reason" },
    })
    .delete(
      "/blocklist-entries/:id",
      async ({ principal, params, set }) => {
        await deleteBlocklistEntry(deps, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Delete a blocklist entry") },
    );
}
