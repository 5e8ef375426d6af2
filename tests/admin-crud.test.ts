// The admin API as an operator holding one admin key uses it: the README walk-through, create,
// read, update and delete of every resource, lists and their pages, races and bad input.
// The contract is issue 4's: snake_case JSON, 201/200/204, errors as {error:{code,message,details}}.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, type ApiAnswer, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";

const TEST_CALL = "/api/v1/webhooks/test";

const UUID = expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
const ISO = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
/** Well-formed ids nothing has. */
const NO_SUCH_ID = "00000000-0000-4000-8000-000000000000";

/** The fields of each resource, exactly as the contract lists them. */
const FIELDS = {
  tenant: ["id", "name", "is_active", "max_concurrent_calls", "overflow", "variables", "created_at"],
  agent: ["id", "tenant_id", "name", "is_default", "is_active", "description", "metadata", "created_at"],
  campaign: ["id", "tenant_id", "name", "agent_id", "status", "schedule_id", "variables", "created_at"],
  phoneNumber: [
    "id",
    "tenant_id",
    "number",
    "campaign_id",
    "type",
    "is_active",
    "block_anonymous",
    "schedule_id",
    "max_concurrent_calls",
    "overflow",
    "created_at",
  ],
  lead: [
    "id",
    "tenant_id",
    "campaign_id",
    "phone_number",
    "name",
    "email",
    "status",
    "metadata",
    "last_call_at",
    "created_at",
    "updated_at",
  ],
  callLog: [
    "id",
    "provider_call_id",
    "tenant_id",
    "campaign_id",
    "lead_id",
    "phone_number_id",
    "room_name",
    "room_sid",
    "trunk_id",
    "from_number",
    "to_number",
    "agent_name",
    "agent_source",
    "outcome",
    "outcome_reason",
    "transfer_to",
    "status",
    "created_at",
    "caller_joined_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "disconnect_reason",
    "dispatch_id",
    "metadata",
    "updated_at",
  ],
} as const;

/** What a tenant made without policies has: no cap, no overflow, no variables. */
const NO_TENANT_POLICY = { max_concurrent_calls: null, overflow: null, variables: {} };
/** What a phone number made without policies has. */
const NO_NUMBER_POLICY = { block_anonymous: false, schedule_id: null, max_concurrent_calls: null, overflow: null };

let ctx: TestContext;
let api: AdminClient;

beforeAll(async () => {
  // Generous statement timeout: the races below queue many requests on the embedded database.
  ctx = await openTestContext({ ENABLE_TEST_ENDPOINT: "true", DB_STATEMENT_TIMEOUT_MS: "10000" });
}, 30_000);
afterAll(() => ctx?.close());
beforeEach(async () => {
  // reset() truncates the api keys too: every test starts with a fresh admin key.
  await ctx.reset();
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "admin-crud" });
  api = adminClient(ctx, key);
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** A query string; every value percent-encoded (a bare "+" in a query would read as a space). */
function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

/** The body of an answer with the expected status; otherwise fails showing what came back. */
function ok<T = any>(answer: ApiAnswer<T>, status = 200): T {
  if (answer.status !== status) {
    throw new Error(`expected HTTP ${status}, got ${answer.status}: ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

/** A 204 with no body. */
function noContent(answer: ApiAnswer) {
  expect({ status: answer.status, body: answer.body }).toEqual({ status: 204, body: undefined });
}

/**
 * The answer is an error in the contract's shape, `{error:{code,message,details?}}`, with this
 * status and code; with a field, `details.field` names it (and a 400's message starts with it).
 */
function expectError(answer: ApiAnswer, status: number, code: string, field?: string) {
  const seen = { status: answer.status, body: answer.body };
  expect(snapshotOf(seen)).toMatchObject({ status, body: { error: { code, message: expect.any(String) } } });
  expect(Object.keys(answer.body)).toEqual(["error"]);
  for (const key of Object.keys(answer.body.error)) expect(["code", "message", "details"]).toContain(key);
  if (field !== undefined) {
    expect(snapshotOf(seen)).toMatchObject({ body: { error: { details: { field } } } });
    if (status === 400) expect(answer.body.error.message).toStartWith(field);
  }
  return answer.body.error as { code: string; message: string; details?: Record<string, any> };
}

/**
 * Sends each request and checks each answer is an error with this status and code naming its
 * field; collects every mismatch so one run shows them all.
 */
async function expectRefused(
  cases: [field: string, send: () => Promise<ApiAnswer>, label?: string][],
  status = 400,
  code = "invalid_request",
) {
  const wrong: unknown[] = [];
  for (const [field, send, label] of cases) {
    const answer = await send();
    const error = answer.body?.error;
    const good =
      answer.status === status &&
      Object.keys(answer.body ?? {}).join() === "error" &&
      error?.code === code &&
      error?.details?.field === field &&
      typeof error?.message === "string" &&
      (status !== 400 || error.message.startsWith(field));
    if (!good) {
      wrong.push({
        request: label ?? send.toString().replace(/^\(\) => /, ""),
        expected: { status, code, field },
        got: { status: answer.status, body: answer.body },
      });
    }
  }
  expect(wrong).toEqual([]);
}

function expectFields(row: Record<string, unknown>, kind: keyof typeof FIELDS) {
  expect(Object.keys(row).sort()).toEqual([...FIELDS[kind]].sort());
}

/**
 * A deep copy to match against: bun's toMatchObject writes its asymmetric matchers into the
 * object it checks, which would corrupt values the test compares again later.
 */
const snapshotOf = <T>(value: T): T => (value === undefined ? value : structuredClone(value));

const idsOf = (rows: { id: string }[]): (string | null)[] => rows.map((r) => r.id);
const sortedIds = (rows: { id: string }[]) => rows.map((r) => r.id).sort();
const sorted = (ids: (string | null | undefined)[]) => [...ids].sort() as string[];

/** One page of a list, checked for the list shape. */
async function page(path: string, params: Record<string, string | number | boolean | null | undefined> = {}) {
  const body = ok(await api.get(`${path}${qs(params)}`));
  expect(Object.keys(body).sort()).toEqual(["data", "next_cursor"]);
  expect(Array.isArray(body.data)).toBe(true);
  return body as { data: any[]; next_cursor: string | null };
}

/** Every row of a list that fits on one page of 500. */
async function list(path: string, params: Record<string, string | number | boolean | null | undefined> = {}) {
  const body = await page(path, { limit: 500, ...params });
  expect(body.next_cursor).toBeNull();
  return body.data;
}

let nameSeq = 0;
const uniqueName = (prefix: string) => `${prefix}-${++nameSeq}`;

const newTenant = async (name = uniqueName("tenant"), extra: Record<string, unknown> = {}) =>
  ok(await api.post("/tenants", { name, ...extra }), 201);
const newAgent = async (tenantId: string | null, name = uniqueName("agent"), extra: Record<string, unknown> = {}) =>
  ok(await api.post("/agents", { tenant_id: tenantId, name, ...extra }), 201);
const newCampaign = async (tenantId: string, name = uniqueName("campaign"), extra: Record<string, unknown> = {}) =>
  ok(await api.post("/campaigns", { tenant_id: tenantId, name, ...extra }), 201);
const newNumber = async (tenantId: string, number: string, extra: Record<string, unknown> = {}) =>
  ok(await api.post("/phone-numbers", { tenant_id: tenantId, number, ...extra }), 201);

interface Routed {
  callId: string;
  agentName: string;
  meta: {
    agent_source: string;
    tenant_id: string | null;
    campaign_id: string | null;
    lead_id: string | null;
    call_log_id: string;
    phone_number_id: string | null;
  };
}

let callSeq = 0;
/** A call through the decision webhook, as LiveKit-side glue sends it. */
async function sipCall(to: string, from: string, callId = `CA-${++callSeq}-${crypto.randomUUID()}`): Promise<Routed> {
  const res = await ctx.post(SIP_INBOUND_PATH, { call_id: callId, from_number: from, to_number: to });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`sip-inbound answered ${res.status}: ${text}`);
  const answer = JSON.parse(text);
  return { callId, agentName: answer.agent_name, meta: JSON.parse(answer.metadata) };
}

/** A call through the test endpoint (generated call id and room). */
async function testCall(to: string, from: string): Promise<Routed> {
  const res = await ctx.post(TEST_CALL, { to_number: to, from_number: from });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`test endpoint answered ${res.status}: ${text}`);
  const body = JSON.parse(text);
  expect(body.success).toBe(true);
  return { callId: body.test_data.call_id, agentName: body.response.agent_name, meta: JSON.parse(body.response.metadata) };
}

/** Rows of a table, counted in the database itself. */
async function countRows(table: "tenants" | "agents" | "campaigns" | "phone_numbers" | "leads" | "call_logs") {
  const [row] = await ctx.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)}`);
  return Number(row!.n);
}

/**
 * A tenant as the README sets one up: a default agent, a sales agent, a campaign using the
 * sales agent, a number on the campaign and a number without one.
 */
async function acme() {
  const tenant = await newTenant("Acme Dental");
  const receptionist = await newAgent(tenant.id, "acme-receptionist", { is_default: true });
  const sales = await newAgent(tenant.id, "acme-sales");
  const campaign = await newCampaign(tenant.id, "Spring promo", { agent_id: sales.id });
  const campaignNumber = await newNumber(tenant.id, "+14155550100", { campaign_id: campaign.id });
  const plainNumber = await newNumber(tenant.id, "+14155550101");
  return { tenant, receptionist, sales, campaign, campaignNumber, plainNumber };
}

// ---------------------------------------------------------------------------------------------

describe("the README walk-through", () => {
  test("one admin key sets up a tenant, its calls route to the campaign's agent, and the records are found", async () => {
    const tenant = ok(await api.post("/tenants", { name: "Acme Dental" }), 201);
    expect(tenant).toEqual({ id: UUID, name: "Acme Dental", is_active: true, ...NO_TENANT_POLICY, created_at: ISO });

    const receptionist = ok(
      await api.post("/agents", { tenant_id: tenant.id, name: "acme-receptionist", is_default: true }),
      201,
    );
    expect(snapshotOf(receptionist)).toMatchObject({ tenant_id: tenant.id, name: "acme-receptionist", is_default: true, is_active: true });
    const sales = ok(await api.post("/agents", { tenant_id: tenant.id, name: "acme-sales" }), 201);
    expect(snapshotOf(sales)).toMatchObject({ tenant_id: tenant.id, name: "acme-sales", is_default: false });

    const campaign = ok(
      await api.post("/campaigns", { tenant_id: tenant.id, name: "Spring promo", agent_id: sales.id }),
      201,
    );
    expect(snapshotOf(campaign)).toMatchObject({ tenant_id: tenant.id, name: "Spring promo", agent_id: sales.id, status: "active" });

    const number = ok(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "(415) 555-0100", campaign_id: campaign.id }),
      201,
    );
    expect(snapshotOf(number)).toMatchObject({
      tenant_id: tenant.id,
      number: "+14155550100",
      campaign_id: campaign.id,
      type: "LOCAL",
      is_active: true,
    });
    const plain = await newNumber(tenant.id, "+1 415 555 0101");

    // Calls: the test endpoint and the decision webhook, to the campaign's number in other shapes.
    const viaTest = await testCall("+14155550100", "(212) 555-0142");
    expect(viaTest.agentName).toBe("acme-sales");
    expect(snapshotOf(viaTest.meta)).toMatchObject({
      agent_source: "campaign",
      tenant_id: tenant.id,
      campaign_id: campaign.id,
      phone_number_id: number.id,
    });
    const viaSip = await sipCall("tel:+14155550100", "sip:+12125550143@carrier.example", "CA-demo-1");
    expect(viaSip.agentName).toBe("acme-sales");
    expect(snapshotOf(viaSip.meta)).toMatchObject({ agent_source: "campaign", campaign_id: campaign.id, phone_number_id: number.id });
    // A call to the other number, which must stay out of the filtered lists below.
    const elsewhere = await sipCall("+14155550101", "+12125550143");
    expect(elsewhere.agentName).toBe("acme-receptionist");
    expect(elsewhere.meta.phone_number_id).toBe(plain.id);

    const toTheNumber = await list("/call-logs", { to_number: "(415) 555-0100" });
    expect(sortedIds(toTheNumber)).toEqual(sorted([viaTest.meta.call_log_id, viaSip.meta.call_log_id]));
    const ofTheCampaign = await list("/call-logs", { campaign_id: campaign.id });
    expect(sortedIds(ofTheCampaign)).toEqual(sorted([viaTest.meta.call_log_id, viaSip.meta.call_log_id]));

    const exact = await list("/call-logs", { to_number: "415-555-0100", campaign_id: campaign.id, from_number: "(212) 555-0143" });
    expect(exact).toHaveLength(1);
    const log = exact[0];
    expectFields(log, "callLog");
    expect(snapshotOf(log)).toMatchObject({
      id: viaSip.meta.call_log_id,
      provider_call_id: "CA-demo-1",
      tenant_id: tenant.id,
      campaign_id: campaign.id,
      phone_number_id: number.id,
      lead_id: viaSip.meta.lead_id,
      from_number: "+12125550143",
      to_number: "+14155550100",
      agent_name: "acme-sales",
      agent_source: "campaign",
      status: "ringing",
      created_at: ISO,
    });

    // The caller's lead, listed with the caller's number.
    const leads = await list("/leads", { campaign_id: campaign.id });
    expect(leads.map((l) => l.phone_number).sort()).toEqual(["+12125550142", "+12125550143"]);
    const lead = leads.find((l) => l.phone_number === "+12125550143");
    expect(snapshotOf(lead)).toMatchObject({ id: viaSip.meta.lead_id, tenant_id: tenant.id, campaign_id: campaign.id });
    expect(snapshotOf(ok(await api.get(`/leads/${viaSip.meta.lead_id}`)))).toMatchObject({ phone_number: "+12125550143" });

    // The call found again by the provider's call id and by its own id.
    const byCallId = ok(await api.get("/call-logs/by-call-id/CA-demo-1"));
    expect(snapshotOf(byCallId)).toMatchObject({ id: log.id, provider_call_id: "CA-demo-1", lead_id: lead.id, agent_name: "acme-sales" });
    const byTestCallId = ok(await api.get(`/call-logs/by-call-id/${encodeURIComponent(viaTest.callId)}`));
    expect(byTestCallId.id).toBe(viaTest.meta.call_log_id);
    expect(snapshotOf(ok(await api.get(`/call-logs/${log.id}`)))).toMatchObject({ id: log.id, provider_call_id: "CA-demo-1" });
    expectError(await api.get("/call-logs/by-call-id/CA-never-seen"), 404, "not_found");
  });
});

