// The admin side of outbound webhooks (issue 18): endpoints and their secrets (answered once,
// rotated with 24 hours of overlap), the checks on what is sent, tenant isolation, and the
// deliveries the outbox triggers record. Delivery is off here (testEnv), so every delivery stays
// where the triggers and the API put it: nothing is sent. Tenants A and B each have a key; every
// test starts from them, the rest is its own.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, type ApiAnswer, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";

const NO_SUCH_ID = "00000000-0000-4000-8000-000000000000";
const DAY_MS = 24 * 60 * 60 * 1000;
const ALL_EVENTS = ["call.started", "call.answered", "call.ended", "call.rejected", "call.transferred", "lead.created", "lead.updated"];

interface Tenant {
  id: string;
  key: string;
  client: AdminClient;
}

let ctx: TestContext;
/** The same database behind an app started with NODE_ENV=production. */
let production: TestContext;
let admin: AdminClient;
let A: Tenant;
let B: Tenant;

/** The body of a 201, or a failure that shows the answer. */
async function created(answer: Promise<ApiAnswer>): Promise<any> {
  const settled = await answer;
  expect({ status: settled.status, body: settled.body }).toMatchObject({ status: 201 });
  return settled.body;
}

/** The body of a 200, or a failure that shows the answer. */
async function ok(answer: Promise<ApiAnswer>): Promise<any> {
  const settled = await answer;
  expect({ status: settled.status, body: settled.body }).toMatchObject({ status: 200 });
  return settled.body;
}

/** An error answer naming `field`, its message starting with it, as every 4xx that concerns a field does. */
function expectFieldError(answer: ApiAnswer, status: number, field: string, says?: string | RegExp) {
  expect({ status: answer.status, field: answer.body?.error?.details?.field }).toEqual({ status, field });
  expect(answer.body.error.message).toStartWith(`${field}: `);
  if (says !== undefined) expect(answer.body.error.message).toMatch(says);
}

/** The 404 a missing row answers: another tenant's row must answer exactly this. */
function expectNotFound(answer: ApiAnswer, what: string, id: string) {
  expect({ status: answer.status, body: answer.body }).toEqual({
    status: 404,
    body: { error: { code: "not_found", message: `${what} ${id} not found` } },
  });
}

async function buildTenant(name: string): Promise<Tenant> {
  const tenant = await created(admin.post("/tenants", { name }));
  const { key } = await created(admin.post("/api-keys", { tenant_id: tenant.id }));
  return { id: tenant.id, key, client: adminClient(ctx, key) };
}

const createEndpoint = (tenant: Tenant, body: Record<string, unknown> = {}) =>
  created(tenant.client.post("/webhook-endpoints", { url: "https://hooks.example.com/switchboard", ...body }));

let callers = 0;
/** A lead as a call makes one (the leads_outbox trigger records lead.created). */
async function insertLead(tenantId: string, name = "Caller"): Promise<string> {
  const phone = `+1415555${String(1000 + callers++).slice(-4)}`;
  const [row] = await ctx.database.rows<{ id: string }>(
    sql`insert into leads (tenant_id, phone_number, name) values (${tenantId}, ${phone}, ${name}) returning id`,
  );
  return row!.id;
}

let calls = 0;
/** A call routed to an agent, as the routing decision records it (call.started). */
async function insertCall(tenantId: string): Promise<string> {
  const [row] = await ctx.database.rows<{ id: string }>(sql`
    insert into call_logs (provider_call_id, tenant_id, agent_name, agent_source)
    values (${`wh-admin-call-${calls++}`}, ${tenantId}, 'front-desk', 'campaign') returning id`);
  return row!.id;
}

/** Its agent joined (call.answered). */
async function answerCall(callId: string) {
  await ctx.database.rows(sql`update call_logs set answered_at = now(), status = 'in_progress' where id = ${callId}`);
}

/** Every delivery of an endpoint, newest first, as `client` sees them (all pages). */
async function deliveriesOf(client: AdminClient, endpointId: string, query = ""): Promise<any[]> {
  const page = await ok(client.get(`/webhook-endpoints/${endpointId}/deliveries?limit=100${query ? `&${query}` : ""}`));
  expect(page.next_cursor).toBeNull();
  return page.data;
}

