// Calls are routed from a directory held in memory. It must follow every change to the tables
// it is built from: through this process's admin API at once, through anything else (another
// process, seed, plain SQL) by the NOTIFY their triggers send, without anyone reloading it.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { campaigns, phoneNumbers } from "../src/db/schema";
import { adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { acmeDirectory, CALLER, CAMPAIGN_AGENT, CAMPAIGN_NUMBER, SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT, TENANT_DEFAULT_AGENT } from "./support/livekit-app";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
});
afterAll(() => ctx.close());
beforeEach(async () => {
  await ctx.reset();
  await ctx.seed(acmeDirectory);
});

let calls = 0;
async function agentFor(number: string): Promise<string> {
  const res = await ctx.post(SIP_INBOUND_PATH, { call_id: `dir-${++calls}`, to_number: number, from_number: CALLER });
  expect(res.status).toBe(200);
  return ((await res.json()) as { agent_name: string }).agent_name;
}

/** The agent answered, once it is `expected` or after 3 s (NOTIFY arrives within milliseconds). */
async function eventually(number: string, expected: string): Promise<string> {
  let agent = await agentFor(number);
  for (let i = 0; i < 60 && agent !== expected; i++) {
    await Bun.sleep(50);
    agent = await agentFor(number);
  }
  return agent;
}

describe("changes made outside this process's API", () => {
  test("a campaign paused with plain SQL sends its number's callers to the tenant's default agent", async () => {
    expect(await agentFor(CAMPAIGN_NUMBER)).toBe(CAMPAIGN_AGENT);
    await ctx.database.db.update(campaigns).set({ status: "paused" }).where(eq(campaigns.name, "Live"));
    expect(await eventually(CAMPAIGN_NUMBER, TENANT_DEFAULT_AGENT)).toBe(TENANT_DEFAULT_AGENT);
  });

  test("a number added with plain SQL is routed to its tenant", async () => {
    const added = "+14155550177";
    expect(await agentFor(added)).toBe(SYSTEM_DEFAULT_AGENT);
    const [existing] = await ctx.database.db.select().from(phoneNumbers).where(eq(phoneNumbers.e164, CAMPAIGN_NUMBER));
    await ctx.database.db.insert(phoneNumbers).values({ e164: added, tenantId: existing!.tenantId });
    expect(await eventually(added, TENANT_DEFAULT_AGENT)).toBe(TENANT_DEFAULT_AGENT);
  });

  test("a tenant switched off in a transaction is seen once it commits, not before", async () => {
    await ctx.database.db.transaction(async (tx) => {
      await tx.execute(sql`update tenants set active = false`);
      // Not committed yet: callers still reach the campaign's agent.
      expect(await agentFor(CAMPAIGN_NUMBER)).toBe(CAMPAIGN_AGENT);
    });
    expect(await eventually(CAMPAIGN_NUMBER, SYSTEM_DEFAULT_AGENT)).toBe(SYSTEM_DEFAULT_AGENT);
  });
});

describe("changes made through this process's admin API", () => {
  test("the very next call after the answer sees the change", async () => {
    const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "directory" });
    const api = adminClient(ctx, key);
    const [live] = await ctx.database.db.select().from(campaigns).where(eq(campaigns.name, "Live"));
    const paused = await api.patch(`/campaigns/${live!.id}`, { status: "paused" });
    expect(paused.status).toBe(200);
    expect(await agentFor(CAMPAIGN_NUMBER)).toBe(TENANT_DEFAULT_AGENT);
  });
});

describe("the health endpoints", () => {
  test("say how many numbers the directory holds and that it is fresh", async () => {
    // On PostgreSQL the seed's own NOTIFYs arrive after it returned and are loaded in the
    // background: until then the directory rightly says it is not fresh. Give them 3 s.
    let body: { routing?: { fresh?: boolean } } = {};
    for (let i = 0; i < 60; i++) {
      const res = await ctx.get("/readyz");
      expect(res.status).toBe(200);
      body = (await res.json()) as typeof body;
      if (body.routing?.fresh) break;
      await Bun.sleep(50);
    }
    expect(body).toMatchObject({ status: "ready", routing: { directory_loaded: true, numbers: 1, fresh: true } });
  });
});
