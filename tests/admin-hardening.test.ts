// The admin API under inputs PostgreSQL cannot store and under races between requests: always a
// 4xx naming the field or a clean 409/422/503, never a 500, and never a row that breaks the
// tenant rules. Races run on real PostgreSQL (PGlite has one connection, so nothing overlaps).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { createApiKey } from "../src/admin/keys";
import { openDatabase } from "../src/db/client";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";

const onPostgres = Boolean(process.env.DATABASE_URL);

let ctx: TestContext;
let admin: AdminClient;
let tenantA: string;
let tenantB: string;
let keyA: AdminClient;

beforeAll(async () => {
  ctx = await openTestContext();
  admin = adminClient(ctx, (await createApiKey(ctx.database.db, { tenantId: null })).key);
  tenantA = (await admin.post("/tenants", { name: "Hardening A" })).body.id;
  tenantB = (await admin.post("/tenants", { name: "Hardening B" })).body.id;
  keyA = adminClient(ctx, (await admin.post("/api-keys", { tenant_id: tenantA })).body.key);
});
afterAll(() => ctx.close());

const encode = (text: string) => Buffer.from(text).toString("base64url");
const nested = (levels: number): unknown => {
  let value: unknown = "leaf";
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
};

async function expectRefused(answer: Promise<{ status: number; body: any }>, field: string) {
  const { status, body } = await answer;
  expect({ status, field: body?.error?.details?.field }).toEqual({ status: 400, field });
}

describe("values PostgreSQL cannot store are refused with the field named", () => {
  test("NUL characters in bodies, query strings and path parameters", async () => {
    await expectRefused(admin.post("/tenants", { name: "x\u0000y" }), "name");
    await expectRefused(keyA.post("/campaigns", { name: "\u0000" }), "name");
    await expectRefused(keyA.post("/agents", { name: "ok", description: "a\u0000" }), "description");
    await expectRefused(admin.post("/api-keys", { tenant_id: tenantA, label: "a\u0000" }), "label");
    await expectRefused(keyA.get("/leads?status=a%00b"), "status");
    await expectRefused(keyA.get("/agents?name=a%00b"), "name");
    await expectRefused(keyA.get("/call-logs/by-call-id/a%00b"), "provider_call_id");
  });

  test("metadata: NUL in a value or a key, and nesting past the limit (a 6000-level body is refused as a body)", async () => {
    await expectRefused(keyA.post("/agents", { name: "m1", metadata: { a: "x\u0000" } }), "metadata");
    await expectRefused(keyA.post("/agents", { name: "m2", metadata: { "k\u0000": 1 } }), "metadata");
    await expectRefused(keyA.post("/agents", { name: "m3", metadata: nested(17) }), "metadata");
    // Past the depth any request needs, the body is refused before it is parsed (src/http/body.ts).
    await expectRefused(keyA.post("/agents", { name: "m4", metadata: { a: nested(6000) } }), "body");
    const fine = await keyA.post("/agents", { name: "m5", metadata: nested(15) });
    expect(fine.status).toBe(201);
    const names = (await keyA.get("/agents?limit=500")).body.data.map((a: { name: string }) => a.name);
    expect(names.filter((n: string) => n.startsWith("m"))).toEqual(["m5"]);
  });

  test("unpaired surrogates, which PostgreSQL would store as a different string", async () => {
    await expectRefused(keyA.post("/agents", { name: "x\ud800y" }), "name");
    await expectRefused(keyA.post("/agents", { name: "s1", metadata: { a: "\udc00" } }), "metadata");
    await expectRefused(keyA.post("/agents", { name: "s2", metadata: { "\ud800": 1 } }), "metadata");
    const paired = await keyA.post("/agents", { name: "emoji \u{1F4DE}", metadata: { "\u{1F4DE}": "\u{1F4DE}" } });
    expect(paired.status).toBe(201);
    expect(paired.body.name).toBe("emoji \u{1F4DE}");
  });

  test("valid times in any offset, before 1970 or as a bare date are taken as given", async () => {
    for (const since of ["1969-12-31T23:59:59Z", "2024-02-29T00:30:00%2B01:00", "2024-03-01", "2024-03-01T00:00:00.000900Z"]) {
      expect({ since, status: (await keyA.get(`/call-logs?since=${since}`)).status }).toEqual({ since, status: 200 });
    }
  });

  test("impossible times in since/until and forged cursors", async () => {
    await expectRefused(keyA.get("/call-logs?since=2024-02-30T00:00:00Z"), "since");
    await expectRefused(keyA.get("/call-logs?since=0000-01-01T00:00:00Z"), "since");
    await expectRefused(keyA.get("/call-logs?until=9999-12-31T23:59:59-23:59"), "until");
    const id = crypto.randomUUID();
    await expectRefused(keyA.get(`/campaigns?cursor=${encode(`2024-13-45T99:99:99.000000Z|${id}`)}`), "cursor");
    await expectRefused(keyA.get(`/campaigns?cursor=${encode(`0000-01-01T00:00:00.000000Z|${id}`)}`), "cursor");
  });

  test("afterwards the server still answers, reads and writes", async () => {
    expect((await keyA.get("/campaigns")).status).toBe(200);
    expect((await keyA.post("/campaigns", { name: "still fine" })).status).toBe(201);
  });
});

