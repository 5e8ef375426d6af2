// Tenant isolation in the admin API: what one tenant's key can see and change of another tenant,
// of system-wide agents and of admin-only things, how keys are checked, and how keys are shown.
// Two tenants, A and B, are built once through the API (plus one routed call each); every test
// then uses A's key against B and checks, with the admin key, that B did not change.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, type ApiAnswer, adminClient, apiRequest } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { SIP_INBOUND_PATH } from "./support/livekit-app";

const KEY_SHAPE = /^sb_[A-Za-z0-9_-]{43}$/;
const UNKNOWN_NUMBER = "+14155559999";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const uuid = () => crypto.randomUUID();
/** A key of the right shape that was never issued. */
const unissuedKey = () => `sb_${randomBytes(32).toString("base64url")}`;

/** Status check that prints the body when it fails. */
function expectStatus(answer: ApiAnswer, status: number) {
  expect({ status: answer.status, body: answer.body }).toMatchObject({ status });
}

/**
 * Every failure answers `{ error: { code, message, details? } }` and nothing else; when the
 * details name a field, the message starts with it ("tenant_id: ..."), as the README shows.
 */
function expectError(answer: ApiAnswer, status: number, code: string) {
  expect({ status: answer.status, body: answer.body }).toMatchObject({ status, body: { error: { code } } });
  expect(Object.keys(answer.body)).toEqual(["error"]);
  expect(typeof answer.body.error.message).toBe("string");
  for (const key of Object.keys(answer.body.error)) expect(["code", "message", "details"]).toContain(key);
  if ("details" in answer.body.error) expect(typeof answer.body.error.details).toBe("object");
  const field = answer.body.error.details?.field;
  if (field !== undefined) expect(answer.body.error.message).toStartWith(`${field}: `);
}

/** A 422 whose details name the offending field. */
function expectUnprocessable(answer: ApiAnswer, field: string) {
  expectError(answer, 422, "unprocessable");
  expect(answer.body.error.details?.field).toBe(field);
}

/** Same status, code, message and details for a foreign id as for an id that does not exist. */
async function expectHiddenLikeMissing(
  send: (id: string) => Promise<ApiAnswer>,
  foreignId: string,
  missingId: string,
) {
  const foreign = await send(foreignId);
  const missing = await send(missingId);
  expectError(foreign, 404, "not_found");
  expectError(missing, 404, "not_found");
  // The answer names what was not found; told apart from that, the two must be the same.
  expect(missing.body.error.message).toContain(missingId);
  const neutral = (answer: ApiAnswer, id: string) =>
    JSON.stringify(answer.body).replaceAll(id, "<id>");
  expect(neutral(foreign, foreignId)).toBe(neutral(missing, missingId));
}

/** Raw request with whatever Authorization header (or none) the test wants. */
const rawCall = (method: string, path: string, authorization: string | undefined, body?: unknown) =>
  apiRequest(ctx, method, path, authorization, body);

/** Every row of a list, following next_cursor; a non-200 first page is returned as is. */
async function listAll(client: AdminClient, path: string): Promise<ApiAnswer<any[]>> {
  const rows: any[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const answer: ApiAnswer = await client.get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (answer.status !== 200) return answer;
    expect(Array.isArray(answer.body.data)).toBe(true);
    rows.push(...answer.body.data);
    cursor = answer.body.next_cursor;
    if (cursor === null) return { status: 200, body: rows };
  }
  throw new Error(`${path}: more than 50 pages`);
}

async function listIds(client: AdminClient, path: string): Promise<string[]> {
  const answer = await listAll(client, path);
  expectStatus(answer, 200);
  return answer.body.map((row) => row.id as string).sort();
}

/** Routes a call to `to` through the decision endpoint (no key) and returns its metadata. */
async function routeCall(to: string, from: string) {
  const providerCallId = `iso-${uuid()}`;
  const res = await ctx.post(SIP_INBOUND_PATH, { call_id: providerCallId, from_number: from, to_number: to });
  expect(res.status).toBe(200);
  const answer = (await res.json()) as { metadata: string };
  const meta = JSON.parse(answer.metadata) as { lead_id: string | null; call_log_id: string; tenant_id: string | null };
  return { providerCallId, meta };
}

async function created(answer: Promise<ApiAnswer>): Promise<any> {
  const settled = await answer;
  expectStatus(settled, 201);
  return settled.body;
}

// ---------------------------------------------------------------------------------------------
// The world: tenants A and B, each with a key, an agent, a campaign, a number, a lead and a call
// ---------------------------------------------------------------------------------------------

