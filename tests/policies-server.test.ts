// Routing policies (issue 17) against a real server process, through both entry points: the
// signed sip-inbound decision endpoint and LiveKit's signed participant_joined webhook, over the
// socket. Everything is set up the way an operator does it: an admin key made with
// `switchboard keys create --admin` before the server starts (the embedded database belongs to the
// server process once it runs), then tenants, agents, numbers, blocklist entries and schedules
// through the admin API, and policy fields PATCHed onto the numbers. LiveKit is the stand-in of
// support/fake-livekit.ts, with the outbound trunk transfers are dialed through.
//
// One server for the file. Each policy has numbers of its own, so the tests do not share state
// beyond the call logs: every call a test makes is registered with the outcome it expects before
// anything is asserted, and the last test checks that the call-log filters list exactly those.
//
// The database is fresh (support/fresh-database.ts): PGlite in a temporary DATA_DIR on the
// embedded pass, a new database on the suite's PostgreSQL when DATABASE_URL is set.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
import { type FreshDatabase, freshDatabase } from "./support/fresh-database";
import {
  type Call,
  EVENTS_PATH,
  type Json,
  liveKitEnv,
  newCall,
  SIP_INBOUND_PATH,
  SYSTEM_DEFAULT_AGENT,
  sipCallerJoins,
  TEST_KEYS,
} from "./support/livekit-app";
import { signBody, signDelivery, sipParticipantLeft } from "./support/livekit-events";
import { createAdminKey, killAllServers, type ServerProcess, startServer } from "./support/server-process";


const ACME_DEFAULT = "acme-default";
const NIGHT_AGENT = "acme-night";
const BETA_DEFAULT = "beta-default";

// Acme's numbers, one per policy (and one cap number per entry point: a cap counts calls).
const A_PLAIN = "+14155550101";
const A_ANON = "+14155550102";
const A_NIGHT_DISPATCH = "+14155550103";
const A_NIGHT_TRANSFER = "+14155550104";
const A_CAP = { "sip-inbound": "+14155550105", livekit: "+14155550106" } as const;
// Beta's.
const B_PLAIN = "+14155550201";

/** On the global blocklist (entered in another shape). */
const GLOBAL_BLOCKED = "+12125550666";
/** On Acme's blocklist only. */
const ACME_BLOCKED = "+12125550777";
const CALLER = "+12125550142";
const TRANSFER_TO = "+14155550999";
/** The outbound trunk transfers are dialed through (LIVEKIT_TRANSFER_TRUNK_ID). */
const TRANSFER_TRUNK = "ST_policytransfers";

type Via = "sip-inbound" | "livekit";
const VIAS: Via[] = ["sip-inbound", "livekit"];

let fake: FakeLiveKit;
let database: FreshDatabase;
let server: ServerProcess;
let adminKey = "";
const scratch = mkdtempSync(join(tmpdir(), "switchboard-policies-server-"));

// ---------------------------------------------------------------------------------------------
// The admin API over HTTP

interface ApiAnswer {
  status: number;
  body: any;
}

async function api(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const headers: Record<string, string> = { authorization: `Bearer ${adminKey}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

/** The body of an answer with `status`; a failure shows the whole answer. */
async function ok(answer: Promise<ApiAnswer>, status: number, what: string): Promise<any> {
  const settled = await answer;
  expect({ what, status: settled.status, body: settled.body }).toMatchObject({ what, status });
  return settled.body;
}

// ---------------------------------------------------------------------------------------------
// Calls, through either entry point

interface Placed {
  via: Via;
  call: Call;
  status: number;
  body: Json;
}

/** Every call made in this file, by call id: the outcome and reason its test expects. */
const expected = new Map<string, { outcome: string; reason: string | null }>();

/**
 * A call from `from` to `to` through `via`. `from`: an E.164 number, "anonymous", "" (LiveKit: no
 * sip.phoneNumber) or null (sip-inbound: from_number left out).
 */
async function place(via: Via, to: string, from: string | null = CALLER): Promise<Placed> {
  const call = newCall({ from: from ?? "", to });
  let res: Response;
  if (via === "sip-inbound") {
    const body: Record<string, unknown> = { call_id: call.callId, to_number: to, room_name: call.room, trunk_id: call.trunkId };
    if (from !== null) body.from_number = from;
    const text = JSON.stringify(body);
    res = await fetch(`${server.url}${SIP_INBOUND_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: await signBody(text, TEST_KEYS) },
      body: text,
      signal: AbortSignal.timeout(20_000),
    });
  } else {
    const delivery = await sipCallerJoins(fake, call);
    res = await fetch(`${server.url}${EVENTS_PATH}`, { method: "POST", headers: delivery.headers, body: delivery.body, signal: AbortSignal.timeout(20_000) });
  }
  const text = await res.text();
  let body: Json;
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = { unparsed: text.slice(0, 300) };
  }
  return { via, call, status: res.status, body };
}

