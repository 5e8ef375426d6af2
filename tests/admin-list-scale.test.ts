// The admin lists stay fast as the history grows (issue 14): with thousands of numbers and leads
// and tens of thousands of call logs loaded, each list page is found through an index that gives
// both its filter and its newest-first order, so it reads about a page of rows, never the whole
// table. The plans are those of the very statements the endpoints run (captured as they run;
// every one of a request's statements is planned, whatever its text), on whichever database the
// suite uses. bench/scale.ts measures the same at full size.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type SQL, sql, TransactionRollbackError } from "drizzle-orm";
import { BIG_TENANT, type ScaleSizes, scaleDataStatements, scaleTenantId } from "../bench/scale";
import { createApiKey } from "../src/admin/keys";
import { rowsOf } from "../src/db/client";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";

const SIZES: ScaleSizes = {
  tenants: 50,
  campaignsPerTenant: 5,
  agentsPerTenant: 2,
  numbersPerTenant: 100,
  leadsPerTenant: 200,
  callLogs: 20_000,
};
/** A tenant of average size (the big one has a tenth of all calls). */
const TENANT = 5;

interface Statement {
  query: string;
  params: unknown[];
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

let ctx: TestContext;
let admin: AdminClient;
let tenant: AdminClient;
/** Every statement the app ran through Drizzle since the last request. */
let statements: Statement[] = [];
const tableRows: Record<string, number> = {};
/** Filter values with many calls behind them: the big tenant's busiest campaign, lead, caller and number. */
const busiest: Record<string, string> = {};

beforeAll(async () => {
  ctx = await openTestContext();
  for (const statement of scaleDataStatements(SIZES)) await ctx.database.maintenanceDb.execute(sql.raw(statement));
  await ctx.database.maintenanceDb.execute(sql`analyze`);
  for (const table of ["call_logs", "leads", "phone_numbers"]) {
    const [row] = await ctx.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)}`);
    tableRows[table] = row!.n;
  }
  for (const column of ["campaign_id", "lead_id", "from_number", "to_number"]) {
    const [row] = await ctx.database.rows<{ v: string }>(sql`
      select ${sql.identifier(column)}::text as v from call_logs
      where tenant_id = ${scaleTenantId(BIG_TENANT)}::uuid and ${sql.identifier(column)} is not null
      group by 1 order by count(*) desc limit 1`);
    busiest[column] = row!.v;
  }
  const [lead] = await ctx.database.rows<{ v: string }>(sql`select phone_number as v from leads where id = ${busiest.lead_id}::uuid`);
  busiest.lead_phone = lead!.v;
  admin = adminClient(ctx, (await createApiKey(ctx.database.db, { tenantId: null })).key);
  tenant = adminClient(ctx, (await createApiKey(ctx.database.db, { tenantId: scaleTenantId(TENANT) })).key);
  // Drizzle tells its logger every statement it runs, with its parameters: the lists' own SQL.
  // Put back before the database goes on to the next test file (see afterAll).
  originalLogger = drizzleSession().logger;
  drizzleSession().logger = { logQuery: (query: string, params: unknown[]) => statements.push({ query, params }) };
}, 60_000);

let originalLogger: unknown;
const drizzleSession = () => (ctx.database.db as unknown as { session: { logger: unknown } }).session;

afterAll(async () => {
  if (ctx) drizzleSession().logger = originalLogger;
  await ctx?.reset();
  await ctx?.close();
});

/** Every statement a GET ran (not told apart by their text: the plans below say what each read). */
async function statementsOf(client: AdminClient, path: string): Promise<Statement[]> {
  statements = [];
  const answer = await client.get(path);
  expect(answer.status).toBe(200);
  expect(answer.body.data.length).toBeGreaterThan(0);
  const ran = statements;
  statements = [];
  return ran;
}

/** The statement with its parameters in place again, as Drizzle SQL (numbered $1, $2... in the text). */
function withParams({ query, params }: Statement): SQL {
  const parts = query.split(/\$(\d+)/);
  return sql.join(parts.map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${params[Number(part) - 1]}`)));
}

/**
 * What the database did for the statement: the plan's nodes, run for real (EXPLAIN ANALYZE) in a
 * transaction that is rolled back, so a statement that writes (a key's last use) changes nothing.
 */
async function planOf(statement: Statement): Promise<PlanNode[]> {
  let raw: unknown;
  await ctx.database.db
    .transaction(async (tx) => {
      const [row] = rowsOf<{ "QUERY PLAN": unknown }>(await tx.execute(sql`explain (analyze, format json) ${withParams(statement)}`));
      raw = row!["QUERY PLAN"];
      tx.rollback();
    })
    .catch((error) => {
      if (!(error instanceof TransactionRollbackError)) throw error;
    });
  const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: PlanNode }[];
  const nodes: PlanNode[] = [];
  const walk = (node: PlanNode) => {
    nodes.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(top!.Plan);
  return nodes;
}