interface TenantWorld {
  id: string;
  name: string;
  key: string;
  keyId: string;
  client: AdminClient;
  agentId: string;
  campaignId: string;
  numberId: string;
  number: string;
  leadId: string;
  callLogId: string;
  providerCallId: string;
}

const RESOURCE_NAMES = ["agents", "campaigns", "phone-numbers", "leads", "call-logs", "api-keys"] as const;
type ResourceName = (typeof RESOURCE_NAMES)[number];

interface Snapshot {
  tenant: any;
  rows: Record<ResourceName, any>;
  ids: Record<ResourceName, string[]>;
}

let ctx: TestContext;
let adminKey: string;
let admin: AdminClient;
let A: TenantWorld;
let B: TenantWorld;
let systemAgentId: string;
let unknownCall: { providerCallId: string; callLogId: string };
let snapshotA: Snapshot;
let snapshotB: Snapshot;

async function buildTenant(name: string, number: string, caller: string): Promise<TenantWorld> {
  const tenant = await created(admin.post("/tenants", { name }));
  const key = await created(admin.post("/api-keys", { tenant_id: tenant.id, label: `${name} key` }));
  const agent = await created(admin.post("/agents", { tenant_id: tenant.id, name: `${name}-agent` }));
  const campaign = await created(
    admin.post("/campaigns", { tenant_id: tenant.id, name: `${name} campaign`, agent_id: agent.id }),
  );
  const phone = await created(
    admin.post("/phone-numbers", { tenant_id: tenant.id, number, campaign_id: campaign.id }),
  );
  const { providerCallId, meta } = await routeCall(number, caller);
  expect(meta.tenant_id).toBe(tenant.id);
  expect(meta.lead_id).not.toBeNull();
  return {
    id: tenant.id,
    name,
    key: key.key,
    keyId: key.id,
    client: adminClient(ctx, key.key),
    agentId: agent.id,
    campaignId: campaign.id,
    numberId: phone.id,
    number,
    leadId: meta.lead_id!,
    callLogId: meta.call_log_id,
    providerCallId,
  };
}

/** Each resource: where it lives, which of a tenant's rows to aim at, what may be done to it. */
interface Resource {
  path: string;
  row: (t: TenantWorld) => string;
  /** A valid partial update (absent: the resource has no PATCH). */
  patch?: Record<string, unknown>;
  deletable: boolean;
  /** A create body aimed at tenant `t` (absent: the resource has no create). */
  create?: (t: TenantWorld) => Record<string, unknown>;
  /** PATCH with tenant_id: "forbidden" where tenant_id is accepted (admin only), "refused" where it never is. */
  move?: "forbidden" | "refused";
  /** Lists also show system-wide rows (tenant_id null). */
  systemWide?: boolean;
  /** Fields that change by mere use and are left out of "unchanged" comparisons. */
  volatile?: string[];
}

const RESOURCES: Record<ResourceName, Resource> = {
  agents: {
    path: "/agents",
    row: (t) => t.agentId,
    patch: { description: "patched by A" },
    deletable: true,
    create: (t) => ({ tenant_id: t.id, name: "intruder-agent" }),
    move: "forbidden",
    systemWide: true,
  },
  campaigns: {
    path: "/campaigns",
    row: (t) => t.campaignId,
    patch: { status: "paused" },
    deletable: true,
    create: (t) => ({ tenant_id: t.id, name: "intruder campaign" }),
    // "tenant_id cannot be changed: 400" for campaigns; a 403 for the foreign tenant is as good.
    move: "refused",
  },
  "phone-numbers": {
    path: "/phone-numbers",
    row: (t) => t.numberId,
    patch: { is_active: false },
    deletable: true,
    create: (t) => ({ tenant_id: t.id, number: "+14155550999" }),
    move: "forbidden",
  },
  leads: {
    path: "/leads",
    row: (t) => t.leadId,
    patch: { name: "patched by A" },
    deletable: true,
  },
  "call-logs": {
    path: "/call-logs",
    row: (t) => t.callLogId,
    // B's call is ringing: a forward move that would succeed were the call A's.
    patch: { status: "in_progress" },
    deletable: false,
  },
  "api-keys": {
    path: "/api-keys",
    row: (t) => t.keyId,
    deletable: true,
    create: (t) => ({ tenant_id: t.id, label: "intruder key" }),
    volatile: ["last_used_at"],
  },
};

function comparable(resource: Resource, row: any) {
  const copy = { ...row };
  for (const field of resource.volatile ?? []) delete copy[field];
  return copy;
}

