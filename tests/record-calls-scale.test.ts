// A call's record costs the database the same whether its tenant has a hundred leads or tens of
// thousands, and whether call_logs holds a hundred rows or tens of thousands (issue 14):
// record_calls reaches both tables through the indexes of their keys
// (drizzle/0013_record_calls_by_index.sql), also with the plan a connection cached while they were
// small. So do revisit_calls (drizzle/0014_revisit_calls_by_index.sql), which LiveKit's join of a
// call the decision endpoint recorded goes through, and an agent's join, which answers the ringing
// call of its room (src/calls/lifecycle.ts).
// Measured as the database counts it, in pages of its buffer pool: EXPLAIN (ANALYZE, BUFFERS)
// of the statement the server runs, for a new call (or its revisit, or its answer), before and after
// 30,000 more rows are added.
// A scan of those rows reads about 200 pages or more; an index lookup a few more, for the taller
// indexes. (The lead lookup without statistics fails on PostgreSQL 15 when its key is incomplete;
// the embedded database, PostgreSQL 18, skip-scans the index and passes either way.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type SQL, sql, TransactionRollbackError } from "drizzle-orm";
import { callAnsweredChange } from "../src/calls/lifecycle";
import { type Drizzle, rowsOf } from "../src/db/client";
import { openTestContext, type TestContext } from "./support/context";

const CAMPAIGN_NUMBER = "+14155550100";
const MORE_ROWS = 30_000;

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
  await ctx.seed({
    tenants: [
      {
        name: "Acme",
        agents: [{ name: "acme-default", default: true }, { name: "acme-sales" }],
        campaigns: [{ name: "Live", agent: "acme-sales" }],
        phone_numbers: [{ number: CAMPAIGN_NUMBER, campaign: "Live" }],
      },
    ],
  });
});
afterAll(() => ctx.close());

type DialedNumber = { id: string; tenant_id: string; campaign_id: string | null };

/** record_calls' input for one new call from `caller` to `number` (src/calls/recorder.ts builds the same). */
function oneCall(number: DialedNumber, to: string, caller: string) {
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
async function pagesTouched(tx: Drizzle, statement: SQL): Promise<number> {
  const [row] = rowsOf<{ "QUERY PLAN": unknown }>(await tx.execute(sql`explain (analyze, buffers, format json) ${statement}`));
  const raw = row!["QUERY PLAN"];
  const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: { "Shared Hit Blocks": number; "Shared Read Blocks": number } }[];
  return top!.Plan["Shared Hit Blocks"] + top!.Plan["Shared Read Blocks"];
}

/** Rows added to a table for the tenant of `number`: `count` of them, their keys starting with `prefix`. */
type Rows = { table: "leads" | "call_logs"; add: (number: DialedNumber, prefix: string, count: number) => SQL };

const LEADS: Rows = {
  table: "leads",
  // Leads of the same tenant, half in the campaign and half without one, on other numbers.
  add: (number, prefix, count) => sql`
    insert into leads (tenant_id, campaign_id, phone_number, name, status)
    select ${number.tenant_id}::uuid, case when n % 2 = 0 then ${number.campaign_id}::uuid end,
           ${prefix} || lpad(n::text, 6, '0'), 'Lead ' || n, 'new'
    from generate_series(1, ${count}) n`,
};

const CALLS: Rows = {
  table: "call_logs",
  add: (number, prefix, count) => sql`
    insert into call_logs (provider_call_id, tenant_id, from_number, to_number, agent_name, agent_source)
    select ${prefix} || n, ${number.tenant_id}::uuid, '+1646' || lpad(n::text, 7, '0'), ${CAMPAIGN_NUMBER}, 'acme-sales', 'campaign'
    from generate_series(1, ${count}) n`,
};

/** The statement measured: its `run`th run, on calls to `number` (dialed as `to`). */
type Measured = (number: DialedNumber, to: string, run: number) => SQL;

/** A new call's record, from a caller of its own. */
const recordNewCall: Measured = (number, to, run) =>
  sql`select * from record_calls(${JSON.stringify(oneCall(number, to, `+1212555${String(run).padStart(4, "0")}`))}::jsonb)`;

