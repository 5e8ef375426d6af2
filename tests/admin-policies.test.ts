// The admin side of call policies (issue 17): blocklist entries (a tenant's and global ones),
// schedules with their after_hours action, the overflow action of tenants and numbers, numbers'
// and campaigns' new fields, variables' size, and the outcome filters of the call logs. Tenants
// A and B each have a key and an agent; every test starts from them, the rest is its own.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, type ApiAnswer, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";

const NO_SUCH_ID = "00000000-0000-4000-8000-000000000000";

interface Tenant {
  id: string;
  client: AdminClient;
  agentId: string;
}

let ctx: TestContext;
let admin: AdminClient;
let A: Tenant;
let B: Tenant;
let systemAgentId: string;

/** The body of a 201, or a failure that shows the answer. */
async function created(answer: Promise<ApiAnswer>): Promise<any> {
  const settled = await answer;
  expect({ status: settled.status, body: settled.body }).toMatchObject({ status: 201 });
  return settled.body;
}

/** An error answer naming `field`, its message starting with it, as every 4xx that concerns a field does. */
function expectFieldError(answer: ApiAnswer, status: number, field: string, says?: string | RegExp) {
  expect({ status: answer.status, field: answer.body?.error?.details?.field }).toEqual({ status, field });
  expect(answer.body.error.message).toStartWith(`${field}: `);
  if (says !== undefined) expect(answer.body.error.message).toMatch(says);
}

async function buildTenant(name: string): Promise<Tenant> {
  const tenant = await created(admin.post("/tenants", { name }));
  const key = await created(admin.post("/api-keys", { tenant_id: tenant.id }));
  const agent = await created(admin.post("/agents", { tenant_id: tenant.id, name: `${name}-agent` }));
  return { id: tenant.id, client: adminClient(ctx, key.key), agentId: agent.id };
}

beforeAll(async () => {
  ctx = await openTestContext();
}, 30_000);
afterAll(() => ctx?.close());
beforeEach(async () => {
  await ctx.reset();
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "admin-policies" });
  admin = adminClient(ctx, key);
  A = await buildTenant("alpha");
  B = await buildTenant("bravo");
  systemAgentId = (await created(admin.post("/agents", { tenant_id: null, name: "system-voicemail" }))).id;
});

const WEEKDAYS = { mon: [{ open: "09:00", close: "17:00" }], fri: [{ open: "09:00", close: "12:00" }] };
const schedule = (extra: Record<string, unknown> = {}) => ({
  name: "office",
  time_zone: "America/New_York",
  weekly_hours: WEEKDAYS,
  after_hours: { action: "reject" },
  ...extra,
});

