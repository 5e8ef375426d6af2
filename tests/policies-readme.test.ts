// The README's Policies example, run as written: its admin API requests are read out of the
// README's code block, so a README that drifts from what the API accepts fails here. Then calls
// at chosen instants (New York time) get what the README promises, and the two 2026
// daylight-saving Sundays are routed by the wall clock.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { SIP_INBOUND_PATH } from "./support/livekit-app";

const README = await Bun.file(new URL("../README.md", import.meta.url)).text();

/** The admin requests of the example: `[VAR=$(]call $API/<path> -d '<json>' | "<json>"`, in order. */
function exampleRequests(): { variable: string | null; path: string; body: string }[] {
  const section = README.slice(README.indexOf("### Example: a dental office"));
  const block = section.slice(section.indexOf("```sh") + 5, section.indexOf("```", section.indexOf("```sh") + 5));
  const request = /(?:(\w+)=\$\()?call \$API\/([\w-]+) -d (?:'([^']*)'|"((?:[^"\\]|\\.)*)")/g;
  return [...block.matchAll(request)].map((m) => ({
    variable: m[1] ?? null,
    path: m[2]!,
    body: m[3] ?? m[4]!.replace(/\\"/g, '"'),
  }));
}

let ctx: TestContext;
let api: AdminClient;
let now = new Date();

async function call(from: string, callId = crypto.randomUUID()) {
  const res = await ctx.post(SIP_INBOUND_PATH, { call_id: callId, from_number: from, to_number: "(212) 555-0110" });
  expect(res.status).toBe(200);
  return (await res.json()) as { action: string; agent_name: string | null; transfer_to: string | null; reason: string | null };
}

beforeAll(async () => {
  ctx = await openTestContext({}, { now: () => now });
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "readme-policies" });
  api = adminClient(ctx, key);
  const ids: Record<string, string> = {};
  const requests = exampleRequests();
  // The example's six requests: tenant, two agents, schedule, number, blocklist entry.
  expect(requests.map((r) => r.path)).toEqual(["tenants", "agents", "agents", "schedules", "phone-numbers", "blocklist-entries"]);
  for (const { variable, path, body } of requests) {
    const answer = await api.post(`/${path}`, JSON.parse(body.replace(/\$(\w+)/g, (_, name: string) => ids[name] ?? `$${name}`)));
    expect({ path, status: answer.status, error: answer.body?.error }).toEqual({ path, status: 201, error: undefined });
    if (variable) ids[variable] = answer.body.id;
  }
}, 30_000);
afterAll(() => ctx?.close());
// Every test starts with no call in progress: the ones before have hung up (as a LiveKit leave records it).
beforeEach(async () => {
  await ctx.database.rows(sql`update call_logs set ended_at = now(), status = 'completed' where ended_at is null`);
});

