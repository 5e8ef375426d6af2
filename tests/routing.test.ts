// Who answers an inbound call, through the endpoint LiveKit-side glue calls, and what the
// service remembers about it: the call log and the caller's lead.
import type { CallerContext } from "../src/calls/context";
import type { SipInboundResponse } from "../src/calls/model";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { callLogs, leads, phoneNumbers, tenants } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import { CALLER, SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";

/** A response's JSON body; each test checks the fields it cares about. */
const json = (res: Response): Promise<any> => res.json();

// Acme: a default agent, a live campaign, a paused one, one whose agent was retired.
const LIVE_CAMPAIGN_NUMBER = "+14155550100";
const NO_CAMPAIGN_NUMBER = "+14155550101";
const PAUSED_CAMPAIGN_NUMBER = "+14155550102";
const RETIRED_AGENT_NUMBER = "+14155550103";
const INACTIVE_NUMBER = "+14155550104";
const NO_AGENT_CAMPAIGN_NUMBER = "+14155550105";
// Other tenants.
const NO_DEFAULT_NUMBER = "+14155550200";
const RETIRED_DEFAULT_NUMBER = "+14155550201";
const CLOSED_TENANT_NUMBER = "+14155550300";
const OTHER_TENANT_NUMBER = "+14155550400";
const UNKNOWN_NUMBER = "+14155559999";

const directory = {
  tenants: [
    {
      name: "Acme",
      agents: [
        { name: "acme-default", default: true },
        { name: "acme-sales" },
        { name: "acme-retired", active: false },
      ],
      campaigns: [
        { name: "Live", agent: "acme-sales" },
        { name: "Paused", agent: "acme-sales", status: "paused" },
        { name: "Retired agent", agent: "acme-retired" },
        { name: "No agent" },
      ],
      phone_numbers: [
        { number: LIVE_CAMPAIGN_NUMBER, campaign: "Live" },
        { number: NO_CAMPAIGN_NUMBER },
        { number: PAUSED_CAMPAIGN_NUMBER, campaign: "Paused" },
        { number: RETIRED_AGENT_NUMBER, campaign: "Retired agent" },
        { number: INACTIVE_NUMBER, campaign: "Live", active: false },
        { number: NO_AGENT_CAMPAIGN_NUMBER, campaign: "No agent" },
      ],
    },
    {
      name: "No Default",
      agents: [{ name: "nodefault-sales" }],
      phone_numbers: [{ number: NO_DEFAULT_NUMBER }],
    },
    {
      name: "Retired Default",
      agents: [{ name: "retired-default", default: true, active: false }],
      phone_numbers: [{ number: RETIRED_DEFAULT_NUMBER }],
    },
    {
      name: "Closed",
      active: false,
      agents: [{ name: "closed-default", default: true }],
      campaigns: [{ name: "Closed campaign", agent: "closed-default" }],
      phone_numbers: [{ number: CLOSED_TENANT_NUMBER, campaign: "Closed campaign" }],
    },
    {
      name: "Other",
      agents: [{ name: "other-default", default: true }],
      phone_numbers: [{ number: OTHER_TENANT_NUMBER }],
    },
  ],
};

interface Metadata {
  call_type: string;
  phone_number_id: string | null;
  tenant_id: string | null;
  campaign_id: string | null;
  lead_id: string | null;
  call_log_id: string | null;
  from_number: string | null;
  to_number: string | null;
  agent_source: string;
  outcome: string;
  outcome_reason: string | null;
  caller: CallerContext | null;
  variables: Record<string, unknown>;
  sip_headers: Record<string, string>;
}

type SipAnswer = typeof SipInboundResponse.static;

let ctx: TestContext;
let callSeq = 0;
const newCallId = () => `call-${++callSeq}-${crypto.randomUUID()}`;

beforeAll(async () => {
  // The routing deadline is generous here: 50 simultaneous calls queue on the embedded database,
  // and these tests are about who answers, not about the deadline (outage.test.ts covers that).
  ctx = await openTestContext({ DB_STATEMENT_TIMEOUT_MS: "10000" });
}, 30_000);
afterAll(() => ctx.close());
beforeEach(async () => {
  await ctx.reset();
  await ctx.seed(directory);
});

/** POSTs sip-inbound and returns the answer with its metadata parsed. */
async function sipInbound(body: Record<string, unknown>, context: TestContext = ctx) {
  const res = await context.post(SIP_INBOUND_PATH, { call_id: newCallId(), ...body });
  expect(res.status).toBe(200);
  const answer = (await json(res)) as SipAnswer;
  return { answer, meta: JSON.parse(answer.metadata) as Metadata };
}

const call = (to: string, from: string | null = CALLER) => sipInbound({ to_number: to, from_number: from });

async function tenantId(name: string) {
  const [row] = await ctx.database.db.select().from(tenants).where(eq(tenants.name, name));
  return row!.id;
}
async function numberRow(e164: string) {
  const [row] = await ctx.database.db.select().from(phoneNumbers).where(eq(phoneNumbers.e164, e164));
  return row!;
}
const allCallLogs = () => ctx.database.db.select().from(callLogs);
const allLeads = () => ctx.database.db.select().from(leads);
async function callLog(id: string | null) {
  const [row] = await ctx.database.db.select().from(callLogs).where(eq(callLogs.id, id!));
  return row!;
}

describe("the agent", () => {
  test("a number on a live campaign gets the campaign's agent", async () => {
    const number = await numberRow(LIVE_CAMPAIGN_NUMBER);
    const { answer, meta } = await call(LIVE_CAMPAIGN_NUMBER);
    expect(answer.agent_name).toBe("acme-sales");
    expect(meta.agent_source).toBe("campaign");
    expect(meta.tenant_id).toBe(await tenantId("Acme"));
    expect(meta.campaign_id).toBe(number.campaignId!);
    expect(meta.phone_number_id).toBe(number.id);
  });

  test("a paused campaign's number gets the tenant's default", async () => {
    const { answer, meta } = await call(PAUSED_CAMPAIGN_NUMBER);
    expect(answer.agent_name).toBe("acme-default");
    expect(meta.agent_source).toBe("tenant_default");
    expect(meta.tenant_id).toBe(await tenantId("Acme"));
  });

  test("a campaign whose agent is inactive falls back to the tenant's default", async () => {
    const { answer, meta } = await call(RETIRED_AGENT_NUMBER);
    expect(answer.agent_name).toBe("acme-default");
    expect(meta.agent_source).toBe("tenant_default");
  });

  test("a campaign without an agent falls back to the tenant's default", async () => {
    const { answer, meta } = await call(NO_AGENT_CAMPAIGN_NUMBER);
    expect(answer.agent_name).toBe("acme-default");
    expect(meta.agent_source).toBe("tenant_default");
  });

  test("a number without a campaign gets the tenant's default", async () => {
    const number = await numberRow(NO_CAMPAIGN_NUMBER);
    const { answer, meta } = await call(NO_CAMPAIGN_NUMBER);
    expect(answer.agent_name).toBe("acme-default");
    expect(meta.agent_source).toBe("tenant_default");
    expect(meta.campaign_id).toBeNull();
    expect(meta.phone_number_id).toBe(number.id);
  });

  test("a tenant without a default agent gets the system default, still under the tenant", async () => {
    const { answer, meta } = await call(NO_DEFAULT_NUMBER);
    expect(answer.agent_name).toBe(SYSTEM_DEFAULT_AGENT);
    expect(meta.agent_source).toBe("system_default");
    expect(meta.tenant_id).toBe(await tenantId("No Default"));
    expect(meta.lead_id).not.toBeNull();
  });

  test("a tenant whose default agent is inactive gets the system default", async () => {
    const { answer, meta } = await call(RETIRED_DEFAULT_NUMBER);
    expect(answer.agent_name).toBe(SYSTEM_DEFAULT_AGENT);
    expect(meta.agent_source).toBe("system_default");
  });

  test("SYSTEM_DEFAULT_AGENT names the system default", async () => {
    const custom = await openTestContext({ SYSTEM_DEFAULT_AGENT: "front-desk" }, { database: ctx.database });
    await custom.seed(directory);
    const { answer, meta } = await sipInbound({ to_number: NO_DEFAULT_NUMBER, from_number: CALLER }, custom);
    expect(answer.agent_name).toBe("front-desk");
    expect(meta.agent_source).toBe("system_default");
    const unknown = await sipInbound({ to_number: UNKNOWN_NUMBER, from_number: CALLER }, custom);
    expect(unknown.answer.agent_name).toBe("front-desk");
    expect((await callLog(unknown.meta.call_log_id)).agentName).toBe("front-desk");
  });

  test("an unknown number gets the system default and a call log with no tenant or campaign", async () => {
    const { answer, meta } = await call(UNKNOWN_NUMBER);
    expect(answer.agent_name).toBe(SYSTEM_DEFAULT_AGENT);
    expect(meta).toMatchObject({
      agent_source: "system_default",
      tenant_id: null,
      campaign_id: null,
      phone_number_id: null,
      lead_id: null,
      to_number: UNKNOWN_NUMBER,
      from_number: CALLER,
    });
    expect(meta.call_log_id).not.toBeNull();
    const log = await callLog(meta.call_log_id);
    expect(log).toMatchObject({
      tenantId: null,
      campaignId: null,
      phoneNumberId: null,
      leadId: null,
      agentName: SYSTEM_DEFAULT_AGENT,
      agentSource: "system_default",
      toNumber: UNKNOWN_NUMBER,
      fromNumber: CALLER,
    });
    expect(await allLeads()).toHaveLength(0);
  });

  test.each([
    ["an inactive tenant", CLOSED_TENANT_NUMBER],
    ["an inactive number", INACTIVE_NUMBER],
  ])("a number of %s is treated as unknown", async (_, number) => {
    const { answer, meta } = await call(number);
    expect(answer.agent_name).toBe(SYSTEM_DEFAULT_AGENT);
    expect(meta).toMatchObject({ agent_source: "system_default", tenant_id: null, campaign_id: null, lead_id: null });
    expect(meta.phone_number_id).toBeNull();
    const log = await callLog(meta.call_log_id);
    expect(log).toMatchObject({ tenantId: null, campaignId: null, phoneNumberId: null, leadId: null });
    expect(await allLeads()).toHaveLength(0);
  });
});

describe("the answer", () => {
  test("has the agent, the metadata as a JSON string and the SIP attributes", async () => {
    const number = await numberRow(LIVE_CAMPAIGN_NUMBER);
    const res = await ctx.post(SIP_INBOUND_PATH, {
      call_id: newCallId(),
      from_number: "(212) 555-0142",
      to_number: "tel:+14155550100",
      trunk_id: "ST_trunk",
      room_name: "call-room-1",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const answer = (await json(res)) as SipAnswer;
    expect(Object.keys(answer).sort()).toEqual(["action", "agent_name", "attributes", "metadata", "reason", "record", "transfer_to"]);
    // Routed as usual: the agent is dispatched, and no policy had a say.
    expect(answer).toMatchObject({ action: "dispatch", agent_name: "acme-sales", transfer_to: null, reason: null });
    expect(answer.record).toBe("recorded");
    expect(typeof answer.metadata).toBe("string");
    const meta = JSON.parse(answer.metadata) as Metadata;
    const [lead] = await allLeads();
    const [log] = await allCallLogs();
    expect(meta).toEqual({
      call_type: "inbound",
      outcome: "dispatched",
      outcome_reason: null,
      phone_number_id: number.id,
      tenant_id: await tenantId("Acme"),
      campaign_id: number.campaignId,
      lead_id: lead!.id,
      call_log_id: log!.id,
      from_number: CALLER,
      to_number: LIVE_CAMPAIGN_NUMBER,
      agent_source: "campaign",
      // A first call: the lead is new, with no calls before this one.
      caller: { lead_id: lead!.id, name: null, email: null, status: "new", previous_calls: 0, last_call_at: null },
      variables: {},
      sip_headers: {},
    });
    expect(answer.attributes).toEqual({
      inbound: "true",
      phone_number: LIVE_CAMPAIGN_NUMBER,
      caller: CALLER,
      tenant_id: await tenantId("Acme"),
      campaign_id: number.campaignId!,
    });
    expect(log).toMatchObject({
      trunkId: "ST_trunk",
      roomName: "call-room-1",
      fromRaw: "(212) 555-0142",
      toRaw: "tel:+14155550100",
      leadId: lead!.id,
      status: "ringing",
    });
    expect(log!.metadata).toMatchObject({ source: "sip-inbound" });
  });

  test("to_number falls back to trunk_phone_number", async () => {
    const { answer, meta } = await sipInbound({ trunk_phone_number: LIVE_CAMPAIGN_NUMBER, from_number: CALLER });
    expect(answer.agent_name).toBe("acme-sales");
    expect(meta.to_number).toBe(LIVE_CAMPAIGN_NUMBER);
    expect(answer.attributes.phone_number).toBe(LIVE_CAMPAIGN_NUMBER);
  });

  test("an empty or null to_number falls back to trunk_phone_number", async () => {
    for (const to_number of ["", null]) {
      const { answer } = await sipInbound({ to_number, trunk_phone_number: NO_CAMPAIGN_NUMBER, from_number: CALLER });
      expect(answer.agent_name).toBe("acme-default");
    }
  });

  test("to_number wins over trunk_phone_number", async () => {
    const { answer } = await sipInbound({
      to_number: LIVE_CAMPAIGN_NUMBER,
      trunk_phone_number: NO_CAMPAIGN_NUMBER,
      from_number: CALLER,
    });
    expect(answer.agent_name).toBe("acme-sales");
  });
});

describe("the caller's lead", () => {
  test("a new caller becomes a lead of the number's tenant and campaign", async () => {
    const number = await numberRow(LIVE_CAMPAIGN_NUMBER);
    const before = Date.now();
    const { meta } = await call(LIVE_CAMPAIGN_NUMBER);
    const all = await allLeads();
    expect(all).toHaveLength(1);
    const lead = all[0]!;
    expect(meta.lead_id).toBe(lead.id);
    expect(lead).toMatchObject({
      tenantId: await tenantId("Acme"),
      campaignId: number.campaignId,
      phoneNumber: CALLER,
      name: `Inbound Caller ${CALLER}`,
      status: "calling",
    });
    expect(lead.lastCallAt).toBeInstanceOf(Date);
    // Set by the database clock: allow for a little skew, not for a missing value.
    expect(lead.lastCallAt!.getTime()).toBeGreaterThan(before - 60_000);
  });

  test("a second call from the same caller updates the same lead", async () => {
    const first = await call(LIVE_CAMPAIGN_NUMBER);
    const [before] = await allLeads();
    await Bun.sleep(20);
    const second = await call(LIVE_CAMPAIGN_NUMBER, "(212) 555-0142");
    const after = await allLeads();
    expect(after).toHaveLength(1);
    expect(second.meta.lead_id).toBe(first.meta.lead_id);
    expect(second.meta.call_log_id).not.toBe(first.meta.call_log_id);
    expect(after[0]!.id).toBe(before!.id);
    expect(after[0]!.lastCallAt!.getTime()).toBeGreaterThan(before!.lastCallAt!.getTime());
    expect(await allCallLogs()).toHaveLength(2);
  });

  test("the same caller calling two tenants becomes a lead of each", async () => {
    const acme = await call(NO_CAMPAIGN_NUMBER);
    const other = await call(OTHER_TENANT_NUMBER);
    expect(acme.answer.agent_name).toBe("acme-default");
    expect(other.answer.agent_name).toBe("other-default");
    expect(acme.meta.lead_id).not.toBe(other.meta.lead_id);
    const all = await allLeads();
    expect(all).toHaveLength(2);
    const byId = new Map(all.map((l) => [l.id, l]));
    expect(byId.get(acme.meta.lead_id!)).toMatchObject({ tenantId: await tenantId("Acme"), phoneNumber: CALLER });
    expect(byId.get(other.meta.lead_id!)).toMatchObject({ tenantId: await tenantId("Other"), phoneNumber: CALLER });
    expect((await callLog(acme.meta.call_log_id)).leadId).toBe(acme.meta.lead_id);
    expect((await callLog(other.meta.call_log_id)).leadId).toBe(other.meta.lead_id);
  });

  test.each(["anonymous", "unknown", "", null, undefined, "garbage"])(
    "a withheld or unusable caller %p gets an agent and a call log but no lead",
    async (from) => {
      const body: Record<string, unknown> = { to_number: LIVE_CAMPAIGN_NUMBER };
      if (from !== undefined) body.from_number = from;
      const { answer, meta } = await sipInbound(body);
      expect(answer.agent_name).toBe("acme-sales");
      expect(answer.attributes.caller).toBe("");
      expect(meta.from_number).toBeNull();
      expect(meta.lead_id).toBeNull();
      expect(meta.tenant_id).toBe(await tenantId("Acme"));
      const log = await callLog(meta.call_log_id);
      expect(log).toMatchObject({ fromNumber: null, leadId: null, fromRaw: from ?? null, agentName: "acme-sales" });
      expect(await allLeads()).toHaveLength(0);
    },
  );
});

describe("number shapes", () => {
  const shapes = ["+14155550100", "(415) 555-0100", "14155550100", "tel:+14155550100", "sip:+14155550100@host"];

  test.each(shapes)("dialed as %p, routes to the seeded number", async (to) => {
    const number = await numberRow(LIVE_CAMPAIGN_NUMBER);
    const { answer, meta } = await sipInbound({ to_number: to, from_number: CALLER });
    expect(answer.agent_name).toBe("acme-sales");
    expect(meta.phone_number_id).toBe(number.id);
    expect(meta.to_number).toBe(LIVE_CAMPAIGN_NUMBER);
    expect((await callLog(meta.call_log_id)).toRaw).toBe(to);
  });

  test.each(shapes)("calling from %p, the lead's number is +14155550100", async (from) => {
    const { answer, meta } = await sipInbound({ to_number: OTHER_TENANT_NUMBER, from_number: from });
    expect(answer.attributes.caller).toBe("+14155550100");
    const all = await allLeads();
    expect(all).toHaveLength(1);
    expect(all[0]!.phoneNumber).toBe("+14155550100");
    expect(all[0]!.id).toBe(meta.lead_id!);
  });

  test("every shape of one caller meets on one lead", async () => {
    const ids = new Set<string | null>();
    for (const from of shapes) ids.add((await sipInbound({ to_number: OTHER_TENANT_NUMBER, from_number: from })).meta.lead_id);
    expect(ids.size).toBe(1);
    expect(await allLeads()).toHaveLength(1);
    expect(await allCallLogs()).toHaveLength(shapes.length);
  });
});

describe("repeated and simultaneous calls", () => {
  test("a call id delivered twice gets the same answer and writes nothing new", async () => {
    const body = { call_id: newCallId(), to_number: LIVE_CAMPAIGN_NUMBER, from_number: CALLER };
    const first = await ctx.post(SIP_INBOUND_PATH, body);
    const firstAnswer = await json(first);
    const logsBefore = await allCallLogs();
    const leadsBefore = await allLeads();
    await Bun.sleep(20);

    const second = await ctx.post(SIP_INBOUND_PATH, body);
    expect(second.status).toBe(200);
    const secondAnswer = await json(second);
    expect(secondAnswer).toEqual(firstAnswer);

    expect(await allCallLogs()).toEqual(logsBefore);
    const leadsAfter = await allLeads();
    expect(leadsAfter).toHaveLength(1);
    expect(leadsAfter[0]!.lastCallAt).toEqual(leadsBefore[0]!.lastCallAt);
    expect(leadsAfter).toEqual(leadsBefore);
  });

  test("a repeated call id keeps its first decision even if the directory changed since", async () => {
    const body = { call_id: newCallId(), to_number: LIVE_CAMPAIGN_NUMBER, from_number: CALLER };
    const first = await json(await ctx.post(SIP_INBOUND_PATH, body));
    await ctx.seed({
      tenants: [
        { name: "Acme", agents: [{ name: "acme-sales" }], campaigns: [{ name: "Live", agent: "acme-sales", status: "paused" }] },
      ],
    });
    // A new call to the number now gets the tenant default...
    expect((await call(LIVE_CAMPAIGN_NUMBER)).answer.agent_name).toBe("acme-default");
    // ...but the call already routed keeps its agent.
    const second = await json(await ctx.post(SIP_INBOUND_PATH, body));
    expect(second).toEqual(first);
    expect(second.agent_name).toBe("acme-sales");
  });

  test("a call id delivered 10 times at once is recorded once", async () => {
    const body = { call_id: newCallId(), to_number: LIVE_CAMPAIGN_NUMBER, from_number: CALLER };
    const responses = await Promise.all(Array.from({ length: 10 }, () => ctx.post(SIP_INBOUND_PATH, body)));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    const answers = (await Promise.all(responses.map(json))) as SipAnswer[];
    const metas = answers.map((a) => JSON.parse(a.metadata) as Metadata);
    const logs = await allCallLogs();
    expect(logs).toHaveLength(1);
    expect(new Set(metas.map((m) => m.call_log_id))).toEqual(new Set([logs[0]!.id]));
    expect(new Set(answers.map((a) => a.agent_name))).toEqual(new Set(["acme-sales"]));
    expect(await allLeads()).toHaveLength(1);
  });

  test("50 simultaneous calls from one new caller make one lead and 50 call logs", async () => {
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        ctx.post(SIP_INBOUND_PATH, { call_id: newCallId(), to_number: LIVE_CAMPAIGN_NUMBER, from_number: CALLER }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const metas = await Promise.all(
      responses.map(async (r) => JSON.parse(((await json(r)) as SipAnswer).metadata) as Metadata),
    );
    const all = await allLeads();
    expect(all).toHaveLength(1);
    const leadId = all[0]!.id;
    const logs = await allCallLogs();
    expect(logs).toHaveLength(50);
    expect(logs.every((l) => l.leadId === leadId)).toBe(true);
    expect(metas.every((m) => m.lead_id === leadId && m.call_log_id !== null)).toBe(true);
    expect(new Set(metas.map((m) => m.call_log_id)).size).toBe(50);
  });
});

describe("the test endpoint", () => {
  const TEST_PATH = "/api/v1/webhooks/test";

  test("routes a made-up call through the same flow and records it", async () => {
    const res = await ctx.post(TEST_PATH, { to_number: LIVE_CAMPAIGN_NUMBER });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.success).toBe(true);
    expect(body.test_data).toMatchObject({ to_number: LIVE_CAMPAIGN_NUMBER, from_number: expect.any(String) });
    expect(body.test_data.call_id).toStartWith("test-");
    expect(body.response.agent_name).toBe("acme-sales");
    const meta = JSON.parse(body.response.metadata) as Metadata;
    expect(meta.agent_source).toBe("campaign");
    const log = await callLog(meta.call_log_id);
    expect(log.providerCallId).toBe(body.test_data.call_id);
    expect(log.roomName).toBe(body.test_data.room_name);
    expect(log.metadata).toMatchObject({ source: "test" });
  });

  test("uses the given caller", async () => {
    const body = await json(await ctx.post(TEST_PATH, { to_number: NO_CAMPAIGN_NUMBER, from_number: "(212) 555-0142" }));
    expect(body.test_data.from_number).toBe("(212) 555-0142");
    expect(body.response.attributes.caller).toBe(CALLER);
    const [lead] = await allLeads();
    expect(lead!.phoneNumber).toBe(CALLER);
  });

  test("each test call is a new call", async () => {
    const a = await json(await ctx.post(TEST_PATH, { to_number: NO_CAMPAIGN_NUMBER }));
    const b = await json(await ctx.post(TEST_PATH, { to_number: NO_CAMPAIGN_NUMBER }));
    expect(a.test_data.call_id).not.toBe(b.test_data.call_id);
    expect(await allCallLogs()).toHaveLength(2);
  });

  test("is not served in production", async () => {
    const production = await openTestContext({ NODE_ENV: "production" }, { database: ctx.database });
    await production.seed(directory);
    const res = await production.post(TEST_PATH, { to_number: LIVE_CAMPAIGN_NUMBER });
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe("not_found");
    expect(await allCallLogs()).toHaveLength(0);
    // The real endpoint is still there.
    expect((await production.post(SIP_INBOUND_PATH, { call_id: newCallId(), to_number: LIVE_CAMPAIGN_NUMBER })).status).toBe(200);
  });

  test("is served in production when ENABLE_TEST_ENDPOINT=true", async () => {
    const production = await openTestContext(
      { NODE_ENV: "production", ENABLE_TEST_ENDPOINT: "true" },
      { database: ctx.database },
    );
    await production.seed(directory);
    const res = await production.post(TEST_PATH, { to_number: LIVE_CAMPAIGN_NUMBER });
    expect(res.status).toBe(200);
    expect((await json(res)).success).toBe(true);
    expect(await allCallLogs()).toHaveLength(1);
  });
});
