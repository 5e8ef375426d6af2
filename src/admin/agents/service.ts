// Agents: a tenant's, or system-wide (tenant_id null, changed with an admin key only, seen by
// every tenant). LiveKit dispatches agents by name, so names are one namespace across tenants.
import { and, eq, sql } from "drizzle-orm";
import { constraintViolation } from "../../db/errors";
import type { Drizzle } from "../../db/client";
import { agents, campaigns, tenants } from "../../db/schema";
import { ConflictError, ForbiddenError, NotFoundError } from "../../errors";
import type { AdminDeps } from "../context";
import { assertStorableJson } from "../input";
import type { Principal } from "../keys";
import { Agent, type AgentCreate, type AgentQuery, type AgentUpdate } from "../model";
import { filter, listPage } from "../pages";
import { found, updateOrRead, viewOf } from "../rows";
import { assertMayMoveTo, tenantForCreate, visible, writable } from "../scope";

const agentView = viewOf(Agent, { is_active: "active" });

function agentValues(body: typeof AgentUpdate.static) {
  if (body.metadata !== undefined) assertStorableJson(body.metadata, "metadata");
  return {
    name: body.name,
    isDefault: body.is_default,
    active: body.is_active,
    description: body.description,
    metadata: body.metadata,
  };
}

export const listAgents = (db: Drizzle, principal: Principal, query: typeof AgentQuery.static) =>
  listPage(
    db,
    agents,
    [
      visible(principal, agents.tenantId, true),
      filter(agents.tenantId, query.tenant_id),
      filter(agents.active, query.is_active),
      filter(agents.isDefault, query.is_default),
      filter(agents.name, query.name),
    ],
    query,
    agentView,
  );

export async function getAgent(db: Drizzle, principal: Principal, id: string) {
  const rows = await db
    .select()
    .from(agents)
    .where(and(eq(agents.id, id), visible(principal, agents.tenantId, true)));
  return agentView(found(rows, "agent", id));
}

/**
 * A new default replaces the tenant's old one in the same transaction (the index allows one).
 * The tenant row is locked first so concurrent "make this the default" requests take turns
 * instead of meeting on the index.
 */
async function clearDefault(tx: Drizzle, tenantId: string | null, keep?: string) {
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

export async function createAgent(deps: AdminDeps, principal: Principal, body: typeof AgentCreate.static) {
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

export async function updateAgent(deps: AdminDeps, principal: Principal, id: string, body: typeof AgentUpdate.static) {
  assertMayMoveTo(principal, body.tenant_id);
  return deps.database.db
    .transaction(async (tx) => {
      const set = { ...agentValues(body), tenantId: body.tenant_id };
      const target = and(eq(agents.id, id), writable(principal, agents.tenantId));
      if (body.is_default) {
        const [current] = await tx.select({ tenantId: agents.tenantId }).from(agents).where(target);
        await clearDefault(tx, body.tenant_id === undefined ? (current?.tenantId ?? null) : body.tenant_id, id);
      }
      const rows = await updateOrRead(tx, agents, set, target);
      if (rows.length === 0) await explainUnwritableAgent(tx, principal, id);
      // Checked on the row as written (a rename, a move or both); throwing rolls the write back.
      if (body.name !== undefined || body.tenant_id !== undefined) assertNotSystemDefault(deps, rows[0]!);
      return agentView(rows[0]!);
    })
    .catch(explainNameTaken);
}

/** Nothing matched: a system-wide agent a tenant key may read but not change, or nothing at all. */
async function explainUnwritableAgent(db: Drizzle, principal: Principal, id: string): Promise<never> {
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
export async function deleteAgent(db: Drizzle, principal: Principal, id: string, unlink: boolean) {
  try {
    await db.transaction(async (tx) => {
      const target = and(eq(agents.id, id), writable(principal, agents.tenantId));
      const [agent] = await tx.select({ tenantId: agents.tenantId }).from(agents).where(target).for("update");
      if (!agent) return explainUnwritableAgent(tx, principal, id);
      await releaseFromCampaigns(tx, id, agent.tenantId, unlink);
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

/** Detaches the agent from the campaigns using it (unlink), or refuses naming them. */
async function releaseFromCampaigns(tx: Drizzle, id: string, tenantId: string | null, unlink: boolean) {
  // The triggers keep a tenant's agent to its own campaigns; the scope says so once more.
  const users = and(eq(campaigns.agentId, id), tenantId ? eq(campaigns.tenantId, tenantId) : undefined);
  if (unlink) {
    await tx.update(campaigns).set({ agentId: null }).where(users);
    return;
  }
  const using = await tx.select({ id: campaigns.id }).from(campaigns).where(users);
  if (using.length > 0) {
    throw new ConflictError(
      `agent ${id} is used by ${using.length} campaign(s); delete with ?unlink=true to detach it`,
      undefined,
      { campaign_ids: using.map((u) => u.id) },
    );
  }
}