/** Rows of `table` the plan read: those returned by its scans plus those its filters threw away. */
function rowsRead(nodes: PlanNode[], table: string): number {
  return nodes
    .filter((n) => n["Relation Name"] === table)
    .reduce((sum, n) => sum + ((n["Actual Rows"] ?? 0) + (n["Rows Removed by Filter"] ?? 0)) * (n["Actual Loops"] ?? 1), 0);
}

type Case = [name: string, key: "admin" | "tenant", path: () => string, table: string, indexes: string[]];

const enc = encodeURIComponent;
const CASES: Case[] = [
  ["every tenant's call logs", "admin", () => "/call-logs", "call_logs", ["call_logs_created_idx"]],
  ["one tenant's call logs", "admin", () => `/call-logs?tenant_id=${scaleTenantId(TENANT)}`, "call_logs", ["call_logs_tenant_created_idx"]],
  ["the big tenant's call logs", "admin", () => `/call-logs?tenant_id=${scaleTenantId(BIG_TENANT)}`, "call_logs", ["call_logs_tenant_created_idx", "call_logs_created_idx"]],
  ["a tenant key's call logs", "tenant", () => "/call-logs", "call_logs", ["call_logs_tenant_created_idx"]],
  ["a tenant key's failed calls", "tenant", () => "/call-logs?status=failed", "call_logs", ["call_logs_tenant_created_idx", "call_logs_status_created_idx"]],
  ["calls still ringing", "admin", () => "/call-logs?status=ringing", "call_logs", ["call_logs_status_created_idx"]],
  ["the big tenant's calls still ringing", "admin", () => `/call-logs?tenant_id=${scaleTenantId(BIG_TENANT)}&status=ringing`, "call_logs", ["call_logs_status_created_idx", "call_logs_tenant_created_idx"]],
  ["a campaign's calls", "admin", () => `/call-logs?campaign_id=${busiest.campaign_id}`, "call_logs", ["call_logs_campaign_created_idx"]],
  ["a lead's calls", "admin", () => `/call-logs?lead_id=${busiest.lead_id}`, "call_logs", ["call_logs_lead_created_idx"]],
  ["a caller's calls", "admin", () => `/call-logs?from_number=${enc(busiest.from_number!)}`, "call_logs", ["call_logs_from_created_idx"]],
  ["a number's calls", "admin", () => `/call-logs?to_number=${enc(busiest.to_number!)}`, "call_logs", ["call_logs_to_created_idx"]],
  ["every tenant's leads", "admin", () => "/leads", "leads", ["leads_created_idx"]],
  ["one tenant's leads", "admin", () => `/leads?tenant_id=${scaleTenantId(TENANT)}`, "leads", ["leads_tenant_created_idx"]],
  ["a tenant key's leads", "tenant", () => "/leads", "leads", ["leads_tenant_created_idx"]],
  ["a campaign's leads", "admin", () => `/leads?campaign_id=${busiest.campaign_id}`, "leads", ["leads_campaign_created_idx"]],
  ["a caller's leads", "admin", () => `/leads?phone_number=${enc(busiest.lead_phone!)}`, "leads", ["leads_phone_number_idx"]],
  ["every tenant's numbers", "admin", () => "/phone-numbers", "phone_numbers", ["phone_numbers_created_idx"]],
  ["one tenant's numbers", "admin", () => `/phone-numbers?tenant_id=${scaleTenantId(TENANT)}`, "phone_numbers", ["phone_numbers_tenant_created_idx"]],
  ["a tenant key's numbers", "tenant", () => "/phone-numbers", "phone_numbers", ["phone_numbers_tenant_created_idx"]],
  ["a campaign's numbers", "admin", () => `/phone-numbers?campaign_id=${busiest.campaign_id}`, "phone_numbers", ["phone_numbers_campaign_idx"]],
];

describe("admin lists over a long history", () => {
  test.each(CASES)("%s (%s key): found through an index, reading a page's worth of rows", async (_name, key, path, table, indexes) => {
    const ran = await statementsOf(key === "admin" ? admin : tenant, path());
    const nodes: PlanNode[] = [];
    for (const statement of ran) nodes.push(...(await planOf(statement)));
    const scans = nodes.filter((n) => n["Relation Name"] === table || (n["Index Name"] && n["Node Type"].includes("Index")));
    const seen = scans.map((n) => `${n["Node Type"]} ${n["Relation Name"] ?? ""} ${n["Index Name"] ?? ""}`.trim());
    // The whole table is never read...
    expect(seen.filter((d) => d.startsWith("Seq Scan"))).toEqual([]);
    // ...an index on the filter (and the order) finds the page...
    expect(scans.some((n) => n["Index Name"] !== undefined && indexes.includes(n["Index Name"]))).toBe(true);
    // ...and the rows looked at are a small part of the table, however many it holds.
    expect(rowsRead(nodes, table)).toBeLessThan(tableRows[table]! / 20);
  });
});