async function snapshot(t: TenantWorld): Promise<Snapshot> {
  const tenant = await admin.get(`/tenants/${t.id}`);
  expectStatus(tenant, 200);
  const rows = {} as Record<ResourceName, any>;
  const ids = {} as Record<ResourceName, string[]>;
  for (const name of RESOURCE_NAMES) {
    const resource = RESOURCES[name];
    const row = await admin.get(`${resource.path}/${resource.row(t)}`);
    expectStatus(row, 200);
    expect(row.body.tenant_id).toBe(t.id);
    rows[name] = row.body;
    const list = await listAll(admin, `${resource.path}?tenant_id=${t.id}`);
    expectStatus(list, 200);
    ids[name] = list.body
      .filter((r) => r.tenant_id === t.id)
      .map((r) => r.id as string)
      .sort();
  }
  return { tenant: tenant.body, rows, ids };
}

/** B's tenant, rows and lists, read back with the admin key, are as they were after setup. */
async function expectBUnchanged() {
  const tenant = await admin.get(`/tenants/${B.id}`);
  expectStatus(tenant, 200);
  expect(tenant.body).toEqual(snapshotB.tenant);
  for (const name of RESOURCE_NAMES) {
    const resource = RESOURCES[name];
    const row = await admin.get(`${resource.path}/${resource.row(B)}`);
    expectStatus(row, 200);
    expect(comparable(resource, row.body)).toEqual(comparable(resource, snapshotB.rows[name]));
    const list = await listAll(admin, `${resource.path}?tenant_id=${B.id}`);
    expectStatus(list, 200);
    const ids = list.body
      .filter((r) => r.tenant_id === B.id)
      .map((r) => r.id as string)
      .sort();
    expect({ resource: name, ids }).toEqual({ resource: name, ids: snapshotB.ids[name] });
  }
}

/** A's row of this resource, read back with the admin key, is as it was after setup. */
async function expectARowUnchanged(name: ResourceName) {
  const resource = RESOURCES[name];
  const row = await admin.get(`${resource.path}/${resource.row(A)}`);
  expectStatus(row, 200);
  expect(comparable(resource, row.body)).toEqual(comparable(resource, snapshotA.rows[name]));
}

beforeAll(async () => {
  ctx = await openTestContext();
  const issued = await createApiKey(ctx.database.db, { tenantId: null, label: "isolation admin" });
  adminKey = issued.key;
  admin = adminClient(ctx, adminKey);
  A = await buildTenant("Tenant A", "+14155551001", "+12125550101");
  B = await buildTenant("Tenant B", "+14155552001", "+12125550102");
  const system = await created(admin.post("/agents", { tenant_id: null, name: "iso-system-agent" }));
  systemAgentId = system.id;
  const unknown = await routeCall(UNKNOWN_NUMBER, "+12125550103");
  expect(unknown.meta.tenant_id).toBeNull();
  unknownCall = { providerCallId: unknown.providerCallId, callLogId: unknown.meta.call_log_id };
  snapshotA = await snapshot(A);
  snapshotB = await snapshot(B);
}, 60_000);

afterAll(async () => {
  await ctx?.close();
});

// ---------------------------------------------------------------------------------------------
// 1. The isolation matrix: A's key against B's rows, one test per resource and verb
// ---------------------------------------------------------------------------------------------

type Cell = (name: ResourceName, resource: Resource) => Promise<void>;