describe("blocklist entries", () => {
  test("a number or prefix in any common shape is stored in E.164", async () => {
    const shapes: [string, string][] = [
      ["+1 (415) 555-0100", "+14155550100"],
      ["415.555.0101", "+14155550101"],
      ["001 900 *", "+1900*"],
      ["+44 (20) *", "+4420*"],
    ];
    for (const [input, stored] of shapes) {
      const entry = await created(A.client.post("/blocklist-entries", { pattern: input, reason: "spam" }));
      expect(entry).toEqual({ id: expect.any(String), tenant_id: A.id, pattern: stored, reason: "spam", created_at: expect.any(String) });
    }
    const found = await A.client.get(`/blocklist-entries?pattern=${encodeURIComponent("(415) 555-0100")}`);
    expect(found.body.data.map((e: any) => e.pattern)).toEqual(["+14155550100"]);
  });

  test("a pattern that is neither a number nor an international prefix is a 400 naming pattern", async () => {
    expectFieldError(await A.client.post("/blocklist-entries", { pattern: "hello" }), 400, "pattern", /not a phone number/);
    // A national prefix means different numbers in different countries.
    expectFieldError(await A.client.post("/blocklist-entries", { pattern: "0800*" }), 400, "pattern", /country code/);
    const entry = await created(A.client.post("/blocklist-entries", { pattern: "+14155550100" }));
    expectFieldError(await A.client.patch(`/blocklist-entries/${entry.id}`, { pattern: "12*x" }), 400, "pattern");
  });

  test("the same pattern twice in one blocklist is a conflict, whatever its shape; another tenant's is not", async () => {
    await created(A.client.post("/blocklist-entries", { pattern: "+14155550100" }));
    const again = await A.client.post("/blocklist-entries", { pattern: "(415) 555-0100" });
    expectFieldError(again, 409, "pattern", /already taken/);
    expect(again.body.error.code).toBe("conflict");
    await created(B.client.post("/blocklist-entries", { pattern: "+14155550100" }));
    await created(admin.post("/blocklist-entries", { tenant_id: null, pattern: "+1900*" }));
    expectFieldError(await admin.post("/blocklist-entries", { tenant_id: null, pattern: "+1 900 *" }), 409, "pattern");
  });

  test("an admin key names the tenant or null (global); leaving tenant_id out is refused", async () => {
    expectFieldError(await admin.post("/blocklist-entries", { pattern: "+1900*" }), 400, "tenant_id", /required/);
    const global = await created(admin.post("/blocklist-entries", { tenant_id: null, pattern: "+1900*" }));
    expect(global.tenant_id).toBeNull();
    const globals = await admin.get("/blocklist-entries?global=true");
    expect(globals.body.data.map((e: any) => e.id)).toEqual([global.id]);
    expect((await admin.get(`/blocklist-entries/${global.id}`)).status).toBe(200);
    expect((await admin.delete(`/blocklist-entries/${global.id}`)).status).toBe(204);
    expect((await admin.get(`/blocklist-entries/${global.id}`)).status).toBe(404);
  });

  test("a tenant key cannot make a global entry, nor see, change or delete one", async () => {
    const refused = await A.client.post("/blocklist-entries", { tenant_id: null, pattern: "+1900*" });
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 403, code: "forbidden" });
    const global = await created(admin.post("/blocklist-entries", { tenant_id: null, pattern: "+1900*" }));
    const own = await created(A.client.post("/blocklist-entries", { pattern: "+1888*" }));
    expect((await A.client.get("/blocklist-entries")).body.data.map((e: any) => e.id)).toEqual([own.id]);
    expect((await A.client.get("/blocklist-entries?global=true")).body.data).toEqual([]);
    expect((await A.client.get(`/blocklist-entries/${global.id}`)).status).toBe(404);
    expect((await A.client.patch(`/blocklist-entries/${global.id}`, { reason: "mine now" })).status).toBe(404);
    expect((await A.client.delete(`/blocklist-entries/${global.id}`)).status).toBe(404);
    expect((await admin.get(`/blocklist-entries/${global.id}`)).body).toMatchObject({ tenant_id: null, reason: null });
  });

  test("a tenant key sees and manages only its own tenant's entries", async () => {
    const theirs = await created(B.client.post("/blocklist-entries", { pattern: "+14155550100" }));
    expect((await A.client.get("/blocklist-entries")).body.data).toEqual([]);
    expect((await A.client.get(`/blocklist-entries?tenant_id=${B.id}`)).body.data).toEqual([]);
    for (const answer of [
      await A.client.get(`/blocklist-entries/${theirs.id}`),
      await A.client.patch(`/blocklist-entries/${theirs.id}`, { reason: "x" }),
      await A.client.delete(`/blocklist-entries/${theirs.id}`),
    ]) {
      expect({ status: answer.status, body: answer.body }).toEqual({
        status: 404,
        body: { error: { code: "not_found", message: `blocklist entry ${theirs.id} not found` } },
      });
    }
    expect((await A.client.post("/blocklist-entries", { tenant_id: B.id, pattern: "+1900*" })).status).toBe(403);
    expect((await B.client.get(`/blocklist-entries/${theirs.id}`)).body.reason).toBeNull();
  });
});