describe("the README's dental office", () => {
  test("a weekday at 10:00 in New York: the receptionist, as usual", async () => {
    now = new Date("2026-12-01T15:00:00Z"); // Tuesday 10:00 EST
    expect(await call("+12125550101")).toMatchObject({ action: "dispatch", agent_name: "brightsmile-receptionist", reason: null });
  });

  test("Saturday after 13:00, Sunday and Christmas Day: the after-hours agent", async () => {
    for (const [instant, reason] of [
      ["2026-12-05T18:30:00Z", "after_hours"], // Saturday 13:30 EST
      ["2026-12-06T15:00:00Z", "after_hours"], // Sunday 10:00 EST
      ["2026-12-25T15:00:00Z", "holiday"], // Friday 10:00 EST, Christmas Day
    ] as const) {
      now = new Date(instant);
      expect({ instant, ...(await call("+12125550102")) }).toMatchObject({ instant, action: "dispatch", agent_name: "brightsmile-after-hours", reason });
    }
  });

  test("the hours are New York wall-clock time on both sides of the 2026 daylight-saving changes", async () => {
    // Friday 2026-03-06 (before the change, EST = UTC-5): 12:30 UTC is 07:30, closed; 13:30 UTC is 08:30, open.
    // Monday 2026-03-09 (after it, EDT = UTC-4): 12:30 UTC is 08:30, open.
    // Friday 2026-10-30 (EDT): 21:30 UTC is 17:30, closed; Monday 2026-11-02 (EST): 21:30 UTC is 16:30, open.
    const expectations = [
      ["2026-03-06T12:30:00Z", "brightsmile-after-hours"],
      ["2026-03-06T13:30:00Z", "brightsmile-receptionist"],
      ["2026-03-09T12:30:00Z", "brightsmile-receptionist"],
      ["2026-10-30T21:30:00Z", "brightsmile-after-hours"],
      ["2026-11-02T21:30:00Z", "brightsmile-receptionist"],
    ] as const;
    for (const [instant, agent] of expectations) {
      now = new Date(instant);
      expect({ instant, agent: (await call("+12125550103")).agent_name }).toEqual({ instant, agent });
    }
  });

  test("a fourth simultaneous call is put through to the front desk; after hours the cap does not apply", async () => {
    now = new Date("2026-12-01T15:00:00Z");
    const answers = await Promise.all([1, 2, 3, 4].map((i) => call(`+1212555020${i}`)));
    const actions = answers.map((a) => `${a.action}:${a.transfer_to ?? a.agent_name}:${a.reason}`).sort();
    expect(actions).toEqual([
      "dispatch:brightsmile-receptionist:null",
      "dispatch:brightsmile-receptionist:null",
      "dispatch:brightsmile-receptionist:null",
      "transfer:+12125550111:over_capacity",
    ]);
    now = new Date("2026-12-06T15:00:00Z"); // Sunday: the after-hours agent, however many calls are in progress
    expect(await call("+12125550205")).toMatchObject({ action: "dispatch", agent_name: "brightsmile-after-hours", reason: "after_hours" });
  });

  test("a premium-rate caller is rejected, open or closed", async () => {
    for (const instant of ["2026-12-01T15:00:00Z", "2026-12-06T15:00:00Z"]) {
      now = new Date(instant);
      expect(await call("+1 900 555 0000")).toMatchObject({ action: "reject", agent_name: null, reason: "blocklist" });
    }
  });

  test("GET /call-logs?outcome=transferred lists the calls the front desk took", async () => {
    const transferred = await api.get("/call-logs?outcome=transferred");
    expect(transferred.status).toBe(200);
    expect(transferred.body.data.map((log: { transfer_to: string; outcome_reason: string }) => [log.transfer_to, log.outcome_reason])).toEqual([
      ["+12125550111", "over_capacity"],
    ]);
  });
});

describe("daylight-saving days, through sip-inbound", () => {
  test("America/New_York on 2026-03-08 and 2026-11-01: a Sunday 01:00-04:00 opening follows the wall clock", async () => {
    const tenant = (await api.get("/tenants?limit=1")).body.data[0];
    const night = await api.post("/schedules", {
      tenant_id: tenant.id,
      name: "Sunday small hours",
      time_zone: "America/New_York",
      weekly_hours: { sun: [{ open: "01:00", close: "04:00" }] },
      after_hours: { action: "reject" },
    });
    expect(night.status).toBe(201);
    expect((await api.post("/phone-numbers", { tenant_id: tenant.id, number: "(212) 555-0120", schedule_id: night.body.id })).status).toBe(201);
    const expectations = [
      ["2026-03-08T06:30:00Z", "dispatch"], // 01:30 EST: open
      ["2026-03-08T07:30:00Z", "dispatch"], // 03:30 EDT (02:00-03:00 never happens that day): open
      ["2026-03-08T08:30:00Z", "reject"], // 04:30 EDT: closed
      ["2026-11-01T05:30:00Z", "dispatch"], // 01:30 EDT: open
      ["2026-11-01T06:30:00Z", "dispatch"], // 01:30 EST, the hour repeated: open again
      ["2026-11-01T09:30:00Z", "reject"], // 04:30 EST: closed
    ] as const;
    for (const [instant, action] of expectations) {
      now = new Date(instant);
      const res = await ctx.post(SIP_INBOUND_PATH, { call_id: crypto.randomUUID(), from_number: "+12125550301", to_number: "+12125550120" });
      expect({ instant, action: ((await res.json()) as { action: string }).action }).toEqual({ instant, action });
    }
  });
});
