// The admin API's logic: tenants, agents, campaigns, numbers, leads, call logs and keys, each
// seen through the caller's principal. A tenant key's scope is in the WHERE of every statement
// that finds rows by what the caller sent; rows reached from those (a campaign's numbers, an
// agent's campaigns) belong to the same tenant by foreign keys and triggers. So another tenant's
// row is never read, changed or told apart from a missing one.
import { and, desc, eq, gte, isNull, lt, or, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import { normalizePhoneNumber, numberTypeOf } from "../calls/phone";
import { correctCallStatus } from "../calls/service";
import type { Database, Db } from "../db/client";
import { constraintViolation } from "../db/errors";
import { agents, apiKeys, type CallStatus, callLogs, campaigns, leads, phoneNumbers, tenants } from "../db/schema";
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from "../errors";
import type { Logger } from "../logger";
import { type ApiKeyView, apiKeyView, createApiKey, type Principal } from "./keys";
import { DEFAULT_PAGE, MAX_PAGE, METADATA_MAX_DEPTH } from "./model";

export interface AdminDeps {
  database: Database;
  logger: Logger;
  /** Region for numbers written without a country code. */
  region: string;
  /** SYSTEM_DEFAULT_AGENT: the agent name calls no tenant claims are dispatched to. */
  systemDefaultAgent: string;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

interface Paging {
  limit?: number;
  cursor?: string;
}

function iso(date: Date): string;
function iso(date: Date | null): string | null;
function iso(date: Date | null) {
  return date?.toISOString() ?? null;
}

// ---------------------------------------------------------------- scope

/** Rows a principal may read: a tenant key its tenant's (and, where shared, system-wide rows). */
function visible(principal: Principal, column: PgColumn, shared = false): SQL | undefined {
  if (principal.kind === "admin") return undefined;
  return shared ? or(eq(column, principal.tenantId), isNull(column)) : eq(column, principal.tenantId);
}

/** Rows a principal may change: never a shared (system-wide) row with a tenant key. */
const writable = (principal: Principal, column: PgColumn) => visible(principal, column, false);

/** The tenant a new row goes to. A tenant key writes to its own tenant only. */
function tenantForCreate(principal: Principal, requested: string | null | undefined): string | null {
  if (principal.kind === "tenant") {
    if (requested === undefined || requested === principal.tenantId) return principal.tenantId;
    if (requested === null) throw new ForbiddenError("tenant_id: system-wide resources need an admin key", "tenant_id");
    throw new ForbiddenError("tenant_id: a tenant key can only act on its own tenant", "tenant_id");
  }
  if (requested === undefined) throw new BadRequestError("tenant_id: required with an admin key", "tenant_id");
  return requested;
}

/** A PATCH may move a row to another tenant only with an admin key. */
function assertMayMoveTo(principal: Principal, tenantId: string | null | undefined) {
  if (tenantId === undefined || principal.kind === "admin") return;
  if (tenantId !== principal.tenantId) {
    throw new ForbiddenError("tenant_id: a tenant key can only act on its own tenant", "tenant_id");
  }
}

export function assertAdmin(principal: Principal) {
  if (principal.kind !== "admin") throw new ForbiddenError("this needs an admin key");
}

/** An admin key may narrow a list to one tenant; a tenant key's lists are its tenant's anyway. */
const forTenant = (column: PgColumn, tenantId: string | undefined) => (tenantId ? eq(column, tenantId) : undefined);

function phoneFilter(column: PgColumn, value: string | undefined, field: string, region: string) {
  if (value === undefined) return undefined;
  const e164 = normalizePhoneNumber(value, region);
  if (!e164) throw new BadRequestError(`${field}: "${value}" is not a phone number`, field);
  return eq(column, e164);
}

/**
 * A time PostgreSQL will read as the client meant it, or null: checked here so an impossible
 * date (February 30th, year 0) is a 400 naming the field rather than a database error. The
 * text itself is passed on, keeping its offset and any microseconds.
 */
function storableTime(value: string): string | null {
  const time = new Date(value);
  // PostgreSQL takes offsets up to 15:59 and, in this format, years 1 to 9999.
  const offsetHours = Number(/([+-])(\d\d):?\d\d$/.exec(value)?.[2] ?? 0);
  const valid =
    !Number.isNaN(time.getTime()) &&
    time.getUTCFullYear() <= 9999 &&
    offsetHours <= 15 &&
    !value.startsWith("0000") &&
    isCalendarDate(value.slice(0, 10));
  if (!valid) return null;
  // A bare date is midnight UTC, as JavaScript reads it, not midnight wherever the database is.
  return value.length === 10 ? `${value}T00:00:00Z` : value;
}

function timeParam(value: string, field: string): string {
  const time = storableTime(value);
  if (!time) throw new BadRequestError(`${field}: "${value}" is not a valid date-time`, field);
  return time;
}

/** JavaScript rolls February 30th over to March 1st; PostgreSQL refuses it, and so do we. */
function isCalendarDate(ymd: string): boolean {
  const [y, m, d] = ymd.split("-").map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * Metadata is stored as jsonb: PostgreSQL refuses NUL characters in it, and very deep nesting
 * costs the database a recursion per level. Both are refused here, naming the field.
 */
function assertStorableJson(value: unknown, field: string, depth = 0): void {
  if (depth > METADATA_MAX_DEPTH) {
    throw new BadRequestError(`${field}: nested deeper than ${METADATA_MAX_DEPTH} levels`, field);
  }
  if (typeof value === "string") {
    if (!isStorableText(value)) throw new BadRequestError(`${field}: contains a NUL or an unpaired surrogate`, field);
    return;
  }
  if (value === null || typeof value !== "object") return;
  for (const [key, inner] of Object.entries(value)) {
    if (!isStorableText(key)) throw new BadRequestError(`${field}: a key contains a NUL or an unpaired surrogate`, field);
    assertStorableJson(inner, field, depth + 1);
  }
}

const isStorableText = (text: string) => !text.includes("\u0000") && text.isWellFormed();

function first<T>(rows: T[], what: string, id: string): T {
  if (rows.length === 0) throw new NotFoundError(`${what} ${id} not found`);
  return rows[0]!;
}

// ---------------------------------------------------------------- pages

/**
 * Newest first, by (created_at, id). The cursor is the last row's key, so rows inserted while
 * someone pages sort before it and never shift what comes after. The timestamp keeps its
 * microseconds: rounding to JavaScript's milliseconds would skip rows within one millisecond.
 */
async function listPage<T extends PgTable & { createdAt: PgColumn; id: PgColumn }, V>(
  db: Db,
  table: T,
  conditions: (SQL | undefined)[],
  paging: Paging,
  view: (row: T["$inferSelect"]) => V,
): Promise<Page<V>> {
  const limit = paging.limit ?? DEFAULT_PAGE;
  if (limit < 1 || limit > MAX_PAGE) throw new BadRequestError(`limit: must be 1 to ${MAX_PAGE}`, "limit");
  const after = paging.cursor === undefined ? undefined : decodeCursor(paging.cursor);
  const rows = await db
    .select({
      row: table as PgTable,
      key: sql<string>`to_char(${table.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    })
    .from(table as PgTable)
    .where(
      and(
        ...conditions,
        after ? sql`(${table.createdAt}, ${table.id}) < (${after.createdAt}::timestamptz, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(table.createdAt), desc(table.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = rows.length > limit ? page[page.length - 1] : undefined;
  return {
    data: page.map((r) => view(r.row as T["$inferSelect"])),
    next_cursor: last ? encodeCursor(last.key, (last.row as { id: string }).id) : null,
  };
}

const encodeCursor = (createdAt: string, id: string) => Buffer.from(`${createdAt}|${id}`).toString("base64url");

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const [createdAt = "", id = ""] = Buffer.from(cursor, "base64url").toString().split("|");
  const wellFormed =
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(createdAt) &&
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
  const notOurs = new BadRequestError("cursor: not a cursor this API gave out", "cursor");
  if (!wellFormed) throw notOurs;
  // The shape can be right and the time impossible (month 13, year 0): that too is not one of ours.
  if (!storableTime(createdAt)) throw notOurs;
  return { createdAt, id };
}

// ---------------------------------------------------------------- tenants

type TenantRow = typeof tenants.$inferSelect;
const tenantView = (r: TenantRow) => ({ id: r.id, name: r.name, is_active: r.active, created_at: iso(r.createdAt) });

export const listTenants = (db: Db, query: { is_active?: boolean } & Paging) =>
  listPage(db, tenants, [query.is_active === undefined ? undefined : eq(tenants.active, query.is_active)], query, tenantView);

export async function getTenant(db: Db, id: string) {
  return tenantView(first(await db.select().from(tenants).where(eq(tenants.id, id)), "tenant", id));
}

export async function createTenant(db: Db, body: { name: string; is_active?: boolean }) {
  const [row] = await db.insert(tenants).values({ name: body.name, active: body.is_active ?? true }).returning();
  return tenantView(row!);
}

export async function updateTenant(db: Db, id: string, body: { name?: string; is_active?: boolean }) {
  const set = { name: body.name, active: body.is_active };
  const rows = hasValues(set)
    ? await db.update(tenants).set(set).where(eq(tenants.id, id)).returning()
    : await db.select().from(tenants).where(eq(tenants.id, id));
  return tenantView(first(rows, "tenant", id));
}

/** Drizzle refuses an UPDATE with nothing to set; an empty PATCH just reads the row. */
const hasValues = (set: Record<string, unknown>) => Object.values(set).some((v) => v !== undefined);

// ---------------------------------------------------------------- agents

type AgentRow = typeof agents.$inferSelect;
const agentView = (r: AgentRow) => ({
  id: r.id,
  tenant_id: r.tenantId,
  name: r.name,
  is_default: r.isDefault,
  is_active: r.active,
  description: r.description,
  metadata: r.metadata,
  created_at: iso(r.createdAt),
});

interface AgentFields {
  name?: string;
  is_default?: boolean;
  is_active?: boolean;
  description?: string | null;
  metadata?: Record<string, unknown>;
}

function agentValues(body: AgentFields) {
  if (body.metadata !== undefined) assertStorableJson(body.metadata, "metadata");
  return {
    name: body.name,
    isDefault: body.is_default,
    active: body.is_active,
    description: body.description,
    metadata: body.metadata,
  };
}

export const listAgents = (
  db: Db,
  principal: Principal,
  query: { tenant_id?: string; is_active?: boolean; is_default?: boolean; name?: string } & Paging,
) =>
  listPage(
    db,
    agents,
    [
      visible(principal, agents.tenantId, true),
      forTenant(agents.tenantId, query.tenant_id),
      query.is_active === undefined ? undefined : eq(agents.active, query.is_active),
      query.is_default === undefined ? undefined : eq(agents.isDefault, query.is_default),
      query.name === undefined ? undefined : eq(agents.name, query.name),
    ],
    query,
    agentView,
  );

export async function getAgent(db: Db, principal: Principal, id: string) {
  const rows = await db
    .select()
    .from(agents)
    .where(and(eq(agents.id, id), visible(principal, agents.tenantId, true)));
  return agentView(first(rows, "agent", id));
}

/**
 * A new default replaces the tenant's old one in the same transaction (the index allows one).
 * The tenant row is locked first so concurrent "make this the default" requests take turns
 * instead of meeting on the index.
 */
async function clearDefault(tx: Db, tenantId: string | null, keep?: string) {
  if (!tenantId) return;
  // NO KEY UPDATE: serialises default changes without blocking foreign-key checks on the tenant.
  await tx.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).for("no key update");
  await tx
    .update(agents)
    .set({ isDefault: false })
    .where(and(eq(agents.tenantId, tenantId), eq(agents.isDefault, true), keep ? sql`${agents.id} <> ${keep}` : undefined));
}

/**
 * LiveKit dispatches agents by name, one namespace per project: a tenant's agent named like the
 * system default would receive every caller the system default answers. A system-wide agent may
 * carry the name (it may well be the system default's own row).
 */
function assertNotSystemDefault(deps: AdminDeps, agent: { tenantId: string | null; name: string }) {
  if (agent.tenantId === null || agent.name !== deps.systemDefaultAgent) return;
  throw new ConflictError(
    `name: "${agent.name}" is the system default agent (SYSTEM_DEFAULT_AGENT); LiveKit dispatches agents by name, so a tenant's agent cannot take it`,
    "name",
  );
}

/** Agent names are unique across tenants: say why, never whose agent has the name. */
function explainNameTaken(error: unknown): never {
  if (constraintViolation(error)?.constraint === "agents_name_key") {
    throw new ConflictError(
      "name: already taken; agent names are unique across all tenants (LiveKit dispatches agents by name)",
      "name",
    );
  }
  throw error;
}

export async function createAgent(
  deps: AdminDeps,
  principal: Principal,
  body: AgentFields & { tenant_id?: string | null; name: string },
) {
  const tenantId = tenantForCreate(principal, body.tenant_id);
  assertNotSystemDefault(deps, { tenantId, name: body.name });
  return deps.database.db
    .transaction(async (tx) => {
      if (body.is_default) await clearDefault(tx, tenantId);
      const [row] = await tx
        .insert(agents)
        .values({ ...agentValues(body), name: body.name, tenantId })
        .returning();
      return agentView(row!);
    })
    .catch(explainNameTaken);
}

export async function updateAgent(
  deps: AdminDeps,
  principal: Principal,
  id: string,
  body: AgentFields & { tenant_id?: string | null },
) {
  assertMayMoveTo(principal, body.tenant_id);
  return deps.database.db
    .transaction(async (tx) => {
      const set = { ...agentValues(body), tenantId: body.tenant_id };
      const target = and(eq(agents.id, id), writable(principal, agents.tenantId));
      if (body.is_default) {
        const [current] = await tx.select({ tenantId: agents.tenantId }).from(agents).where(target);
        await clearDefault(tx, body.tenant_id === undefined ? (current?.tenantId ?? null) : body.tenant_id, id);
      }
      const rows = hasValues(set)
        ? await tx.update(agents).set(set).where(target).returning()
        : await tx.select().from(agents).where(target);
      if (rows.length === 0) await explainUnwritableAgent(tx, principal, id);
      // Checked on the row as written (a rename, a move or both); throwing rolls the write back.
      if (body.name !== undefined || body.tenant_id !== undefined) assertNotSystemDefault(deps, rows[0]!);
      return agentView(rows[0]!);
    })
    .catch(explainNameTaken);
}

/** Nothing matched: a system-wide agent a tenant key may read but not change, or nothing at all. */
async function explainUnwritableAgent(db: Db, principal: Principal, id: string): Promise<never> {
  const [shared] = await db
    .select({ id: agents.id })
    .from(agents)
    .where(and(eq(agents.id, id), visible(principal, agents.tenantId, true)));
  if (shared) throw new ForbiddenError("system-wide agents are managed with an admin key");
  throw new NotFoundError(`agent ${id} not found`);
}

/**
 * Deletes an agent. Campaigns using it block the delete (409 naming them) unless unlink is set,
 * which detaches it from them first. Call logs name their agent, so no history is lost.
 */
export async function deleteAgent(db: Db, principal: Principal, id: string, unlink: boolean) {
  try {
    await db.transaction(async (tx) => {
      const target = and(eq(agents.id, id), writable(principal, agents.tenantId));
      const [agent] = await tx.select({ tenantId: agents.tenantId }).from(agents).where(target).for("update");
      if (!agent) return explainUnwritableAgent(tx, principal, id);
      // The triggers keep a tenant's agent to its own campaigns; the scope says so once more.
      const users = and(eq(campaigns.agentId, id), agent.tenantId ? eq(campaigns.tenantId, agent.tenantId) : undefined);
      if (unlink) {
        await tx.update(campaigns).set({ agentId: null }).where(users);
      } else {
        const using = await tx.select({ id: campaigns.id }).from(campaigns).where(users);
        if (using.length > 0) {
          throw new ConflictError(
            `agent ${id} is used by ${using.length} campaign(s); delete with ?unlink=true to detach it`,
            undefined,
            { campaign_ids: using.map((u) => u.id) },
          );
        }
      }
      await tx.delete(agents).where(target);
    });
  } catch (error) {
    // A campaign took the agent up between our check and the delete.
    if (constraintViolation(error)?.kind === "reference") {
      throw new ConflictError(`agent ${id} is in use by a campaign; delete with ?unlink=true to detach it`);
    }
    throw error;
  }
}

// ---------------------------------------------------------------- campaigns

type CampaignRow = typeof campaigns.$inferSelect;
const campaignView = (r: CampaignRow) => ({
  id: r.id,
  tenant_id: r.tenantId,
  name: r.name,
  agent_id: r.agentId,
  status: r.status,
  created_at: iso(r.createdAt),
});

type CampaignStatus = CampaignRow["status"];
const liveCampaign = (principal: Principal, id: string) =>
  and(eq(campaigns.id, id), isNull(campaigns.deletedAt), visible(principal, campaigns.tenantId));

export const listCampaigns = (
  db: Db,
  principal: Principal,
  query: { tenant_id?: string; status?: CampaignStatus; agent_id?: string } & Paging,
) =>
  listPage(
    db,
    campaigns,
    [
      isNull(campaigns.deletedAt),
      visible(principal, campaigns.tenantId),
      forTenant(campaigns.tenantId, query.tenant_id),
      query.status ? eq(campaigns.status, query.status) : undefined,
      query.agent_id ? eq(campaigns.agentId, query.agent_id) : undefined,
    ],
    query,
    campaignView,
  );

export async function getCampaign(db: Db, principal: Principal, id: string) {
  return campaignView(first(await db.select().from(campaigns).where(liveCampaign(principal, id)), "campaign", id));
}

export async function createCampaign(
  db: Db,
  principal: Principal,
  body: { tenant_id?: string; name: string; agent_id?: string | null; status?: CampaignStatus },
) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const [row] = await db
    .insert(campaigns)
    .values({ tenantId, name: body.name, agentId: body.agent_id ?? null, status: body.status ?? "active" })
    .returning();
  return campaignView(row!);
}

export async function updateCampaign(
  db: Db,
  principal: Principal,
  id: string,
  body: { name?: string; agent_id?: string | null; status?: CampaignStatus },
) {
  const set = { name: body.name, agentId: body.agent_id, status: body.status };
  const target = liveCampaign(principal, id);
  const rows = hasValues(set)
    ? await db.update(campaigns).set(set).where(target).returning()
    : await db.select().from(campaigns).where(target);
  return campaignView(first(rows, "campaign", id));
}

/**
 * Deletes a campaign softly: leads and call logs keep pointing at it, its numbers are unlinked
 * (calls to them go to the tenant's default agent) and its name is free again.
 */
export async function deleteCampaign(db: Db, principal: Principal, id: string) {
  await db.transaction(async (tx) => {
    const rows = await tx
      .update(campaigns)
      .set({ deletedAt: sql`now()`, agentId: null, status: "archived" })
      .where(liveCampaign(principal, id))
      .returning({ id: campaigns.id });
    first(rows, "campaign", id);
    await tx.update(phoneNumbers).set({ campaignId: null }).where(eq(phoneNumbers.campaignId, id));
  });
}

// ---------------------------------------------------------------- phone numbers

type NumberRow = typeof phoneNumbers.$inferSelect;
type NumberType = NumberRow["numberType"];
const numberView = (r: NumberRow) => ({
  id: r.id,
  tenant_id: r.tenantId,
  number: r.e164,
  campaign_id: r.campaignId,
  type: r.numberType,
  is_active: r.active,
  created_at: iso(r.createdAt),
});

function e164Of(value: string, region: string): string {
  const e164 = normalizePhoneNumber(value, region);
  if (!e164) throw new BadRequestError(`number: "${value}" is not a phone number`, "number");
  return e164;
}

export const listPhoneNumbers = (
  deps: AdminDeps,
  principal: Principal,
  query: { tenant_id?: string; campaign_id?: string; is_active?: boolean; number?: string } & Paging,
) =>
  listPage(
    deps.database.db,
    phoneNumbers,
    [
      visible(principal, phoneNumbers.tenantId),
      forTenant(phoneNumbers.tenantId, query.tenant_id),
      query.campaign_id ? eq(phoneNumbers.campaignId, query.campaign_id) : undefined,
      query.is_active === undefined ? undefined : eq(phoneNumbers.active, query.is_active),
      phoneFilter(phoneNumbers.e164, query.number, "number", deps.region),
    ],
    query,
    numberView,
  );

export async function getPhoneNumber(db: Db, principal: Principal, id: string) {
  const rows = await db
    .select()
    .from(phoneNumbers)
    .where(and(eq(phoneNumbers.id, id), visible(principal, phoneNumbers.tenantId)));
  return numberView(first(rows, "phone number", id));
}

interface NumberFields {
  number?: string;
  campaign_id?: string | null;
  type?: NumberType;
  is_active?: boolean;
}

export async function createPhoneNumber(
  deps: AdminDeps,
  principal: Principal,
  body: NumberFields & { tenant_id?: string; number: string },
) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const e164 = e164Of(body.number, deps.region);
  const [row] = await deps.database.db
    .insert(phoneNumbers)
    .values({
      e164,
      tenantId,
      campaignId: body.campaign_id ?? null,
      numberType: body.type ?? numberTypeOf(e164),
      active: body.is_active ?? true,
    })
    .returning();
  return numberView(row!);
}

export async function updatePhoneNumber(
  deps: AdminDeps,
  principal: Principal,
  id: string,
  body: NumberFields & { tenant_id?: string },
) {
  assertMayMoveTo(principal, body.tenant_id);
  const db = deps.database.db;
  const set = {
    e164: body.number === undefined ? undefined : e164Of(body.number, deps.region),
    tenantId: body.tenant_id,
    // A number moving tenant cannot keep a campaign of the tenant it leaves.
    campaignId:
      body.campaign_id !== undefined
        ? body.campaign_id
        : body.tenant_id !== undefined
          ? sql`case when ${phoneNumbers.tenantId} = ${body.tenant_id}::uuid then ${phoneNumbers.campaignId} end`
          : undefined,
    numberType: body.type,
    active: body.is_active,
  };
  const target = and(eq(phoneNumbers.id, id), visible(principal, phoneNumbers.tenantId));
  const rows = hasValues(set)
    ? await db.update(phoneNumbers).set(set).where(target).returning()
    : await db.select().from(phoneNumbers).where(target);
  return numberView(first(rows, "phone number", id));
}

/** Past calls keep the number they dialed (to_number); their link to the row is cleared by the database. */
export async function deletePhoneNumber(db: Db, principal: Principal, id: string) {
  const rows = await db
    .delete(phoneNumbers)
    .where(and(eq(phoneNumbers.id, id), visible(principal, phoneNumbers.tenantId)))
    .returning({ id: phoneNumbers.id });
  first(rows, "phone number", id);
}

// ---------------------------------------------------------------- leads

type LeadRow = typeof leads.$inferSelect;
const leadView = (r: LeadRow) => ({
  id: r.id,
  tenant_id: r.tenantId,
  campaign_id: r.campaignId,
  phone_number: r.phoneNumber,
  name: r.name,
  email: r.email,
  status: r.status,
  metadata: r.metadata,
  last_call_at: iso(r.lastCallAt),
  created_at: iso(r.createdAt),
  updated_at: iso(r.updatedAt),
});

export const listLeads = (
  deps: AdminDeps,
  principal: Principal,
  query: { tenant_id?: string; campaign_id?: string; status?: string; phone_number?: string } & Paging,
) =>
  listPage(
    deps.database.db,
    leads,
    [
      visible(principal, leads.tenantId),
      forTenant(leads.tenantId, query.tenant_id),
      query.campaign_id ? eq(leads.campaignId, query.campaign_id) : undefined,
      query.status === undefined ? undefined : eq(leads.status, query.status),
      phoneFilter(leads.phoneNumber, query.phone_number, "phone_number", deps.region),
    ],
    query,
    leadView,
  );

const leadTarget = (principal: Principal, id: string) => and(eq(leads.id, id), visible(principal, leads.tenantId));

export async function getLead(db: Db, principal: Principal, id: string) {
  return leadView(first(await db.select().from(leads).where(leadTarget(principal, id)), "lead", id));
}

export async function updateLead(
  db: Db,
  principal: Principal,
  id: string,
  body: { name?: string; status?: string; email?: string | null; metadata?: Record<string, unknown> },
) {
  if (body.metadata !== undefined) assertStorableJson(body.metadata, "metadata");
  const set = { name: body.name, status: body.status, email: body.email, metadata: body.metadata };
  const rows = hasValues(set)
    ? await db
        .update(leads)
        .set({ ...set, updatedAt: sql`now()` })
        .where(leadTarget(principal, id))
        .returning()
    : await db.select().from(leads).where(leadTarget(principal, id));
  return leadView(first(rows, "lead", id));
}

/** The lead's calls stay, unlinked (the database clears their lead_id). */
export async function deleteLead(db: Db, principal: Principal, id: string) {
  first(await db.delete(leads).where(leadTarget(principal, id)).returning({ id: leads.id }), "lead", id);
}

// ---------------------------------------------------------------- call logs

type CallLogRow = typeof callLogs.$inferSelect;
const callLogView = (r: CallLogRow) => ({
  id: r.id,
  provider_call_id: r.providerCallId,
  tenant_id: r.tenantId,
  campaign_id: r.campaignId,
  lead_id: r.leadId,
  phone_number_id: r.phoneNumberId,
  room_name: r.roomName,
  room_sid: r.roomSid,
  trunk_id: r.trunkId,
  from_number: r.fromNumber,
  to_number: r.toNumber,
  agent_name: r.agentName,
  agent_source: r.agentSource,
  status: r.status,
  created_at: iso(r.createdAt),
  caller_joined_at: iso(r.callerJoinedAt),
  answered_at: iso(r.answeredAt),
  ended_at: iso(r.endedAt),
  duration_ms: r.durationMs,
  disconnect_reason: r.disconnectReason,
  dispatch_id: r.dispatchId,
  metadata: r.metadata,
  updated_at: iso(r.updatedAt),
});

export const listCallLogs = (
  deps: AdminDeps,
  principal: Principal,
  query: {
    tenant_id?: string;
    campaign_id?: string;
    lead_id?: string;
    status?: CallStatus;
    from_number?: string;
    to_number?: string;
    since?: string;
    until?: string;
  } & Paging,
) =>
  listPage(
    deps.database.db,
    callLogs,
    [
      visible(principal, callLogs.tenantId),
      forTenant(callLogs.tenantId, query.tenant_id),
      query.campaign_id ? eq(callLogs.campaignId, query.campaign_id) : undefined,
      query.lead_id ? eq(callLogs.leadId, query.lead_id) : undefined,
      query.status ? eq(callLogs.status, query.status) : undefined,
      phoneFilter(callLogs.fromNumber, query.from_number, "from_number", deps.region),
      phoneFilter(callLogs.toNumber, query.to_number, "to_number", deps.region),
      query.since ? gte(callLogs.createdAt, sql`${timeParam(query.since, "since")}::timestamptz`) : undefined,
      query.until ? lt(callLogs.createdAt, sql`${timeParam(query.until, "until")}::timestamptz`) : undefined,
    ],
    query,
    callLogView,
  );

export async function getCallLog(db: Db, principal: Principal, by: { id: string } | { providerCallId: string }) {
  const key = "id" in by ? eq(callLogs.id, by.id) : eq(callLogs.providerCallId, by.providerCallId);
  const rows = await db
    .select()
    .from(callLogs)
    .where(and(key, visible(principal, callLogs.tenantId)));
  return callLogView(first(rows, "call log", "id" in by ? by.id : by.providerCallId));
}

/** A person fixing a call's status follows the rule webhooks follow: forward only. */
export async function updateCallLogStatus(deps: AdminDeps, principal: Principal, id: string, status: CallStatus) {
  const tenantId = principal.kind === "tenant" ? principal.tenantId : undefined;
  const moved = await correctCallStatus(deps.database, { id, status, tenantId });
  const call = await getCallLog(deps.database.db, principal, { id });
  if (!moved && call.status !== status) {
    throw new ConflictError(`status: a call cannot move from ${call.status} to ${status}`, "status");
  }
  return call;
}

// ---------------------------------------------------------------- api keys

export const listApiKeys = (db: Db, principal: Principal, query: { tenant_id?: string } & Paging) =>
  listPage(
    db,
    apiKeys,
    [visible(principal, apiKeys.tenantId), forTenant(apiKeys.tenantId, query.tenant_id)],
    query,
    apiKeyView,
  );

export async function getApiKey(db: Db, principal: Principal, id: string): Promise<ApiKeyView> {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id), visible(principal, apiKeys.tenantId)));
  return apiKeyView(first(rows, "api key", id));
}

export async function issueApiKey(
  db: Db,
  principal: Principal,
  body: { tenant_id?: string; admin?: boolean; label?: string },
) {
  if (body.admin) {
    assertAdmin(principal);
    if (body.tenant_id) throw new BadRequestError("tenant_id: an admin key has no tenant", "tenant_id");
    return createApiKey(db, { tenantId: null, label: body.label });
  }
  const tenantId = tenantForCreate(principal, body.tenant_id);
  return createApiKey(db, { tenantId, label: body.label });
}
