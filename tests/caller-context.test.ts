// What the agent is told about its call (README "## Policies", "What the agent is told"): the job
// metadata, through both entry points: sip-inbound's answer `metadata` and the metadata of the
// AgentDispatch Switchboard creates on LiveKit's participant_joined webhook. It carries `caller`
// (the caller's lead as it was before this call), `variables` (the tenant's, overridden key by key
// by the campaign's), `sip_headers` (sip.h.* attributes, or sip-inbound's sip_headers), and stays
// within 16 KB by emptying sip_headers, then variables. sip-inbound's `attributes` also carry
// caller_name, tenant_id and campaign_id when they are known.
import { beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { MAX_METADATA_BYTES } from "../src/calls/context";
import { type AdminClient, adminClient } from "./support/admin";
import {
  type Call,
  callLog,
  callLogRows,
  type Json,
  leadRows,
  newCall,
  postEvent,
  answer as readAnswer,
  SIP_INBOUND_PATH,
  sipCallerJoins,
  TEST_KEYS,
  useLiveKitApp,
} from "./support/livekit-app";
import { signBody, signDelivery, sipParticipantLeft } from "./support/livekit-events";

// Acme: the "Live" campaign on CAMPAIGN_NUMBER, its default agent on PLAIN_NUMBER. NOWHERE is no one's.
const CAMPAIGN_NUMBER = "+14155550100";
const PLAIN_NUMBER = "+14155550101";
const NOWHERE = "+14155559999";
const CALLER = "+12125550142";

const directory = {
  tenants: [
    {
      name: "Acme",
      agents: [{ name: "acme-default", default: true }, { name: "acme-sales" }],
      campaigns: [{ name: "Live", agent: "acme-sales" }],
      phone_numbers: [{ number: CAMPAIGN_NUMBER, campaign: "Live" }, { number: PLAIN_NUMBER }],
    },
  ],
};

// No dispatch retries: a test that takes LiveKit down wants the delivery's 503 at once.
const { ctx, fake } = useLiveKitApp({ seed: directory, env: { LIVEKIT_DISPATCH_RETRIES: "0" } });

let admin: AdminClient;
beforeEach(async () => {
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "caller-context" });
  admin = adminClient(ctx, key);
});

// ---------------------------------------------------------------------------------------------
// Calls, through either entry point

type Via = "sip-inbound" | "livekit";
const VIAS: Via[] = ["sip-inbound", "livekit"];

interface PlaceOptions {
  to?: string;
  /** The caller: E.164, or null for a withheld number (sip-inbound: from_number absent; LiveKit: no sip.phoneNumber). */
  from?: string | null;
  /** Reuse a call (its id and room): a repeated delivery. */
  call?: Call;
  /** The trunk's X- headers: sip-inbound's sip_headers, or the caller's sip.h.<name> attributes on LiveKit. */
  sipHeaders?: Record<string, string>;
  /** LiveKit only: the caller participant's attributes beyond the SIP ones. */
  attributes?: Record<string, string>;
}

interface Placed {
  call: Call;
  /** The answer's body: sip-inbound's decision, or the events endpoint's. */
  body: Json;
  /** The job metadata as the agent gets it (a JSON string). */
  raw: string;
  metadata: Json;
}

/** POSTs sip-inbound, signed as LiveKit-side glue signs it. */
async function sipInbound(body: Record<string, unknown>): Promise<{ status: number; body: Json }> {
  const text = JSON.stringify(body);
  const res = await ctx.post(SIP_INBOUND_PATH, text, { authorization: await signBody(text, TEST_KEYS) });
  return { status: res.status, body: await readAnswer(res) };
}

const sipInboundBody = (call: Call, from: string | null, sipHeaders?: Record<string, string>) => {
  const body: Record<string, unknown> = { call_id: call.callId, to_number: call.to, room_name: call.room, trunk_id: call.trunkId };
  if (from !== null) body.from_number = from;
  if (sipHeaders !== undefined) body.sip_headers = sipHeaders;
  return body;
};

/** The caller's participant attributes on LiveKit: sip.h.<name> per X- header, plus `extra`. */
const headerAttributes = (sipHeaders: Record<string, string> = {}, extra: Record<string, string> = {}) => ({
  ...Object.fromEntries(Object.entries(sipHeaders).map(([name, value]) => [`sip.h.${name}`, value])),
  ...extra,
});

