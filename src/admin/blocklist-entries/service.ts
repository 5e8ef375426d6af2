// Blocklist entries: callers refused before any agent starts. A tenant's entries apply to its
// calls; global ones (tenant_id null) to every tenant's, and only admin keys see or change them,
// so a tenant key never learns what other tenants' callers are refused for.
import { and, eq, isNotNull, isNull } from "drizzle-orm";
import { normalizeBlockPattern } from "../../calls/blocklist";
import { blocklistEntries } from "../../db/schema";
import { BadRequestError } from "../../errors";
import type { AdminDeps } from "../context";
import type { Principal } from "../keys";
import { filter, listPage } from "../pages";
import { BlocklistEntry, type BlocklistEntryCreate, type BlocklistEntryQuery, type BlocklistEntryUpdate } from "../policy-model";
import { found, updateOrRead, viewOf } from "../rows";
import { tenantForCreate, visible } from "../scope";

const entryView = viewOf(BlocklistEntry);

// Not shared: a tenant key's scope leaves the global entries out.
const entryTarget = (principal: Principal, id: string) =>
  and(eq(blocklistEntries.id, id), visible(principal, blocklistEntries.tenantId));

/** The pattern as stored and matched (E.164, or an E.164 prefix ending in *). */
function patternOf(input: string, region: string): string {
  const normalized = normalizeBlockPattern(input, region);
  if ("problem" in normalized) throw new BadRequestError(`pattern: ${normalized.problem}`, "pattern");
  return normalized.pattern;
}

const globalFilter = (global: boolean | undefined) =>
  global === undefined ? undefined : global ? isNull(blocklistEntries.tenantId) : isNotNull(blocklistEntries.tenantId);

export const listBlocklistEntries = (deps: AdminDeps, principal: Principal, query: typeof BlocklistEntryQuery.static) =>
  listPage(
    deps.database.db,
    blocklistEntries,
    [
      visible(principal, blocklistEntries.tenantId),
      filter(blocklistEntries.tenantId, query.tenant_id),
      globalFilter(query.global),
      filter(blocklistEntries.pattern, query.pattern === undefined ? undefined : patternOf(query.pattern, deps.region)),
    ],
    query,
    entryView,
  );

export async function getBlocklistEntry(deps: AdminDeps, principal: Principal, id: string) {
  const rows = await deps.database.db.select().from(blocklistEntries).where(entryTarget(principal, id));
  return entryView(found(rows, "blocklist entry", id));
}

/** tenantForCreate: an admin key names the tenant or null (global); a tenant key its own tenant. */
export async function createBlocklistEntry(deps: AdminDeps, principal: Principal, body: typeof BlocklistEntryCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id);
  const pattern = patternOf(body.pattern, deps.region);
  const [row] = await deps.database.db
    .insert(blocklistEntries)
    .values({ tenantId, pattern, reason: body.reason ?? null })
    .returning();
  return entryView(row!);
}

export async function updateBlocklistEntry(
  deps: AdminDeps,
  principal: Principal,
  id: string,
  body: typeof BlocklistEntryUpdate.static,
) {
  const set = { pattern: body.pattern === undefined ? undefined : patternOf(body.pattern, deps.region), reason: body.reason };
  const rows = await updateOrRead(deps.database.db, blocklistEntries, set, entryTarget(principal, id));
  return entryView(found(rows, "blocklist entry", id));
}

export async function deleteBlocklistEntry(deps: AdminDeps, principal: Principal, id: string) {
  const rows = await deps.database.db
    .delete(blocklistEntries)
    .where(entryTarget(principal, id))
    .returning({ id: blocklistEntries.id });
  found(rows, "blocklist entry", id);
}
