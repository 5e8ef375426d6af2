// Loads a directory file (tenants, agents, campaigns, numbers) into the database: validated
// as a whole first, then applied in one transaction keyed by natural keys, so a file either
// lands entirely or not at all, and loading it twice changes nothing. The natural keys are the
// schema's unique keys: tenants(name), agents(name), campaigns(tenant_id, name), phone_numbers(e164).
// Agent names are one namespace across tenants (LiveKit dispatches by name), so a file never
// takes an agent from another tenant, or a system-wide one: that is a problem, like a number.
import { Value } from "@sinclair/typebox/value";
import { and, eq, isNull, ne } from "drizzle-orm";
import { normalizePhoneNumber, numberTypeOf } from "../calls/phone";
import type { Drizzle } from "../db/client";
import { agents, campaigns, phoneNumbers, tenants } from "../db/schema";
import { DirectoryFile } from "./model";

export interface DirectoryProblem {
  /** JSON path into the file, e.g. `$.tenants[0].campaigns[1].agent`. */
  path: string;
  message: string;
}

export class DirectoryError extends Error {
  constructor(readonly problems: DirectoryProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
    this.name = "DirectoryError";
  }
}

export interface DirectorySummary {
  tenants: number;
  agents: number;
  campaigns: number;
  phoneNumbers: number;
}

type DirectoryTenant = DirectoryFile["tenants"][number];

/**
 * Parses, checks and applies a directory; throws DirectoryError listing every problem found.
 * `systemDefaultAgent` (SYSTEM_DEFAULT_AGENT) is a name no tenant's agent may take.
 */
export async function applyDirectory(
  db: Drizzle,
  input: unknown,
  region: string,
  systemDefaultAgent: string,
): Promise<DirectorySummary> {
  const file = checkDirectory(input, region, systemDefaultAgent);
  const summary: DirectorySummary = { tenants: 0, agents: 0, campaigns: 0, phoneNumbers: 0 };
  await db.transaction(async (tx) => {
    const systemAgentIds = new Map<string, string>();
    for (const [a, agent] of (file.agents ?? []).entries()) {
      const row = await upsertAgent(tx, null, agent.name, { active: agent.active ?? true }, `$.agents[${a}].name`);
      systemAgentIds.set(agent.name, row.id);
      summary.agents++;
    }
    for (const [t, tenant] of file.tenants.entries()) {
      const [tenantRow] = await tx
        .insert(tenants)
        .values({ name: tenant.name, active: tenant.active ?? true })
        .onConflictDoUpdate({ target: tenants.name, set: { active: tenant.active ?? true } })
        .returning({ id: tenants.id });
      summary.tenants++;
      const at: ApplyingTenant = { tx, tenant, tenantId: tenantRow!.id, path: `$.tenants[${t}]`, region, summary };
      const agentIds = await upsertTenantAgents(at, systemAgentIds);
      const campaignIds = await upsertCampaigns(at, agentIds);
      await upsertPhoneNumbers(at, campaignIds);
    }
  });
  return summary;
}

/** A tenant of the file being applied: in the file (at `path`), its row, the transaction, the counts. */
interface ApplyingTenant {
  tx: Drizzle;
  tenant: DirectoryTenant;
  tenantId: string;
  path: string;
  region: string;
  summary: DirectorySummary;
}

/** The tenant's agents, upserted; answers every agent name its campaigns may use (with the system's). */
async function upsertTenantAgents({ tx, tenant, tenantId, path, summary }: ApplyingTenant, systemAgentIds: Map<string, string>) {
  // Move the default before upserting, so the one-default-per-tenant index never sees two.
  const newDefault = tenant.agents?.find((a) => a.default)?.name;
  if (newDefault) {
    await tx
      .update(agents)
      .set({ isDefault: false })
      .where(and(eq(agents.tenantId, tenantId), eq(agents.isDefault, true), ne(agents.name, newDefault)));
  }
  const agentIds = new Map(systemAgentIds);
  for (const [a, agent] of (tenant.agents ?? []).entries()) {
    const values = { isDefault: agent.default ?? false, active: agent.active ?? true };
    const row = await upsertAgent(tx, tenantId, agent.name, values, `${path}.agents[${a}].name`);
    agentIds.set(agent.name, row.id);
    summary.agents++;
  }
  return agentIds;
}