/** The call's log, as the admin API has it. */
async function callLog(call: Call): Promise<Json> {
  return ok(api("GET", `/call-logs/by-call-id/${encodeURIComponent(call.callId)}`), 200, `call log of ${call.callId}`);
}

/** CreateDispatch requests LiveKit got for the call's room. */
const createsIn = (call: Call) => fake.calls("CreateDispatch").filter((c) => c.request?.room === call.room);

/** What LiveKit was asked to do in the call's room, for comparing in one go. */
function liveKitSide(call: Call) {
  return {
    agents: fake.agentDispatches(call.room).map((d) => d.agentName),
    creates: createsIn(call).map((c) => c.request.agentName as string),
    removed: fake.removedParticipants(call.room).map((r) => ({ identity: r.identity, cause: r.cause })),
    dialed: fake.outboundCalls(call.room).map((c) => ({ trunkId: c.trunkId, number: c.number, identity: c.identity })),
    transfers: fake.transfers(call.room).length,
  };
}

async function expectDispatched(placed: Placed, agent: string, reason: string | null) {
  expected.set(placed.call.callId, { outcome: "dispatched", reason });
  expect({ status: placed.status, body: placed.body }).toMatchObject({ status: 200 });
  if (placed.via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "dispatch", agent_name: agent, transfer_to: null, reason, record: "recorded" });
  } else {
    expect(liveKitSide(placed.call)).toEqual({ agents: [agent], creates: [agent], removed: [], dialed: [], transfers: 0 });
    expect(JSON.parse(createsIn(placed.call)[0]!.request.metadata)).toMatchObject({ outcome: "dispatched", outcome_reason: reason });
  }
  expect(await callLog(placed.call)).toMatchObject({ outcome: "dispatched", outcome_reason: reason, agent_name: agent, transfer_to: null, ended_at: null });
}

async function expectRejected(placed: Placed, reason: string) {
  expected.set(placed.call.callId, { outcome: "rejected", reason });
  expect({ status: placed.status, body: placed.body }).toMatchObject({ status: 200 });
  if (placed.via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "reject", agent_name: null, transfer_to: null, reason, record: "recorded" });
  } else {
    // The caller is removed (they hear the call end) and no agent is sent.
    const caller = fake.removedParticipants(placed.call.room)[0]?.identity ?? "(none removed)";
    expect(caller).toStartWith("sip_");
    expect(liveKitSide(placed.call)).toEqual({ agents: [], creates: [], removed: [{ identity: caller, cause: "RemoveParticipant" }], dialed: [], transfers: 0 });
    expect(fake.participants(placed.call.room)).toEqual([]);
  }
  const log = await callLog(placed.call);
  expect(log).toMatchObject({ outcome: "rejected", outcome_reason: reason, agent_name: null, transfer_to: null, status: "failed" });
  expect(log.ended_at).not.toBeNull();
}

async function expectTransferred(placed: Placed, reason: string) {
  expected.set(placed.call.callId, { outcome: "transferred", reason });
  expect({ status: placed.status, body: placed.body }).toMatchObject({ status: 200 });
  if (placed.via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "transfer", agent_name: null, transfer_to: TRANSFER_TO, reason, record: "recorded" });
  } else {
    // The destination is dialed into the caller's room through the transfer trunk; the caller stays, no agent.
    expect(liveKitSide(placed.call)).toEqual({
      agents: [],
      creates: [],
      removed: [],
      dialed: [{ trunkId: TRANSFER_TRUNK, number: TRANSFER_TO, identity: `transfer-${placed.call.callId}` }],
      transfers: 0,
    });
  }
  expect(await callLog(placed.call)).toMatchObject({ outcome: "transferred", outcome_reason: reason, agent_name: null, transfer_to: TRANSFER_TO, ended_at: null });
}