describe("schedules", () => {
  test("a sound schedule is stored as sent, holidays defaulting to none", async () => {
    const made = await created(A.client.post("/schedules", schedule()));
    expect(made).toEqual({
      id: expect.any(String),
      tenant_id: A.id,
      name: "office",
      time_zone: "America/New_York",
      weekly_hours: WEEKDAYS,
      holidays: [],
      after_hours: { action: "reject" },
      created_at: expect.any(String),
    });
    const [row] = await ctx.database.rows<{ after_hours: unknown }>(sql`select after_hours from schedules where id = ${made.id}`);
    expect(row!.after_hours).toEqual({ action: "reject" });
    // A day ending at midnight is written 24:00.
    const late = await created(A.client.post("/schedules", schedule({ name: "late", weekly_hours: { sat: [{ open: "18:00", close: "24:00" }] } })));
    expect(late.weekly_hours.sat).toEqual([{ open: "18:00", close: "24:00" }]);
    expectFieldError(await A.client.post("/schedules", schedule()), 409, "name", /already taken/);
  });

  test("each problem the model's shape cannot see is a 400 naming its field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ time_zone: "Mars/Olympus_Mons" }, "time_zone"],
      [{ weekly_hours: { mon: [{ open: "17:00", close: "09:00" }] } }, "weekly_hours.mon[0].close"],
      [{ weekly_hours: { wed: [{ open: "09:00", close: "13:00" }, { open: "12:00", close: "18:00" }] } }, "weekly_hours.wed[1].open"],
      [{ holidays: ["2026-02-30"] }, "holidays[0]"],
      [{ weekly_hours: { tue: [{ open: "24:00", close: "24:00" }] } }, "weekly_hours.tue[0].open"],
    ];
    for (const [fault, field] of cases) {
      const answer = await A.client.post("/schedules", schedule(fault));
      expectFieldError(answer, 400, field);
      expect(answer.body.error.code).toBe("invalid_request");
    }
    const made = await created(A.client.post("/schedules", schedule()));
    expectFieldError(await A.client.patch(`/schedules/${made.id}`, { time_zone: "Nowhere/Special" }), 400, "time_zone");
    expect((await A.client.get(`/schedules/${made.id}`)).body.time_zone).toBe("America/New_York");
  });

  test("after_hours may dispatch the tenant's own or a system-wide agent, not another tenant's", async () => {
    const own = await created(A.client.post("/schedules", schedule({ after_hours: { action: "dispatch", agent_id: A.agentId } })));
    expect(own.after_hours).toEqual({ action: "dispatch", agent_id: A.agentId });
    await created(A.client.post("/schedules", schedule({ name: "sys", after_hours: { action: "dispatch", agent_id: systemAgentId } })));
    const theirs = await A.client.post("/schedules", schedule({ name: "x", after_hours: { action: "dispatch", agent_id: B.agentId } }));
    expectFieldError(theirs, 422, "after_hours.agent_id");
    // Answered like a campaign naming the same agent, and like an agent that does not exist.
    const campaign = await A.client.post("/campaigns", { name: "c", agent_id: B.agentId });
    expect(campaign.status).toBe(theirs.status);
    const missing = await A.client.post("/schedules", schedule({ name: "x", after_hours: { action: "dispatch", agent_id: NO_SUCH_ID } }));
    expect(missing.body).toEqual(theirs.body);
    // With an admin key too: the agent must suit the schedule's tenant, not the key.
    const byAdmin = await admin.post("/schedules", schedule({ tenant_id: A.id, name: "y", after_hours: { action: "dispatch", agent_id: B.agentId } }));
    expectFieldError(byAdmin, 422, "after_hours.agent_id");
    expectFieldError(await A.client.patch(`/schedules/${own.id}`, { after_hours: { action: "dispatch", agent_id: B.agentId } }), 422, "after_hours.agent_id");
  });

  test("each action takes its own field only", async () => {
    const post = (after_hours: unknown) => A.client.post("/schedules", schedule({ after_hours }));
    expectFieldError(await post({ action: "dispatch" }), 400, "after_hours.agent_id", /required/);
    expectFieldError(await post({ action: "transfer" }), 400, "after_hours.transfer_to", /required/);
    expectFieldError(await post({ action: "reject", agent_id: A.agentId }), 400, "after_hours.agent_id");
    expectFieldError(await post({ action: "dispatch", agent_id: A.agentId, transfer_to: "+14155550100" }), 400, "after_hours.transfer_to");
    expectFieldError(await post({ action: "hang_up" }), 400, "after_hours.action");
  });

  test("transfer_to is written in any common shape and stored as E.164", async () => {
    const made = await created(A.client.post("/schedules", schedule({ after_hours: { action: "transfer", transfer_to: "(415) 555-0199" } })));
    expect(made.after_hours).toEqual({ action: "transfer", transfer_to: "+14155550199" });
    const [row] = await ctx.database.rows<{ after_hours: unknown }>(sql`select after_hours from schedules where id = ${made.id}`);
    expect(row!.after_hours).toEqual({ action: "transfer", transfer_to: "+14155550199" });
    const bad = await A.client.post("/schedules", schedule({ name: "bad", after_hours: { action: "transfer", transfer_to: "12" } }));
    expectFieldError(bad, 400, "after_hours.transfer_to", /not a phone number/);
  });

  test("a schedule still in use cannot be deleted; the answer says what uses it", async () => {
    const used = await created(A.client.post("/schedules", schedule()));
    const number = await created(A.client.post("/phone-numbers", { number: "+14155550100", schedule_id: used.id }));
    const byNumber = await A.client.delete(`/schedules/${used.id}`);
    expect({ status: byNumber.status, code: byNumber.body.error.code }).toEqual({ status: 409, code: "conflict" });
    expect(byNumber.body.error.details).toEqual({ campaign_ids: [], phone_number_ids: [number.id] });
    await A.client.patch(`/phone-numbers/${number.id}`, { schedule_id: null });
    const campaign = await created(A.client.post("/campaigns", { name: "c", schedule_id: used.id }));
    const byCampaign = await A.client.delete(`/schedules/${used.id}`);
    expect(byCampaign.status).toBe(409);
    expect(byCampaign.body.error.details).toEqual({ campaign_ids: [campaign.id], phone_number_ids: [] });
    // A deleted campaign lets go of its schedule.
    expect((await A.client.delete(`/campaigns/${campaign.id}`)).status).toBe(204);
    expect((await A.client.delete(`/schedules/${used.id}`)).status).toBe(204);
    expect((await A.client.get(`/schedules/${used.id}`)).status).toBe(404);
  });

  test("a tenant key does not reach another tenant's schedules", async () => {
    const theirs = await created(B.client.post("/schedules", schedule()));
    expect((await A.client.get("/schedules")).body.data).toEqual([]);
    expect((await A.client.get(`/schedules/${theirs.id}`)).status).toBe(404);
    expect((await A.client.patch(`/schedules/${theirs.id}`, { name: "taken" })).status).toBe(404);
    expect((await A.client.patch(`/schedules/${theirs.id}`, { after_hours: { action: "reject" } })).status).toBe(404);
    expect((await A.client.delete(`/schedules/${theirs.id}`)).status).toBe(404);
    expect((await A.client.post("/schedules", schedule({ tenant_id: B.id }))).status).toBe(403);
    expect((await B.client.get(`/schedules/${theirs.id}`)).body.name).toBe("office");
  });
});