const eventTypes = (deliveries: any[]) => deliveries.map((d) => d.event_type);

/** What the worker does when a receiver keeps failing, then gives up (delivery is off in these tests). */
async function markFailed(deliveryId: string) {
  await ctx.database.rows(sql`
    update webhook_deliveries
    set status = 'failed', attempts = 7, last_status_code = 503, last_error = 'HTTP 503', last_latency_ms = 40,
        next_attempt_at = now() + interval '1 hour'
    where id = ${deliveryId}`);
  await ctx.database.rows(sql`
    insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms, error)
    values (${deliveryId}, 1, 503, 40, 'HTTP 503')`);
}

function expectAboutNow(iso: string | null, before: number, after: number) {
  expect(iso).not.toBeNull();
  const at = Date.parse(iso!);
  // The database's clock and ours are the same machine's; a second either side for rounding.
  expect(at).toBeGreaterThanOrEqual(before - 1_000);
  expect(at).toBeLessThanOrEqual(after + 1_000);
}

beforeAll(async () => {
  ctx = await openTestContext();
  // Opened before any test's rows exist: opening a context wipes the database it is given.
  production = await openTestContext({ NODE_ENV: "production" }, { database: ctx.database });
}, 30_000);
afterAll(async () => {
  // The production app's own parts only: the database is ctx's, closed (or handed on) by ctx.
  if (production) {
    await production.app.decorator.webhookDelivery.stop();
    production.directory.close();
  }
  await ctx?.close();
});
beforeEach(async () => {
  await ctx.reset();
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "webhooks-admin" });
  admin = adminClient(ctx, key);
  A = await buildTenant("alpha");
  B = await buildTenant("bravo");
});