/** The caller hangs up: LiveKit's signed participant_left for them (sent for calls decided by sip-inbound too). */
async function callerLeaves(placed: Placed) {
  const { call } = placed;
  const event = sipParticipantLeft({ room: call.room, callId: call.callId, from: call.from, to: call.to, trunkId: call.trunkId });
  const delivery = await signDelivery(event, TEST_KEYS);
  const res = await fetch(`${server.url}${EVENTS_PATH}`, { method: "POST", headers: delivery.headers, body: delivery.body, signal: AbortSignal.timeout(20_000) });
  expect({ status: res.status, body: await res.text() }).toMatchObject({ status: 200 });
  expect((await callLog(call)).ended_at).not.toBeNull();
}

// ---------------------------------------------------------------------------------------------
// One server, set up through the admin API

beforeAll(async () => {
  fake = await startFakeLiveKit(TEST_KEYS);
  fake.createOutboundTrunk({ sipTrunkId: TRANSFER_TRUNK, name: "transfers", numbers: ["+14155550000"], address: "sip.example.com" });
  database = await freshDatabase();
  const env = { DATA_DIR: join(scratch, "data"), ...database.env };
  adminKey = createAdminKey(env, "policies-server");
  server = await startServer({
    ...liveKitEnv(fake, { LIVEKIT_TRANSFER_TRUNK_ID: TRANSFER_TRUNK }),
    ...env,
    LOG_LEVEL: "warn",
    SYSTEM_DEFAULT_AGENT,
    // Routing waits for its record (30 ms by default, then the journal): on a busy test machine
    // the record is to be in the database when the test reads it back, journaling is tested elsewhere.
    CALL_RECORD_WAIT_MS: "10000",
  });

  const acme = await ok(api("POST", "/tenants", { name: "Acme" }), 201, "tenant Acme");
  const beta = await ok(api("POST", "/tenants", { name: "Beta" }), 201, "tenant Beta");
  await ok(api("POST", "/agents", { tenant_id: acme.id, name: ACME_DEFAULT, is_default: true }), 201, "Acme's default agent");
  const night = await ok(api("POST", "/agents", { tenant_id: acme.id, name: NIGHT_AGENT }), 201, "Acme's after-hours agent");
  await ok(api("POST", "/agents", { tenant_id: beta.id, name: BETA_DEFAULT, is_default: true }), 201, "Beta's default agent");

  const numberIds = new Map<string, string>();
  const numbers: [string, string][] = [
    [acme.id, A_PLAIN],
    [acme.id, A_ANON],
    [acme.id, A_NIGHT_DISPATCH],
    [acme.id, A_NIGHT_TRANSFER],
    [acme.id, A_CAP["sip-inbound"]],
    [acme.id, A_CAP.livekit],
    [beta.id, B_PLAIN],
  ];
  for (const [tenantId, number] of numbers) {
    numberIds.set(number, (await ok(api("POST", "/phone-numbers", { tenant_id: tenantId, number }), 201, `number ${number}`)).id);
  }
  const patchNumber = async (number: string, fields: Record<string, unknown>) =>
    ok(api("PATCH", `/phone-numbers/${numberIds.get(number)}`, fields), 200, `PATCH ${number}`);

  // Blocklists: a global entry and one of Acme's, in shapes other than E.164.
  await ok(api("POST", "/blocklist-entries", { tenant_id: null, pattern: "+1 (212) 555-0666", reason: "global spam" }), 201, "global entry");
  await ok(api("POST", "/blocklist-entries", { tenant_id: acme.id, pattern: "212-555-0777", reason: "Acme's pest" }), 201, "Acme's entry");

  await patchNumber(A_ANON, { block_anonymous: true });

  // Schedules with no weekly hours and no holidays: closed whatever the clock says.
  const closed = (name: string, afterHours: Record<string, unknown>) =>
    ok(api("POST", "/schedules", { tenant_id: acme.id, name, time_zone: "America/New_York", weekly_hours: {}, holidays: [], after_hours: afterHours }), 201, `schedule ${name}`);
  const nightDispatch = await closed("closed, to the night agent", { action: "dispatch", agent_id: night.id });
  const nightTransfer = await closed("closed, to the front desk", { action: "transfer", transfer_to: "(415) 555-0999" });
  expect(nightTransfer.after_hours).toEqual({ action: "transfer", transfer_to: TRANSFER_TO });
  await patchNumber(A_NIGHT_DISPATCH, { schedule_id: nightDispatch.id });
  await patchNumber(A_NIGHT_TRANSFER, { schedule_id: nightTransfer.id });

  for (const number of Object.values(A_CAP)) {
    const capped = await patchNumber(number, { max_concurrent_calls: 1, overflow: { action: "transfer", transfer_to: "415.555.0999" } });
    expect(capped).toMatchObject({ max_concurrent_calls: 1, overflow: { action: "transfer", transfer_to: TRANSFER_TO } });
  }
}, 120_000);