describe("numbers, campaigns and tenants", () => {
  test("a number's schedule must be of its own tenant", async () => {
    const theirs = await created(B.client.post("/schedules", schedule()));
    const foreign = await A.client.post("/phone-numbers", { number: "+14155550100", schedule_id: theirs.id });
    expectFieldError(foreign, 422, "schedule_id");
    // Told apart from a schedule that does not exist only by the id.
    const missing = await A.client.post("/phone-numbers", { number: "+14155550100", schedule_id: NO_SUCH_ID });
    expect(missing.body).toEqual(foreign.body);
    expectFieldError(await admin.post("/phone-numbers", { tenant_id: A.id, number: "+14155550100", schedule_id: theirs.id }), 422, "schedule_id");
    const number = await created(A.client.post("/phone-numbers", { number: "+14155550100" }));
    expectFieldError(await A.client.patch(`/phone-numbers/${number.id}`, { schedule_id: theirs.id }), 422, "schedule_id");
    expectFieldError(await A.client.post("/campaigns", { name: "c", schedule_id: theirs.id }), 422, "schedule_id");
  });

  test("new number fields: defaults, and what is stored", async () => {
    const plain = await created(A.client.post("/phone-numbers", { number: "+14155550100" }));
    expect(plain).toMatchObject({ block_anonymous: false, schedule_id: null, max_concurrent_calls: null, overflow: null });
    const own = await created(A.client.post("/schedules", schedule()));
    const full = await created(
      A.client.post("/phone-numbers", {
        number: "+14155550101",
        block_anonymous: true,
        schedule_id: own.id,
        max_concurrent_calls: 3,
        overflow: { action: "transfer", transfer_to: "415 555 0199" },
      }),
    );
    expect(full).toMatchObject({ block_anonymous: true, schedule_id: own.id, max_concurrent_calls: 3, overflow: { action: "transfer", transfer_to: "+14155550199" } });
    // An overflow without a cap is allowed: it never applies.
    const uncapped = await A.client.patch(`/phone-numbers/${full.id}`, { max_concurrent_calls: null });
    expect(uncapped.body).toMatchObject({ max_concurrent_calls: null, overflow: { action: "transfer" } });
    expectFieldError(await A.client.patch(`/phone-numbers/${full.id}`, { overflow: { action: "dispatch", agent_id: B.agentId } }), 422, "overflow.agent_id");
    expect((await A.client.patch(`/phone-numbers/${full.id}`, { overflow: null })).body.overflow).toBeNull();
  });

  test("a nullable overflow's problems name the field inside it", async () => {
    const number = await created(A.client.post("/phone-numbers", { number: "+14155550100" }));
    const patch = (overflow: unknown) => A.client.patch(`/phone-numbers/${number.id}`, { overflow });
    expectFieldError(await patch({ action: "hang_up" }), 400, "overflow.action", /dispatch, transfer, reject/);
    expectFieldError(await patch({ action: "reject", queue: "q" }), 400, "overflow.queue");
    expectFieldError(await patch({ action: "transfer", transfer_to: 5 }), 400, "overflow.transfer_to", /string/);
    expectFieldError(await patch({ action: "transfer", transfer_to: "nope" }), 400, "overflow.transfer_to", /not a phone number/);
    expectFieldError(await admin.post("/tenants", { name: "t", overflow: { action: "dispatch" } }), 400, "overflow.agent_id", /required/);
    // A new tenant has no agents of its own yet: only a system-wide one can take its overflow.
    expectFieldError(await admin.post("/tenants", { name: "t", overflow: { action: "dispatch", agent_id: A.agentId } }), 422, "overflow.agent_id");
    const made = await created(admin.post("/tenants", { name: "t", overflow: { action: "dispatch", agent_id: systemAgentId } }));
    // The key is checked first: a caller without one learns nothing of the rules.
    const anonymous = await adminClient(ctx, null).patch(`/phone-numbers/${number.id}`, { overflow: { action: "hang_up" } });
    expect(anonymous.status).toBe(401);
    expect(made).toMatchObject({ overflow: { action: "dispatch", agent_id: systemAgentId }, max_concurrent_calls: null, variables: {} });
  });

  test("a number moving tenant drops its schedule, and an overflow to the old tenant's agent", async () => {
    const own = await created(A.client.post("/schedules", schedule()));
    const body = { schedule_id: own.id, max_concurrent_calls: 2 };
    const toOwnAgent = await created(A.client.post("/phone-numbers", { ...body, number: "+14155550100", overflow: { action: "dispatch", agent_id: A.agentId } }));
    const toSystem = await created(A.client.post("/phone-numbers", { ...body, number: "+14155550101", overflow: { action: "dispatch", agent_id: systemAgentId } }));
    const moved = await admin.patch(`/phone-numbers/${toOwnAgent.id}`, { tenant_id: B.id });
    expect(moved.body).toMatchObject({ tenant_id: B.id, schedule_id: null, overflow: null, max_concurrent_calls: 2 });
    const movedToo = await admin.patch(`/phone-numbers/${toSystem.id}`, { tenant_id: B.id });
    expect(movedToo.body).toMatchObject({ schedule_id: null, overflow: { action: "dispatch", agent_id: systemAgentId } });
    // A "move" to the tenant it has keeps everything.
    const stays = await created(A.client.post("/phone-numbers", { ...body, number: "+14155550102" }));
    expect((await admin.patch(`/phone-numbers/${stays.id}`, { tenant_id: A.id })).body.schedule_id).toBe(own.id);
    // A move naming the old tenant's schedule is refused by the same-tenant rule.
    expectFieldError(await admin.patch(`/phone-numbers/${stays.id}`, { tenant_id: B.id, schedule_id: own.id }), 422, "schedule_id");
  });

  test("max_concurrent_calls is null or at least 1", async () => {
    const atLeastOne = /greater or equal to 1/;
    expectFieldError(await A.client.post("/phone-numbers", { number: "+14155550100", max_concurrent_calls: 0 }), 400, "max_concurrent_calls", atLeastOne);
    expectFieldError(await admin.patch(`/tenants/${A.id}`, { max_concurrent_calls: 0 }), 400, "max_concurrent_calls", atLeastOne);
    expectFieldError(await admin.patch(`/tenants/${A.id}`, { max_concurrent_calls: 1.5 }), 400, "max_concurrent_calls", /integer/);
    const capped = await admin.patch(`/tenants/${A.id}`, { max_concurrent_calls: 1, overflow: { action: "dispatch", agent_id: A.agentId } });
    expect(capped.body).toMatchObject({ max_concurrent_calls: 1, overflow: { action: "dispatch", agent_id: A.agentId } });
    expectFieldError(await admin.patch(`/tenants/${A.id}`, { overflow: { action: "dispatch", agent_id: B.agentId } }), 422, "overflow.agent_id");
  });

  test("variables are at most 4096 bytes of JSON text", async () => {
    // {"v":"..."} is 8 bytes around the value.
    const sized = (bytes: number, char = "x") => ({ v: char.repeat((bytes - 8) / Buffer.byteLength(char)) });
    expect(Buffer.byteLength(JSON.stringify(sized(4096)))).toBe(4096);
    const fits = await created(A.client.post("/campaigns", { name: "fits", variables: sized(4096) }));
    expect(fits.variables).toEqual(sized(4096));
    expectFieldError(await A.client.post("/campaigns", { name: "big", variables: sized(4098) }), 400, "variables", /4098 bytes/);
    // Bytes, not characters: 2100 two-byte characters are 4208 bytes.
    expectFieldError(await A.client.patch(`/campaigns/${fits.id}`, { variables: sized(4208, "é") }), 400, "variables", /4208 bytes/);
    expectFieldError(await admin.patch(`/tenants/${A.id}`, { variables: sized(5000) }), 400, "variables");
    const tenant = await admin.patch(`/tenants/${A.id}`, { variables: { greeting: "hi" } });
    expect(tenant.body.variables).toEqual({ greeting: "hi" });
  });
});