// ---------------------------------------------------------------------------------------------

describe("tenants", () => {
  test("create, get, list, filter and patch (partial)", async () => {
    const acmeTenant = ok(await api.post("/tenants", { name: "Acme" }), 201);
    expectFields(acmeTenant, "tenant");
    expect(acmeTenant).toEqual({ id: UUID, name: "Acme", is_active: true, ...NO_TENANT_POLICY, created_at: ISO });
    expect(ok(await api.get(`/tenants/${acmeTenant.id}`))).toEqual(acmeTenant);

    const closed = ok(await api.post("/tenants", { name: "Closed", is_active: false }), 201);
    expect(closed.is_active).toBe(false);

    expect(sortedIds(await list("/tenants"))).toEqual(sorted([acmeTenant.id, closed.id]));
    expect(idsOf(await list("/tenants", { is_active: true }))).toEqual([acmeTenant.id]);
    expect(idsOf(await list("/tenants", { is_active: false }))).toEqual([closed.id]);

    const renamed = ok(await api.patch(`/tenants/${acmeTenant.id}`, { name: "Acme Dental" }));
    expect(renamed).toEqual({ ...acmeTenant, name: "Acme Dental" });
    const paused = ok(await api.patch(`/tenants/${acmeTenant.id}`, { is_active: false }));
    expect(paused).toEqual({ ...acmeTenant, name: "Acme Dental", is_active: false });
    expect(ok(await api.get(`/tenants/${acmeTenant.id}`))).toEqual(paused);
    const back = ok(await api.patch(`/tenants/${acmeTenant.id}`, { is_active: true }));
    expect(back).toEqual({ ...acmeTenant, name: "Acme Dental", is_active: true });

    expectError(await api.get(`/tenants/${NO_SUCH_ID}`), 404, "not_found");
    expectError(await api.patch(`/tenants/${NO_SUCH_ID}`, { name: "Ghost" }), 404, "not_found");
  });

  test("a taken name is 409 naming name, on create and on rename, and changes nothing", async () => {
    const first = await newTenant("Acme");
    const second = await newTenant("Beta");
    expectError(await api.post("/tenants", { name: "Acme" }), 409, "conflict", "name");
    expectError(await api.patch(`/tenants/${second.id}`, { name: "Acme" }), 409, "conflict", "name");
    expect(ok(await api.get(`/tenants/${second.id}`))).toEqual(second);
    expect(sortedIds(await list("/tenants"))).toEqual(sorted([first.id, second.id]));
  });

  test("deactivating a tenant sends calls to its numbers to the system default agent", async () => {
    const { tenant, campaignNumber } = await acme();
    const other = await newTenant("Other");
    await newAgent(other.id, "other-default", { is_default: true });
    await newNumber(other.id, "+14155550200");

    expect((await sipCall("+14155550100", "+12125550142")).agentName).toBe("acme-sales");

    const deactivated = ok(await api.post(`/tenants/${tenant.id}/deactivate`));
    expect(deactivated).toEqual({ ...tenant, is_active: false });
    expect(ok(await api.get(`/tenants/${tenant.id}`)).is_active).toBe(false);

    const toCampaign = await sipCall("(415) 555-0100", "+12125550142");
    expect(toCampaign.agentName).toBe(SYSTEM_DEFAULT_AGENT);
    expect(toCampaign.meta.agent_source).toBe("system_default");
    const log = ok(await api.get(`/call-logs/${toCampaign.meta.call_log_id}`));
    expect(snapshotOf(log)).toMatchObject({ agent_name: SYSTEM_DEFAULT_AGENT, agent_source: "system_default", to_number: "+14155550100" });
    const toPlain = await sipCall("+14155550101", "+12125550142");
    expect(toPlain.agentName).toBe(SYSTEM_DEFAULT_AGENT);
    expect(toPlain.meta.agent_source).toBe("system_default");

    // Nothing else changed: the number and the campaign are still there, other tenants unaffected.
    expect(ok(await api.get(`/phone-numbers/${campaignNumber.id}`))).toEqual(campaignNumber);
    const otherCall = await sipCall("+14155550200", "+12125550142");
    expect(otherCall.agentName).toBe("other-default");
    expect(otherCall.meta.agent_source).toBe("tenant_default");

    expectError(await api.post(`/tenants/${NO_SUCH_ID}/deactivate`), 404, "not_found");
  });
});

