// A call's record costs the database the same whether its tenant has ten leads or tens of
// thousands (issue 14): record_calls finds the caller's lead through leads_caller_key with all
// three of its columns (drizzle/0013_lead_lookup_by_key.sql). Measured as the database counts
// it, in pages of its buffer pool: EXPLAIN (ANALYZE, BUFFERS) of the statement the recorder runs,
// for a new caller of a tenant, before and after 30,000 more leads are added to that tenant. A
// lookup that walked the tenant's part of the index (as on PostgreSQL before 18, which has no
// skip scan) reads about 200 more pages; one by the whole key a few, for the taller indexes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql, TransactionRollbackError } from "drizzle-orm";
import { type Drizzle, rowsOf } from "../src/db/client";
import { openTestContext, type TestContext } from "./support/context";

const CAMPAIGN_NUMBER = "+14155550100";
const PLAIN_NUMBER = "+14155550101";
const MORE_LEADS = 30_000;

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
  await ctx.seed({
    tenants: [
      {
        name: "Acme",
        agents: [{ name: "acme-default", default: true }, { name: "acme-sales" }],
        campaigns: [{ name: "Live", agent: "acme-sales" }],
        phone_numbers: [{ number: CAMPAIGN_NUMBER, campaign: "Live" }, { number: PLAIN_NUMBER }],
      },
    ],
  });
});
afterAll(() => ctx.close());

type Number = { id: string; tenant_id: string; campaign_id: string | null };

/** record_calls' input for one new call from `caller` to `number` (src/calls/recorder.ts builds the same). */
function oneCall(number: Number, to: string, caller: string) {
  return [
    {
      ord: 0,
      call_id: `lookup-${caller}`,
      from_number: caller,
      to_number: to,
      tenant_id: number.tenant_id,
      campaign_id: number.campaign_id,
      phone_number_id: number.id,
      agent_name: "acme-sales",
      agent_source: "campaign",
      metadata: {},
      created_at: new Date().toISOString(),
      claim_dispatch: false,
      makes_lead: true,
    },
  ];
}

/** Pages of the buffer pool the statement touched (found there or read in), as EXPLAIN counts them. */
async function pagesTouched(tx: Drizzle, calls: unknown[]): Promise<number> {
  const [row] = rowsOf<{ "QUERY PLAN": unknown }>(
    await tx.execute(sql`explain (analyze, buffers, format json) select * from record_calls(${JSON.stringify(calls)}::jsonb)`),
  );
  const raw = row!["QUERY PLAN"];
  const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: { "Shared Hit Blocks": number; "Shared Read Blocks": number } }[];
  return top!.Plan["Shared Hit Blocks"] + top!.Plan["Shared Read Blocks"];
}

/** Runs `work` on one connection in a transaction that is rolled back: the leads added leave no trace. */
async function rolledBack(work: (tx: Drizzle) => Promise<void>) {
  await ctx.database.db
    .transaction(async (tx) => {
      await work(tx as unknown as Drizzle);
      tx.rollback();
    })
    .catch((error) => {
      if (!(error instanceof TransactionRollbackError)) throw error;
    });
}

describe("a caller's lead is found by its key, however many leads the tenant has", () => {
  for (const [label, to] of [
    ["a campaign's number", CAMPAIGN_NUMBER],
    ["a number without a campaign", PLAIN_NUMBER],
  ] as const) {
    test(`calls to ${label}`, async () => {
      const [number] = await ctx.database.rows<Number>(
        sql`select id, tenant_id, campaign_id from phone_numbers where e164 = ${to}`,
      );
      let small = 0;
      let big = 0;
      await rolledBack(async (tx) => {
        // The first use of record_calls on a connection reads the catalogs; it is not what is measured.
        await pagesTouched(tx, oneCall(number!, to, "+12125550100"));
        small = await pagesTouched(tx, oneCall(number!, to, "+12125550101"));
        // Leads of the same tenant, half in the campaign and half without one, on other numbers.
        await tx.execute(sql`
          insert into leads (tenant_id, campaign_id, phone_number, name, status)
          select ${number!.tenant_id}::uuid, case when n % 2 = 0 then ${number!.campaign_id}::uuid end,
                 '+1646' || lpad(n::text, 7, '0'), 'Lead ' || n, 'new'
          from generate_series(1, ${MORE_LEADS}) n`);
        big = await pagesTouched(tx, oneCall(number!, to, "+12125550102"));
      });
      expect(small).toBeGreaterThan(0);
      expect(big - small).toBeLessThan(40);
    });
  }
});