afterAll(async () => {
  await killAllServers();
  await fake?.close();
  await database?.drop();
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

// ---------------------------------------------------------------------------------------------

describe.each(VIAS)("policies on a real server (%s)", (via) => {
  test("a global blocklist entry rejects its caller on both tenants' numbers; Acme's entry only on Acme's", async () => {
    await expectRejected(await place(via, A_PLAIN, GLOBAL_BLOCKED), "blocklist");
    await expectRejected(await place(via, B_PLAIN, GLOBAL_BLOCKED), "blocklist");
    await expectRejected(await place(via, A_PLAIN, ACME_BLOCKED), "blocklist");
    // Beta does not share Acme's blocklist: the same caller reaches Beta's agent.
    await expectDispatched(await place(via, B_PLAIN, ACME_BLOCKED), BETA_DEFAULT, null);
    // And a caller on neither list reaches Acme's.
    await expectDispatched(await place(via, A_PLAIN, CALLER), ACME_DEFAULT, null);
  });

  test("block_anonymous rejects a withheld caller (anonymous_blocked); a caller showing the number gets through", async () => {
    // sip-inbound: from_number left out or "anonymous"; LiveKit: no sip.phoneNumber, or "anonymous".
    for (const withheld of via === "sip-inbound" ? [null, "anonymous"] : ["", "anonymous"]) {
      await expectRejected(await place(via, A_ANON, withheld), "anonymous_blocked");
    }
    await expectDispatched(await place(via, A_ANON, CALLER), ACME_DEFAULT, null);
    // The same withheld caller on a number without block_anonymous is routed as usual.
    await expectDispatched(await place(via, A_PLAIN, "anonymous"), ACME_DEFAULT, null);
  });

  test("after hours with a dispatch action: the after-hours agent is sent (reason after_hours)", async () => {
    await expectDispatched(await place(via, A_NIGHT_DISPATCH, CALLER), NIGHT_AGENT, "after_hours");
  });

  test("after hours with a transfer action: the call is passed to the destination (reason after_hours)", async () => {
    await expectTransferred(await place(via, A_NIGHT_TRANSFER, CALLER), "after_hours");
  });

  test("a cap of 1 with overflow transfer: the second concurrent call is transferred; once the first ends a new call is admitted", async () => {
    const number = A_CAP[via];
    const first = await place(via, number, "+12125550301");
    await expectDispatched(first, ACME_DEFAULT, null);
    await expectTransferred(await place(via, number, "+12125550302"), "over_capacity");
    await callerLeaves(first);
    const third = await place(via, number, "+12125550303");
    await expectDispatched(third, ACME_DEFAULT, null);
    // The admitted call holds the one slot again.
    await expectTransferred(await place(via, number, "+12125550304"), "over_capacity");
  });
});

describe("call logs", () => {
  test("?outcome=rejected and ?outcome_reason=blocklist list exactly the calls rejected, and rejected for the blocklist", async () => {
    // Calls of this test's own, so it stands alone too: one of each kind through each entry point.
    for (const via of VIAS) {
      await expectRejected(await place(via, B_PLAIN, GLOBAL_BLOCKED), "blocklist");
      await expectRejected(await place(via, A_ANON, "anonymous"), "anonymous_blocked");
      await expectDispatched(await place(via, A_PLAIN, CALLER), ACME_DEFAULT, null);
    }
    const idsWhere = (keep: (e: { outcome: string; reason: string | null }) => boolean) =>
      [...expected].filter(([, e]) => keep(e)).map(([id]) => id).sort();

    const list = async (query: string) => {
      const page = await ok(api("GET", `/call-logs?${query}&limit=500`), 200, `GET /call-logs?${query}`);
      expect(page.next_cursor).toBeNull();
      return page.data as Json[];
    };

    const rejected = await list("outcome=rejected");
    expect(rejected.every((l) => l.outcome === "rejected")).toBe(true);
    expect(rejected.map((l) => l.provider_call_id).sort()).toEqual(idsWhere((e) => e.outcome === "rejected"));

    const blocked = await list("outcome_reason=blocklist");
    expect(blocked.map((l) => [l.outcome, l.outcome_reason])).toEqual(blocked.map(() => ["rejected", "blocklist"]));
    expect(blocked.map((l) => l.provider_call_id).sort()).toEqual(idsWhere((e) => e.reason === "blocklist"));
  });
});