// ---------------------------------------------------------------------------------------------

describe("agents", () => {
  test("create, get, list, filter, patch (partial) and delete", async () => {
    const tenant = await newTenant();
    const desk = ok(await api.post("/agents", { tenant_id: tenant.id, name: "front-desk" }), 201);
    expectFields(desk, "agent");
    expect(desk).toEqual({
      id: UUID,
      tenant_id: tenant.id,
      name: "front-desk",
      is_default: false,
      is_active: true,
      description: null,
      metadata: {},
      created_at: ISO,
    });
    const sales = ok(
      await api.post("/agents", {
        tenant_id: tenant.id,
        name: "sales",
        description: "Sells the spring promo",
        metadata: { voice: "alloy", tier: 2, tags: ["a", "b"] },
        is_active: false,
      }),
      201,
    );
    expect(snapshotOf(sales)).toMatchObject({
      description: "Sells the spring promo",
      metadata: { voice: "alloy", tier: 2, tags: ["a", "b"] },
      is_active: false,
      is_default: false,
    });
    const shared = ok(await api.post("/agents", { tenant_id: null, name: "shared-overflow" }), 201);
    expect(snapshotOf(shared)).toMatchObject({ tenant_id: null, name: "shared-overflow", is_default: false });

    expect(ok(await api.get(`/agents/${desk.id}`))).toEqual(desk);
    expect(ok(await api.get(`/agents/${shared.id}`))).toEqual(shared);

    const all = await list("/agents");
    expect(sortedIds(all)).toEqual(sorted([desk.id, sales.id, shared.id]));
    const ofTenant = (await list("/agents", { tenant_id: tenant.id })).filter((a) => a.tenant_id !== null);
    expect(sortedIds(ofTenant)).toEqual(sorted([desk.id, sales.id]));
    expect(idsOf(await list("/agents", { tenant_id: tenant.id, is_active: false }))).toEqual([sales.id]);
    expect(idsOf(await list("/agents", { name: "sales" }))).toEqual([sales.id]);

    const described = ok(await api.patch(`/agents/${sales.id}`, { description: "Sells everything" }));
    expect(described).toEqual({ ...sales, description: "Sells everything" });
    const revived = ok(await api.patch(`/agents/${sales.id}`, { is_active: true, name: "sales-2" }));
    expect(revived).toEqual({ ...sales, description: "Sells everything", is_active: true, name: "sales-2" });
    const retuned = ok(await api.patch(`/agents/${sales.id}`, { metadata: { voice: "echo" } }));
    expect(snapshotOf(retuned)).toMatchObject({ name: "sales-2", description: "Sells everything", is_active: true });
    expect(retuned.metadata.voice).toBe("echo");
    const undescribed = ok(await api.patch(`/agents/${sales.id}`, { description: null }));
    expect(snapshotOf(undescribed)).toMatchObject({ name: "sales-2", description: null });
    expect(ok(await api.get(`/agents/${sales.id}`))).toEqual(undescribed);

    noContent(await api.delete(`/agents/${desk.id}`));
    expectError(await api.get(`/agents/${desk.id}`), 404, "not_found");
    expectError(await api.delete(`/agents/${desk.id}`), 404, "not_found");
    expect(sortedIds(await list("/agents"))).toEqual(sorted([sales.id, shared.id]));
  });

  test("an admin key must name the tenant; system-wide agents cannot be default; unknown tenant 422", async () => {
    const tenant = await newTenant();
    expectError(await api.post("/agents", { name: "no-tenant" }), 400, "invalid_request", "tenant_id");
    expectError(
      await api.post("/agents", { tenant_id: null, name: "shared-default", is_default: true }),
      422,
      "unprocessable",
      "is_default",
    );
    expectError(await api.post("/agents", { tenant_id: NO_SUCH_ID, name: "orphan" }), 422, "unprocessable", "tenant_id");
    const shared = await newAgent(null, "shared");
    expectError(await api.patch(`/agents/${shared.id}`, { is_default: true }), 422, "unprocessable", "is_default");
    expect(ok(await api.get(`/agents/${shared.id}`)).is_default).toBe(false);
    expect((await list("/agents", { tenant_id: tenant.id })).filter((a) => a.tenant_id !== null)).toEqual([]);
    expect(await countRows("agents")).toBe(1);
  });

  test("is_default moves: a tenant has one default agent at most, other tenants untouched", async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const first = await newAgent(tenant.id, "first", { is_default: true });
    const plain = await newAgent(tenant.id, "plain");
    const otherDefault = await newAgent(other.id, "other-default", { is_default: true });
    expect(first.is_default).toBe(true);

    const second = await newAgent(tenant.id, "second", { is_default: true });
    expect(second.is_default).toBe(true);
    expect(ok(await api.get(`/agents/${first.id}`)).is_default).toBe(false);
    expect(idsOf(await list("/agents", { tenant_id: tenant.id, is_default: true }))).toEqual([second.id]);

    const back = ok(await api.patch(`/agents/${first.id}`, { is_default: true }));
    expect(back.is_default).toBe(true);
    expect(ok(await api.get(`/agents/${second.id}`)).is_default).toBe(false);
    expect(ok(await api.get(`/agents/${plain.id}`)).is_default).toBe(false);
    expect(idsOf(await list("/agents", { tenant_id: tenant.id, is_default: true }))).toEqual([first.id]);
    expect(ok(await api.get(`/agents/${otherDefault.id}`)).is_default).toBe(true);

    // The default answers the tenant's calls.
    await newNumber(tenant.id, "+14155550100");
    const routed = await sipCall("+14155550100", "+12125550142");
    expect(routed.agentName).toBe("first");
    expect(routed.meta.agent_source).toBe("tenant_default");

    // Unsetting leaves the tenant with none.
    ok(await api.patch(`/agents/${first.id}`, { is_default: false }));
    expect(await list("/agents", { tenant_id: tenant.id, is_default: true })).toEqual([]);
    expect((await sipCall("+14155550100", "+12125550142")).agentName).toBe(SYSTEM_DEFAULT_AGENT);
  });

  test("agent names are unique across tenants and system-wide agents: 409 naming name, nothing changed", async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const sales = await newAgent(tenant.id, "sales");
    const desk = await newAgent(tenant.id, "desk");
    const shared = await newAgent(null, "shared");
    expectError(await api.post("/agents", { tenant_id: tenant.id, name: "sales" }), 409, "conflict", "name");
    expectError(await api.patch(`/agents/${desk.id}`, { name: "sales" }), 409, "conflict", "name");
    // LiveKit dispatches by name: another tenant's "sales" would answer this tenant's callers.
    expectError(await api.post("/agents", { tenant_id: other.id, name: "sales" }), 409, "conflict", "name");
    expectError(await api.post("/agents", { tenant_id: null, name: "sales" }), 409, "conflict", "name");
    expectError(await api.post("/agents", { tenant_id: other.id, name: "shared" }), 409, "conflict", "name");
    expectError(await api.patch(`/agents/${desk.id}`, { name: "shared" }), 409, "conflict", "name");

    expect(await countRows("agents")).toBe(3);
    expect(ok(await api.get(`/agents/${sales.id}`))).toEqual(sales);
    expect(ok(await api.get(`/agents/${desk.id}`))).toEqual(desk);
    expect(ok(await api.get(`/agents/${shared.id}`))).toEqual(shared);
  });

  test("deleting an agent campaigns use: 409 with their ids, then ?unlink=true detaches and deletes it", async () => {
    const { tenant, receptionist, sales, campaign } = await acme();
    const fall = await newCampaign(tenant.id, "Fall promo", { agent_id: sales.id });
    const own = await newCampaign(tenant.id, "Front desk", { agent_id: receptionist.id });

    const before = await sipCall("+14155550100", "+12125550142");
    expect(before.agentName).toBe("acme-sales");

    const refused = expectError(await api.delete(`/agents/${sales.id}`), 409, "conflict");
    expect(sorted(refused.details?.campaign_ids ?? [])).toEqual(sorted([campaign.id, fall.id]));
    // Refused means untouched.
    expect(ok(await api.get(`/agents/${sales.id}`))).toEqual(sales);
    expect(ok(await api.get(`/campaigns/${campaign.id}`)).agent_id).toBe(sales.id);
    expect(ok(await api.get(`/campaigns/${fall.id}`)).agent_id).toBe(sales.id);

    noContent(await api.delete(`/agents/${sales.id}?unlink=true`));
    expectError(await api.get(`/agents/${sales.id}`), 404, "not_found");
    expect(ok(await api.get(`/campaigns/${campaign.id}`))).toEqual({ ...campaign, agent_id: null });
    expect(ok(await api.get(`/campaigns/${fall.id}`))).toEqual({ ...fall, agent_id: null });
    expect(ok(await api.get(`/campaigns/${own.id}`))).toEqual(own);

    // The call routed before keeps the agent that answered it.
    expect(snapshotOf(ok(await api.get(`/call-logs/${before.meta.call_log_id}`)))).toMatchObject({
      agent_name: "acme-sales",
      agent_source: "campaign",
      campaign_id: campaign.id,
    });
    // New calls to the campaign's number go to the tenant's default.
    const after = await sipCall("+14155550100", "+12125550142");
    expect(after.agentName).toBe("acme-receptionist");
    expect(after.meta.agent_source).toBe("tenant_default");
  });
});

