// What the database itself refuses, whichever code writes to it: a campaign dispatching another
// tenant's agent, a call log pointing into a tenant it does not belong to (or into one while
// belonging to none), two default agents for one tenant, two agents of one name in any tenants,
// two leads for one caller. And migrations:
// applying them again changes nothing. Runs on PGlite and on the PostgreSQL named by DATABASE_URL.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { type SQL, sql } from "drizzle-orm";
import journal from "../drizzle/meta/_journal.json";
import { type Database, rowsOf } from "../src/db/client";
import { migrate } from "../src/db/migrate";
import { openTestContext, type TestContext } from "./support/context";
import { freshDatabase } from "./support/fresh-database";

let ctx: TestContext;
let database: Database;
beforeAll(async () => {
  ctx = await openTestContext();
  database = ctx.database;
});
afterAll(async () => {
  await ctx?.close();
});

async function all<T extends Record<string, unknown>>(query: SQL): Promise<T[]> {
  return rowsOf<T>(await database.db.execute(query));
}
async function one<T extends Record<string, unknown>>(query: SQL): Promise<T> {
  const [row] = await all<T>(query);
  expect(row).toBeDefined();
  return row!;
}
const id = async (query: SQL) => (await one<{ id: string }>(query)).id;

/** The text of the error a statement is refused with (drizzle's wrapper and the driver's cause). */
async function refusal(statement: Promise<unknown>): Promise<string> {
  try {
    await statement;
  } catch (error) {
    const err = error as Error & { cause?: { message?: string } };
    return `${err.message} | ${err.cause?.message ?? ""}`;
  }
  throw new Error("the database accepted a statement it should refuse");
}

interface World {
  tenantA: string;
  tenantB: string;
  agentA: string;
  agentB: string;
  systemAgent: string;
  campaignA: string;
  campaignB: string;
  numberA: string;
  numberB: string;
  leadA: string;
}

let w: World;
beforeEach(async () => {
  await ctx.reset();
  const tenantA = await id(sql`insert into tenants (name) values ('Tenant A') returning id`);
  const tenantB = await id(sql`insert into tenants (name) values ('Tenant B') returning id`);
  const agentA = await id(sql`insert into agents (tenant_id, name) values (${tenantA}, 'a-agent') returning id`);
  const agentB = await id(sql`insert into agents (tenant_id, name) values (${tenantB}, 'b-agent') returning id`);
  const systemAgent = await id(sql`insert into agents (tenant_id, name) values (null, 'system-agent') returning id`);
  const campaignA = await id(sql`insert into campaigns (tenant_id, name, agent_id) values (${tenantA}, 'A live', ${agentA}) returning id`);
  const campaignB = await id(sql`insert into campaigns (tenant_id, name, agent_id) values (${tenantB}, 'B live', ${agentB}) returning id`);
  const numberA = await id(
    sql`insert into phone_numbers (e164, tenant_id, campaign_id) values ('+14155550100', ${tenantA}, ${campaignA}) returning id`,
  );
  const numberB = await id(
    sql`insert into phone_numbers (e164, tenant_id, campaign_id) values ('+14155550200', ${tenantB}, ${campaignB}) returning id`,
  );
  const leadA = await id(
    sql`insert into leads (tenant_id, campaign_id, phone_number, name) values (${tenantA}, ${campaignA}, '+12125550142', 'Caller') returning id`,
  );
  w = { tenantA, tenantB, agentA, agentB, systemAgent, campaignA, campaignB, numberA, numberB, leadA };
});