describe("webhook endpoints", () => {
  test("create answers the endpoint with its secret: whsec_ and base64 of 32 random bytes", async () => {
    const endpoint = await createEndpoint(A, { events: ["call.ended", "lead.created"], description: "CRM" });
    expect(endpoint).toEqual({
      id: expect.any(String),
      tenant_id: A.id,
      url: "https://hooks.example.com/switchboard",
      events: ["call.ended", "lead.created"],
      description: "CRM",
      enabled: true,
      disabled_reason: null,
      failing_since: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+={0,2}$/),
    });
    const key = Buffer.from(endpoint.secret.slice("whsec_".length), "base64");
    expect(key.length).toBeGreaterThanOrEqual(24);
    // Random: another endpoint's secret is another.
    const other = await createEndpoint(A);
    expect(other.secret).not.toBe(endpoint.secret);
    // Left out: every event, enabled, no description.
    expect(other).toMatchObject({ events: [], enabled: true, description: null });
  });

  test("the secret is never answered again: not by get, list or patch", async () => {
    const endpoint = await createEndpoint(A);
    const secretless = (body: unknown) => {
      expect(body).not.toHaveProperty("secret");
      expect(JSON.stringify(body)).not.toContain(endpoint.secret.slice("whsec_".length));
    };
    const one = await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`));
    const { secret: _, ...view } = endpoint;
    expect(one).toEqual(view);
    secretless(one);
    const list = await ok(A.client.get("/webhook-endpoints"));
    expect(list.data).toHaveLength(1);
    for (const row of list.data) secretless(row);
    secretless(await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { description: "changed" })));
    secretless(await ok(admin.get(`/webhook-endpoints?tenant_id=${A.id}`)));
    secretless(await ok(admin.get(`/webhook-endpoints/${endpoint.id}`)));
  });

  test("PATCH changes the fields sent and keeps the others", async () => {
    const endpoint = await createEndpoint(A, { events: ["lead.created"], description: "CRM" });
    const changed = await ok(
      A.client.patch(`/webhook-endpoints/${endpoint.id}`, { url: "http://10.0.0.5:8080/in", events: ["call.ended", "call.rejected"] }),
    );
    expect(changed).toMatchObject({
      id: endpoint.id,
      url: "http://10.0.0.5:8080/in",
      events: ["call.ended", "call.rejected"],
      description: "CRM",
      enabled: true,
    });
    expect(Date.parse(changed.updated_at)).toBeGreaterThanOrEqual(Date.parse(endpoint.updated_at));
    const cleared = await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { description: null, enabled: false, events: [] }));
    expect(cleared).toMatchObject({ url: "http://10.0.0.5:8080/in", events: [], description: null, enabled: false });
    // What the answer said is what is kept.
    const { updated_at: _, ...kept } = cleared;
    expect(await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`))).toMatchObject(kept);
    expect((await ok(A.client.get("/webhook-endpoints?enabled=false"))).data.map((e: any) => e.id)).toEqual([endpoint.id]);
    expect((await ok(A.client.get("/webhook-endpoints?enabled=true"))).data).toEqual([]);
  });

  test("enabling an endpoint Switchboard disabled forgets why and since when it was failing", async () => {
    const endpoint = await createEndpoint(A);
    // As the worker leaves an endpoint whose receiver answered 410 Gone.
    await ctx.database.rows(sql`
      update webhook_endpoints set enabled = false, disabled_reason = 'the receiver answered 410 Gone', failing_since = now()
      where id = ${endpoint.id}`);
    const disabled = await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`));
    expect(disabled).toMatchObject({ enabled: false, disabled_reason: "the receiver answered 410 Gone", failing_since: expect.any(String) });
    // A change of something else keeps the reason.
    const described = await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { description: "x" }));
    expect(described.disabled_reason).toBe("the receiver answered 410 Gone");
    const enabled = await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { enabled: true }));
    expect(enabled).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
  });

  test("DELETE answers 204; then the endpoint, its deliveries and their retries are not found", async () => {
    const endpoint = await createEndpoint(A);
    await insertLead(A.id);
    const [delivery] = await deliveriesOf(A.client, endpoint.id);
    expect(delivery).toBeDefined();
    const answer = await A.client.delete(`/webhook-endpoints/${endpoint.id}`);
    expect({ status: answer.status, body: answer.body }).toEqual({ status: 204, body: undefined });
    expectNotFound(await A.client.get(`/webhook-endpoints/${endpoint.id}`), "webhook endpoint", endpoint.id);
    expectNotFound(await A.client.delete(`/webhook-endpoints/${endpoint.id}`), "webhook endpoint", endpoint.id);
    expectNotFound(await A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries`), "webhook endpoint", endpoint.id);
    expectNotFound(await A.client.post(`/webhook-deliveries/${delivery.id}/retry`), "webhook delivery", delivery.id);
    expect((await ok(A.client.get("/webhook-endpoints"))).data).toEqual([]);
  });

  test("a missing endpoint is a 404 on every route", async () => {
    expectNotFound(await A.client.get(`/webhook-endpoints/${NO_SUCH_ID}`), "webhook endpoint", NO_SUCH_ID);
    expectNotFound(await A.client.patch(`/webhook-endpoints/${NO_SUCH_ID}`, { enabled: false }), "webhook endpoint", NO_SUCH_ID);
    expectNotFound(await A.client.delete(`/webhook-endpoints/${NO_SUCH_ID}`), "webhook endpoint", NO_SUCH_ID);
    expectNotFound(await A.client.post(`/webhook-endpoints/${NO_SUCH_ID}/rotate-secret`), "webhook endpoint", NO_SUCH_ID);
    expectNotFound(await A.client.get(`/webhook-endpoints/${NO_SUCH_ID}/deliveries`), "webhook endpoint", NO_SUCH_ID);
    expectNotFound(await A.client.post(`/webhook-deliveries/${NO_SUCH_ID}/retry`), "webhook delivery", NO_SUCH_ID);
  });
});