/** The metadata of the one agent dispatched into `room` (what a dispatched agent reads). */
function dispatchedMetadata(room: string): string {
  const dispatches = fake.agentDispatches(room);
  expect(dispatches).toHaveLength(1);
  return dispatches[0]!.metadata;
}

/** A call placed through `via`, answered 200, with the metadata its agent is given. */
async function place(via: Via, options: PlaceOptions = {}): Promise<Placed> {
  const from = options.from === undefined ? CALLER : options.from;
  const call = options.call ?? newCall({ from: from ?? "", to: options.to ?? CAMPAIGN_NUMBER });
  let status: number;
  let body: Json;
  let raw: string;
  if (via === "sip-inbound") {
    ({ status, body } = await sipInbound(sipInboundBody(call, from, options.sipHeaders)));
    expect({ status, body }).toMatchObject({ status: 200, body: { action: "dispatch" } });
    raw = body.metadata as string;
  } else {
    const delivery = await sipCallerJoins(fake, { ...call, from: from ?? "" }, { attributes: headerAttributes(options.sipHeaders, options.attributes) });
    const res = await postEvent(ctx, delivery);
    status = res.status;
    body = await readAnswer(res);
    expect({ status, body }).toMatchObject({ status: 200 });
    raw = dispatchedMetadata(call.room);
  }
  expect(typeof raw).toBe("string");
  return { call, body, raw, metadata: JSON.parse(raw) as Json };
}

// ---------------------------------------------------------------------------------------------
// The directory and the leads

async function idOf(table: "tenants" | "campaigns", name: string): Promise<string> {
  const [row] = await ctx.database.rows<{ id: string }>(sql`select id from ${sql.raw(table)} where name = ${name}`);
  return row!.id;
}

/** The one lead of `phone` (expects exactly one). */
async function leadOf(phone: string) {
  const leads = (await leadRows(ctx)).filter((l) => l.phoneNumber === phone);
  expect(leads).toHaveLength(1);
  return leads[0]!;
}

/** A first call's caller: the lead just made for it (no name yet, only Switchboard's placeholder), no calls before. */
const firstCaller = (leadId: string) => ({
  lead_id: leadId,
  name: null,
  email: null,
  status: "new",
  previous_calls: 0,
  last_call_at: null,
});

/** Sets variables with SQL (no size limit there), then reloads the directory. */
async function setVariables(tenant: Record<string, unknown>, campaign: Record<string, unknown> = {}) {
  await ctx.database.rows(sql`update tenants set variables = ${JSON.stringify(tenant)}::jsonb where name = 'Acme'`);
  await ctx.database.rows(sql`update campaigns set variables = ${JSON.stringify(campaign)}::jsonb where name = 'Live'`);
  await ctx.directory.reload();
}

/** Patches through the admin API, expecting 200. */
async function patch(path: string, body: unknown): Promise<Json> {
  const answer = await admin.patch(path, body);
  expect({ status: answer.status, body: answer.body }).toMatchObject({ status: 200 });
  return answer.body;
}

const bytes = (text: string) => Buffer.byteLength(text);

// ---------------------------------------------------------------------------------------------