/**
 * LiveKit's join of a call recorded before (by the decision endpoint), claiming its dispatch: one of
 * the first hundred calls CALLS added (`+1917<n>`), a different one each run.
 */
const revisitJoinedCall: Measured = (_number, _to, run) =>
  sql`select * from revisit_calls(${JSON.stringify([
    { call_id: `+1917${run + 1}`, room_name: `room-${run}`, room_sid: `RM_${run}`, caller_joined_at: new Date().toISOString(), claim_dispatch: true, claim_hold_ms: 30_000 },
  ])}::jsonb)`;

/**
 * Pages `statement` touches while `rows.table` is small and once it holds 30,000 more
 * rows, on one connection, in a transaction rolled back afterwards (the rows added, and the
 * statistics changed, leave no trace). The table is analyzed while it is small, or once it is big,
 * or never (its statistics are those of a new database: none). PostgreSQL plans a function's
 * statement for its first five runs, then may keep one plan for the connection until the table is
 * analyzed again, so each measure follows eight runs. (The first run also reads the catalogs.)
 */
async function pagesSmallAndBig(to: string, rows: Rows, analyzedWhen: "small" | "big" | "never", statement: Measured = recordNewCall) {
  const [number] = await ctx.database.rows<DialedNumber>(sql`select id, tenant_id, campaign_id from phone_numbers where e164 = ${to}`);
  const pages = { small: 0, big: 0 };
  let run = 0;
  const measure = async (drizzle: Drizzle) => {
    for (let i = 0; i < 8; i++) await pagesTouched(drizzle, statement(number!, to, run++));
    return pagesTouched(drizzle, statement(number!, to, run++));
  };
  await inRolledBackTransaction(async (drizzle) => {
    const analyze = sql`analyze ${sql.identifier(rows.table)}`;
    if (analyzedWhen === "never") await drizzle.execute(forgetStatistics(rows.table));
    await drizzle.execute(rows.add(number!, "+1917", 100));
    if (analyzedWhen === "small") await drizzle.execute(analyze);
    pages.small = await measure(drizzle);
    await drizzle.execute(rows.add(number!, "+1646", MORE_ROWS));
    if (analyzedWhen === "big") await drizzle.execute(analyze);
    pages.big = await measure(drizzle);
  });
  return pages;
}

/** Runs `work` on one connection in a transaction that is rolled back afterwards. */
async function inRolledBackTransaction(work: (drizzle: Drizzle) => Promise<void>) {
  await ctx.database.db
    .transaction(async (tx) => {
      await work(tx as unknown as Drizzle);
      tx.rollback();
    })
    .catch((error) => {
      if (!(error instanceof TransactionRollbackError)) throw error;
    });
}

/** The table as a new database has it: never analyzed, so the planner knows nothing of its columns. */
const forgetStatistics = (table: string) => sql`
  with forgotten as (delete from pg_statistic where starelid = ${table}::regclass)
  update pg_class set reltuples = -1, relpages = 0 where oid = ${table}::regclass`;

describe("a caller's lead is found by its key, however many leads the tenant has", () => {
  // A call to a number with a campaign: the campaign is part of the lead's key. (A call without a
  // campaign was cheap even before, through leads_phone_number_idx.)
  const statistics = { never: "no statistics", small: "the statistics of a hundred leads", big: "the statistics of all of them" };
  for (const analyzedWhen of ["never", "small", "big"] as const) {
    test(`planned with ${statistics[analyzedWhen]}`, async () => {
      const { small, big } = await pagesSmallAndBig(CAMPAIGN_NUMBER, LEADS, analyzedWhen);
      expect(small).toBeGreaterThan(0);
      expect(big - small).toBeLessThan(40);
    });
  }
});

describe("a call recorded before is found by its id, however many calls there are", () => {
  test("with the plan the connection cached while call_logs was small", async () => {
    const { small, big } = await pagesSmallAndBig(CAMPAIGN_NUMBER, CALLS, "small");
    expect(small).toBeGreaterThan(0);
    expect(big - small).toBeLessThan(40);
  });
});