describe("what an endpoint may be", () => {
  test("a url that is not absolute, not http(s), or too long is a 400 naming url, on create and on patch", async () => {
    const endpoint = await createEndpoint(A);
    const refused: [unknown, RegExp | undefined][] = [
      ["hooks.example.com/in", /absolute/],
      ["/in", /absolute/],
      ["ftp://hooks.example.com/in", /https/],
      ["javascript:alert(1)", /https/],
      [`https://hooks.example.com/${"a".repeat(2048)}`, /2048/],
      ["", undefined],
      [42, undefined],
    ];
    for (const [url, says] of refused) {
      expectFieldError(await A.client.post("/webhook-endpoints", { url }), 400, "url", says);
      expectFieldError(await A.client.patch(`/webhook-endpoints/${endpoint.id}`, { url }), 400, "url", says);
    }
    expectFieldError(await A.client.post("/webhook-endpoints", {}), 400, "url");
    // Nothing was made, nothing changed.
    expect((await ok(A.client.get("/webhook-endpoints"))).data.map((e: any) => e.url)).toEqual(["https://hooks.example.com/switchboard"]);
    // Up to 2048 characters is a url.
    const longest = `https://hooks.example.com/${"a".repeat(2048 - "https://hooks.example.com/".length)}`;
    expect((await createEndpoint(A, { url: longest })).url).toBe(longest);
  });

  test("an unknown or repeated event type is a 400 naming events", async () => {
    const endpoint = await createEndpoint(A, { events: ["lead.created"] });
    const unknown = await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", events: ["call.ended", "call.exploded"] });
    // The field is the position of the wrong one.
    expectFieldError(unknown, 400, "events.1", /lead\.updated/);
    expectFieldError(await A.client.patch(`/webhook-endpoints/${endpoint.id}`, { events: ["lead.deleted"] }), 400, "events.0");
    expectFieldError(await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", events: ["call.ended", "call.ended"] }), 400, "events", /unique/);
    expectFieldError(await A.client.patch(`/webhook-endpoints/${endpoint.id}`, { events: ["lead.created", "lead.created"] }), 400, "events");
    expectFieldError(await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", events: "call.ended" }), 400, "events");
    expect((await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`))).events).toEqual(["lead.created"]);
    // Every documented type is one.
    expect((await createEndpoint(A, { events: ALL_EVENTS })).events).toEqual(ALL_EVENTS);
  });

  test("an unknown field is a 400 naming it; the secret cannot be chosen", async () => {
    const endpoint = await createEndpoint(A);
    expectFieldError(await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", colour: "red" }), 400, "colour");
    expectFieldError(await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", secret: "whsec_mine" }), 400, "secret");
    expectFieldError(await A.client.patch(`/webhook-endpoints/${endpoint.id}`, { secret: "whsec_mine" }), 400, "secret");
    expectFieldError(await A.client.patch(`/webhook-endpoints/${endpoint.id}`, { tenant_id: B.id }), 400, "tenant_id");
    expectFieldError(await A.client.post("/webhook-endpoints", { url: "https://x.example.com/", description: "d".repeat(501) }), 400, "description");
    expectFieldError(await A.client.get("/webhook-endpoints?colour=red"), 400, "colour");
    expect((await ok(A.client.get("/webhook-endpoints"))).data.map((e: any) => e.id)).toEqual([endpoint.id]);
  });

  test("in production only https:// is accepted; elsewhere http:// is too", async () => {
    const inProduction = adminClient(production, A.key);
    const plain = await inProduction.post("/webhook-endpoints", { url: "http://hooks.example.com/in" });
    expectFieldError(plain, 400, "url", /https/);
    const secure = await created(inProduction.post("/webhook-endpoints", { url: "https://hooks.example.com/in" }));
    expect(secure.url).toBe("https://hooks.example.com/in");
    expectFieldError(await inProduction.patch(`/webhook-endpoints/${secure.id}`, { url: "http://hooks.example.com/in" }), 400, "url", /https/);
    expect((await ok(A.client.get(`/webhook-endpoints/${secure.id}`))).url).toBe("https://hooks.example.com/in");
    // The same request outside production.
    expect((await createEndpoint(A, { url: "http://hooks.example.com/in" })).url).toBe("http://hooks.example.com/in");
  });
});

describe("secret rotation", () => {
  test("answers a new secret; the previous one keeps signing beside it for 24 hours", async () => {
    const endpoint = await createEndpoint(A);
    const before = Date.now();
    const rotated = await ok(A.client.post(`/webhook-endpoints/${endpoint.id}/rotate-secret`));
    const after = Date.now();
    const { secret: _old, updated_at: _u1, ...view } = endpoint;
    expect(rotated).toMatchObject(view);
    expect(rotated.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(rotated.secret).not.toBe(endpoint.secret);
    expect(Buffer.from(rotated.secret.slice("whsec_".length), "base64").length).toBeGreaterThanOrEqual(24);
    const [row] = await ctx.database.rows<{ secret: string; previous_secret: string; expires: string }>(sql`
      select secret, previous_secret, to_char(previous_secret_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as expires
      from webhook_endpoints where id = ${endpoint.id}`);
    expect({ secret: row!.secret, previous_secret: row!.previous_secret }).toEqual({ secret: rotated.secret, previous_secret: endpoint.secret });
    const expires = Date.parse(row!.expires);
    expect(expires).toBeGreaterThanOrEqual(before + DAY_MS - 1_000);
    expect(expires).toBeLessThanOrEqual(after + DAY_MS + 1_000);
    // And the new one is not answered again either.
    expect(await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`))).not.toHaveProperty("secret");
  });
});

describe("tenant isolation", () => {
  test("another tenant's endpoint and deliveries are not found by any route, and stay as they were", async () => {
    const endpoint = await createEndpoint(A, { description: "A's CRM" });
    await insertLead(A.id);
    const [delivery] = await deliveriesOf(A.client, endpoint.id);
    expect(delivery).toMatchObject({ status: "pending" });
    const theirs = await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`));

    expect((await ok(B.client.get("/webhook-endpoints"))).data).toEqual([]);
    expect((await ok(B.client.get(`/webhook-endpoints?tenant_id=${A.id}`))).data).toEqual([]);
    expectNotFound(await B.client.get(`/webhook-endpoints/${endpoint.id}`), "webhook endpoint", endpoint.id);
    expectNotFound(await B.client.patch(`/webhook-endpoints/${endpoint.id}`, { url: "https://evil.example.com/", enabled: false }), "webhook endpoint", endpoint.id);
    expectNotFound(await B.client.post(`/webhook-endpoints/${endpoint.id}/rotate-secret`), "webhook endpoint", endpoint.id);
    expectNotFound(await B.client.get(`/webhook-endpoints/${endpoint.id}/deliveries`), "webhook endpoint", endpoint.id);
    expectNotFound(await B.client.post(`/webhook-deliveries/${delivery.id}/retry`), "webhook delivery", delivery.id);
    expectNotFound(await B.client.delete(`/webhook-endpoints/${endpoint.id}`), "webhook endpoint", endpoint.id);

    // Unchanged: its fields, its secret (and no second one), its delivery.
    expect(await ok(A.client.get(`/webhook-endpoints/${endpoint.id}`))).toEqual(theirs);
    const [row] = await ctx.database.rows<{ secret: string; previous_secret: string | null }>(
      sql`select secret, previous_secret from webhook_endpoints where id = ${endpoint.id}`,
    );
    expect(row).toEqual({ secret: endpoint.secret, previous_secret: null });
    expect(await deliveriesOf(A.client, endpoint.id)).toEqual([delivery]);
  });

  test("a retry with another tenant's key is a 404 even while the endpoint is disabled (no 409 to tell it exists)", async () => {
    const endpoint = await createEndpoint(A);
    await insertLead(A.id);
    const [delivery] = await deliveriesOf(A.client, endpoint.id);
    await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { enabled: false }));
    expectNotFound(await B.client.post(`/webhook-deliveries/${delivery.id}/retry`), "webhook delivery", delivery.id);
  });

  test("each tenant lists only its own endpoints; an admin key sees all and filters by tenant", async () => {
    const a = await createEndpoint(A);
    const b = await createEndpoint(B);
    const ids = async (client: AdminClient, query = "") => (await ok(client.get(`/webhook-endpoints${query}`))).data.map((e: any) => e.id);
    expect(await ids(A.client)).toEqual([a.id]);
    expect(await ids(B.client)).toEqual([b.id]);
    expect(await ids(B.client, `?tenant_id=${A.id}`)).toEqual([]);
    expect((await ids(admin)).sort()).toEqual([a.id, b.id].sort());
    expect(await ids(admin, `?tenant_id=${A.id}`)).toEqual([a.id]);
    expect(await ids(admin, `?tenant_id=${B.id}`)).toEqual([b.id]);
    expect((await ok(admin.get(`/webhook-endpoints/${a.id}`))).tenant_id).toBe(A.id);
  });

  test("a tenant key cannot create for another tenant (403); an admin key must name the tenant (400)", async () => {
    expectFieldError(await B.client.post("/webhook-endpoints", { tenant_id: A.id, url: "https://x.example.com/" }), 403, "tenant_id");
    expectFieldError(await B.client.post("/webhook-endpoints", { tenant_id: null, url: "https://x.example.com/" }), 400, "tenant_id");
    expect((await ok(admin.get(`/webhook-endpoints?tenant_id=${A.id}`))).data).toEqual([]);
    // Its own tenant, named, is fine.
    expect((await createEndpoint(B, { tenant_id: B.id })).tenant_id).toBe(B.id);
    expectFieldError(await admin.post("/webhook-endpoints", { url: "https://x.example.com/" }), 400, "tenant_id", /required/);
    const made = await created(admin.post("/webhook-endpoints", { tenant_id: A.id, url: "https://x.example.com/" }));
    expect(made.tenant_id).toBe(A.id);
    expect((await ok(A.client.get("/webhook-endpoints"))).data.map((e: any) => e.id)).toEqual([made.id]);
  });
});

describe("deliveries", () => {
  test("each event an endpoint wants is a pending delivery, newest first, with its webhook-id and no attempts", async () => {
    const endpoint = await createEndpoint(A);
    const leadId = await insertLead(A.id);
    await ok(A.client.patch(`/leads/${leadId}`, { name: "Ada Lovelace" }));
    const callId = await insertCall(A.id);
    await answerCall(callId);
    await ok(A.client.patch(`/call-logs/${callId}`, { status: "completed" }));
    // Tenant B's changes are not A's endpoint's business.
    await insertLead(B.id);
    await insertCall(B.id);

    const deliveries = await deliveriesOf(A.client, endpoint.id);
    expect(eventTypes(deliveries)).toEqual(["call.ended", "call.answered", "call.started", "lead.updated", "lead.created"]);
    for (const delivery of deliveries) {
      expect(delivery).toEqual({
        id: expect.any(String),
        webhook_id: `msg_${delivery.id}`,
        endpoint_id: endpoint.id,
        event_type: expect.any(String),
        subject: delivery.event_type.startsWith("lead.") ? leadId : callId,
        status: "pending",
        attempts: 0,
        last_status_code: null,
        last_latency_ms: null,
        last_error: null,
        next_attempt_at: expect.any(String),
        delivered_at: null,
        created_at: expect.any(String),
        attempt_log: [],
      });
    }
    expect(new Set(deliveries.map((d) => d.id)).size).toBe(5);
    // The admin key sees the same.
    expect(await deliveriesOf(admin, endpoint.id)).toEqual(deliveries);
  });

  test("status filters an endpoint's deliveries; attempts are listed with them", async () => {
    const endpoint = await createEndpoint(A);
    for (let i = 0; i < 3; i++) await insertLead(A.id);
    const [newest, middle, oldest] = await deliveriesOf(A.client, endpoint.id);
    await markFailed(middle.id);
    await ctx.database.rows(sql`
      update webhook_deliveries set status = 'delivered', attempts = 1, last_status_code = 204, last_latency_ms = 12, delivered_at = now()
      where id = ${oldest.id}`);
    await ctx.database.rows(sql`insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms) values (${oldest.id}, 1, 204, 12)`);

    const ids = async (status: string) => (await deliveriesOf(A.client, endpoint.id, `status=${status}`)).map((d) => d.id);
    expect(await ids("pending")).toEqual([newest.id]);
    expect(await ids("failed")).toEqual([middle.id]);
    expect(await ids("delivered")).toEqual([oldest.id]);
    expectFieldError(await A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?status=lost`), 400, "status");
    expectFieldError(await A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?colour=red`), 400, "colour");

    const [failed] = await deliveriesOf(A.client, endpoint.id, "status=failed");
    expect(failed).toMatchObject({ status: "failed", attempts: 7, last_status_code: 503, last_error: "HTTP 503", next_attempt_at: null });
    expect(failed.attempt_log).toEqual([{ attempt: 1, attempted_at: expect.any(String), status_code: 503, latency_ms: 40, error: "HTTP 503" }]);
    const [delivered] = await deliveriesOf(A.client, endpoint.id, "status=delivered");
    expect(delivered).toMatchObject({ status: "delivered", attempts: 1, last_status_code: 204, delivered_at: expect.any(String), next_attempt_at: null });
    expect(delivered.attempt_log).toEqual([{ attempt: 1, attempted_at: expect.any(String), status_code: 204, latency_ms: 12, error: null }]);
  });

  test("limit and next_cursor page through the deliveries, each once, newest first", async () => {
    const endpoint = await createEndpoint(A);
    for (let i = 0; i < 3; i++) await insertLead(A.id);
    // One change writing several events at once: they share a created_at.
    const callId = await insertCall(A.id);
    await ctx.database.rows(sql`update call_logs set answered_at = now(), status = 'completed', ended_at = now() where id = ${callId}`);
    const all = await deliveriesOf(A.client, endpoint.id);
    expect(all).toHaveLength(6);

    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const query: string = cursor ? `limit=1&cursor=${encodeURIComponent(cursor)}` : "limit=1";
      const answer = await ok(A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?${query}`));
      expect(answer.data.length).toBeLessThanOrEqual(1);
      seen.push(...answer.data.map((d: any) => d.id));
      cursor = answer.next_cursor;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    expect(seen).toEqual(all.map((d) => d.id));
    const firstTwo = await ok(A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?limit=2`));
    expect(firstTwo.data.map((d: any) => d.id)).toEqual(seen.slice(0, 2));
    expect(firstTwo.next_cursor).toEqual(expect.any(String));
    expectFieldError(await A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?limit=0`), 400, "limit");
    expectFieldError(await A.client.get(`/webhook-endpoints/${endpoint.id}/deliveries?cursor=nonsense`), 400, "cursor");
  });

  test("a retry makes a delivery due now, pending again, with the same webhook-id and its attempts kept", async () => {
    const endpoint = await createEndpoint(A);
    await insertLead(A.id);
    await insertLead(A.id);
    const [later, gaveUp] = await deliveriesOf(A.client, endpoint.id);
    await markFailed(gaveUp.id);
    await ctx.database.rows(sql`update webhook_deliveries set next_attempt_at = now() + interval '2 hours' where id = ${later.id}`);

    let before = Date.now();
    const retried = await ok(A.client.post(`/webhook-deliveries/${gaveUp.id}/retry`));
    let after = Date.now();
    expect(retried).toMatchObject({ id: gaveUp.id, webhook_id: gaveUp.webhook_id, event_type: "lead.created", status: "pending", attempts: 7 });
    expectAboutNow(retried.next_attempt_at, before, after);
    expect(retried.attempt_log).toHaveLength(1);
    // A pending one waiting for its next attempt is due now too.
    before = Date.now();
    const hurried = await ok(A.client.post(`/webhook-deliveries/${later.id}/retry`));
    after = Date.now();
    expect(hurried).toMatchObject({ id: later.id, webhook_id: later.webhook_id, status: "pending", attempts: 0 });
    expectAboutNow(hurried.next_attempt_at, before, after);
    // As the list shows them from now on.
    const listed = await deliveriesOf(A.client, endpoint.id);
    expect(listed.map((d) => [d.id, d.status, d.next_attempt_at])).toEqual([
      [later.id, "pending", hurried.next_attempt_at],
      [gaveUp.id, "pending", retried.next_attempt_at],
    ]);
    // An admin key may retry any tenant's delivery.
    expect((await ok(admin.post(`/webhook-deliveries/${gaveUp.id}/retry`))).status).toBe("pending");
  });

  test("a retry is refused (409) while the endpoint is disabled, and allowed once it is enabled", async () => {
    const endpoint = await createEndpoint(A);
    await insertLead(A.id);
    const [delivery] = await deliveriesOf(A.client, endpoint.id);
    await markFailed(delivery.id);
    await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { enabled: false }));
    const refused = await A.client.post(`/webhook-deliveries/${delivery.id}/retry`);
    expect({ status: refused.status, code: refused.body?.error?.code }).toEqual({ status: 409, code: "conflict" });
    expect(refused.body.error.message).toMatch(/disabled/);
    expect((await deliveriesOf(A.client, endpoint.id))[0]).toMatchObject({ id: delivery.id, status: "failed" });
    await ok(A.client.patch(`/webhook-endpoints/${endpoint.id}`, { enabled: true }));
    expect((await ok(A.client.post(`/webhook-deliveries/${delivery.id}/retry`))).status).toBe("pending");
  });
});