// ---------------------------------------------------------------------------------------------

describe("campaigns", () => {
  /** A tenant with two agents of its own, a system-wide one, and three campaigns. */
  async function campaignsWorld() {
    const tenant = await newTenant();
    const sales = await newAgent(tenant.id, "sales");
    const desk = await newAgent(tenant.id, "desk");
    const shared = await newAgent(null, "shared");
    const spring = ok(await api.post("/campaigns", { tenant_id: tenant.id, name: "Spring", agent_id: sales.id }), 201);
    const fall = ok(await api.post("/campaigns", { tenant_id: tenant.id, name: "Fall", status: "paused" }), 201);
    const overflow = await newCampaign(tenant.id, "Overflow", { agent_id: shared.id });
    return { tenant, sales, desk, shared, spring, fall, overflow };
  }

  test("create, get, patch (partial) and delete", async () => {
    const { tenant, sales, desk, shared, spring, fall, overflow } = await campaignsWorld();
    expectFields(spring, "campaign");
    expect(spring).toEqual({ id: UUID, tenant_id: tenant.id, name: "Spring", agent_id: sales.id, status: "active", schedule_id: null, variables: {}, created_at: ISO });
    expect(snapshotOf(fall)).toMatchObject({ agent_id: null, status: "paused" });
    expect(overflow.agent_id).toBe(shared.id);
    expect(ok(await api.get(`/campaigns/${spring.id}`))).toEqual(spring);
    expect(ok(await api.get(`/campaigns/${fall.id}`))).toEqual(fall);

    const paused = ok(await api.patch(`/campaigns/${spring.id}`, { status: "paused" }));
    expect(paused).toEqual({ ...spring, status: "paused" });
    const agentless = ok(await api.patch(`/campaigns/${spring.id}`, { agent_id: null }));
    expect(agentless).toEqual({ ...spring, status: "paused", agent_id: null });
    const moved = ok(await api.patch(`/campaigns/${spring.id}`, { agent_id: desk.id, name: "Spring 2" }));
    expect(moved).toEqual({ ...spring, status: "paused", agent_id: desk.id, name: "Spring 2" });
    expect(ok(await api.get(`/campaigns/${spring.id}`))).toEqual(moved);
    // A patch without status leaves a paused campaign paused.
    expect(ok(await api.patch(`/campaigns/${fall.id}`, { name: "Fall 2" }))).toEqual({ ...fall, name: "Fall 2" });

    const other = await newTenant();
    expectError(await api.patch(`/campaigns/${spring.id}`, { tenant_id: other.id }), 400, "invalid_request", "tenant_id");
    expect(ok(await api.get(`/campaigns/${spring.id}`))).toEqual(moved);

    noContent(await api.delete(`/campaigns/${fall.id}`));
    expectError(await api.get(`/campaigns/${fall.id}`), 404, "not_found");
    expectError(await api.delete(`/campaigns/${fall.id}`), 404, "not_found");
    expectError(await api.patch(`/campaigns/${fall.id}`, { status: "active" }), 404, "not_found");
  });

  test("list every campaign, or filter by tenant, status and agent", async () => {
    const { tenant, sales, spring, fall, overflow } = await campaignsWorld();
    const other = await newTenant();
    const theirs = await newCampaign(other.id, "Theirs", { status: "completed" });
    expect(sortedIds(await list("/campaigns"))).toEqual(sorted([spring.id, fall.id, overflow.id, theirs.id]));
    expect(sortedIds(await list("/campaigns", { tenant_id: tenant.id }))).toEqual(sorted([spring.id, fall.id, overflow.id]));
    expect(idsOf(await list("/campaigns", { tenant_id: other.id }))).toEqual([theirs.id]);
    expect(idsOf(await list("/campaigns", { status: "paused" }))).toEqual([fall.id]);
    expect(sortedIds(await list("/campaigns", { status: "active" }))).toEqual(sorted([spring.id, overflow.id]));
    expect(idsOf(await list("/campaigns", { agent_id: sales.id }))).toEqual([spring.id]);
  });

  test("an agent of another tenant or none at all is 422 naming agent_id; a taken name 409", async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const theirs = await newAgent(other.id, "theirs");
    const mine = await newCampaign(tenant.id, "Mine");

    const foreign = expectError(
      await api.post("/campaigns", { tenant_id: tenant.id, name: "X", agent_id: theirs.id }),
      422,
      "unprocessable",
      "agent_id",
    );
    const missing = expectError(
      await api.post("/campaigns", { tenant_id: tenant.id, name: "X", agent_id: NO_SUCH_ID }),
      422,
      "unprocessable",
      "agent_id",
    );
    // The same answer: nothing tells another tenant's agent from one that does not exist.
    expect(foreign.message.replaceAll(theirs.id, "ID")).toBe(missing.message.replaceAll(NO_SUCH_ID, "ID"));
    expectError(await api.patch(`/campaigns/${mine.id}`, { agent_id: theirs.id }), 422, "unprocessable", "agent_id");
    expectError(await api.post("/campaigns", { tenant_id: NO_SUCH_ID, name: "X" }), 422, "unprocessable", "tenant_id");

    expectError(await api.post("/campaigns", { tenant_id: tenant.id, name: "Mine" }), 409, "conflict", "name");
    expect((await newCampaign(other.id, "Mine")).tenant_id).toBe(other.id);
    const second = await newCampaign(tenant.id, "Second");
    expectError(await api.patch(`/campaigns/${second.id}`, { name: "Mine" }), 409, "conflict", "name");

    expect(ok(await api.get(`/campaigns/${mine.id}`))).toEqual(mine);
    expect(ok(await api.get(`/campaigns/${second.id}`))).toEqual(second);
    expect(await countRows("campaigns")).toBe(3);
  });

  test("deleting a campaign unlinks its numbers, keeps its leads and call logs, and frees its name", async () => {
    const { tenant, campaign, campaignNumber } = await acme();
    const other = await newCampaign(tenant.id, "Other promo");
    const call = await sipCall("+14155550100", "+12125550142");
    expect(call.meta.campaign_id).toBe(campaign.id);
    const leadBefore = ok(await api.get(`/leads/${call.meta.lead_id}`));
    const logBefore = ok(await api.get(`/call-logs/${call.meta.call_log_id}`));

    noContent(await api.delete(`/campaigns/${campaign.id}`));

    expect(ok(await api.get(`/phone-numbers/${campaignNumber.id}`))).toEqual({ ...campaignNumber, campaign_id: null });
    expect(snapshotOf(ok(await api.get(`/leads/${leadBefore.id}`)))).toMatchObject({ id: leadBefore.id, campaign_id: campaign.id });
    expect(snapshotOf(ok(await api.get(`/call-logs/${logBefore.id}`)))).toMatchObject({ id: logBefore.id, campaign_id: campaign.id });
    expect(sortedIds(await list("/leads", { tenant_id: tenant.id }))).toEqual([leadBefore.id]);
    expect(idsOf(await list("/call-logs", { tenant_id: tenant.id }))).toEqual([logBefore.id]);

    expectError(await api.get(`/campaigns/${campaign.id}`), 404, "not_found");
    expectError(await api.patch(`/campaigns/${campaign.id}`, { status: "paused" }), 404, "not_found");
    expectError(await api.delete(`/campaigns/${campaign.id}`), 404, "not_found");
    expect(idsOf(await list("/campaigns"))).toEqual([other.id]);
    expect(idsOf(await list("/campaigns", { tenant_id: tenant.id }))).toEqual([other.id]);

    const reborn = await newCampaign(tenant.id, "Spring promo");
    expect(reborn.id).not.toBe(campaign.id);
    expect(sortedIds(await list("/campaigns"))).toEqual(sorted([other.id, reborn.id]));
    // A number cannot be put back on the deleted campaign.
    expectError(
      await api.patch(`/phone-numbers/${campaignNumber.id}`, { campaign_id: campaign.id }),
      422,
      "unprocessable",
      "campaign_id",
    );
    // Calls to the unlinked number now get the tenant's default.
    const after = await sipCall("+14155550100", "+12125550142");
    expect(after.agentName).toBe("acme-receptionist");
    expect(after.meta.campaign_id).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------

describe("phone numbers", () => {
  test("create, get, list, filter, patch (partial) and delete", async () => {
    const tenant = await newTenant();
    const campaign = await newCampaign(tenant.id, "Spring");
    const main = ok(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "+1 415 555 0100", campaign_id: campaign.id }),
      201,
    );
    expectFields(main, "phoneNumber");
    expect(main).toEqual({
      id: UUID,
      tenant_id: tenant.id,
      number: "+14155550100",
      campaign_id: campaign.id,
      type: "LOCAL",
      is_active: true,
      ...NO_NUMBER_POLICY,
      created_at: ISO,
    });
    const tollFree = await newNumber(tenant.id, "1-800-555-0199", { type: "TOLL_FREE" });
    expect(snapshotOf(tollFree)).toMatchObject({ number: "+18005550199", type: "TOLL_FREE", campaign_id: null });
    const mobile = await newNumber(tenant.id, "415.555.0102", { type: "MOBILE", is_active: false });
    expect(snapshotOf(mobile)).toMatchObject({ number: "+14155550102", type: "MOBILE", is_active: false });

    expect(ok(await api.get(`/phone-numbers/${main.id}`))).toEqual(main);
    expect(sortedIds(await list("/phone-numbers", { tenant_id: tenant.id }))).toEqual(
      sorted([main.id, tollFree.id, mobile.id]),
    );
    expect(idsOf(await list("/phone-numbers", { campaign_id: campaign.id }))).toEqual([main.id]);
    expect(idsOf(await list("/phone-numbers", { is_active: false }))).toEqual([mobile.id]);

    const off = ok(await api.patch(`/phone-numbers/${main.id}`, { is_active: false }));
    expect(off).toEqual({ ...main, is_active: false });
    const unlinked = ok(await api.patch(`/phone-numbers/${main.id}`, { campaign_id: null }));
    expect(unlinked).toEqual({ ...main, is_active: false, campaign_id: null });
    const renumbered = ok(await api.patch(`/phone-numbers/${main.id}`, { number: "(415) 555-0109", type: "MOBILE" }));
    expect(renumbered).toEqual({ ...main, is_active: false, campaign_id: null, number: "+14155550109", type: "MOBILE" });
    expect(ok(await api.get(`/phone-numbers/${main.id}`))).toEqual(renumbered);

    expectError(await api.patch(`/phone-numbers/${tollFree.id}`, { number: "415-555-0102" }), 409, "conflict", "number");
    expect(ok(await api.get(`/phone-numbers/${tollFree.id}`))).toEqual(tollFree);

    noContent(await api.delete(`/phone-numbers/${mobile.id}`));
    expectError(await api.get(`/phone-numbers/${mobile.id}`), 404, "not_found");
    expectError(await api.delete(`/phone-numbers/${mobile.id}`), 404, "not_found");
    expect(sortedIds(await list("/phone-numbers"))).toEqual(sorted([main.id, tollFree.id]));
    // Its number is free again.
    expect((await newNumber(tenant.id, "+14155550102")).number).toBe("+14155550102");
  });

  test("the type defaults from the number", async () => {
    const tenant = await newTenant();
    const tollFree = await newNumber(tenant.id, "1-800-555-0199");
    expect(snapshotOf(tollFree)).toMatchObject({ number: "+18005550199", type: "TOLL_FREE" });
    const local = await newNumber(tenant.id, "(415) 555-0100");
    expect(local.type).toBe("LOCAL");
  });

  test("a patch without type keeps the type", async () => {
    const tenant = await newTenant();
    const mobile = await newNumber(tenant.id, "(415) 555-0101", { type: "MOBILE" });
    expect(mobile.type).toBe("MOBILE");
    expect(ok(await api.patch(`/phone-numbers/${mobile.id}`, { is_active: false }))).toEqual({ ...mobile, is_active: false });
    expect(ok(await api.get(`/phone-numbers/${mobile.id}`)).type).toBe("MOBILE");
  });

  test("numbers in any common shape are stored in E.164 and found by any shape", async () => {
    const tenant = await newTenant();
    const shapes: [string, string][] = [
      ["(415) 555-0100", "+14155550100"],
      ["+1 415 555 0101", "+14155550101"],
      ["tel:+14155550102", "+14155550102"],
      ["14155550103", "+14155550103"],
      ["+1 (415) 555-0104", "+14155550104"],
      ["+44 20 7946 0958", "+442079460958"],
    ];
    const created: Record<string, any> = {};
    for (const [shape, e164] of shapes) {
      const row = await newNumber(tenant.id, shape);
      expect(row.number).toBe(e164);
      created[e164] = row;
    }
    for (const [query, e164] of [
      ["415-555-0100", "+14155550100"],
      ["tel:+14155550101", "+14155550101"],
      ["(415) 555-0102", "+14155550102"],
      ["+14155550103", "+14155550103"],
      ["+442079460958", "+442079460958"],
    ] as const) {
      const found = await list("/phone-numbers", { number: query });
      expect(idsOf(found)).toEqual([created[e164].id]);
    }
    expect(await list("/phone-numbers", { number: "+14155559999" })).toEqual([]);
  });

  test("the same number in another shape is 409 naming number, whoever holds it; bad numbers 400", async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const held = await newNumber(tenant.id, "+14155550100");
    for (const shape of ["(415) 555-0100", "tel:+14155550100", "1 415 555 0100"]) {
      expectError(await api.post("/phone-numbers", { tenant_id: tenant.id, number: shape }), 409, "conflict", "number");
      expectError(await api.post("/phone-numbers", { tenant_id: other.id, number: shape }), 409, "conflict", "number");
    }
    for (const bad of ["not a number", "12", "555", "+1 415 555 01000000"]) {
      expectError(await api.post("/phone-numbers", { tenant_id: tenant.id, number: bad }), 400, "invalid_request", "number");
    }
    expectError(await api.patch(`/phone-numbers/${held.id}`, { number: "call me" }), 400, "invalid_request", "number");
    expect(ok(await api.get(`/phone-numbers/${held.id}`))).toEqual(held);
    expect(idsOf(await list("/phone-numbers"))).toEqual([held.id]);
    expect(await countRows("phone_numbers")).toBe(1);
  });

  test("a campaign of another tenant is 422 naming campaign_id", async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const theirs = await newCampaign(other.id, "Theirs");
    expectError(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550100", campaign_id: theirs.id }),
      422,
      "unprocessable",
      "campaign_id",
    );
    expectError(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550100", campaign_id: NO_SUCH_ID }),
      422,
      "unprocessable",
      "campaign_id",
    );
    expect(await list("/phone-numbers")).toEqual([]);
    // Nothing was reserved by the refused requests.
    const mine = await newNumber(tenant.id, "+14155550100");
    expectError(await api.patch(`/phone-numbers/${mine.id}`, { campaign_id: theirs.id }), 422, "unprocessable", "campaign_id");
    expect(ok(await api.get(`/phone-numbers/${mine.id}`))).toEqual(mine);
  });

  test("deleting a number keeps its call logs: to_number stays, phone_number_id becomes null", async () => {
    const { tenant, campaign, campaignNumber } = await acme();
    const call = await sipCall("+14155550100", "+12125550142");
    expect(call.meta.phone_number_id).toBe(campaignNumber.id);

    noContent(await api.delete(`/phone-numbers/${campaignNumber.id}`));
    expectError(await api.get(`/phone-numbers/${campaignNumber.id}`), 404, "not_found");
    const log = ok(await api.get(`/call-logs/${call.meta.call_log_id}`));
    expect(snapshotOf(log)).toMatchObject({
      to_number: "+14155550100",
      phone_number_id: null,
      tenant_id: tenant.id,
      campaign_id: campaign.id,
      lead_id: call.meta.lead_id,
      agent_name: "acme-sales",
    });
    expect(idsOf(await list("/call-logs", { to_number: "(415) 555-0100" }))).toEqual([log.id]);
    // The number is unknown now: calls to it get the system default.
    const after = await sipCall("+14155550100", "+12125550142");
    expect(after.agentName).toBe(SYSTEM_DEFAULT_AGENT);
    expect(after.meta.tenant_id).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------

describe("leads", () => {
  /** Callers A and B on the campaign's number, A again on the plain number: three leads. */
  async function leadsWorld() {
    const world = await acme();
    const a1 = await sipCall("+14155550100", "(212) 555-0142");
    const b1 = await sipCall("+14155550100", "+12125550143");
    const a2 = await sipCall("+14155550101", "212-555-0142");
    return { ...world, a1, b1, a2 };
  }

  test("get and list, filtered by campaign, status and caller number in any shape", async () => {
    const { tenant, campaign, a1, b1, a2 } = await leadsWorld();
    expect(new Set([a1.meta.lead_id, b1.meta.lead_id, a2.meta.lead_id]).size).toBe(3);

    const lead = ok(await api.get(`/leads/${a1.meta.lead_id}`));
    expectFields(lead, "lead");
    expect(snapshotOf(lead)).toMatchObject({
      id: a1.meta.lead_id,
      tenant_id: tenant.id,
      campaign_id: campaign.id,
      phone_number: "+12125550142",
      email: null,
      metadata: {},
      name: expect.any(String),
      status: expect.any(String),
      last_call_at: ISO,
      created_at: ISO,
      updated_at: ISO,
    });

    expect(sortedIds(await list("/leads"))).toEqual(sorted([a1.meta.lead_id, b1.meta.lead_id, a2.meta.lead_id]));
    expect(sortedIds(await list("/leads", { tenant_id: tenant.id }))).toHaveLength(3);
    expect(sortedIds(await list("/leads", { campaign_id: campaign.id }))).toEqual(sorted([a1.meta.lead_id, b1.meta.lead_id]));
    expect(sortedIds(await list("/leads", { phone_number: "(212) 555-0142" }))).toEqual(
      sorted([a1.meta.lead_id, a2.meta.lead_id]),
    );
    expect(idsOf(await list("/leads", { phone_number: "tel:+12125550143" }))).toEqual([b1.meta.lead_id]);

    ok(await api.patch(`/leads/${b1.meta.lead_id}`, { status: "qualified" }));
    expect(idsOf(await list("/leads", { status: "qualified" }))).toEqual([b1.meta.lead_id]);
    expect(idsOf(await list("/leads", { status: "qualified", campaign_id: campaign.id }))).toEqual([b1.meta.lead_id]);
    expect(await list("/leads", { status: "qualified", phone_number: "+12125550142" })).toEqual([]);
    expect(sortedIds(await list("/leads", { status: lead.status }))).toEqual(sorted([a1.meta.lead_id, a2.meta.lead_id]));
  });

  test("patch name, status, email and metadata, each leaving the others alone", async () => {
    const { a1 } = await leadsWorld();
    const id = a1.meta.lead_id!;
    const original = ok(await api.get(`/leads/${id}`));
    const stable = ({ updated_at: _u, ...rest }: any) => rest;

    const named = ok(await api.patch(`/leads/${id}`, { name: "Jane Doe" }));
    expect(stable(named)).toEqual({ ...stable(original), name: "Jane Doe" });
    const mailed = ok(await api.patch(`/leads/${id}`, { email: "jane@example.com" }));
    expect(stable(mailed)).toEqual({ ...stable(original), name: "Jane Doe", email: "jane@example.com" });
    const tagged = ok(await api.patch(`/leads/${id}`, { metadata: { source: "web", score: 7 } }));
    expect(stable(tagged)).toEqual({
      ...stable(original),
      name: "Jane Doe",
      email: "jane@example.com",
      metadata: { source: "web", score: 7 },
    });
    const won = ok(await api.patch(`/leads/${id}`, { status: "won" }));
    expect(stable(won)).toEqual({ ...stable(tagged), status: "won" });
    expect(ok(await api.get(`/leads/${id}`))).toEqual(won);

    for (const bad of ["not-an-email", "jane@", "@example.com", "jane doe@example.com"]) {
      expectError(await api.patch(`/leads/${id}`, { email: bad }), 400, "invalid_request", "email");
    }
    expect(ok(await api.get(`/leads/${id}`))).toEqual(won);

    const unmailed = ok(await api.patch(`/leads/${id}`, { email: null }));
    expect(stable(unmailed)).toEqual({ ...stable(won), email: null });
    // The caller's number and the campaign are facts of the calls, not editable.
    expectError(await api.patch(`/leads/${id}`, { phone_number: "+12125550199" }), 400, "invalid_request", "phone_number");
    expect(ok(await api.get(`/leads/${id}`)).phone_number).toBe("+12125550142");
  });

  test("deleting a lead keeps its call logs with lead_id null", async () => {
    const { tenant, campaign, a1, b1 } = await leadsWorld();
    noContent(await api.delete(`/leads/${a1.meta.lead_id}`));
    expectError(await api.get(`/leads/${a1.meta.lead_id}`), 404, "not_found");
    expectError(await api.delete(`/leads/${a1.meta.lead_id}`), 404, "not_found");
    expect(snapshotOf(ok(await api.get(`/call-logs/${a1.meta.call_log_id}`)))).toMatchObject({
      lead_id: null,
      tenant_id: tenant.id,
      campaign_id: campaign.id,
      from_number: "+12125550142",
    });
    expect(await list("/call-logs", { lead_id: a1.meta.lead_id })).toEqual([]);
    expect(await countRows("call_logs")).toBe(3);
    expect(ok(await api.get(`/leads/${b1.meta.lead_id}`)).id).toBe(b1.meta.lead_id);
    // The caller calls again: a new lead.
    const again = await sipCall("+14155550100", "+12125550142");
    expect(again.meta.lead_id).not.toBeNull();
    expect(again.meta.lead_id).not.toBe(a1.meta.lead_id);
  });
});

// ---------------------------------------------------------------------------------------------

describe("call logs", () => {
  test("filters: tenant, campaign, lead, status, caller and dialed number in any shape, since and until", async () => {
    const { tenant, campaign } = await acme();
    const other = await newTenant("Other");
    await newNumber(other.id, "+14155550200");
    const A = "+12125550142";
    const B = "+12125550143";
    const l1 = await sipCall("+14155550100", A);
    const l2 = await sipCall("+14155550100", B);
    const l3 = await sipCall("+14155550101", A);
    const l4 = await sipCall("+14155550200", A);
    const l5 = await sipCall("+19995550000", B); // nobody's number: no tenant
    const logs = [l1, l2, l3, l4, l5];
    // One call a day, so the time filters have clear edges.
    for (const [i, call] of logs.entries()) {
      await ctx.database.rows(
        sql`update call_logs set created_at = ${`2024-01-0${i + 1}T00:00:00Z`}::timestamptz where id = ${call.meta.call_log_id}::uuid returning id`,
      );
    }
    const id = (call: Routed) => call.meta.call_log_id;
    const ids = async (params: Record<string, string>) => idsOf(await list("/call-logs", params));

    // Newest first; the admin sees the call to an unknown number too.
    expect(await ids({})).toEqual([id(l5), id(l4), id(l3), id(l2), id(l1)]);
    expect(await ids({ tenant_id: tenant.id })).toEqual([id(l3), id(l2), id(l1)]);
    expect(await ids({ tenant_id: other.id })).toEqual([id(l4)]);
    expect(await ids({ campaign_id: campaign.id })).toEqual([id(l2), id(l1)]);
    expect(await ids({ lead_id: l1.meta.lead_id! })).toEqual([id(l1)]);
    expect(await ids({ from_number: "(212) 555-0142" })).toEqual([id(l4), id(l3), id(l1)]);
    expect(await ids({ from_number: "tel:+12125550143" })).toEqual([id(l5), id(l2)]);
    expect(await ids({ to_number: "415.555.0100" })).toEqual([id(l2), id(l1)]);
    expect(await ids({ to_number: "+1 999 555 0000" })).toEqual([id(l5)]);
    expect(await ids({ since: "2024-01-02T00:00:00Z" })).toEqual([id(l5), id(l4), id(l3), id(l2)]);
    expect(await ids({ until: "2024-01-03T00:00:00.000Z" })).toEqual([id(l2), id(l1)]);
    expect(await ids({ since: "2024-01-02T00:00:00Z", until: "2024-01-04T00:00:00Z" })).toEqual([id(l3), id(l2)]);
    // The same instant written with an offset.
    expect(await ids({ since: "2024-01-04T01:00:00+01:00" })).toEqual([id(l5), id(l4)]);
    expect(await ids({ tenant_id: tenant.id, from_number: A, since: "2024-01-02T00:00:00Z" })).toEqual([id(l3)]);

    ok(await api.patch(`/call-logs/${id(l2)}`, { status: "completed" }));
    ok(await api.patch(`/call-logs/${id(l4)}`, { status: "in_progress" }));
    // Without a status filter every call is listed, whatever its status.
    expect(await ids({})).toEqual([id(l5), id(l4), id(l3), id(l2), id(l1)]);
    expect(await ids({ tenant_id: tenant.id })).toEqual([id(l3), id(l2), id(l1)]);
    expect(await ids({ status: "completed" })).toEqual([id(l2)]);
    expect(await ids({ status: "in_progress" })).toEqual([id(l4)]);
    expect(await ids({ status: "ringing" })).toEqual([id(l5), id(l3), id(l1)]);
    expect(await ids({ status: "ringing", campaign_id: campaign.id })).toEqual([id(l1)]);
  });

  test("status moves forward only; a terminal status sets ended_at; backward is 409 and changes nothing", async () => {
    await acme();
    const call = await sipCall("+14155550100", "+12125550142");
    const logId = call.meta.call_log_id;
    const stable = ({ updated_at: _u, ...rest }: any) => rest;
    const ringing = ok(await api.get(`/call-logs/${logId}`));
    expect(snapshotOf(ringing)).toMatchObject({ status: "ringing", ended_at: null });

    const inProgress = ok(await api.patch(`/call-logs/${logId}`, { status: "in_progress" }));
    expect(snapshotOf(inProgress)).toMatchObject({ id: logId, status: "in_progress", ended_at: null });
    expectError(await api.patch(`/call-logs/${logId}`, { status: "ringing" }), 409, "conflict");
    const unknownStatus = await api.patch(`/call-logs/${logId}`, { status: "done" });
    expectError(unknownStatus, 400, "invalid_request", "status");
    expect(unknownStatus.body.error.message).toBe("status: expected one of ringing, in_progress, completed, failed, abandoned");
    expect(ok(await api.get(`/call-logs/${logId}`)).status).toBe("in_progress");

    const completed = ok(await api.patch(`/call-logs/${logId}`, { status: "completed" }));
    expect(snapshotOf(completed)).toMatchObject({ status: "completed", ended_at: ISO });
    expect(stable(completed)).toEqual({ ...stable(inProgress), status: "completed", ended_at: completed.ended_at });

    // Same status: 200, nothing changes.
    const again = ok(await api.patch(`/call-logs/${logId}`, { status: "completed" }));
    expect(stable(again)).toEqual(stable(completed));

    for (const status of ["in_progress", "ringing", "failed", "abandoned"]) {
      expectError(await api.patch(`/call-logs/${logId}`, { status }), 409, "conflict");
    }
    expect(stable(ok(await api.get(`/call-logs/${logId}`)))).toEqual(stable(completed));

    // Straight from ringing to a terminal status.
    const second = await sipCall("+14155550100", "+12125550143");
    const abandoned = ok(await api.patch(`/call-logs/${second.meta.call_log_id}`, { status: "abandoned" }));
    expect(snapshotOf(abandoned)).toMatchObject({ status: "abandoned", ended_at: ISO });
    const third = await sipCall("+14155550100", "+12125550144");
    const done = ok(await api.patch(`/call-logs/${third.meta.call_log_id}`, { status: "completed" }));
    expect(snapshotOf(done)).toMatchObject({ status: "completed", ended_at: ISO });

    expectError(await api.patch(`/call-logs/${logId}`, { status: "bogus" }), 400, "invalid_request", "status");
    expectError(await api.patch(`/call-logs/${NO_SUCH_ID}`, { status: "completed" }), 404, "not_found");
  });

  test("only the status can be changed", async () => {
    await acme();
    const call = await sipCall("+14155550100", "+12125550142");
    const before = ok(await api.get(`/call-logs/${call.meta.call_log_id}`));
    expectError(
      await api.patch(`/call-logs/${call.meta.call_log_id}`, { status: "completed", agent_name: "someone-else" }),
      400,
      "invalid_request",
      "agent_name",
    );
    expect(ok(await api.get(`/call-logs/${call.meta.call_log_id}`))).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------

describe("pagination", () => {
  async function pages(path: string, params: Record<string, string | number>, between?: () => Promise<unknown>) {
    const seen: any[][] = [];
    let cursor: string | null | undefined;
    do {
      const [body] = await Promise.all([page(path, { ...params, cursor: cursor ?? undefined }), between?.()]);
      seen.push(body.data);
      cursor = body.next_cursor;
      if (seen.length > 20) throw new Error("paging does not end");
    } while (cursor);
    return seen;
  }

  /** created_at never increases down the list. */
  function expectNewestFirst(rows: { created_at: string }[]) {
    for (let i = 1; i < rows.length; i++) {
      expect(Date.parse(rows[i - 1]!.created_at)).toBeGreaterThanOrEqual(Date.parse(rows[i]!.created_at));
    }
  }

  test("7 campaigns in pages of 3: 3, 3, 1, newest first, each once", async () => {
    const tenant = await newTenant();
    const created = [];
    for (let i = 0; i < 7; i++) created.push(await newCampaign(tenant.id, `c${i}`));
    // Precondition for the order check to mean something: the first and last are apart in time.
    expect(Date.parse(created[6].created_at)).toBeGreaterThan(Date.parse(created[0].created_at));

    const first = await page("/campaigns", { tenant_id: tenant.id, limit: 3 });
    expect(first.data).toHaveLength(3);
    expect(typeof first.next_cursor).toBe("string");
    const second = await page("/campaigns", { tenant_id: tenant.id, limit: 3, cursor: first.next_cursor! });
    expect(second.data).toHaveLength(3);
    expect(typeof second.next_cursor).toBe("string");
    const third = await page("/campaigns", { tenant_id: tenant.id, limit: 3, cursor: second.next_cursor! });
    expect(third.data).toHaveLength(1);
    expect(third.next_cursor).toBeNull();

    const all = [...first.data, ...second.data, ...third.data];
    expect(new Set(idsOf(all)).size).toBe(7);
    expect(sortedIds(all)).toEqual(sortedIds(created));
    expectNewestFirst(all);
    expect(first.data[0].created_at).toBe(created[6].created_at);
    expect(third.data[0].created_at).toBe(created[0].created_at);

    // A page of exactly what is left ends the list.
    const whole = await page("/campaigns", { tenant_id: tenant.id, limit: 7 });
    expect(whole.data).toHaveLength(7);
    expect(whole.next_cursor).toBeNull();
    expect(idsOf(whole.data)).toEqual(idsOf(all));
  });

  test("rows created while paging never duplicate or skip the rows that were there", async () => {
    const tenant = await newTenant();
    const originals = [];
    for (let i = 0; i < 7; i++) originals.push(await newNumber(tenant.id, `+1415555010${i}`));
    let extra = 0;
    const addTwo = () =>
      Promise.all([
        newNumber(tenant.id, `+1415555020${extra++}`),
        newNumber(tenant.id, `+1415555020${extra++}`),
      ]);

    const seen = await pages("/phone-numbers", { tenant_id: tenant.id, limit: 3 }, addTwo);
    const ids = seen.flat().map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const original of originals) expect(ids.filter((id) => id === original.id)).toHaveLength(1);
    expectNewestFirst(seen.flat());
    expect(extra).toBeGreaterThanOrEqual(6);
    // The list holds the new rows afterwards.
    expect(await list("/phone-numbers", { tenant_id: tenant.id })).toHaveLength(7 + extra);
  });

  test("call logs and leads page the same way", async () => {
    await acme();
    const calls = [];
    for (let i = 0; i < 5; i++) calls.push(await sipCall("+14155550100", `+1212555014${i}`));
    const logPages = await pages("/call-logs", { limit: 2 });
    expect(logPages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(sorted(logPages.flat().map((r) => r.id))).toEqual(sorted(calls.map((c) => c.meta.call_log_id)));
    const leadPages = await pages("/leads", { limit: 4 });
    expect(leadPages.map((p) => p.length)).toEqual([4, 1]);
    expect(sorted(leadPages.flat().map((r) => r.id))).toEqual(sorted(calls.map((c) => c.meta.lead_id)));
  });

  test("the default page is 50 rows", async () => {
    await ctx.database.rows(
      sql`insert into tenants (name) select 'bulk-' || g from generate_series(1, 51) g returning id`,
    );
    const first = await page("/tenants");
    expect(first.data).toHaveLength(50);
    expect(typeof first.next_cursor).toBe("string");
    const rest = await page("/tenants", { cursor: first.next_cursor! });
    expect(rest.data).toHaveLength(1);
    expect(rest.next_cursor).toBeNull();
    expect(new Set([...idsOf(first.data), ...idsOf(rest.data)]).size).toBe(51);
    expect((await page("/tenants", { limit: 500 })).data).toHaveLength(51);
  });

  test("bad limits and cursors are 400 naming the field", async () => {
    // Two rows of every list (two calls from two callers: two call logs, two leads), so that a
    // good limit after all the bad ones visibly pages.
    const { tenant } = await acme();
    await newTenant();
    await newCampaign(tenant.id);
    await sipCall("+14155550100", "+12125550142");
    await sipCall("+14155550101", "+12125550143");
    for (const path of ["/tenants", "/agents", "/campaigns", "/phone-numbers", "/leads", "/call-logs"]) {
      await expectRefused([
        ...["0", "501", "abc", "-1", "2.5", ""].map(
          (limit): [string, () => Promise<ApiAnswer>, string] => [
            "limit",
            () => api.get(`${path}${qs({ limit })}`),
            `GET ${path}${qs({ limit })}`,
          ],
        ),
        ...["garbage", "eyJmb28iOiJiYXIifQ", "%%%", "MjAyNC0wMS0wMQ"].map(
          (cursor): [string, () => Promise<ApiAnswer>, string] => [
            "cursor",
            () => api.get(`${path}${qs({ cursor })}`),
            `GET ${path}${qs({ cursor })}`,
          ],
        ),
      ]);
      const one = await page(path, { limit: 1 });
      expect({ path, rows: one.data.length, more: typeof one.next_cursor }).toEqual({ path, rows: 1, more: "string" });
      const all = await page(path, { limit: 500 });
      expect({ path, rows: all.data.length >= 2, more: all.next_cursor }).toEqual({ path, rows: true, more: null });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("races", () => {
  test("10 simultaneous creations of one number in different shapes: one 201, nine 409, one row", async () => {
    const a = await newTenant();
    const b = await newTenant();
    const shapes = [
      "+14155550100",
      "(415) 555-0100",
      "+1 415 555 0100",
      "tel:+14155550100",
      "14155550100",
      "415-555-0100",
      "+1 (415) 555-0100",
      "415.555.0100",
      "1-415-555-0100",
      "+1.415.555.0100",
    ];
    const answers = await Promise.all(
      shapes.map((number, i) => api.post("/phone-numbers", { tenant_id: i % 2 ? a.id : b.id, number })),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    for (const answer of answers.filter((r) => r.status === 409)) expectError(answer, 409, "conflict", "number");
    const winner = answers.find((r) => r.status === 201)!.body;
    expect(winner.number).toBe("+14155550100");
    expect(idsOf(await list("/phone-numbers"))).toEqual([winner.id]);
    expect(await countRows("phone_numbers")).toBe(1);
  });

  test("10 simultaneous tenant creations with one name: one 201, nine 409, one row", async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => api.post("/tenants", { name: "Race" })));
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    for (const answer of answers.filter((r) => r.status === 409)) expectError(answer, 409, "conflict", "name");
    const winner = answers.find((r) => r.status === 201)!.body;
    expect(await list("/tenants")).toEqual([winner]);
    expect(await countRows("tenants")).toBe(1);
  });

  test("simultaneous default agents in one tenant: all created, exactly one default", async () => {
    const tenant = await newTenant();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => api.post("/agents", { tenant_id: tenant.id, name: `default-${i}`, is_default: true })),
    );
    // Every creation succeeds (the name is free); what was refused shows up here with its answer.
    expect(answers.filter((r) => r.status !== 201).map((r) => ({ status: r.status, body: r.body }))).toEqual([]);
    const defaults = await list("/agents", { tenant_id: tenant.id, is_default: true });
    expect(defaults).toHaveLength(1);
    expect(answers.map((r) => r.body?.id)).toContain(defaults[0].id);
    expect(await countRows("agents")).toBe(8);
  });
});

// ---------------------------------------------------------------------------------------------

describe("validation", () => {
  test("unknown fields are 400 naming the field, on create and on patch", async () => {
    const { tenant, sales, campaign, campaignNumber } = await acme();
    const call = await sipCall("+14155550100", "+12125550142");
    const cases: [string, () => Promise<ApiAnswer>][] = [
      ["colour", () => api.post("/tenants", { name: "New", colour: "red" })],
      ["prompt", () => api.post("/agents", { tenant_id: tenant.id, name: "new", prompt: "be nice" })],
      ["budget", () => api.post("/campaigns", { tenant_id: tenant.id, name: "New", budget: 10 })],
      ["carrier", () => api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550150", carrier: "x" })],
      ["colour", () => api.patch(`/tenants/${tenant.id}`, { colour: "red" })],
      ["nmae", () => api.patch(`/agents/${sales.id}`, { nmae: "typo" })],
      ["budget", () => api.patch(`/campaigns/${campaign.id}`, { budget: 10 })],
      ["carrier", () => api.patch(`/phone-numbers/${campaignNumber.id}`, { carrier: "x" })],
      ["score", () => api.patch(`/leads/${call.meta.lead_id}`, { score: 5 })],
    ];
    await expectRefused(cases);
  });

  test("wrong types and values are 400 naming the field", async () => {
    const { tenant, sales, campaign, campaignNumber } = await acme();
    const call = await sipCall("+14155550100", "+12125550142");
    const cases: [string, () => Promise<ApiAnswer>][] = [
      ["name", () => api.post("/tenants", { name: 42 })],
      ["name", () => api.post("/tenants", { name: "" })],
      ["name", () => api.post("/tenants", {})],
      ["is_active", () => api.post("/tenants", { name: "New", is_active: "yes" })],
      ["tenant_id", () => api.post("/agents", { tenant_id: "acme", name: "new" })],
      ["is_default", () => api.post("/agents", { tenant_id: tenant.id, name: "new", is_default: "true" })],
      ["metadata", () => api.post("/agents", { tenant_id: tenant.id, name: "new", metadata: [1, 2] })],
      ["description", () => api.post("/agents", { tenant_id: tenant.id, name: "new", description: 7 })],
      ["status", () => api.post("/campaigns", { tenant_id: tenant.id, name: "New", status: "running" })],
      ["agent_id", () => api.post("/campaigns", { tenant_id: tenant.id, name: "New", agent_id: "sales" })],
      ["number", () => api.post("/phone-numbers", { tenant_id: tenant.id, number: 4155550150 })],
      ["type", () => api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550150", type: "LANDLINE" })],
      ["campaign_id", () => api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550150", campaign_id: 1 })],
      ["is_active", () => api.patch(`/tenants/${tenant.id}`, { is_active: 1 })],
      ["name", () => api.patch(`/agents/${sales.id}`, { name: null })],
      ["status", () => api.patch(`/campaigns/${campaign.id}`, { status: "done" })],
      ["type", () => api.patch(`/phone-numbers/${campaignNumber.id}`, { type: "fax" })],
      ["email", () => api.patch(`/leads/${call.meta.lead_id}`, { email: 42 })],
      ["metadata", () => api.patch(`/leads/${call.meta.lead_id}`, { metadata: "x" })],
      ["status", () => api.patch(`/call-logs/${call.meta.call_log_id}`, { status: 2 })],
      ["since", () => api.get(`/call-logs${qs({ since: "yesterday" })}`)],
      ["until", () => api.get(`/call-logs${qs({ until: "2024-13-45" })}`)],
      ["tenant_id", () => api.get(`/campaigns${qs({ tenant_id: "acme" })}`)],
    ];
    await expectRefused(cases);
  });

  test("a malformed id in the path is 400 naming id; a well-formed unknown one 404", async () => {
    const cases: (() => Promise<ApiAnswer>)[] = [
      () => api.get("/tenants/not-a-uuid"),
      () => api.patch("/tenants/123", { name: "x" }),
      () => api.post("/tenants/zzz/deactivate"),
      () => api.get("/agents/123"),
      () => api.patch("/agents/123", { name: "x" }),
      () => api.delete("/agents/123"),
      () => api.get("/campaigns/xyz"),
      () => api.delete("/campaigns/xyz"),
      () => api.get("/phone-numbers/+14155550100"),
      () => api.delete("/phone-numbers/1"),
      () => api.get("/leads/1"),
      () => api.patch("/leads/1", { name: "x" }),
      () => api.delete("/leads/1"),
      () => api.get("/call-logs/abc"),
      () => api.patch("/call-logs/abc", { status: "completed" }),
      () => api.get(`/agents/${NO_SUCH_ID}x`),
    ];
    await expectRefused(cases.map((send) => ["id", send]));
    for (const path of ["/tenants", "/agents", "/campaigns", "/phone-numbers", "/leads", "/call-logs"]) {
      expectError(await api.get(`${path}/${NO_SUCH_ID}`), 404, "not_found");
    }
    for (const path of ["/agents", "/campaigns", "/phone-numbers", "/leads"]) {
      expectError(await api.delete(`${path}/${NO_SUCH_ID}`), 404, "not_found");
    }
  });

  test("a refused request leaves nothing half-written", async () => {
    const { tenant, receptionist, sales, campaign } = await acme();
    const snapshot = async () => ({
      tenants: await list("/tenants"),
      agents: await list("/agents"),
      campaigns: await list("/campaigns"),
      numbers: await list("/phone-numbers"),
    });
    const before = await snapshot();

    // A new default whose name is taken: the old default stays the default.
    expectError(
      await api.post("/agents", { tenant_id: tenant.id, name: "acme-sales", is_default: true }),
      409,
      "conflict",
      "name",
    );
    // Promoting an agent under a taken name: neither the default nor the name moves.
    expectError(
      await api.patch(`/agents/${sales.id}`, { is_default: true, name: "acme-receptionist" }),
      409,
      "conflict",
      "name",
    );
    // A new default with a bad field.
    expectError(
      await api.post("/agents", { tenant_id: tenant.id, name: "new-default", is_default: true, description: 7 }),
      400,
      "invalid_request",
      "description",
    );
    // A number on a campaign that does not exist; a number with a bad type.
    expectError(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550150", campaign_id: NO_SUCH_ID }),
      422,
      "unprocessable",
      "campaign_id",
    );
    expectError(
      await api.post("/phone-numbers", { tenant_id: tenant.id, number: "+14155550151", type: "LANDLINE" }),
      400,
      "invalid_request",
      "type",
    );
    // A campaign with another tenant's agent; a tenant with a bad flag.
    const other = await newTenant("Other");
    const theirs = await newAgent(other.id, "theirs");
    const afterSetup = await snapshot();
    expect(afterSetup.tenants).toHaveLength(before.tenants.length + 1);
    expectError(
      await api.post("/campaigns", { tenant_id: tenant.id, name: "Stolen", agent_id: theirs.id }),
      422,
      "unprocessable",
      "agent_id",
    );
    expectError(await api.post("/tenants", { name: "Half", is_active: "no" }), 400, "invalid_request", "is_active");
    // Deleting an agent in use without unlink.
    expectError(await api.delete(`/agents/${sales.id}`), 409, "conflict");

    expect(await snapshot()).toEqual(afterSetup);
    expect(ok(await api.get(`/agents/${receptionist.id}`))).toEqual(receptionist);
    expect(ok(await api.get(`/agents/${sales.id}`))).toEqual(sales);
    expect(ok(await api.get(`/campaigns/${campaign.id}`))).toEqual(campaign);
    expect((await sipCall("+14155550101", "+12125550142")).agentName).toBe("acme-receptionist");

    // The refused values were not reserved either.
    await newNumber(tenant.id, "+14155550150");
    await newNumber(tenant.id, "+14155550151");
    await newCampaign(tenant.id, "Stolen");
    await newTenant("Half");
  });

  test("a request without a valid key is 401 in the error shape", async () => {
    expectError(await adminClient(ctx, null).get("/tenants"), 401, "unauthorized");
    expectError(await adminClient(ctx, `sb_${"A".repeat(43)}`).post("/tenants", { name: "Sneaky" }), 401, "unauthorized");
    expect(await list("/tenants")).toEqual([]);
  });
});