const CELLS: Record<string, Cell> = {
  "list → 200 with A's row and no row of B": async (name, resource) => {
    const list = await listAll(A.client, resource.path);
    expectStatus(list, 200);
    const ids = list.body.map((row) => row.id);
    expect(ids).toContain(resource.row(A));
    for (const id of snapshotB.ids[name]) expect(ids).not.toContain(id);
    for (const row of list.body) {
      if (resource.systemWide && row.tenant_id === null) continue;
      expect({ id: row.id, tenant_id: row.tenant_id }).toEqual({ id: row.id, tenant_id: A.id });
    }
  },

  "list ?tenant_id=B → no row of B (200 filtered, or 403)": async (name, resource) => {
    const list = await listAll(A.client, `${resource.path}?tenant_id=${B.id}`);
    if (list.status !== 200) {
      expectError(list, 403, "forbidden");
      return;
    }
    const ids = list.body.map((row) => row.id);
    for (const id of snapshotB.ids[name]) expect(ids).not.toContain(id);
    for (const row of list.body) {
      if (resource.systemWide && row.tenant_id === null) continue;
      expect({ id: row.id, tenant_id: row.tenant_id }).toEqual({ id: row.id, tenant_id: A.id });
    }
  },

  "GET B's row → 404 not_found, like a random id": async (_, resource) => {
    await expectHiddenLikeMissing((id) => A.client.get(`${resource.path}/${id}`), resource.row(B), uuid());
  },

  "GET B's call by provider call id → 404 not_found, like an unknown one": async () => {
    await expectHiddenLikeMissing(
      (id) => A.client.get(`/call-logs/by-call-id/${encodeURIComponent(id)}`),
      B.providerCallId,
      `iso-missing-${uuid()}`,
    );
  },

  "PATCH B's row → 404 not_found, like a random id": async (_, resource) => {
    await expectHiddenLikeMissing(
      (id) => A.client.patch(`${resource.path}/${id}`, resource.patch),
      resource.row(B),
      uuid(),
    );
  },

  "DELETE B's row → 404 not_found, like a random id": async (name, resource) => {
    await expectHiddenLikeMissing((id) => A.client.delete(`${resource.path}/${id}`), resource.row(B), uuid());
    if (name === "api-keys") {
      // B's key was not revoked: it still opens B's data.
      const stillWorks = await B.client.get("/agents");
      expectStatus(stillWorks, 200);
    }
  },

  "POST with tenant_id B → 403 forbidden, nothing created": async (_, resource) => {
    const answer = await A.client.post(resource.path, resource.create!(B));
    expectError(answer, 403, "forbidden");
  },

  "PATCH A's own row with tenant_id B → refused, row stays in A": async (name, resource) => {
    const answer = await A.client.patch(`${resource.path}/${resource.row(A)}`, { tenant_id: B.id });
    if (resource.move === "forbidden") {
      expectError(answer, 403, "forbidden");
    } else if (answer.status === 403) {
      expectError(answer, 403, "forbidden");
    } else {
      expectError(answer, 400, "invalid_request");
      expect(answer.body.error.details?.field).toBe("tenant_id");
    }
    await expectARowUnchanged(name);
  },
};

function cellsFor(name: ResourceName): string[] {
  const resource = RESOURCES[name];
  const cells = [
    "list → 200 with A's row and no row of B",
    "list ?tenant_id=B → no row of B (200 filtered, or 403)",
    "GET B's row → 404 not_found, like a random id",
  ];
  if (name === "call-logs") cells.push("GET B's call by provider call id → 404 not_found, like an unknown one");
  if (resource.patch) cells.push("PATCH B's row → 404 not_found, like a random id");
  if (resource.deletable) cells.push("DELETE B's row → 404 not_found, like a random id");
  if (resource.create) cells.push("POST with tenant_id B → 403 forbidden, nothing created");
  if (resource.move) cells.push("PATCH A's own row with tenant_id B → refused, row stays in A");
  return cells;
}

describe.each([...RESOURCE_NAMES])("A's key against B's %s", (name) => {
  test.each(cellsFor(name))("%s", async (cell) => {
    await CELLS[cell]!(name, RESOURCES[name]);
    await expectBUnchanged();
  });
});