/** The tenant's campaigns, upserted by (tenant, name) among live ones; answers their ids by name. */
async function upsertCampaigns({ tx, tenant, tenantId, summary }: ApplyingTenant, agentIds: Map<string, string>) {
  const campaignIds = new Map<string, string>();
  for (const campaign of tenant.campaigns ?? []) {
    const values = {
      agentId: campaign.agent ? agentIds.get(campaign.agent)! : null,
      status: campaign.status ?? ("active" as const),
    };
    const [row] = await tx
      .insert(campaigns)
      .values({ tenantId, name: campaign.name, ...values })
      .onConflictDoUpdate({
        target: [campaigns.tenantId, campaigns.name],
        targetWhere: isNull(campaigns.deletedAt),
        set: values,
      })
      .returning({ id: campaigns.id });
    campaignIds.set(campaign.name, row!.id);
    summary.campaigns++;
  }
  return campaignIds;
}

/** The tenant's numbers, upserted by E.164; a number of another tenant is a problem, not a move. */
async function upsertPhoneNumbers({ tx, tenant, tenantId, path, region, summary }: ApplyingTenant, campaignIds: Map<string, string>) {
  for (const [n, number] of (tenant.phone_numbers ?? []).entries()) {
    const e164 = normalizePhoneNumber(number.number, region)!;
    const values = {
      campaignId: number.campaign ? campaignIds.get(number.campaign)! : null,
      numberType: number.type ?? numberTypeOf(e164),
      active: number.active ?? true,
    };
    // The WHERE turns "this number belongs to another tenant" into zero rows, not a silent move.
    const rows = await tx
      .insert(phoneNumbers)
      .values({ e164, tenantId, ...values })
      .onConflictDoUpdate({ target: phoneNumbers.e164, set: values, setWhere: eq(phoneNumbers.tenantId, tenantId) })
      .returning({ id: phoneNumbers.id });
    if (rows.length === 0) {
      throw new DirectoryError([
        { path: `${path}.phone_numbers[${n}].number`, message: `${e164} already belongs to another tenant` },
      ]);
    }
    summary.phoneNumbers++;
  }
}

/**
 * Inserts the agent, or updates it if its name is already this owner's (tenantId, or null for
 * system-wide). The WHERE turns "the name is another owner's" into zero rows, not a silent move.
 */
async function upsertAgent(
  tx: Drizzle,
  tenantId: string | null,
  name: string,
  values: { isDefault?: boolean; active: boolean },
  path: string,
): Promise<{ id: string }> {
  const owner = tenantId === null ? isNull(agents.tenantId) : eq(agents.tenantId, tenantId);
  const [row] = await tx
    .insert(agents)
    .values({ tenantId, name, ...values })
    .onConflictDoUpdate({ target: agents.name, set: values, setWhere: owner })
    .returning({ id: agents.id });
  if (row) return row;
  const [other] = await tx.select({ tenantId: agents.tenantId }).from(agents).where(eq(agents.name, name));
  const whose = other?.tenantId === null ? "a system-wide agent" : "another tenant";
  throw new DirectoryError([
    { path, message: `"${name}" already belongs to ${whose} (agent names are unique across tenants)` },
  ]);
}

/** What checking the file has seen so far, across tenants. */
interface Checking {
  problems: DirectoryProblem[];
  /** Every agent name listed, and where (agent names are one namespace). */
  agentOwners: Map<string, string>;
  /** Every number listed (as E.164), and where. */
  numberOwners: Map<string, string>;
  systemAgents: Set<string>;
  systemDefaultAgent: string;
  region: string;
}

/** Every problem in the file at once, each with its JSON path. */
export function checkDirectory(input: unknown, region: string, systemDefaultAgent: string): DirectoryFile {
  const schemaProblems = [...Value.Errors(DirectoryFile, input)].map((e) => ({
    path: jsonPath(e.path),
    message: e.message,
  }));
  if (schemaProblems.length > 0) throw new DirectoryError(dedupe(schemaProblems));
  const file = input as DirectoryFile;
  const seen: Checking = {
    problems: [],
    agentOwners: new Map(),
    numberOwners: new Map(),
    systemAgents: new Set((file.agents ?? []).map((a) => a.name)),
    systemDefaultAgent,
    region,
  };
  for (const [a, agent] of (file.agents ?? []).entries()) {
    const problem = agentNameProblem(agent.name, `$.agents[${a}]`, seen.agentOwners, null);
    if (problem) seen.problems.push(problem);
  }
  const tenantNames = new Set<string>();
  for (const [t, tenant] of file.tenants.entries()) {
    const at = `$.tenants[${t}]`;
    if (tenantNames.has(tenant.name)) {
      seen.problems.push({ path: `${at}.name`, message: `duplicate tenant "${tenant.name}"` });
    }
    tenantNames.add(tenant.name);
    const agentNames = checkTenantAgents(seen, tenant, at);
    const campaignNames = checkCampaigns(seen, tenant, at, agentNames);
    checkPhoneNumbers(seen, tenant, at, campaignNames);
  }
  if (seen.problems.length > 0) throw new DirectoryError(seen.problems);
  return file;
}