describe("which endpoints get deliveries", () => {
  test("a disabled endpoint gets none for new events; enabled again, it gets the next ones", async () => {
    const on = await createEndpoint(A);
    const off = await createEndpoint(A);
    const bornOff = await createEndpoint(A, { enabled: false });
    await ok(A.client.patch(`/webhook-endpoints/${off.id}`, { enabled: false }));
    const first = await insertLead(A.id);
    const callId = await insertCall(A.id);
    expect(eventTypes(await deliveriesOf(A.client, on.id))).toEqual(["call.started", "lead.created"]);
    expect(await deliveriesOf(A.client, off.id)).toEqual([]);
    expect(await deliveriesOf(A.client, bornOff.id)).toEqual([]);

    await ok(A.client.patch(`/webhook-endpoints/${off.id}`, { enabled: true }));
    const second = await insertLead(A.id);
    await answerCall(callId);
    const resumed = await deliveriesOf(A.client, off.id);
    // Only what happened after: nothing is made up for the time it was off.
    expect(resumed.map((d) => [d.event_type, d.subject])).toEqual([
      ["call.answered", callId],
      ["lead.created", second],
    ]);
    expect(resumed.some((d) => d.subject === first)).toBe(false);
  });

  test("an endpoint gets only the event types it subscribed to", async () => {
    const leadsOnly = await createEndpoint(A, { events: ["lead.created"] });
    const callsEnded = await createEndpoint(A, { events: ["call.ended"] });
    const everything = await createEndpoint(A);
    const leadId = await insertLead(A.id);
    await ok(A.client.patch(`/leads/${leadId}`, { status: "qualified" }));
    const callId = await insertCall(A.id);
    await answerCall(callId);
    await ok(A.client.patch(`/call-logs/${callId}`, { status: "completed" }));

    expect(eventTypes(await deliveriesOf(A.client, leadsOnly.id))).toEqual(["lead.created"]);
    expect(eventTypes(await deliveriesOf(A.client, callsEnded.id))).toEqual(["call.ended"]);
    expect(eventTypes(await deliveriesOf(A.client, everything.id))).toEqual(["call.ended", "call.answered", "call.started", "lead.updated", "lead.created"]);

    // A change of subscription holds for the next events.
    await ok(A.client.patch(`/webhook-endpoints/${leadsOnly.id}`, { events: ["call.started"] }));
    await insertLead(A.id);
    await insertCall(A.id);
    expect(eventTypes(await deliveriesOf(A.client, leadsOnly.id))).toEqual(["call.started", "lead.created"]);
  });
});

describe("refusals that name their field", () => {
  test("a url WHATWG reads as http(s) but not written as ^https?:// is stored normalised or refused naming url", async () => {
    for (const url of ["HTTPS://hooks.example.com/in", "https:hooks.example.com/in", " https://hooks.example.com/in"]) {
      const answer = await A.client.post("/webhook-endpoints", { url });
      if (answer.status === 201) expect(answer.body.url).toMatch(/^https:\/\/hooks\.example\.com\/in$/);
      else expectFieldError(answer, 400, "url");
    }
  });

  test("an admin key naming a tenant that does not exist is a 422 naming tenant_id, as for agents", async () => {
    expectFieldError(await admin.post("/webhook-endpoints", { tenant_id: NO_SUCH_ID, url: "https://x.example.com/" }), 422, "tenant_id");
  });
});