describe("call logs of calls to unknown numbers (no tenant)", () => {
  test("are hidden from a tenant key and visible to the admin key", async () => {
    const list = await listAll(A.client, "/call-logs");
    expectStatus(list, 200);
    expect(list.body.map((row) => row.id)).not.toContain(unknownCall.callLogId);
    await expectHiddenLikeMissing((id) => A.client.get(`/call-logs/${id}`), unknownCall.callLogId, uuid());
    await expectHiddenLikeMissing(
      (id) => A.client.get(`/call-logs/by-call-id/${encodeURIComponent(id)}`),
      unknownCall.providerCallId,
      `iso-missing-${uuid()}`,
    );
    const seen = await admin.get(`/call-logs/${unknownCall.callLogId}`);
    expectStatus(seen, 200);
    expect(seen.body.tenant_id).toBeNull();
    const byCallId = await admin.get(`/call-logs/by-call-id/${encodeURIComponent(unknownCall.providerCallId)}`);
    expectStatus(byCallId, 200);
    expect(byCallId.body.id).toBe(unknownCall.callLogId);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Cross-tenant references
// ---------------------------------------------------------------------------------------------

describe("references to B's rows from A's key", () => {
  test("a campaign with B's agent → 422 naming agent_id, like a nonexistent agent; nothing written", async () => {
    const before = await listIds(admin, `/campaigns?tenant_id=${A.id}`);
    const foreign = await A.client.post("/campaigns", { name: "A on B's agent", agent_id: B.agentId });
    expectUnprocessable(foreign, "agent_id");
    const missingId = uuid();
    const missing = await A.client.post("/campaigns", { name: "A on a missing agent", agent_id: missingId });
    expectUnprocessable(missing, "agent_id");
    // "same answer for another tenant's agent and a nonexistent one"
    expect(JSON.stringify(foreign.body).replaceAll(B.agentId, "<id>")).toBe(
      JSON.stringify(missing.body).replaceAll(missingId, "<id>"),
    );
    expect(await listIds(admin, `/campaigns?tenant_id=${A.id}`)).toEqual(before);
    await expectBUnchanged();
  });

  test("a number on B's campaign → 422 naming campaign_id; nothing written", async () => {
    const number = "+14155551002";
    const before = await listIds(admin, `/phone-numbers?tenant_id=${A.id}`);
    const answer = await A.client.post("/phone-numbers", { number, campaign_id: B.campaignId });
    expectUnprocessable(answer, "campaign_id");
    expect(await listIds(admin, `/phone-numbers?tenant_id=${A.id}`)).toEqual(before);
    const anywhere = await listAll(admin, `/phone-numbers?number=${encodeURIComponent(number)}`);
    expectStatus(anywhere, 200);
    expect(anywhere.body).toEqual([]);
    await expectBUnchanged();
  });

  test("moving A's campaign to B's agent → 422 naming agent_id; campaign unchanged", async () => {
    const answer = await A.client.patch(`/campaigns/${A.campaignId}`, { agent_id: B.agentId });
    expectUnprocessable(answer, "agent_id");
    await expectARowUnchanged("campaigns");
    await expectBUnchanged();
  });

  test("moving A's number to B's campaign → 422 naming campaign_id; number unchanged", async () => {
    const answer = await A.client.patch(`/phone-numbers/${A.numberId}`, { campaign_id: B.campaignId });
    expectUnprocessable(answer, "campaign_id");
    await expectARowUnchanged("phone-numbers");
    await expectBUnchanged();
  });
});

// ---------------------------------------------------------------------------------------------
// 3. System-wide agents
// ---------------------------------------------------------------------------------------------

describe("system-wide agents with A's key", () => {
  test("are listed and readable", async () => {
    const list = await listAll(A.client, "/agents");
    expectStatus(list, 200);
    expect(list.body.map((row) => row.id)).toContain(systemAgentId);
    const one = await A.client.get(`/agents/${systemAgentId}`);
    expectStatus(one, 200);
    expect(one.body).toMatchObject({ id: systemAgentId, tenant_id: null, name: "iso-system-agent" });
  });

  test("can be used by A's campaigns", async () => {
    const campaign = await created(A.client.post("/campaigns", { name: "A on the system agent", agent_id: systemAgentId }));
    expect(campaign).toMatchObject({ tenant_id: A.id, agent_id: systemAgentId });
    const back = await admin.get(`/campaigns/${campaign.id}`);
    expectStatus(back, 200);
    expect(back.body).toMatchObject({ tenant_id: A.id, agent_id: systemAgentId });
  });

  test.each([
    ["PATCH", () => A.client.patch(`/agents/${systemAgentId}`, { description: "changed by A" })],
    ["PATCH moving it into A", () => A.client.patch(`/agents/${systemAgentId}`, { tenant_id: A.id })],
    ["DELETE", () => A.client.delete(`/agents/${systemAgentId}`)],
  ] as const)("%s → 403 forbidden, agent unchanged", async (_, send) => {
    const before = await admin.get(`/agents/${systemAgentId}`);
    expectStatus(before, 200);
    expectError(await send(), 403, "forbidden");
    const after = await admin.get(`/agents/${systemAgentId}`);
    expectStatus(after, 200);
    expect(after.body).toEqual(before.body);
  });

  test("creating one (tenant_id null) → 403 forbidden, nothing created", async () => {
    const before = await listIds(admin, "/agents");
    const answer = await A.client.post("/agents", { tenant_id: null, name: "A's system agent" });
    expectError(answer, 403, "forbidden");
    expect(await listIds(admin, "/agents")).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. /tenants is for admin keys only
// ---------------------------------------------------------------------------------------------

describe("/tenants with A's key", () => {
  test.each([
    ["GET /tenants", () => A.client.get("/tenants")],
    ["GET /tenants?is_active=true", () => A.client.get("/tenants?is_active=true")],
    ["GET /tenants/:own", () => A.client.get(`/tenants/${A.id}`)],
    ["GET /tenants/:B", () => A.client.get(`/tenants/${B.id}`)],
    ["POST /tenants", () => A.client.post("/tenants", { name: "Made by A" })],
    ["PATCH /tenants/:own", () => A.client.patch(`/tenants/${A.id}`, { name: "A renamed" })],
    ["PATCH /tenants/:B", () => A.client.patch(`/tenants/${B.id}`, { is_active: false })],
    ["POST /tenants/:own/deactivate", () => A.client.post(`/tenants/${A.id}/deactivate`)],
    ["POST /tenants/:B/deactivate", () => A.client.post(`/tenants/${B.id}/deactivate`)],
  ] as const)("%s → 403 forbidden, tenants unchanged", async (_, send) => {
    expectError(await send(), 403, "forbidden");
    for (const [t, snap] of [
      [A, snapshotA],
      [B, snapshotB],
    ] as const) {
      const back = await admin.get(`/tenants/${t.id}`);
      expectStatus(back, 200);
      expect(back.body).toEqual(snap.tenant);
    }
    const names = (await listAll(admin, "/tenants")).body.map((row) => row.name);
    expect(names).not.toContain("Made by A");
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Authentication
// ---------------------------------------------------------------------------------------------

describe("authentication", () => {
  const credentials: [string, () => string | undefined][] = [
    ["no Authorization header", () => undefined],
    ["the admin key in a Basic header", () => `Basic ${btoa(`admin:${adminKey}`)}`],
    ["Bearer with an empty key", () => "Bearer "],
    ["the admin key without a scheme", () => adminKey],
    ["a well-formed key that was never issued", () => `Bearer ${unissuedKey()}`],
    ["a malformed key", () => "Bearer not-a-key"],
  ];

  test.each(credentials)("%s → 401 unauthorized on reads and writes, nothing written", async (_, header) => {
    const authorization = header();
    for (const path of ["/agents", "/tenants", `/campaigns/${A.campaignId}`, "/api-keys"]) {
      expectError(await rawCall("GET", path, authorization), 401, "unauthorized");
    }
    const before = await listIds(admin, `/campaigns?tenant_id=${A.id}`);
    const write = await rawCall("POST", "/campaigns", authorization, { tenant_id: A.id, name: "unauthenticated" });
    expectError(write, 401, "unauthorized");
    expectError(await rawCall("DELETE", `/leads/${A.leadId}`, authorization), 401, "unauthorized");
    expect(await listIds(admin, `/campaigns?tenant_id=${A.id}`)).toEqual(before);
    await expectARowUnchanged("leads");
  });

  test("a revoked tenant key → 401 unauthorized", async () => {
    const key = await created(admin.post("/api-keys", { tenant_id: A.id, label: "to revoke" }));
    const client = adminClient(ctx, key.key);
    expectStatus(await client.get("/agents"), 200);
    const revoked = await admin.delete(`/api-keys/${key.id}`);
    expect(revoked).toEqual({ status: 204, body: undefined });
    expectError(await client.get("/agents"), 401, "unauthorized");
    expectError(await client.post("/campaigns", { name: "by a revoked key" }), 401, "unauthorized");
    const view = await admin.get(`/api-keys/${key.id}`);
    expectStatus(view, 200);
    expect(typeof view.body.revoked_at).toBe("string");
    expect(Number.isNaN(Date.parse(view.body.revoked_at))).toBe(false);
  });

  test("a tenant key revoking its own tenant's key → that key answers 401", async () => {
    const key = await created(A.client.post("/api-keys", { label: "A revokes this" }));
    const client = adminClient(ctx, key.key);
    expectStatus(await client.get("/agents"), 200);
    expect(await A.client.delete(`/api-keys/${key.id}`)).toEqual({ status: 204, body: undefined });
    expectError(await client.get("/agents"), 401, "unauthorized");
  });

  test("a revoked admin key → 401 unauthorized", async () => {
    const issued = await createApiKey(ctx.database.db, { tenantId: null, label: "admin to revoke" });
    expect(issued.key).toMatch(KEY_SHAPE);
    const client = adminClient(ctx, issued.key);
    expectStatus(await client.get("/tenants"), 200);
    expect(await admin.delete(`/api-keys/${issued.apiKey.id}`)).toEqual({ status: 204, body: undefined });
    expectError(await client.get("/tenants"), 401, "unauthorized");
  });

  test("keys of a deactivated tenant → 403 forbidden", async () => {
    const tenant = await created(admin.post("/tenants", { name: "Tenant C" }));
    const issued = await createApiKey(ctx.database.db, { tenantId: tenant.id, label: "C key" });
    const client = adminClient(ctx, issued.key);
    expectStatus(await client.get("/agents"), 200);
    const deactivated = await admin.post(`/tenants/${tenant.id}/deactivate`);
    expectStatus(deactivated, 200);
    expect(deactivated.body).toMatchObject({ id: tenant.id, is_active: false });
    expectError(await client.get("/agents"), 403, "forbidden");
    expectError(await client.get("/campaigns"), 403, "forbidden");
    expectError(await client.post("/agents", { name: "by a closed tenant" }), 403, "forbidden");
    const agents = await listAll(admin, `/agents?tenant_id=${tenant.id}`);
    expectStatus(agents, 200);
    expect(agents.body.filter((row) => row.tenant_id === tenant.id)).toEqual([]);
  });

  test.each(["/healthz", "/readyz", "/api/v1/webhooks/health"])("%s answers 200 without a key", async (path) => {
    const res = await ctx.get(path);
    expect(res.status).toBe(200);
  });

  test("the sip-inbound webhook routes a call without a key", async () => {
    const res = await ctx.post(SIP_INBOUND_PATH, {
      call_id: `iso-public-${uuid()}`,
      from_number: "+12125550104",
      to_number: UNKNOWN_NUMBER,
    });
    expect(res.status).toBe(200);
    // An unknown number goes to the system default agent, whoever calls.
    expect(((await res.json()) as { agent_name: string }).agent_name).toBe(ctx.config.systemDefaultAgent);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. API keys: shown once, never stored in the clear, scoped to their tenant
// ---------------------------------------------------------------------------------------------

describe("API keys", () => {
  test("the plaintext key is returned at creation only; views and lists carry neither key nor hash", async () => {
    const answer = await admin.post("/api-keys", { tenant_id: A.id, label: "shown once" });
    expectStatus(answer, 201);
    const key: string = answer.body.key;
    expect(key).toMatch(KEY_SHAPE);
    expect(answer.body).toMatchObject({
      tenant_id: A.id,
      label: "shown once",
      prefix: key.slice(0, 11),
      last_used_at: null,
      revoked_at: null,
    });
    const secrets = [
      key,
      key.slice(3),
      createHash("sha256").update(key).digest("hex"),
      createHash("sha256").update(key).digest("base64"),
      createHash("sha256").update(key).digest("base64url"),
    ];
    const expectNoSecret = (label: string, value: unknown) => {
      const text = JSON.stringify(value);
      for (const secret of secrets) expect({ label, leaked: text.includes(secret) }).toEqual({ label, leaked: false });
    };
    const expectView = (row: any) => {
      expect(row).not.toHaveProperty("key");
      for (const field of Object.keys(row)) expect(field.toLowerCase()).not.toContain("hash");
    };

    for (const [label, client] of [
      ["admin", admin],
      ["A", A.client],
    ] as const) {
      const one = await client.get(`/api-keys/${answer.body.id}`);
      expectStatus(one, 200);
      expect(one.body).toMatchObject({ id: answer.body.id, prefix: key.slice(0, 11), tenant_id: A.id });
      expectView(one.body);
      expectNoSecret(`${label} GET /api-keys/:id`, one.body);
    }
    for (const [label, client, path] of [
      ["admin list", admin, "/api-keys"],
      ["admin list ?tenant_id=A", admin, `/api-keys?tenant_id=${A.id}`],
      ["A's list", A.client, "/api-keys"],
    ] as const) {
      const first = await client.get(path);
      expectStatus(first, 200);
      expectNoSecret(label, first.body);
      const all = await listAll(client, path);
      expectStatus(all, 200);
      expect(all.body.map((row) => row.id)).toContain(answer.body.id);
      all.body.forEach(expectView);
      expectNoSecret(label, all.body);
    }
  });

  test("a tenant key cannot create an admin key: 403, nothing created", async () => {
    const adminKeysBefore = (await listAll(admin, "/api-keys")).body.filter((row) => row.tenant_id === null).length;
    expectError(await A.client.post("/api-keys", { admin: true }), 403, "forbidden");
    expectError(await A.client.post("/api-keys", { admin: true, label: "sneaky" }), 403, "forbidden");
    const adminKeysAfter = (await listAll(admin, "/api-keys")).body.filter((row) => row.tenant_id === null).length;
    expect(adminKeysAfter).toBe(adminKeysBefore);
  });

  test("a tenant key cannot create a key for B: 403, nothing created", async () => {
    expectError(await A.client.post("/api-keys", { tenant_id: B.id, label: "for B" }), 403, "forbidden");
    await expectBUnchanged();
  });

  test("a tenant key creates keys for its own tenant only, and they see only that tenant", async () => {
    const key = await created(A.client.post("/api-keys", { label: "A's second key" }));
    expect(key.key).toMatch(KEY_SHAPE);
    expect(key.tenant_id).toBe(A.id);
    const client = adminClient(ctx, key.key);
    expectError(await client.get(`/agents/${B.agentId}`), 404, "not_found");
    const own = await client.get(`/agents/${A.agentId}`);
    expectStatus(own, 200);
  });

  test("last_used_at is set once the key has been used", async () => {
    const key = await created(admin.post("/api-keys", { tenant_id: A.id, label: "usage" }));
    const before = await admin.get(`/api-keys/${key.id}`);
    expectStatus(before, 200);
    expect(before.body.last_used_at).toBeNull();
    expectStatus(await adminClient(ctx, key.key).get("/campaigns"), 200);
    // Allow a moment in case the timestamp is written after the answer.
    let lastUsed: unknown = null;
    for (let i = 0; i < 20 && lastUsed === null; i++) {
      const view = await admin.get(`/api-keys/${key.id}`);
      expectStatus(view, 200);
      lastUsed = view.body.last_used_at;
      if (lastUsed === null) await Bun.sleep(100);
    }
    expect(typeof lastUsed).toBe("string");
    expect(Date.parse(lastUsed as string)).toBeGreaterThanOrEqual(Date.parse(key.created_at) - 60_000);
  });
});

// ---------------------------------------------------------------------------------------------
// 7. Agent names: one namespace across tenants (LiveKit dispatches agents by name)
// ---------------------------------------------------------------------------------------------

describe("agent names are one namespace across tenants", () => {
  const systemDefault = () => ctx.config.systemDefaultAgent;

  /** 409 naming `name`; beyond the name B itself sent, nothing in it tells of tenant A. */
  function expectNameTaken(answer: ApiAnswer, requested: string) {
    expectError(answer, 409, "conflict");
    expect(answer.body.error.details?.field).toBe("name");
    const told = JSON.stringify(answer.body).replaceAll(requested, "<name>");
    for (const secret of [A.id, A.name, A.agentId, A.keyId]) expect(told).not.toContain(secret);
  }

  /** 409 naming `name`, saying the name is the system default agent's. */
  function expectSystemDefaultRefused(answer: ApiAnswer) {
    expectError(answer, 409, "conflict");
    expect(answer.body.error.details?.field).toBe("name");
    expect(answer.body.error.message).toContain("system default");
  }

  test("B's key creating an agent named like A's → 409 naming name, A's agent untouched, nothing created", async () => {
    const taken = snapshotA.rows.agents.name;
    expectNameTaken(await B.client.post("/agents", { name: taken }), taken);
    expectNameTaken(await B.client.post("/agents", { name: taken, is_default: true }), taken);
    await expectARowUnchanged("agents");
    await expectBUnchanged();
  });

  test("B's key renaming its agent to A's agent's name → 409 naming name, both agents unchanged", async () => {
    const taken = snapshotA.rows.agents.name;
    expectNameTaken(await B.client.patch(`/agents/${B.agentId}`, { name: taken }), taken);
    await expectARowUnchanged("agents");
    await expectBUnchanged();
  });

  test("B's key creating or renaming an agent to the system default agent's name → 409 naming name", async () => {
    expectSystemDefaultRefused(await B.client.post("/agents", { name: systemDefault() }));
    expectSystemDefaultRefused(await B.client.patch(`/agents/${B.agentId}`, { name: systemDefault() }));
    await expectBUnchanged();
  });

  test("the admin key cannot give B an agent named like A's, or like the system default, either", async () => {
    const taken = snapshotA.rows.agents.name;
    expectNameTaken(await admin.post("/agents", { tenant_id: B.id, name: taken }), taken);
    expectNameTaken(await admin.patch(`/agents/${B.agentId}`, { name: taken }), taken);
    expectNameTaken(await admin.post("/agents", { tenant_id: null, name: taken }), taken);
    expectSystemDefaultRefused(await admin.post("/agents", { tenant_id: B.id, name: systemDefault() }));
    expectSystemDefaultRefused(await admin.patch(`/agents/${B.agentId}`, { name: systemDefault() }));
    await expectARowUnchanged("agents");
    await expectBUnchanged();
  });

  test("a system-wide agent may carry the system default's name, but cannot be moved into a tenant", async () => {
    const fallback = await created(admin.post("/agents", { tenant_id: null, name: systemDefault() }));
    try {
      expect(fallback).toMatchObject({ tenant_id: null, name: systemDefault() });
      expectSystemDefaultRefused(await admin.patch(`/agents/${fallback.id}`, { tenant_id: B.id }));
      const back = await admin.get(`/agents/${fallback.id}`);
      expectStatus(back, 200);
      expect(back.body).toEqual(fallback);
      // Nor can a tenant key take it (system-wide agents are changed with an admin key only).
      expectError(await A.client.patch(`/agents/${fallback.id}`, { tenant_id: A.id }), 403, "forbidden");
      await expectBUnchanged();
    } finally {
      expect(await admin.delete(`/agents/${fallback.id}`)).toEqual({ status: 204, body: undefined });
    }
  });
});