/** A tenant's agents: each name once in the file, at most one default. Answers their names. */
function checkTenantAgents(seen: Checking, tenant: DirectoryTenant, at: string): Set<string> {
  const agentNames = new Set<string>();
  let defaults = 0;
  for (const [a, agent] of (tenant.agents ?? []).entries()) {
    if (agentNames.has(agent.name)) {
      seen.problems.push({ path: `${at}.agents[${a}].name`, message: `duplicate agent "${agent.name}"` });
    } else {
      const problem = agentNameProblem(agent.name, `${at}.agents[${a}]`, seen.agentOwners, seen.systemDefaultAgent);
      if (problem) seen.problems.push(problem);
    }
    agentNames.add(agent.name);
    if (agent.default && ++defaults > 1) {
      seen.problems.push({ path: `${at}.agents[${a}].default`, message: "a tenant has at most one default agent" });
    }
  }
  return agentNames;
}

/** A tenant's campaigns: each name once, each agent its own or a system one. Answers their names. */
function checkCampaigns(seen: Checking, tenant: DirectoryTenant, at: string, agentNames: Set<string>): Set<string> {
  const campaignNames = new Set<string>();
  for (const [c, campaign] of (tenant.campaigns ?? []).entries()) {
    if (campaignNames.has(campaign.name)) {
      seen.problems.push({ path: `${at}.campaigns[${c}].name`, message: `duplicate campaign "${campaign.name}"` });
    }
    campaignNames.add(campaign.name);
    if (campaign.agent && !agentNames.has(campaign.agent) && !seen.systemAgents.has(campaign.agent)) {
      seen.problems.push({
        path: `${at}.campaigns[${c}].agent`,
        message: `unknown agent "${campaign.agent}" (not among this tenant's agents or the system agents)`,
      });
    }
  }
  return campaignNames;
}

/** A tenant's numbers: each a phone number, listed once in the file, its campaign the tenant's. */
function checkPhoneNumbers(seen: Checking, tenant: DirectoryTenant, at: string, campaignNames: Set<string>) {
  for (const [n, number] of (tenant.phone_numbers ?? []).entries()) {
    const path = `${at}.phone_numbers[${n}]`;
    const e164 = normalizePhoneNumber(number.number, seen.region);
    if (!e164) {
      seen.problems.push({ path: `${path}.number`, message: `"${number.number}" is not a phone number` });
    } else if (seen.numberOwners.has(e164)) {
      seen.problems.push({ path: `${path}.number`, message: `${e164} is already listed at ${seen.numberOwners.get(e164)}` });
    } else {
      seen.numberOwners.set(e164, path);
    }
    if (number.campaign && !campaignNames.has(number.campaign)) {
      seen.problems.push({
        path: `${path}.campaign`,
        message: `unknown campaign "${number.campaign}" (not among this tenant's campaigns)`,
      });
    }
  }
}

/**
 * Agent names are one namespace (LiveKit dispatches by name): a name listed once in the whole
 * file, and no tenant's agent named like the system default. `owners` maps each name seen to
 * where it was listed; `systemDefaultAgent` is null for system-wide agents, which may take it.
 */
function agentNameProblem(
  name: string,
  at: string,
  owners: Map<string, string>,
  systemDefaultAgent: string | null,
): DirectoryProblem | undefined {
  const path = `${at}.name`;
  if (name === systemDefaultAgent) {
    return {
      path,
      message: `"${name}" is the system default agent (SYSTEM_DEFAULT_AGENT); LiveKit dispatches agents by name, so a tenant's agent cannot take it`,
    };
  }
  const listedAt = owners.get(name);
  if (listedAt) {
    return { path, message: `"${name}" is already listed at ${listedAt} (agent names are unique across tenants and system-wide agents)` };
  }
  owners.set(name, at);
  return undefined;
}

/** `/tenants/0/agents/1/name` -> `$.tenants[0].agents[1].name` */
function jsonPath(pointer: string): string {
  return (
    "$" +
    pointer
      .split("/")
      .slice(1)
      .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part.replaceAll("~1", "/").replaceAll("~0", "~")}`))
      .join("")
  );
}

function dedupe(problems: DirectoryProblem[]): DirectoryProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