describe("a campaign dispatches only its own tenant's agents or system agents", () => {
  test("a campaign of tenant A pointing at tenant B's agent is refused on insert", async () => {
    const message = await refusal(
      database.db.execute(sql`insert into campaigns (tenant_id, name, agent_id) values (${w.tenantA}, 'Poached', ${w.agentB})`),
    );
    expect(message).toContain("may only use agents of its own tenant or system agents");
    expect(await all(sql`select id from campaigns where name = 'Poached'`)).toHaveLength(0);
  });

  test("moving a campaign's agent_id to another tenant's agent is refused", async () => {
    const message = await refusal(database.db.execute(sql`update campaigns set agent_id = ${w.agentB} where id = ${w.campaignA}`));
    expect(message).toContain("may only use agents of its own tenant or system agents");
    const row = await one<{ agent_id: string }>(sql`select agent_id from campaigns where id = ${w.campaignA}`);
    expect(row.agent_id).toBe(w.agentA);
  });

  test("moving a campaign (with its agent) into another tenant is refused", async () => {
    const lonely = await id(sql`insert into campaigns (tenant_id, name, agent_id) values (${w.tenantA}, 'Lonely', ${w.agentA}) returning id`);
    const message = await refusal(database.db.execute(sql`update campaigns set tenant_id = ${w.tenantB} where id = ${lonely}`));
    expect(message).toContain("may only use agents of its own tenant or system agents");
  });

  test("a system agent (tenant_id null) is accepted, on insert and on update; so is the tenant's own agent and none", async () => {
    await database.db.execute(sql`insert into campaigns (tenant_id, name, agent_id) values (${w.tenantA}, 'Shared', ${w.systemAgent})`);
    await database.db.execute(sql`update campaigns set agent_id = ${w.systemAgent} where id = ${w.campaignB}`);
    await database.db.execute(sql`insert into campaigns (tenant_id, name, agent_id) values (${w.tenantA}, 'Own', ${w.agentA})`);
    await database.db.execute(sql`insert into campaigns (tenant_id, name, agent_id) values (${w.tenantA}, 'None', null)`);
    const rows = await all<{ name: string }>(sql`select name from campaigns where tenant_id = ${w.tenantA} order by name`);
    expect(rows.map((r) => r.name)).toEqual(["A live", "None", "Own", "Shared"]);
  });

  test("an agent a campaign uses cannot be moved into another tenant either", async () => {
    // The same invariant from the other side: after this update tenant A's campaign would
    // dispatch tenant B's agent. The trigger sits on campaigns only.
    const message = await refusal(database.db.execute(sql`update agents set tenant_id = ${w.tenantB} where id = ${w.agentA}`));
    // Refused by the agents' trigger, naming the agent: not by some unrelated constraint.
    expect(message).toContain('agent "a-agent" is used by campaigns of another tenant');
    const row = await one<{ tenant_id: string }>(sql`select tenant_id from agents where id = ${w.agentA}`);
    expect(row.tenant_id).toBe(w.tenantA);
  });
});

describe("call logs stay inside one tenant", () => {
  const insertCallLog = (columns: { tenantId: string | null; campaignId?: string; leadId?: string; phoneNumberId?: string }) =>
    database.db.execute(sql`
      insert into call_logs (provider_call_id, tenant_id, campaign_id, lead_id, phone_number_id, agent_name, agent_source)
      values (${`call-${crypto.randomUUID()}`}, ${columns.tenantId}::uuid, ${columns.campaignId ?? null}::uuid,
              ${columns.leadId ?? null}::uuid, ${columns.phoneNumberId ?? null}::uuid, 'telephony-agent', 'system_default')`);

  const tenantOwned: Array<[string, (w: World) => { campaignId?: string; leadId?: string; phoneNumberId?: string }]> = [
    ["lead_id", (w) => ({ leadId: w.leadA })],
    ["campaign_id", (w) => ({ campaignId: w.campaignA })],
    ["phone_number_id", (w) => ({ phoneNumberId: w.numberA })],
  ];
  for (const [column, refs] of tenantOwned) {
    test(`a call log without a tenant but with a ${column} is refused`, async () => {
      const message = await refusal(insertCallLog({ tenantId: null, ...refs(w) }));
      expect(message).toContain("call_logs_tenant_owned_refs");
    });
  }

  test("a call log without a tenant and without tenant-owned references is accepted (an unknown number)", async () => {
    await insertCallLog({ tenantId: null });
    expect(await all(sql`select id from call_logs`)).toHaveLength(1);
  });

  test("a number reassigned to another tenant keeps its call history with the tenant it rang for", async () => {
    await insertCallLog({ tenantId: w.tenantA, phoneNumberId: w.numberA });
    await database.db.execute(sql`update phone_numbers set tenant_id = ${w.tenantB}, campaign_id = null where id = ${w.numberA}`);
    const [log] = await all<{ tenant_id: string; phone_number_id: string }>(sql`select tenant_id, phone_number_id from call_logs`);
    expect(log).toEqual({ tenant_id: w.tenantA, phone_number_id: w.numberA });
  });

  test("a call log of tenant A on tenant A's number, campaign and lead is accepted", async () => {
    await insertCallLog({ tenantId: w.tenantA, phoneNumberId: w.numberA, campaignId: w.campaignA, leadId: w.leadA });
    expect(await all(sql`select id from call_logs`)).toHaveLength(1);
  });

  test("moving a call log with a lead to another tenant is refused", async () => {
    await insertCallLog({ tenantId: w.tenantA, leadId: w.leadA });
    const message = await refusal(database.db.execute(sql`update call_logs set tenant_id = ${w.tenantB}`));
    expect(message).toContain("call_logs_lead_same_tenant_fk");
  });
});
describe("one default agent per tenant, one lead per caller", () => {
  test("a second default agent for one tenant is refused", async () => {
    await database.db.execute(sql`insert into agents (tenant_id, name, is_default) values (${w.tenantA}, 'first-default', true)`);
    const message = await refusal(
      database.db.execute(sql`insert into agents (tenant_id, name, is_default) values (${w.tenantA}, 'second-default', true)`),
    );
    expect(message).toContain("agents_one_default_per_tenant");
    // Another tenant may have its own.
    await database.db.execute(sql`insert into agents (tenant_id, name, is_default) values (${w.tenantB}, 'b-default', true)`);
  });

  test("a second lead for the same tenant, campaign and number is refused", async () => {
    const message = await refusal(
      database.db.execute(
        sql`insert into leads (tenant_id, campaign_id, phone_number, name) values (${w.tenantA}, ${w.campaignA}, '+12125550142', 'Again')`,
      ),
    );
    expect(message).toContain("leads_caller_key");
  });

  test("also when the number has no campaign (NULLS NOT DISTINCT)", async () => {
    const insert = () =>
      database.db.execute(
        sql`insert into leads (tenant_id, campaign_id, phone_number, name) values (${w.tenantA}, null, '+12125550199', 'No campaign')`,
      );
    await insert();
    expect(await refusal(insert())).toContain("leads_caller_key");
    const rows = await all(sql`select id from leads where phone_number = '+12125550199'`);
    expect(rows).toHaveLength(1);
  });

  test("the same caller may be a lead of another campaign or another tenant", async () => {
    await database.db.execute(
      sql`insert into leads (tenant_id, campaign_id, phone_number, name) values (${w.tenantB}, ${w.campaignB}, '+12125550142', 'B')`,
    );
    await database.db.execute(
      sql`insert into leads (tenant_id, campaign_id, phone_number, name) values (${w.tenantA}, null, '+12125550142', 'A, no campaign')`,
    );
    expect(await all(sql`select id from leads where phone_number = '+12125550142'`)).toHaveLength(3);
  });
});