describe.skipIf(!onPostgres)("races between requests (PostgreSQL)", () => {
  const crossTenantCampaigns = async () =>
    (
      await ctx.database.rows<{ n: number }>(sql`
        select count(*)::int as n from campaigns c join agents a on a.id = c.agent_id
        where a.tenant_id is not null and a.tenant_id <> c.tenant_id`)
    )[0]!.n;
  const numbersOnDeletedCampaigns = async () =>
    (
      await ctx.database.rows<{ n: number }>(sql`
        select count(*)::int as n from phone_numbers p join campaigns c on c.id = p.campaign_id
        where c.deleted_at is not null`)
    )[0]!.n;

  /** Runs `statement` in a transaction held open for holdMs while `during` starts, then commits it. */
  async function whileHeld(
    statement: (tx: postgres.ReservedSql) => Promise<unknown>,
    during: () => Promise<any>,
    holdMs = 300,
  ) {
    const pg = postgres(process.env.DATABASE_URL!, { max: 1 });
    const held = await pg.reserve();
    await held`begin`;
    await statement(held);
    const pending = during();
    await Bun.sleep(holdMs);
    await held`commit`;
    held.release();
    await pg.end();
    return pending;
  }

  test("a campaign created while its agent moves to another tenant is refused (422), not crossed", async () => {
    const agent = (await admin.post("/agents", { tenant_id: tenantA, name: "moving" })).body.id;
    const created = await whileHeld(
      (tx) => tx`update agents set tenant_id = ${tenantB} where id = ${agent}`,
      () => keyA.post("/campaigns", { name: "uses moving", agent_id: agent }),
    );
    expect({ status: created.status, field: created.body.error?.details?.field }).toEqual({ status: 422, field: "agent_id" });
    expect(await crossTenantCampaigns()).toBe(0);
  });

  test("agent moves racing campaign creation through the API: no crossed campaign, no 500", async () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < 25; i++) {
      const agent = (await admin.post("/agents", { tenant_id: tenantA, name: `race-${i}` })).body.id;
      const [moved, created] = await Promise.all([
        admin.patch(`/agents/${agent}`, { tenant_id: tenantB }),
        keyA.post("/campaigns", { name: `race-${i}`, agent_id: agent }),
      ]);
      outcomes.add(`${moved.status}/${created.status}`);
    }
    for (const outcome of outcomes) expect(["200/422", "422/201"]).toContain(outcome);
    expect(await crossTenantCampaigns()).toBe(0);
  });

  test("a number linked while its campaign is being deleted is refused (422)", async () => {
    const campaign = (await keyA.post("/campaigns", { name: "going" })).body.id;
    const created = await whileHeld(
      (tx) => tx`update campaigns set deleted_at = now() where id = ${campaign}`,
      () => keyA.post("/phone-numbers", { number: "+1 415 555 0190", campaign_id: campaign }),
    );
    expect({ status: created.status, field: created.body.error?.details?.field }).toEqual({ status: 422, field: "campaign_id" });
    expect(await numbersOnDeletedCampaigns()).toBe(0);
  });

  test("campaign deletes racing number creation through the API: no number left on a deleted campaign", async () => {
    for (let i = 0; i < 25; i++) {
      const campaign = (await keyA.post("/campaigns", { name: `short-lived-${i}` })).body.id;
      const [deleted, created] = await Promise.all([
        keyA.delete(`/campaigns/${campaign}`),
        keyA.post("/phone-numbers", { number: `+1 415 555 ${String(1000 + i)}`, campaign_id: campaign }),
      ]);
      expect(deleted.status).toBe(204);
      expect([201, 422]).toContain(created.status);
    }
    expect(await numbersOnDeletedCampaigns()).toBe(0);
  });

  test("ordinary edits racing a delete or a default switch do not deadlock (no 503)", async () => {
    const statuses: string[] = [];
    for (let i = 0; i < 15; i++) {
      // A campaign delete against a number edit that keeps the number's campaign.
      const campaign = (await keyA.post("/campaigns", { name: `kept-${i}` })).body.id;
      const number = (await keyA.post("/phone-numbers", { number: `+1 415 555 ${2000 + i}`, campaign_id: campaign })).body.id;
      const [deleted, edited] = await Promise.all([
        keyA.delete(`/campaigns/${campaign}`),
        keyA.patch(`/phone-numbers/${number}`, { campaign_id: campaign, is_active: false }),
      ]);
      statuses.push(`${deleted.status}`, `${edited.status}`);
      // A default switch against a campaign taking the old default.
      const oldDefault = (await keyA.post("/agents", { name: `default-${i}`, is_default: true })).body.id;
      const [switched, created] = await Promise.all([
        keyA.post("/agents", { name: `default-${i}-next`, is_default: true }),
        keyA.post("/campaigns", { name: `on-default-${i}`, agent_id: oldDefault }),
      ]);
      statuses.push(`${switched.status}`, `${created.status}`);
    }
    expect(statuses.filter((s) => s === "503" || s === "500")).toEqual([]);
    expect(await numbersOnDeletedCampaigns()).toBe(0);
  });

  test("a write stuck behind a lock past the statement timeout answers 503, not 500", async () => {
    const database = await openDatabase({
      databaseUrl: process.env.DATABASE_URL,
      dataDir: "memory://",
      poolMax: 2,
      statementTimeoutMs: 500,
    });
    const slow = await openTestContext({ DB_STATEMENT_TIMEOUT_MS: "500" }, { database });
    try {
      const key = adminClient(slow, (await createApiKey(database.db, { tenantId: null })).key);
      const tenant = (await key.post("/tenants", { name: "Locked" })).body.id;
      const patched = await whileHeld(
        (tx) => tx`select id from tenants where id = ${tenant} for update`,
        () => key.patch(`/tenants/${tenant}`, { name: "Unlocked" }),
        1500,
      );
      expect(patched.status).toBe(503);
      expect(patched.body.error.code).toBe("unavailable");
    } finally {
      await slow.close();
    }
  });
});