describe("a call recorded before is revisited by its id, however many calls there are", () => {
  // Every call the decision endpoint answered is revisited when LiveKit's join of it arrives.
  test("with the plan the connection cached while call_logs was small", async () => {
    // What is measured is a revisit that finds its call and claims the dispatch.
    await inRolledBackTransaction(async (drizzle) => {
      const [number] = rowsOf<DialedNumber>(await drizzle.execute(sql`select id, tenant_id, campaign_id from phone_numbers where e164 = ${CAMPAIGN_NUMBER}`));
      await drizzle.execute(CALLS.add(number!, "+1917", 100));
      const revisited = rowsOf<{ call_id: string; dispatch_claimed: boolean }>(await drizzle.execute(revisitJoinedCall(number!, CAMPAIGN_NUMBER, 0)));
      expect(revisited.map((row) => [row.call_id, row.dispatch_claimed])).toEqual([["+19171", true]]);
    });
    const { small, big } = await pagesSmallAndBig(CAMPAIGN_NUMBER, CALLS, "small", revisitJoinedCall);
    expect(small).toBeGreaterThan(0);
    expect(big - small).toBeLessThan(40);
  });
});

describe("an agent's join finds the ringing call by its room, however many calls rang before", () => {
  // Every call rings first: until the next vacuum, call_logs_status_created_idx keeps an entry
  // 'ringing' for each call that rang since, answered long ago or not. Statistics taken while no
  // call was ringing (a quiet moment, or all calls ended) make the planner expect one ringing call
  // and prefer that index to the room's; it then read all of those entries for every agent's join.
  test("with statistics taken while no call was ringing", async () => {
    const pages = { small: 0, big: 0 };
    let room = 0;
    const answerNewCall = async (drizzle: Drizzle) => {
      const sid = `RM_probe${room++}`;
      await drizzle.execute(sql`
        insert into call_logs (provider_call_id, room_name, room_sid, from_number, to_number, agent_name, agent_source)
        values (${sid}, ${sid}, ${sid}, '+12125550100', ${CAMPAIGN_NUMBER}, 'acme-sales', 'campaign')`);
      const { ctes, changed } = callAnsweredChange({ room: { name: sid, sid }, answeredAt: new Date() });
      return pagesTouched(drizzle, sql`with ${ctes} select * from ${sql.raw(changed)}`);
    };
    // Planned with the call's own values each time; the server's prepared statement may keep a
    // generic plan instead, which chose the status index as well before the change (EXPLAIN EXECUTE
    // with plan_cache_mode = force_generic_plan). The first answer also reads the catalogs.
    const measure = async (drizzle: Drizzle) => {
      await answerNewCall(drizzle);
      return answerNewCall(drizzle);
    };
    await inRolledBackTransaction(async (drizzle) => {
      await addCallsThatRang(drizzle, 100);
      await drizzle.execute(sql`analyze call_logs`);
      pages.small = await measure(drizzle);
      await addCallsThatRang(drizzle, MORE_ROWS);
      pages.big = await measure(drizzle);
    });
    expect(pages.small).toBeGreaterThan(0);
    expect(pages.big - pages.small).toBeLessThan(40);
  });
});

/** `count` calls that rang and have ended: each left an entry 'ringing' in the status index. */
async function addCallsThatRang(drizzle: Drizzle, count: number) {
  await drizzle.execute(sql`
    insert into call_logs (provider_call_id, room_name, room_sid, from_number, to_number, agent_name, agent_source)
    select 'rang-' || n || '-' || ${count}, 'rang-' || n, 'RM_rang' || n || '_' || ${count}, '+1646' || lpad(n::text, 7, '0'),
           ${CAMPAIGN_NUMBER}, 'acme-sales', 'campaign'
    from generate_series(1, ${count}) n`);
  await drizzle.execute(sql`update call_logs set status = 'completed', ended_at = now() where status = 'ringing' and provider_call_id like 'rang-%'`);
}
