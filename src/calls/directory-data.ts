// What the routing directory holds, read from the database in a few statements, kept on disk as
// a snapshot, and compiled into the policies routing asks about (policy.ts). Everything here is
// plain data, so the snapshot is the same JSON whatever the process that wrote it.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import type { PolicyAction } from "../db/schema";
import type { Logger } from "../logger";
import { Blocklist } from "./blocklist";
import type { BusinessHours } from "./model";
import type { CallPolicies, PolicyOutcome } from "./policy";
import { compileSchedule } from "./schedule";

/** The directory facts the decision needs for one dialed number. */
export interface DirectoryEntry {
  phoneNumberId: string;
  tenantId: string;
  campaignId: string | null;
  campaignActive: boolean;
  campaignAgent: string | null;
  tenantDefaultAgent: string | null;
  blockAnonymous?: boolean;
  /** The number's schedule, else its campaign's. */
  scheduleId?: string | null;
  cap?: CapRule | null;
}

type CapRule = { limit: number; overflow: PolicyOutcome | null };

type Variables = Record<string, unknown>;

/** A tenant's policies that are not a number's, and its custom variables. */
export interface TenantRules {
  blocklist: string[];
  cap: CapRule | null;
  variables: Variables;
}

export type ScheduleRule = BusinessHours & { afterHours: PolicyOutcome };

export interface DirectoryData {
  numbers: Map<string, DirectoryEntry>;
  tenants: Map<string, TenantRules>;
  schedules: Map<string, ScheduleRule>;
  /** Blocklist entries of every tenant (tenant_id null). */
  globalBlocklist: string[];
  /** The custom variables of campaigns that have any. */
  campaignVariables: Map<string, Variables>;
}

export const emptyDirectory = (): DirectoryData => ({
  numbers: new Map(),
  tenants: new Map(),
  schedules: new Map(),
  globalBlocklist: [],
  campaignVariables: new Map(),
});

/** A policy action as stored, with its agent's name (null when the agent is gone or inactive). */
function outcomeOf(action: PolicyAction | null, agentName: string | null): PolicyOutcome | null {
  if (!action) return null;
  if (action.action === "dispatch") return { action: "dispatch", agentName };
  if (action.action === "transfer" && action.transfer_to) return { action: "transfer", transferTo: action.transfer_to };
  return { action: "reject" };
}

const capOf = (limit: number | null, overflow: PolicyAction | null, agent: string | null): CapRule | null =>
  limit ? { limit, overflow: outcomeOf(overflow, agent) } : null;

type NumberRow = {
  e164: string;
  phone_number_id: string;
  tenant_id: string;
  campaign_id: string | null;
  campaign_active: boolean | null;
  campaign_agent: string | null;
  tenant_default_agent: string | null;
  block_anonymous: boolean;
  schedule_id: string | null;
  max_concurrent_calls: number | null;
  overflow: PolicyAction | null;
  overflow_agent: string | null;
};

/**
 * The agent a policy action names, when it is active and still the tenant's own or system-wide: an
 * agent moved to another tenant since the policy named it must not take this tenant's callers.
 */
const actionAgent = (column: string, tenant: string) =>
  sql.raw(`(select a.name from agents a where a.id = (${column}->>'agent_id')::uuid and a.active
            and (a.tenant_id is null or a.tenant_id = ${tenant}))`);

/** Every active number of an active tenant, with what the routing rule and its policies need. */
async function readNumbers(database: Database): Promise<Map<string, DirectoryEntry>> {
  const rows = await database.rows<NumberRow>(sql`
    select pn.e164, pn.id as phone_number_id, t.id as tenant_id, pn.campaign_id,
           c.status = 'active' as campaign_active,
           case when ca.active then ca.name end as campaign_agent,
           td.name as tenant_default_agent,
           pn.block_anonymous, coalesce(pn.schedule_id, c.schedule_id) as schedule_id,
           pn.max_concurrent_calls, pn.overflow, ${actionAgent("pn.overflow", "pn.tenant_id")} as overflow_agent
    from phone_numbers pn
    join tenants t on t.id = pn.tenant_id and t.active
    left join campaigns c on c.id = pn.campaign_id
    left join agents ca on ca.id = c.agent_id
    left join agents td on td.tenant_id = t.id and td.is_default and td.active
    where pn.active`);
  return new Map(
    rows.map((row) => [
      row.e164,
      {
        phoneNumberId: row.phone_number_id,
        tenantId: row.tenant_id,
        campaignId: row.campaign_id,
        campaignActive: row.campaign_active === true,
        campaignAgent: row.campaign_agent,
        tenantDefaultAgent: row.tenant_default_agent,
        blockAnonymous: row.block_anonymous,
        scheduleId: row.schedule_id,
        cap: capOf(row.max_concurrent_calls, row.overflow, row.overflow_agent),
      },
    ]),
  );
}

