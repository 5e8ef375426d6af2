// Loads a directory file (tenants, agents, campaigns, numbers) into the database: validated
// as a whole first, then applied in one transaction keyed by natural keys, so a file either
// lands entirely or not at all, and loading it twice changes nothing. The natural keys are the
// schema's unique keys: tenants(name), agents(name), campaigns(tenant_id, name), phone_numbers(e164).
// Agent names are one namespace across tenants (LiveKit dispatches by name), so a file never
// takes an agent from another tenant, or a system-wide one: that is a problem, like a number.
import { Value } from "@sinclair/typebox/value";
import { and, eq, isNull, ne } from "drizzle-orm";
import { normalizePhoneNumber, numberTypeOf } from "../calls/phone";
import type { Db } from "../db/client";
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

/**
 * Parses, checks and applies a directory; throws DirectoryError listing every problem found.
 * `systemDefaultAgent` (SYSTEM_DEFAULT_AGENT) is a name no tenant's agent may take.
 */
export async function applyDirectory(
  db: Db,
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
      const tenantId = tenantRow!.id;
      summary.tenants++;

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
        const row = await upsertAgent(tx, tenantId, agent.name, values, `$.tenants[${t}].agents[${a}].name`);
        agentIds.set(agent.name, row.id);
        summary.agents++;
      }

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
            { path: `$.tenants[${t}].phone_numbers[${n}].number`, message: `${e164} already belongs to another tenant` },
          ]);
        }
        summary.phoneNumbers++;
      }
    }
  });
  return summary;
}

/**
 * Inserts the agent, or updates it if its name is already this owner's (tenantId, or null for
 * system-wide). The WHERE turns "the name is another owner's" into zero rows, not a silent move.
 */
async function upsertAgent(
  tx: Db,
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

/** Every problem in the file at once, each with its JSON path. */
export function checkDirectory(input: unknown, region: string, systemDefaultAgent: string): DirectoryFile {
  const schemaProblems = [...Value.Errors(DirectoryFile, input)].map((e) => ({
    path: jsonPath(e.path),
    message: e.message,
  }));
  if (schemaProblems.length > 0) throw new DirectoryError(dedupe(schemaProblems));
  const file = input as DirectoryFile;
  const problems: DirectoryProblem[] = [];
  const systemAgents = new Set((file.agents ?? []).map((a) => a.name));
  const agentOwners = new Map<string, string>();
  for (const [a, agent] of (file.agents ?? []).entries()) {
    const problem = agentNameProblem(agent.name, `$.agents[${a}]`, agentOwners, null);
    if (problem) problems.push(problem);
  }
  const tenantNames = new Set<string>();
  const numberOwners = new Map<string, string>();

  for (const [t, tenant] of file.tenants.entries()) {
    const at = `$.tenants[${t}]`;
    if (tenantNames.has(tenant.name)) problems.push({ path: `${at}.name`, message: `duplicate tenant "${tenant.name}"` });
    tenantNames.add(tenant.name);

    const agentNames = new Set<string>();
    let defaults = 0;
    for (const [a, agent] of (tenant.agents ?? []).entries()) {
      if (agentNames.has(agent.name)) {
        problems.push({ path: `${at}.agents[${a}].name`, message: `duplicate agent "${agent.name}"` });
      } else {
        const problem = agentNameProblem(agent.name, `${at}.agents[${a}]`, agentOwners, systemDefaultAgent);
        if (problem) problems.push(problem);
      }
      agentNames.add(agent.name);
      if (agent.default && ++defaults > 1) {
        problems.push({ path: `${at}.agents[${a}].default`, message: "a tenant has at most one default agent" });
      }
    }

    const campaignNames = new Set<string>();
    for (const [c, campaign] of (tenant.campaigns ?? []).entries()) {
      if (campaignNames.has(campaign.name)) {
        problems.push({ path: `${at}.campaigns[${c}].name`, message: `duplicate campaign "${campaign.name}"` });
      }
      campaignNames.add(campaign.name);
      if (campaign.agent && !agentNames.has(campaign.agent) && !systemAgents.has(campaign.agent)) {
        problems.push({
          path: `${at}.campaigns[${c}].agent`,
          message: `unknown agent "${campaign.agent}" (not among this tenant's agents or the system agents)`,
        });
      }
    }

    for (const [n, number] of (tenant.phone_numbers ?? []).entries()) {
      const e164 = normalizePhoneNumber(number.number, region);
      if (!e164) {
        problems.push({ path: `${at}.phone_numbers[${n}].number`, message: `"${number.number}" is not a phone number` });
      } else if (numberOwners.has(e164)) {
        problems.push({
          path: `${at}.phone_numbers[${n}].number`,
          message: `${e164} is already listed at ${numberOwners.get(e164)}`,
        });
      } else {
        numberOwners.set(e164, `${at}.phone_numbers[${n}]`);
      }
      if (number.campaign && !campaignNames.has(number.campaign)) {
        problems.push({
          path: `${at}.phone_numbers[${n}].campaign`,
          message: `unknown campaign "${number.campaign}" (not among this tenant's campaigns)`,
        });
      }
    }
  }
  if (problems.length > 0) throw new DirectoryError(problems);
  return file;
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
  const first = owners.get(name);
  if (first) {
    return { path, message: `"${name}" is already listed at ${first} (agent names are unique across tenants and system-wide agents)` };
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