describe.each(VIAS)("caller (%s)", (via) => {
  test("a first call: the lead made for it, no name (the lead's is a placeholder), status new, no previous calls; kept in the call log", async () => {
    const placed = await place(via);
    const lead = await leadOf(CALLER);
    expect(placed.metadata.caller).toEqual(firstCaller(lead.id));
    expect(placed.metadata.lead_id).toBe(lead.id);
    // The call's record keeps what the agent was told, for later deliveries of the same call.
    const log = await callLog(ctx, placed.call.callId);
    expect((log.metadata as Json).caller).toEqual(firstCaller(lead.id));
  });

  test("a second call: previous_calls 1, last_call_at the first call's time (ISO 8601, UTC), the lead's status before this call", async () => {
    const first = await place(via);
    const firstLog = await callLog(ctx, first.call.callId);
    const lead = await leadOf(CALLER);
    expect(lead.status).toBe("calling");

    const second = await place(via);
    expect(second.metadata.caller).toEqual({
      lead_id: lead.id,
      name: null,
      email: null,
      status: "calling",
      previous_calls: 1,
      last_call_at: firstLog.createdAt.toISOString(),
    });
    expect(second.metadata.caller.last_call_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    // And a third: two calls before it, the last of them the second.
    const secondLog = await callLog(ctx, second.call.callId);
    const third = await place(via);
    expect(third.metadata.caller).toMatchObject({ lead_id: lead.id, previous_calls: 2, last_call_at: secondLog.createdAt.toISOString() });
  });

  test("a lead changed through the admin API: the next call is told its name, email and status as they were before that call", async () => {
    const first = await place(via);
    const firstLog = await callLog(ctx, first.call.callId);
    const lead = await leadOf(CALLER);
    await patch(`/leads/${lead.id}`, { name: "Jane Doe", email: "jane@example.com", status: "qualified" });

    const second = await place(via);
    expect(second.metadata.caller).toEqual({
      lead_id: lead.id,
      name: "Jane Doe",
      email: "jane@example.com",
      status: "qualified",
      previous_calls: 1,
      last_call_at: firstLog.createdAt.toISOString(),
    });
    // The call moved the lead on; the next caller context shows that, not what the agent was told before.
    expect((await leadOf(CALLER)).status).toBe("calling");
    const third = await place(via);
    expect(third.metadata.caller).toMatchObject({ name: "Jane Doe", email: "jane@example.com", status: "calling", previous_calls: 2 });
  });

  test("a caller's calls are counted per lead: the same caller on the tenant's other number (no campaign) is a first call there", async () => {
    await place(via, { to: CAMPAIGN_NUMBER });
    const other = await place(via, { to: PLAIN_NUMBER });
    const leads = (await leadRows(ctx)).filter((l) => l.phoneNumber === CALLER && l.campaignId === null);
    expect(leads).toHaveLength(1);
    expect(other.metadata.caller).toEqual(firstCaller(leads[0]!.id));
  });

  test("a withheld caller: caller null, no lead", async () => {
    const placed = await place(via, { from: null });
    expect(placed.metadata).toMatchObject({ caller: null, lead_id: null, from_number: null, tenant_id: await idOf("tenants", "Acme") });
    expect(await leadRows(ctx)).toEqual([]);
  });

  test("a number in no tenant: caller null (no lead is made)", async () => {
    const placed = await place(via, { to: NOWHERE });
    expect(placed.metadata).toMatchObject({ caller: null, lead_id: null, tenant_id: null, from_number: CALLER });
    expect(await leadRows(ctx)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("the same call id delivered twice gets the same caller context", () => {
  test("sip-inbound twice, the lead changed in between: the second answer tells what the first did", async () => {
    await place("sip-inbound"); // an earlier call, so the context has something to change
    const call = newCall();
    const first = await place("sip-inbound", { call });
    const lead = await leadOf(CALLER);
    expect(first.metadata.caller).toMatchObject({ lead_id: lead.id, status: "calling", previous_calls: 1 });
    await patch(`/leads/${lead.id}`, { name: "Jane Doe", email: "jane@example.com", status: "qualified" });
    // A call in between makes previous_calls and last_call_at move on too.
    await place("sip-inbound");

    const again = await place("sip-inbound", { call });
    expect(again.metadata.caller).toEqual(first.metadata.caller);
    expect(again.metadata.call_log_id).toBe(first.metadata.call_log_id);
    expect(await callLogRows(ctx, call.callId)).toHaveLength(1);
  });

  test("LiveKit: a join whose dispatch failed, delivered again after the lead changed, dispatches with the context of the first delivery", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    await fake.setDown(true);
    expect((await postEvent(ctx, delivery)).status).toBe(503);
    await fake.setDown(false);
    const lead = await leadOf(CALLER);
    await patch(`/leads/${lead.id}`, { name: "Jane Doe", email: "jane@example.com", status: "qualified" });

    expect((await postEvent(ctx, delivery)).status).toBe(200);
    const metadata = JSON.parse(dispatchedMetadata(call.room));
    expect(metadata.caller).toEqual(firstCaller(lead.id));
    expect(await callLogRows(ctx, call.callId)).toHaveLength(1);
  });

  test("sip-inbound first, then LiveKit's join of the same call: the dispatch carries the caller sip-inbound was told", async () => {
    await place("sip-inbound");
    const call = newCall();
    const decided = await place("sip-inbound", { call });
    const lead = await leadOf(CALLER);
    await patch(`/leads/${lead.id}`, { name: "Jane Doe", status: "qualified" });

    const joined = await place("livekit", { call });
    expect(joined.metadata.caller).toEqual(decided.metadata.caller);
    expect(joined.metadata.caller).toMatchObject({ name: null, status: "calling", previous_calls: 1 });
    expect(await callLogRows(ctx, call.callId)).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe.each(VIAS)("variables (%s)", (via) => {
  test("tenant {a:1,b:1}, campaign {b:2,c:2} (admin API): the campaign's number gets {a:1,b:2,c:2}, a number without a campaign {a:1,b:1}, no tenant's number {}", async () => {
    const tenant = await patch(`/tenants/${await idOf("tenants", "Acme")}`, { variables: { a: 1, b: 1 } });
    expect(tenant.variables).toEqual({ a: 1, b: 1 });
    const campaign = await patch(`/campaigns/${await idOf("campaigns", "Live")}`, { variables: { b: 2, c: 2 } });
    expect(campaign.variables).toEqual({ b: 2, c: 2 });

    expect((await place(via, { to: CAMPAIGN_NUMBER })).metadata.variables).toEqual({ a: 1, b: 2, c: 2 });
    expect((await place(via, { to: PLAIN_NUMBER })).metadata.variables).toEqual({ a: 1, b: 1 });
    expect((await place(via, { to: NOWHERE })).metadata.variables).toEqual({});
  });

  test("key by key, not merged deeper: a campaign's object replaces the tenant's object of that key", async () => {
    await setVariables({ office: { name: "Acme", city: "SF" }, greeting: "hi" }, { office: { name: "Acme Sales" } });
    expect((await place(via)).metadata.variables).toEqual({ office: { name: "Acme Sales" }, greeting: "hi" });
  });

  test("a withheld caller is told the variables too", async () => {
    await setVariables({ a: 1 }, { c: 2 });
    expect((await place(via, { from: null })).metadata.variables).toEqual({ a: 1, c: 2 });
  });
});

// ---------------------------------------------------------------------------------------------

describe("sip_headers", () => {
  test("LiveKit: the caller's sip.h.* attributes, by header name; no other attribute", async () => {
    const placed = await place("livekit", {
      sipHeaders: { "x-customer-id": "42", "X-Account-Tier": "gold" },
      attributes: { "lk.custom": "no", "sip.hostname": "sip.example.com", "sip.h": "no", "x-customer-id": "no" },
    });
    expect(placed.metadata.sip_headers).toEqual({ "x-customer-id": "42", "X-Account-Tier": "gold" });
  });

  test("sip-inbound: the request's sip_headers object", async () => {
    const placed = await place("sip-inbound", { sipHeaders: { "x-customer-id": "42", "X-Account-Tier": "gold" } });
    expect(placed.metadata.sip_headers).toEqual({ "x-customer-id": "42", "X-Account-Tier": "gold" });
  });

  test.each(VIAS)("none given (%s): {}", async (via) => {
    expect((await place(via)).metadata.sip_headers).toEqual({});
  });
});

// ---------------------------------------------------------------------------------------------

/** `count` headers x-h01... of `length` characters of `char`. */
function headers(count: number, length: number, char = "a"): Record<string, string> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`x-h${String(i + 1).padStart(2, "0")}`, char.repeat(length)]));
}

/** Everything but what the 16 KB rule may empty: the call's ids and outcome, and the caller. */
async function expectKept(placed: Placed, phone = CALLER) {
  const log = await callLog(ctx, placed.call.callId);
  const lead = await leadOf(phone);
  expect(placed.metadata).toMatchObject({
    call_type: "inbound",
    outcome: "dispatched",
    outcome_reason: null,
    phone_number_id: log.phoneNumberId,
    tenant_id: await idOf("tenants", "Acme"),
    campaign_id: await idOf("campaigns", "Live"),
    lead_id: lead.id,
    call_log_id: log.id,
    from_number: phone,
    to_number: CAMPAIGN_NUMBER,
    agent_source: "campaign",
    caller: firstCaller(lead.id),
  });
}

describe.each(VIAS)("the 16 KB rule (%s)", (via) => {
  test("MAX_METADATA_BYTES is 16384", () => {
    expect(MAX_METADATA_BYTES).toBe(16384);
  });

  test("huge sip headers (bytes, not characters: 10 000 'é' are 20 000 bytes): sip_headers emptied, variables kept, truncated [sip_headers]", async () => {
    await setVariables({ a: 1 }, { c: 2 });
    const placed = await place(via, { sipHeaders: headers(10, 1000, "é") });
    expect(bytes(placed.raw)).toBeLessThanOrEqual(MAX_METADATA_BYTES);
    expect(placed.metadata.sip_headers).toEqual({});
    expect(placed.metadata.variables).toEqual({ a: 1, c: 2 });
    expect(placed.metadata.truncated).toEqual(["sip_headers"]);
    await expectKept(placed);
  });

  test("huge sip headers and huge variables (set with SQL): both emptied, sip_headers first; ids and caller kept", async () => {
    await setVariables({ notes: "n".repeat(12_000) }, { script: "s".repeat(12_000) });
    const placed = await place(via, { sipHeaders: headers(20, 1000) });
    expect(bytes(placed.raw)).toBeLessThanOrEqual(MAX_METADATA_BYTES);
    expect(placed.metadata).toMatchObject({ sip_headers: {}, variables: {}, truncated: ["sip_headers", "variables"] });
    await expectKept(placed);
  });

  test("huge variables with small sip headers that alone would fit: variables are emptied as well", async () => {
    await setVariables({ notes: "n".repeat(20_000) });
    const placed = await place(via, { sipHeaders: { "x-customer-id": "42" } });
    expect(bytes(placed.raw)).toBeLessThanOrEqual(MAX_METADATA_BYTES);
    expect(placed.metadata.variables).toEqual({});
    expect(placed.metadata.truncated).toContain("variables");
    await expectKept(placed);
  });

  test("sip headers big enough to be emptied but variables that fit once they are: variables kept whole", async () => {
    await setVariables({ notes: "n".repeat(7_000) }, { script: "s".repeat(7_000) });
    const placed = await place(via, { sipHeaders: headers(4, 1000) });
    expect(bytes(placed.raw)).toBeLessThanOrEqual(MAX_METADATA_BYTES);
    expect(placed.metadata.truncated).toEqual(["sip_headers"]);
    expect(placed.metadata.variables).toEqual({ notes: "n".repeat(7_000), script: "s".repeat(7_000) });
  });

  test("variables at the admin API's limit (4 KB the tenant's, 4 KB the campaign's) and some headers fit whole: nothing truncated", async () => {
    const tenantVariables = { notes: "n".repeat(4_000) };
    const campaignVariables = { script: "s".repeat(4_000) };
    await patch(`/tenants/${await idOf("tenants", "Acme")}`, { variables: tenantVariables });
    await patch(`/campaigns/${await idOf("campaigns", "Live")}`, { variables: campaignVariables });
    const placed = await place(via, { sipHeaders: headers(3, 1000) });
    expect(placed.metadata.variables).toEqual({ ...tenantVariables, ...campaignVariables });
    expect(placed.metadata.sip_headers).toEqual(headers(3, 1000));
    expect(placed.metadata).not.toHaveProperty("truncated");
  });

  test("exactly 16384 bytes are kept whole; one byte more empties sip_headers", async () => {
    // Each call is a first call of a caller of the same length, so only the headers change the size.
    const withFiller = (filler: number) => ({ ...headers(15, 1000), "x-filler": "f".repeat(filler) });
    const probe = await place(via, { from: "+12125550150", sipHeaders: withFiller(100) });
    expect(probe.metadata).not.toHaveProperty("truncated");
    const filler = 100 + MAX_METADATA_BYTES - bytes(probe.raw);
    expect(filler).toBeGreaterThan(100);
    expect(filler).toBeLessThanOrEqual(1024);

    const exact = await place(via, { from: "+12125550151", sipHeaders: withFiller(filler) });
    expect(bytes(exact.raw)).toBe(MAX_METADATA_BYTES);
    expect(exact.metadata).not.toHaveProperty("truncated");
    expect(exact.metadata.sip_headers).toEqual(withFiller(filler));

    const over = await place(via, { from: "+12125550152", sipHeaders: withFiller(filler + 1) });
    expect(over.metadata.truncated).toEqual(["sip_headers"]);
    expect(over.metadata.sip_headers).toEqual({});
    await expectKept(over, "+12125550152");
  });
});

// ---------------------------------------------------------------------------------------------

describe("sip-inbound attributes", () => {
  const attributesOf = async (options: PlaceOptions) => (await place("sip-inbound", options)).body.attributes as Json;

  test("the campaign's number, a caller whose lead has a name: caller_name, tenant_id and campaign_id", async () => {
    await place("sip-inbound", { to: CAMPAIGN_NUMBER });
    await patch(`/leads/${(await leadOf(CALLER)).id}`, { name: "Jane Doe" });
    const attributes = await attributesOf({ to: CAMPAIGN_NUMBER });
    expect(attributes).toEqual({
      inbound: "true",
      phone_number: CAMPAIGN_NUMBER,
      caller: CALLER,
      caller_name: "Jane Doe",
      tenant_id: await idOf("tenants", "Acme"),
      campaign_id: await idOf("campaigns", "Live"),
    });
  });

  test("caller_name is the lead's name as it was before the call (renamed through the admin API)", async () => {
    await place("sip-inbound");
    await patch(`/leads/${(await leadOf(CALLER)).id}`, { name: "Jane Doe" });
    expect((await attributesOf({})).caller_name).toBe("Jane Doe");
  });

  test("a number without a campaign, a first call: no campaign_id attribute, and no caller_name (the lead has only a placeholder)", async () => {
    const attributes = await attributesOf({ to: PLAIN_NUMBER });
    expect(attributes).toEqual({
      inbound: "true",
      phone_number: PLAIN_NUMBER,
      caller: CALLER,
      tenant_id: await idOf("tenants", "Acme"),
    });
  });

  test("a number in no tenant: no caller_name, tenant_id or campaign_id attribute", async () => {
    const attributes = await attributesOf({ to: NOWHERE });
    expect(attributes).toEqual({ inbound: "true", phone_number: NOWHERE, caller: CALLER });
  });

  test("a withheld caller: no caller_name attribute (not an empty one)", async () => {
    const attributes = await attributesOf({ from: null });
    expect(attributes).toEqual({
      inbound: "true",
      phone_number: CAMPAIGN_NUMBER,
      caller: "",
      tenant_id: await idOf("tenants", "Acme"),
      campaign_id: await idOf("campaigns", "Live"),
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("a first call that ended before the second (LiveKit)", () => {
  test("the second call is told the status the end gave the lead (missed), one previous call, and a last_call_at of the first call", async () => {
    const first = await place("livekit");
    const left = sipParticipantLeft({ room: first.call.room, callId: first.call.callId });
    expect((await postEvent(ctx, await signDelivery(left, TEST_KEYS))).status).toBe(200);
    const firstLog = await callLog(ctx, first.call.callId);
    expect(firstLog.endedAt).not.toBeNull();
    const lead = await leadOf(CALLER);
    expect(lead.status).toBe("missed");

    const second = await place("livekit");
    const secondLog = await callLog(ctx, second.call.callId);
    expect(second.metadata.caller).toMatchObject({ lead_id: lead.id, name: null, email: null, status: "missed", previous_calls: 1 });
    // When the first call came in (context.ts) or when it ended (what recordCallEnded makes the
    // lead's last_call_at): either way within the first call, in ISO 8601 UTC.
    const lastCallAt = second.metadata.caller.last_call_at as string;
    expect(lastCallAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(lastCallAt)).toBeGreaterThanOrEqual(firstLog.createdAt.getTime());
    // LiveKit times events in whole seconds: an end handled after the second it happened in is
    // timed at that second's start, which may be before the first call's millisecond-timed start.
    expect(Date.parse(lastCallAt)).toBeLessThan(firstLog.endedAt!.getTime() + 1000);
    expect(Date.parse(lastCallAt)).toBeLessThan(secondLog.createdAt.getTime());
  });
});