describe("call logs", () => {
  async function insertCall(id: string, values: { outcome: string; reason: string | null; agent: string | null; transferTo?: string }) {
    await ctx.database.db.execute(sql`
      insert into call_logs (provider_call_id, tenant_id, agent_name, agent_source, outcome, outcome_reason, transfer_to)
      values (${id}, ${A.id}, ${values.agent}, ${values.agent ? "campaign" : null}, ${values.outcome}, ${values.reason}, ${values.transferTo ?? null})`);
  }

  test("outcome and outcome_reason filter the list; rejected and transferred calls have no agent", async () => {
    await insertCall("dispatched-1", { outcome: "dispatched", reason: null, agent: "alpha-agent" });
    await insertCall("rejected-1", { outcome: "rejected", reason: "blocklist", agent: null });
    await insertCall("transferred-1", { outcome: "transferred", reason: "after_hours", agent: null, transferTo: "+14155550199" });
    const ids = async (query: string) => (await A.client.get(`/call-logs?${query}`)).body.data.map((c: any) => c.provider_call_id).sort();
    expect(await ids("")).toEqual(["dispatched-1", "rejected-1", "transferred-1"]);
    expect(await ids("outcome=rejected")).toEqual(["rejected-1"]);
    expect(await ids("outcome=dispatched")).toEqual(["dispatched-1"]);
    expect(await ids("outcome_reason=after_hours")).toEqual(["transferred-1"]);
    expect(await ids("outcome=rejected&outcome_reason=after_hours")).toEqual([]);
    const [transferred] = (await A.client.get("/call-logs?outcome=transferred")).body.data;
    expect(transferred).toMatchObject({ outcome: "transferred", outcome_reason: "after_hours", transfer_to: "+14155550199", agent_name: null, agent_source: null });
    expectFieldError(await A.client.get("/call-logs?outcome=dropped"), 400, "outcome");
    expectFieldError(await A.client.get("/call-logs?outcome_reason=bored"), 400, "outcome_reason");
    // Another tenant's key sees none of them.
    expect((await B.client.get("/call-logs?outcome=rejected")).body.data).toEqual([]);
  });
});

describe("OpenAPI", () => {
  test("the new resources are documented with their tags and the bearer key", async () => {
    const doc = (await (await ctx.get("/openapi.json")).json()) as any;
    const tagged: [string, string][] = [["/api/v1/schedules", "schedules"], ["/api/v1/blocklist-entries", "blocklist-entries"]];
    for (const [path, tag] of tagged) {
      for (const method of ["get", "post"]) {
        expect(doc.paths[path][method]).toMatchObject({ tags: [tag], security: [{ bearerAuth: [] }] });
      }
    }
    const create = doc.paths["/api/v1/blocklist-entries"].post;
    expect(create.description).toContain("null for a global entry");
  });
});
