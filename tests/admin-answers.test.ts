// What an API client relies on beyond status codes: answers that match the published models
// (the same TypeBox models the OpenAPI document is generated from) and an audit line per write.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { createApiKey } from "../src/admin/keys";
import * as m from "../src/admin/model";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { SIP_INBOUND_PATH } from "./support/livekit-app";

let ctx: TestContext;
let admin: AdminClient;
let adminKey: { key: string; id: string };

beforeAll(async () => {
  ctx = await openTestContext();
  const made = await createApiKey(ctx.database.db, { tenantId: null, label: "answers" });
  adminKey = { key: made.key, id: made.apiKey.id };
  admin = adminClient(ctx, made.key);
});
afterAll(() => ctx.close());

/** Fails with the model's own complaint, so a drift between answer and model is readable. */
function expectModel(model: Parameters<typeof Value.Check>[0], body: unknown) {
  const problems = [...Value.Errors(model, body)].map((e) => `${e.path}: ${e.message}`);
  expect(problems).toEqual([]);
}

describe("answers match the published models", () => {
  test("every resource, single and paged, including nullable fields both ways", async () => {
    const tenant = (await admin.post("/tenants", { name: "Models Inc" })).body;
    expectModel(m.Tenant, tenant);
    const agent = (await admin.post("/agents", { tenant_id: tenant.id, name: "m-agent", is_default: true, description: "d" })).body;
    expectModel(m.Agent, agent);
    const system = (await admin.post("/agents", { tenant_id: null, name: "m-system" })).body;
    expectModel(m.Agent, system);
    const campaign = (await admin.post("/campaigns", { tenant_id: tenant.id, name: "m-campaign", agent_id: agent.id })).body;
    expectModel(m.Campaign, campaign);
    const number = (await admin.post("/phone-numbers", { tenant_id: tenant.id, number: "+1 415 555 0177", campaign_id: campaign.id })).body;
    expectModel(m.PhoneNumber, number);
    const routed = await ctx.post(SIP_INBOUND_PATH, {
      call_id: "models-1",
      from_number: "+12125550177",
      to_number: "+14155550177",
    });
    expect(routed.status).toBe(200);
    const call = (await admin.get("/call-logs/by-call-id/models-1")).body;
    expectModel(m.CallLog, call);
    const completed = (await admin.patch(`/call-logs/${call.id}`, { status: "completed" })).body;
    expectModel(m.CallLog, completed);
    expect(completed.ended_at).not.toBeNull();
    const lead = (await admin.patch(`/leads/${call.lead_id}`, { email: "caller@example.com", metadata: { vip: true } })).body;
    expectModel(m.Lead, lead);
    const key = (await admin.post("/api-keys", { tenant_id: tenant.id, label: "m" })).body;
    expectModel(m.NewApiKey, key);

    for (const [path, model] of [
      ["/tenants", m.Tenant],
      ["/agents", m.Agent],
      ["/campaigns", m.Campaign],
      ["/phone-numbers", m.PhoneNumber],
      ["/leads", m.Lead],
      ["/call-logs", m.CallLog],
      ["/api-keys", m.ApiKey],
    ] as const) {
      const page = await admin.get(path);
      expect(page.status).toBe(200);
      expectModel(m.Page(model), page.body);
      expect(page.body.data.length).toBeGreaterThan(0);
    }
  });

  test("errors match the one error model", async () => {
    for (const answer of [
      await admin.get("/agents/00000000-0000-4000-8000-000000000000"),
      await admin.post("/tenants", { name: "" }),
      await adminClient(ctx, null).get("/leads"),
    ]) {
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expectModel(m.ErrorBody, answer.body);
    }
  });
});

describe("audit lines", () => {
  /** The audit lines: those naming a key, a method, a path and a status (whatever their wording). */
  const auditLines = () =>
    ctx.logs.filter((l) => "key_id" in l && typeof l.method === "string" && typeof l.path === "string" && typeof l.status === "number");

  /**
   * A write nothing else makes (a DELETE of an id that does not exist: 404, still a write), and
   * the index of its line. A line is written once the answer has gone out (onAfterResponse), a
   * moment later, and lines come in order: the lines between two markers are those in between.
   */
  async function marker(): Promise<number> {
    const path = `/api/v1/agents/${crypto.randomUUID()}`;
    expect((await admin.delete(path.slice("/api/v1".length))).status).toBe(404);
    const index = () => auditLines().findIndex((l) => l.path === path);
    for (let waited = 0; index() < 0 && waited < 5_000; waited += 10) await Bun.sleep(10);
    expect(index()).toBeGreaterThanOrEqual(0);
    return index();
  }

  test("each write is logged with the key's id and status, reads are not, and no key appears in any line", async () => {
    const start = await marker();
    const created = await admin.post("/tenants", { name: "Audited" });
    const refused = await admin.post("/tenants", { name: "Audited" });
    await admin.get("/tenants");
    expect([created.status, refused.status]).toEqual([201, 409]);
    const end = await marker();
    expect(auditLines().slice(start + 1, end).map((l) => [l.method, l.path, l.status, l.key_id])).toEqual([
      ["POST", "/api/v1/tenants", 201, adminKey.id],
      ["POST", "/api/v1/tenants", 409, adminKey.id],
    ]);
    expect(JSON.stringify(ctx.logs)).not.toContain(adminKey.key);
  });
});