describe("agent names are one namespace (LiveKit dispatches agents by name)", () => {
  test("no other tenant's agent, and no system agent, can take a name an agent has", async () => {
    for (const tenantId of [w.tenantB, null]) {
      const insert = database.db.execute(sql`insert into agents (tenant_id, name) values (${tenantId}::uuid, 'a-agent')`);
      expect(await refusal(insert)).toContain("agents_name_key");
    }
    const rename = database.db.execute(sql`update agents set name = 'a-agent' where id = ${w.agentB}`);
    expect(await refusal(rename)).toContain("agents_name_key");
    expect(await all(sql`select id, tenant_id from agents where name = 'a-agent'`)).toEqual([{ id: w.agentA, tenant_id: w.tenantA }]);
  });
});

describe("migrations", () => {
  // Every migration drizzle-kit recorded, in order: the journal is what the migrator applies.
  const EXPECTED_TAGS = journal.entries.map((entry) => entry.tag);

  /** Everything a migration could add or change: columns, constraints, indexes, triggers, functions. */
  async function catalog() {
    const columns = await all(sql`
      select table_name, column_name, data_type, is_nullable, column_default
      from information_schema.columns where table_schema = 'public' order by table_name, column_name`);
    const constraints = await all(sql`
      select conrelid::regclass::text as tbl, conname, pg_get_constraintdef(oid) as def
      from pg_constraint where connamespace = 'public'::regnamespace order by tbl, conname`);
    const indexes = await all(sql`select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by indexname`);
    const triggers = await all(sql`
      select tgrelid::regclass::text as tbl, tgname from pg_trigger where not tgisinternal order by tgname`);
    const functions = await all(sql`select proname from pg_proc where pronamespace = 'public'::regnamespace order by proname`);
    return { columns, constraints, indexes, triggers, functions };
  }

  test("applied again, they apply nothing and change neither the schema nor the data", async () => {
    const before = await catalog();
    const dataBefore = await all(sql`select id, name, agent_id from campaigns order by id`);
    expect(await migrate(database)).toEqual({ applied: [] });
    expect(await migrate(database)).toEqual({ applied: [] });
    expect(await catalog()).toEqual(before);
    expect(await all(sql`select id, name, agent_id from campaigns order by id`)).toEqual(dataBefore);
    // The trigger still works after the re-run.
    expect(
      await refusal(database.db.execute(sql`update campaigns set agent_id = ${w.agentB} where id = ${w.campaignA}`)),
    ).toContain("may only use agents of its own tenant");
  });

  test("switchboard_migrations lists every migration of the journal, once each", async () => {
    expect(EXPECTED_TAGS.slice(0, 2)).toEqual(["0000_init", "0001_livekit_leases_and_tenant_keys"]);
    const rows = await all<{ tag: string }>(sql`select tag from switchboard_migrations order by tag`);
    expect(rows.map((r) => r.tag)).toEqual(EXPECTED_TAGS);
  });

  test("a fresh database gets them all, in order, and nothing the second time", async () => {
    // Embedded, or a new database on the PostgreSQL server DATABASE_URL names (support/fresh-database.ts).
    const made = await freshDatabase();
    const fresh = await made.open();
    try {
      expect(await migrate(fresh)).toEqual({ applied: EXPECTED_TAGS });
      expect(await migrate(fresh)).toEqual({ applied: [] });
      const rows = rowsOf<{ tag: string }>(await fresh.db.execute(sql`select tag from switchboard_migrations order by applied_at, tag`));
      expect(rows.map((r) => r.tag)).toEqual(EXPECTED_TAGS);
    } finally {
      await fresh.close();
      await made.drop();
    }
  });
});