/** The tenants' caps, blocklists and variables; the schedules; the global blocklist; the campaigns' variables. */
async function readRules(database: Database): Promise<Omit<DirectoryData, "numbers">> {
  type TenantRow = { id: string; max_concurrent_calls: number | null; overflow: PolicyAction | null; overflow_agent: string | null; variables: Variables };
  const tenantRows = await database.rows<TenantRow>(sql`
    select t.id, t.max_concurrent_calls, t.overflow, ${actionAgent("t.overflow", "t.id")} as overflow_agent, t.variables from tenants t where t.active`);
  const tenants = new Map(
    tenantRows.map((row) => [row.id, { blocklist: [] as string[], cap: capOf(row.max_concurrent_calls, row.overflow, row.overflow_agent), variables: row.variables }]),
  );
  const globalBlocklist: string[] = [];
  for (const entry of await database.rows<{ tenant_id: string | null; pattern: string }>(sql`select tenant_id, pattern from blocklist_entries`)) {
    if (entry.tenant_id === null) globalBlocklist.push(entry.pattern);
    else tenants.get(entry.tenant_id)?.blocklist.push(entry.pattern);
  }
  type ScheduleRow = BusinessHours & { id: string; after_hours: PolicyAction; after_hours_agent: string | null };
  const scheduleRows = await database.rows<ScheduleRow>(sql`
    select s.id, s.time_zone, s.weekly_hours, s.holidays, s.after_hours, ${actionAgent("s.after_hours", "s.tenant_id")} as after_hours_agent
    from schedules s join tenants t on t.id = s.tenant_id and t.active`);
  const schedules = new Map(
    scheduleRows.map(({ id, after_hours, after_hours_agent, ...hours }) => [
      id,
      { time_zone: hours.time_zone, weekly_hours: hours.weekly_hours, holidays: hours.holidays, afterHours: outcomeOf(after_hours, after_hours_agent)! },
    ]),
  );
  const campaignRows = await database.rows<{ id: string; variables: Variables }>(sql`
    select c.id, c.variables from campaigns c where c.variables <> '{}'::jsonb and c.deleted_at is null`);
  return { tenants, schedules, globalBlocklist, campaignVariables: new Map(campaignRows.map((row) => [row.id, row.variables])) };
}

export async function readDirectory(database: Database): Promise<DirectoryData> {
  const numbers = await readNumbers(database);
  return { numbers, ...(await readRules(database)) };
}

/**
 * The directory made ready to answer: blocklists and schedules compiled once per load, shared by
 * every number of a tenant. A schedule that cannot be compiled (a time zone this runtime does not
 * know) is left out, so its numbers stay open rather than fail their calls.
 */
export function compilePolicies(data: DirectoryData, logger: Logger): (entry: DirectoryEntry | null) => CallPolicies {
  const global = new Blocklist(data.globalBlocklist);
  // The global entries once, and each tenant's own only when it has some: a copy of the global
  // list per tenant would grow with tenants times entries.
  const blocklists = new Map(
    [...data.tenants].filter(([, rules]) => rules.blocklist.length > 0).map(([id, rules]) => [id, new Blocklist(rules.blocklist)]),
  );
  const blocked = (own: Blocklist | undefined) => ({ matches: (caller: string | null) => global.matches(caller) || own?.matches(caller) === true });
  const schedules = new Map<string, CallPolicies["schedule"]>();
  for (const [id, rule] of data.schedules) {
    try {
      schedules.set(id, { hours: compileSchedule(rule), afterHours: rule.afterHours });
    } catch (error) {
      logger.warn({ err: error, schedule_id: id, time_zone: rule.time_zone }, "schedule left out: its time zone is unknown here");
    }
  }
  return (entry) => ({
    blocklist: blocked(entry ? blocklists.get(entry.tenantId) : undefined),
    blockAnonymous: entry?.blockAnonymous ?? false,
    schedule: (entry?.scheduleId && schedules.get(entry.scheduleId)) || null,
    numberCap: entry?.cap ?? null,
    tenantCap: (entry && data.tenants.get(entry.tenantId)?.cap) || null,
  });
}

/** The variables a number's calls carry: the tenant's, overridden key by key by the campaign's. */
export function variablesOf(data: DirectoryData, entry: DirectoryEntry | null): Variables {
  if (!entry) return {};
  const campaign = entry.campaignId ? data.campaignVariables.get(entry.campaignId) : undefined;
  return { ...data.tenants.get(entry.tenantId)?.variables, ...campaign };
}

type Snapshot = {
  saved_at: string;
  entries: [string, DirectoryEntry][];
  tenants?: [string, TenantRules][];
  schedules?: [string, ScheduleRule][];
  global_blocklist?: string[];
  campaign_variables?: [string, Variables][];
};

/** Written whole to a temporary file, then renamed: a crash leaves the old snapshot or the new one. True once saved. */
export async function saveSnapshot(path: string, data: DirectoryData, savedAt: Date, logger: Logger): Promise<boolean> {
  try {
    const temporary = `${path}.${process.pid}.tmp`;
    // The first load at a first start comes before anything else made DATA_DIR (with DATABASE_URL).
    await mkdir(dirname(path), { recursive: true });
    const snapshot: Snapshot = {
      saved_at: savedAt.toISOString(),
      entries: [...data.numbers],
      tenants: [...data.tenants],
      schedules: [...data.schedules],
      global_blocklist: data.globalBlocklist,
      campaign_variables: [...data.campaignVariables],
    };
    await writeFile(temporary, JSON.stringify(snapshot));
    await rename(temporary, path);
    return true;
  } catch (error) {
    logger.warn({ err: error, path }, "routing directory snapshot not saved");
    return false;
  }
}

/** The snapshot on disk; one written before policies existed restores without them. */
export async function readSnapshot(path: string, logger: Logger): Promise<{ data: DirectoryData; loadedAt: Date } | null> {
  const file = Bun.file(path);
  if (!(await file.exists())) return null;
  try {
    const snapshot = (await file.json()) as Snapshot;
    const data = {
      numbers: new Map(snapshot.entries),
      tenants: new Map(snapshot.tenants ?? []),
      schedules: new Map(snapshot.schedules ?? []),
      globalBlocklist: snapshot.global_blocklist ?? [],
      campaignVariables: new Map(snapshot.campaign_variables ?? []),
    };
    return { data, loadedAt: new Date(snapshot.saved_at) };
  } catch (error) {
    logger.warn({ err: error, path }, "routing directory snapshot unreadable: ignored");
    return null;
  }
}
