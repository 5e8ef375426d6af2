// Routing policies as callers meet them, through both entry points: the sip-inbound decision
// endpoint (its answer: action, agent_name, transfer_to, reason) and LiveKit's signed
// participant_joined webhook (what the stand-in LiveKit is then asked: a dispatch, the caller's
// removal, a SIP transfer). Blocklists, withheld numbers, business hours and concurrency caps; the
// call log and lead each outcome leaves. Policies are set with SQL (the admin API for them is
// tested elsewhere) and the directory is reloaded before the call.
import { beforeEach, describe, expect, test } from "bun:test";
import { type SQL, sql } from "drizzle-orm";
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
import { roomFinished, signBody, signDelivery, sipParticipantLeft, type WebhookEvent } from "./support/livekit-events";

// Acme: the "Live" campaign (acme-sales) on A_CAMPAIGN, its default agent on A_PLAIN; Beta on B_NUMBER.
const A_CAMPAIGN = "+14155550100";
const A_PLAIN = "+14155550101";
const B_NUMBER = "+14155550200";
const UNKNOWN_NUMBER = "+14155559999";
const CAMPAIGN_AGENT = "acme-sales";
const ACME_DEFAULT = "acme-default";
const BETA_DEFAULT = "beta-default";
const NIGHT_AGENT = "acme-night";
const OVERFLOW_AGENT = "acme-overflow";
const TRANSFER_TO = "+14155550999";
/** The outbound trunk transfers are dialed through (LIVEKIT_TRANSFER_TRUNK_ID). */
const TRANSFER_TRUNK = "ST_transfers";
const CALLER = "+12125550142";
const OTHER_CALLER = "+12125550143";
const PREMIUM_CALLER = "+19005550123";

const directory = {
  tenants: [
    {
      name: "Acme",
      agents: [{ name: ACME_DEFAULT, default: true }, { name: CAMPAIGN_AGENT }, { name: NIGHT_AGENT }, { name: OVERFLOW_AGENT }],
      campaigns: [{ name: "Live", agent: CAMPAIGN_AGENT }],
      phone_numbers: [{ number: A_CAMPAIGN, campaign: "Live" }, { number: A_PLAIN }],
    },
    { name: "Beta", agents: [{ name: BETA_DEFAULT, default: true }], phone_numbers: [{ number: B_NUMBER }] },
  ],
};

const { ctx, fake } = useLiveKitApp({ seed: directory, env: { LIVEKIT_TRANSFER_TRUNK_ID: TRANSFER_TRUNK } });
// The stand-in forgets its trunks between tests; the transfer trunk is provisioned again.
beforeEach(() => {
  fake.createOutboundTrunk({ sipTrunkId: TRANSFER_TRUNK, name: "transfers", numbers: ["+14155550000"], address: "sip.example.com" });
});

// ---------------------------------------------------------------------------------------------
// Policies, set with SQL

/** Runs the statements, then reloads the routing directory so the next call sees them. */
async function setPolicies(...statements: SQL[]) {
  for (const statement of statements) await ctx.database.rows(statement);
  await ctx.directory.reload();
}

async function idOf(table: "tenants" | "agents", name: string): Promise<string> {
  const [row] = await ctx.database.rows<{ id: string }>(sql`select id from ${sql.raw(table)} where name = ${name}`);
  return row!.id;
}
async function numberId(e164: string): Promise<string> {
  const [row] = await ctx.database.rows<{ id: string }>(sql`select id from phone_numbers where e164 = ${e164}`);
  return row!.id;
}

const block = (pattern: string, tenant: string | null) =>
  sql`insert into blocklist_entries (tenant_id, pattern) values (${tenant}::uuid, ${pattern})`;

const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
const ALL_DAY = [{ open: "00:00", close: "24:00" }];

/** The date ("YYYY-MM-DD") and weekday ("mon") in `zone`, `daysAhead` days from now. */
function localDay(zone: string, daysAhead = 0) {
  const at = new Date(Date.now() + daysAhead * 86_400_000);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short" })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, weekday: parts.weekday!.toLowerCase() };
}

type AfterHours = { action: "dispatch"; agent_id?: string } | { action: "transfer"; transfer_to: string } | { action: "reject" };

/**
 * A schedule of Acme's in `zone`. "closed": hours on every day but today and tomorrow in the zone
 * (so a test that straddles midnight still finds it closed); "open": 00:00-24:00 every day;
 * "holiday": open every day, today and tomorrow holidays.
 */
async function acmeSchedule(name: string, kind: "closed" | "open" | "holiday", afterHours: AfterHours, zone = "America/New_York", holidays?: string[]) {
  const today = localDay(zone);
  const tomorrow = localDay(zone, 1);
  const weekly = Object.fromEntries(
    WEEKDAYS.map((day) => [day, kind === "closed" && (day === today.weekday || day === tomorrow.weekday) ? [] : ALL_DAY]),
  );
  const days = holidays ?? (kind === "holiday" ? [today.date, tomorrow.date] : []);
  const [row] = await ctx.database.rows<{ id: string }>(sql`
    insert into schedules (tenant_id, name, time_zone, weekly_hours, holidays, after_hours)
    values (${await idOf("tenants", "Acme")}, ${name}, ${zone}, ${JSON.stringify(weekly)}::jsonb,
            ${JSON.stringify(days)}::jsonb, ${JSON.stringify(afterHours)}::jsonb)
    returning id`);
  return row!.id;
}

const numberSchedule = (e164: string, scheduleId: string | null) => sql`update phone_numbers set schedule_id = ${scheduleId}::uuid where e164 = ${e164}`;
const numberCap = (e164: string, limit: number | null, overflow: object | null = null) =>
  sql`update phone_numbers set max_concurrent_calls = ${limit}, overflow = ${overflow === null ? null : JSON.stringify(overflow)}::jsonb where e164 = ${e164}`;

// ---------------------------------------------------------------------------------------------
// Calls, through either entry point

type Via = "sip-inbound" | "livekit";
const VIAS: Via[] = ["sip-inbound", "livekit"];

interface Placed {
  call: Call;
  status: number;
  body: Json;
}

interface PlaceOptions {
  to: string;
  /** The caller: E.164, "anonymous", "" (LiveKit: no sip.phoneNumber) or null (sip-inbound: from_number absent). */
  from?: string | null;
  /** Reuse a call id (and its room). */
  call?: Call;
}

/** POSTs sip-inbound, signed as LiveKit-side glue signs it. */
async function sipInbound(body: Record<string, unknown>): Promise<{ status: number; body: Json }> {
  const text = JSON.stringify(body);
  const res = await ctx.post(SIP_INBOUND_PATH, text, { authorization: await signBody(text, TEST_KEYS) });
  return { status: res.status, body: await readAnswer(res) };
}

/** A call placed through `via`: sip-inbound's answer, or the participant_joined webhook's. */
async function place(via: Via, options: PlaceOptions): Promise<Placed> {
  const from = options.from === undefined ? CALLER : options.from;
  const call = options.call ?? newCall({ from: from ?? "", to: options.to });
  if (via === "sip-inbound") {
    const body: Record<string, unknown> = { call_id: call.callId, to_number: options.to, room_name: call.room, trunk_id: call.trunkId };
    if (from !== null) body.from_number = from;
    return { call, ...(await sipInbound(body)) };
  }
  const res = await postEvent(ctx, await sipCallerJoins(fake, { ...call, from: from ?? "" }));
  return { call, status: res.status, body: await readAnswer(res) };
}

async function deliver(event: WebhookEvent) {
  const res = await postEvent(ctx, await signDelivery(event, TEST_KEYS));
  expect(res.status).toBe(200);
}

/** The CreateDispatch requests LiveKit received for `room`. */
const createsIn = (room: string) => fake.calls("CreateDispatch").filter((c) => c.request?.room === room);

/** The caller's participant identity in LiveKit (the one participant the join put in the room). */
const callerIdentity = (call: Call) => fake.participants(call.room)[0]?.identity ?? fake.removedParticipants(call.room)[0]?.identity;

/** The call went to `agent`: sip-inbound answered dispatch with it, or LiveKit was asked for it (and nothing else happened to the caller). */
async function expectDispatched(via: Via, placed: Placed, agent: string, reason: string | null) {
  expect(placed.status).toBe(200);
  if (via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "dispatch", agent_name: agent, transfer_to: null, reason });
    expect(JSON.parse(placed.body.metadata as string)).toMatchObject({ outcome: "dispatched", outcome_reason: reason });
  } else {
    expect(fake.agentDispatches(placed.call.room).map((d) => d.agentName)).toEqual([agent]);
    const creates = createsIn(placed.call.room);
    expect(creates.map((c) => c.request.agentName)).toEqual([agent]);
    expect(JSON.parse(creates[0]!.request.metadata)).toMatchObject({ outcome: "dispatched", outcome_reason: reason });
    expect(fake.removedParticipants(placed.call.room)).toEqual([]);
    expect(fake.transfers(placed.call.room)).toEqual([]);
  }
  const log = await callLog(ctx, placed.call.callId);
  expect(log).toMatchObject({ outcome: "dispatched", outcomeReason: reason, agentName: agent, transferTo: null, status: "ringing", endedAt: null });
  return log;
}

/** The call was refused: sip-inbound answered reject, or LiveKit removed the caller and dispatched nothing. */
async function expectRejected(via: Via, placed: Placed, reason: string) {
  expect(placed.status).toBe(200);
  if (via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "reject", agent_name: null, transfer_to: null, reason });
    expect(JSON.parse(placed.body.metadata as string)).toMatchObject({ outcome: "rejected", outcome_reason: reason, agent_source: null });
  } else {
    expect(fake.agentDispatches(placed.call.room)).toEqual([]);
    expect(createsIn(placed.call.room)).toEqual([]);
    expect(fake.removedParticipants(placed.call.room)).toMatchObject([{ cause: "RemoveParticipant" }]);
    expect(fake.participants(placed.call.room)).toEqual([]);
    expect(fake.transfers(placed.call.room)).toEqual([]);
  }
  const log = await callLog(ctx, placed.call.callId);
  expect(log).toMatchObject({ outcome: "rejected", outcomeReason: reason, agentName: null, agentSource: null, transferTo: null, status: "failed" });
  expect(log.endedAt).not.toBeNull();
  return log;
}

/** The call was passed on to `to`: sip-inbound answered transfer, or LiveKit transferred the caller to tel:<to>. */
async function expectTransferred(via: Via, placed: Placed, to: string, reason: string) {
  expect(placed.status).toBe(200);
  if (via === "sip-inbound") {
    expect(placed.body).toMatchObject({ action: "transfer", agent_name: null, transfer_to: to, reason });
  } else {
    // The destination is dialed into the caller's room (LiveKit will not REFER a call still ringing).
    const dialed = fake.outboundCalls(placed.call.room).map((c) => ({ trunkId: c.trunkId, number: c.number, identity: c.identity }));
    expect(dialed).toEqual([{ trunkId: TRANSFER_TRUNK, number: to, identity: `transfer-${placed.call.callId}` }]);
    // Passed on, not hung up on: the caller stays in the room, with no agent.
    expect(fake.removedParticipants(placed.call.room)).toEqual([]);
    expect(fake.transfers(placed.call.room)).toEqual([]);
    expect(fake.agentDispatches(placed.call.room)).toEqual([]);
    expect(createsIn(placed.call.room)).toEqual([]);
  }
  // The call goes on, with its destination: it ends when the caller leaves, like any call.
  const log = await callLog(ctx, placed.call.callId);
  expect(log).toMatchObject({ outcome: "transferred", outcomeReason: reason, agentName: null, agentSource: null, transferTo: to, status: "ringing" });
  expect(log.endedAt).toBeNull();
  return log;
}

/** Ends a dispatched call: LiveKit's participant_left of the caller, or (sip-inbound, no LiveKit here) ended_at by SQL. */
async function endCall(via: Via, placed: Placed) {
  if (via === "livekit") await deliver(sipParticipantLeft({ room: placed.call.room, callId: placed.call.callId }));
  else await ctx.database.rows(sql`update call_logs set ended_at = now(), status = 'completed' where provider_call_id = ${placed.call.callId}`);
  expect((await callLog(ctx, placed.call.callId)).endedAt).not.toBeNull();
}

// ---------------------------------------------------------------------------------------------

describe.each(VIAS)("blocklist (%s)", (via) => {
  test("a tenant's exact entry rejects the caller: reason blocklist, the call logged failed and ended, no lead", async () => {
    await setPolicies(block(CALLER, await idOf("tenants", "Acme")));
    const log = await expectRejected(via, await place(via, { to: A_CAMPAIGN }), "blocklist");
    expect(log.leadId).toBeNull();
    expect(log.disconnectReason).toBe("REJECTED");
    expect(await leadRows(ctx)).toEqual([]);
    // Another caller of the same number is routed as usual.
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: OTHER_CALLER }), CAMPAIGN_AGENT, null);
  });

  test("a prefix entry (+1900*) rejects every caller it starts, and no other", async () => {
    await setPolicies(block("+1900*", await idOf("tenants", "Acme")));
    await expectRejected(via, await place(via, { to: A_PLAIN, from: PREMIUM_CALLER }), "blocklist");
    await expectRejected(via, await place(via, { to: A_PLAIN, from: "+19005550199" }), "blocklist");
    // +1 212 does not start with +1 900.
    await expectDispatched(via, await place(via, { to: A_PLAIN, from: CALLER }), ACME_DEFAULT, null);
    expect((await leadRows(ctx)).map((l) => l.phoneNumber)).toEqual([CALLER]);
  });

  test("a global entry (no tenant) applies to every tenant's numbers, and to numbers no tenant owns", async () => {
    await setPolicies(block(CALLER, null));
    await expectRejected(via, await place(via, { to: A_CAMPAIGN }), "blocklist");
    await expectRejected(via, await place(via, { to: B_NUMBER }), "blocklist");
    await expectRejected(via, await place(via, { to: UNKNOWN_NUMBER }), "blocklist");
    expect(await leadRows(ctx)).toEqual([]);
  });

  test("a tenant's entry does not block the same caller calling another tenant", async () => {
    await setPolicies(block(CALLER, await idOf("tenants", "Acme")));
    await expectRejected(via, await place(via, { to: A_PLAIN }), "blocklist");
    await expectDispatched(via, await place(via, { to: B_NUMBER }), BETA_DEFAULT, null);
  });

  test("a call id repeated keeps its first outcome: rejected still, after the entry is gone", async () => {
    await setPolicies(block(CALLER, await idOf("tenants", "Acme")));
    const first = await place(via, { to: A_CAMPAIGN });
    await expectRejected(via, first, "blocklist");
    await setPolicies(sql`delete from blocklist_entries`);
    if (via === "livekit") fake.reset();
    const again = await place(via, { to: A_CAMPAIGN, call: first.call });
    await expectRejected(via, again, "blocklist");
    expect(await callLogRows(ctx)).toHaveLength(1);
  });
});

describe("blocklist: sip-inbound first, then LiveKit's join of the same call", () => {
  test("the stored rejection stands: the caller is removed, no agent is sent, one call log", async () => {
    await setPolicies(block(CALLER, await idOf("tenants", "Acme")));
    const decided = await place("sip-inbound", { to: A_CAMPAIGN });
    await expectRejected("sip-inbound", decided, "blocklist");
    const joined = await place("livekit", { to: A_CAMPAIGN, call: decided.call });
    await expectRejected("livekit", joined, "blocklist");
    expect(await callLogRows(ctx)).toHaveLength(1);
  });
});

describe.each(VIAS)("withheld callers (%s)", (via) => {
  test("a number that blocks anonymous callers rejects a withheld caller: reason anonymous_blocked, no lead", async () => {
    await setPolicies(sql`update phone_numbers set block_anonymous = true where e164 = ${A_CAMPAIGN}`);
    // sip-inbound: from_number absent, "anonymous"; LiveKit: no sip.phoneNumber, or "anonymous".
    for (const from of via === "sip-inbound" ? [null, "anonymous", ""] : ["", "anonymous"]) {
      const log = await expectRejected(via, await place(via, { to: A_CAMPAIGN, from }), "anonymous_blocked");
      expect(log.fromNumber).toBeNull();
      expect(log.leadId).toBeNull();
    }
    expect(await leadRows(ctx)).toEqual([]);
    // A caller who shows their number is routed as usual.
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN }), CAMPAIGN_AGENT, null);
  });

  test("the same withheld caller on a number without block_anonymous is dispatched", async () => {
    await setPolicies(sql`update phone_numbers set block_anonymous = true where e164 = ${A_CAMPAIGN}`);
    const log = await expectDispatched(via, await place(via, { to: A_PLAIN, from: "anonymous" }), ACME_DEFAULT, null);
    expect(log.fromNumber).toBeNull();
  });

  test("the blocklist is applied before block_anonymous: a blocklisted caller's reason is blocklist", async () => {
    await setPolicies(
      sql`update phone_numbers set block_anonymous = true where e164 = ${A_CAMPAIGN}`,
      block(CALLER, await idOf("tenants", "Acme")),
    );
    await expectRejected(via, await place(via, { to: A_CAMPAIGN }), "blocklist");
  });
});

describe.each(VIAS)("business hours (%s)", (via) => {
  test("closed now, after hours dispatch to another agent: that agent, reason after_hours, agent_source after_hours", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "dispatch", agent_id: await idOf("agents", NIGHT_AGENT) });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const placed = await place(via, { to: A_CAMPAIGN });
    const log = await expectDispatched(via, placed, NIGHT_AGENT, "after_hours");
    expect(log.agentSource).toBe("after_hours");
    if (via === "livekit") {
      const [create] = fake.calls("CreateDispatch");
      expect(JSON.parse(create!.request.metadata)).toMatchObject({ agent_source: "after_hours", outcome_reason: "after_hours" });
    } else {
      expect(JSON.parse(placed.body.metadata as string)).toMatchObject({ agent_source: "after_hours" });
    }
    // A lead all the same: the caller reached an agent.
    expect((await leadRows(ctx)).map((l) => l.phoneNumber)).toEqual([CALLER]);
  });

  test("closed now, after hours dispatch without an agent: the agent the call would have had, with reason after_hours", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "dispatch" });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const log = await expectDispatched(via, await place(via, { to: A_CAMPAIGN }), CAMPAIGN_AGENT, "after_hours");
    expect(log.agentSource).toBe("campaign");
  });

  test("a holiday (today in the schedule's zone) closes an otherwise open schedule: reason holiday", async () => {
    const schedule = await acmeSchedule("Holiday", "holiday", { action: "dispatch", agent_id: await idOf("agents", NIGHT_AGENT) }, "Asia/Tokyo");
    await setPolicies(numberSchedule(A_PLAIN, schedule));
    const log = await expectDispatched(via, await place(via, { to: A_PLAIN }), NIGHT_AGENT, "holiday");
    expect(log.agentSource).toBe("after_hours");
  });

  test("a holiday that is today in UTC but not in the schedule's zone does not close it", async () => {
    // A zone whose date is not UTC's now, and will not be for at least an hour.
    const utcHour = new Date().getUTCHours();
    const zone = utcHour >= 10 ? "Pacific/Kiritimati" : "Pacific/Pago_Pago";
    const utcToday = new Date().toISOString().slice(0, 10);
    expect(localDay(zone).date).not.toBe(utcToday);
    const schedule = await acmeSchedule("Zoned", "open", { action: "reject" }, zone, [utcToday]);
    await setPolicies(numberSchedule(A_PLAIN, schedule));
    await expectDispatched(via, await place(via, { to: A_PLAIN }), ACME_DEFAULT, null);
  });

  test("a schedule open 00:00-24:00 every day routes as usual (reason null)", async () => {
    const schedule = await acmeSchedule("Always", "open", { action: "reject" });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const log = await expectDispatched(via, await place(via, { to: A_CAMPAIGN }), CAMPAIGN_AGENT, null);
    expect(log.agentSource).toBe("campaign");
  });

  test("closed now, after hours transfer: action transfer to the E.164, the call logged transferred; completed when the caller leaves", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "transfer", transfer_to: TRANSFER_TO });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const placed = await place(via, { to: A_CAMPAIGN });
    await expectTransferred(via, placed, TRANSFER_TO, "after_hours");
    const leads = await leadRows(ctx);
    expect(leads.map((l) => ({ phone: l.phoneNumber, status: l.status }))).toEqual([{ phone: CALLER, status: "transferred" }]);
    if (via === "livekit") {
      await deliver(sipParticipantLeft({ room: placed.call.room, callId: placed.call.callId }));
      // Switchboard's part was done: the call is completed, though no agent answered it.
      expect(await callLog(ctx, placed.call.callId)).toMatchObject({ outcome: "transferred", status: "completed", disconnectReason: "CLIENT_INITIATED" });
    }
  });

  test("closed now, after hours reject: rejected with reason after_hours, and the caller still makes a lead", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "reject" });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const log = await expectRejected(via, await place(via, { to: A_CAMPAIGN }), "after_hours");
    expect(log.leadId).not.toBeNull();
    expect((await leadRows(ctx)).map((l) => l.status)).toEqual(["missed"]);
  });

  test("the campaign's schedule applies to its numbers; the number's own schedule wins over it", async () => {
    const closed = await acmeSchedule("Campaign hours", "closed", { action: "transfer", transfer_to: TRANSFER_TO });
    const open = await acmeSchedule("Number hours", "open", { action: "reject" });
    await setPolicies(sql`update campaigns set schedule_id = ${closed}::uuid where name = 'Live'`);
    await expectTransferred(via, await place(via, { to: A_CAMPAIGN }), TRANSFER_TO, "after_hours");
    await setPolicies(numberSchedule(A_CAMPAIGN, open));
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: OTHER_CALLER }), CAMPAIGN_AGENT, null);
  });

  test("the number's closed schedule wins over its campaign's open one", async () => {
    const open = await acmeSchedule("Campaign hours", "open", { action: "reject" });
    const closed = await acmeSchedule("Number hours", "closed", { action: "dispatch", agent_id: await idOf("agents", NIGHT_AGENT) });
    await setPolicies(sql`update campaigns set schedule_id = ${open}::uuid where name = 'Live'`, numberSchedule(A_CAMPAIGN, closed));
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN }), NIGHT_AGENT, "after_hours");
  });
});

describe.each(VIAS)("a number's concurrency cap (%s)", (via) => {
  test("capped at 2: two calls at once are dispatched, the third rejected over_capacity; once one ends a new call is admitted", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 2));
    const first = await place(via, { to: A_CAMPAIGN, from: "+12125550001" });
    const second = await place(via, { to: A_CAMPAIGN, from: "+12125550002" });
    await expectDispatched(via, first, CAMPAIGN_AGENT, null);
    await expectDispatched(via, second, CAMPAIGN_AGENT, null);
    const third = await place(via, { to: A_CAMPAIGN, from: "+12125550003" });
    const log = await expectRejected(via, third, "over_capacity");
    // Turned away for capacity, not spam: the caller is a lead, missed.
    expect(log.leadId).not.toBeNull();
    await expectRejected(via, await place(via, { to: A_CAMPAIGN, from: "+12125550004" }), "over_capacity");
    // The tenant's other number is not capped.
    await expectDispatched(via, await place(via, { to: A_PLAIN, from: "+12125550005" }), ACME_DEFAULT, null);

    await endCall(via, first);
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550006" }), CAMPAIGN_AGENT, null);
    await expectRejected(via, await place(via, { to: A_CAMPAIGN, from: "+12125550007" }), "over_capacity");
  });

  test("overflow transfer: a call past the cap is transferred, reason over_capacity", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 1, { action: "transfer", transfer_to: TRANSFER_TO }));
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550001" }), CAMPAIGN_AGENT, null);
    await expectTransferred(via, await place(via, { to: A_CAMPAIGN, from: "+12125550002" }), TRANSFER_TO, "over_capacity");
  });

  test("overflow dispatch: a call past the cap goes to the overflow agent (agent_source overflow) and holds no slot", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 1, { action: "dispatch", agent_id: await idOf("agents", OVERFLOW_AGENT) }));
    const first = await place(via, { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched(via, first, CAMPAIGN_AGENT, null);
    const overflowed = await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550002" }), OVERFLOW_AGENT, "over_capacity");
    expect(overflowed.agentSource).toBe("overflow");
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550003" }), OVERFLOW_AGENT, "over_capacity");
    // Only the admitted call held the slot: once it ends, the next call is admitted although two overflow calls still ring.
    await endCall(via, first);
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550004" }), CAMPAIGN_AGENT, null);
  });

  test("a call id repeated keeps its first outcome and is not counted twice", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 2));
    const first = await place(via, { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched(via, first, CAMPAIGN_AGENT, null);
    // The same call again (a retried request, a second delivery): still dispatched, one call log.
    const again = await place(via, { to: A_CAMPAIGN, from: "+12125550001", call: first.call });
    expect(again.status).toBe(200);
    if (via === "sip-inbound") expect(again.body).toMatchObject({ action: "dispatch", agent_name: CAMPAIGN_AGENT, reason: null });
    expect(await callLogRows(ctx)).toHaveLength(1);
    // Counted once: a second call still fits under the cap of 2.
    const second = await place(via, { to: A_CAMPAIGN, from: "+12125550002" });
    await expectDispatched(via, second, CAMPAIGN_AGENT, null);
    // Full now: the first call repeated still keeps its dispatch, not an overflow.
    const firstThird = await place(via, { to: A_CAMPAIGN, from: "+12125550001", call: first.call });
    if (via === "sip-inbound") expect(firstThird.body).toMatchObject({ action: "dispatch", agent_name: CAMPAIGN_AGENT, reason: null });
    expect((await callLog(ctx, first.call.callId)).outcome).toBe("dispatched");
    const third = await place(via, { to: A_CAMPAIGN, from: "+12125550003" });
    await expectRejected(via, third, "over_capacity");
    // A slot frees up; the overflowed call, repeated, stays rejected and does not take it.
    await endCall(via, first);
    if (via === "livekit") fake.reset();
    const thirdAgain = await place(via, { to: A_CAMPAIGN, from: "+12125550003", call: third.call });
    if (via === "sip-inbound") expect(thirdAgain.body).toMatchObject({ action: "reject", reason: "over_capacity" });
    else expect(fake.agentDispatches(third.call.room)).toEqual([]);
    expect((await callLog(ctx, third.call.callId)).outcome).toBe("rejected");
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550004" }), CAMPAIGN_AGENT, null);
  });

  test("a call older than MAX_CALL_DURATION_S no longer holds a slot", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 1));
    const first = await place(via, { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched(via, first, CAMPAIGN_AGENT, null);
    await expectRejected(via, await place(via, { to: A_CAMPAIGN, from: "+12125550002" }), "over_capacity");
    // Its end never arrived: a minute short of the limit it still counts...
    const limit = ctx.config.maxCallDurationS;
    await ctx.database.rows(sql`update call_logs set created_at = now() - make_interval(secs => ${limit - 60}) where provider_call_id = ${first.call.callId}`);
    await expectRejected(via, await place(via, { to: A_CAMPAIGN, from: "+12125550003" }), "over_capacity");
    // ...past the limit it does not.
    await ctx.database.rows(sql`update call_logs set created_at = now() - make_interval(secs => ${limit + 60}) where provider_call_id = ${first.call.callId}`);
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550004" }), CAMPAIGN_AGENT, null);
  });

  test("a call routed after hours is not held to the cap and holds no slot", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "dispatch", agent_id: await idOf("agents", NIGHT_AGENT) });
    await setPolicies(numberCap(A_CAMPAIGN, 1), numberSchedule(A_CAMPAIGN, schedule));
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550001" }), NIGHT_AGENT, "after_hours");
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550002" }), NIGHT_AGENT, "after_hours");
    await setPolicies(numberSchedule(A_CAMPAIGN, null));
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550003" }), CAMPAIGN_AGENT, null);
  });
});

describe.each(VIAS)("a tenant's concurrency cap (%s)", (via) => {
  test("capped at 2 across its numbers; another tenant's calls do not count", async () => {
    await setPolicies(sql`update tenants set max_concurrent_calls = 2 where name = 'Acme'`);
    const first = await place(via, { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched(via, first, CAMPAIGN_AGENT, null);
    await expectDispatched(via, await place(via, { to: B_NUMBER, from: "+12125550002" }), BETA_DEFAULT, null);
    await expectDispatched(via, await place(via, { to: A_PLAIN, from: "+12125550003" }), ACME_DEFAULT, null);
    await expectRejected(via, await place(via, { to: A_CAMPAIGN, from: "+12125550004" }), "over_capacity");
    await expectRejected(via, await place(via, { to: A_PLAIN, from: "+12125550005" }), "over_capacity");
    await expectDispatched(via, await place(via, { to: B_NUMBER, from: "+12125550006" }), BETA_DEFAULT, null);
    await endCall(via, first);
    await expectDispatched(via, await place(via, { to: A_PLAIN, from: "+12125550007" }), ACME_DEFAULT, null);
  });

  test("the tenant's overflow applies past the tenant's cap; the number's cap is checked first, with its own overflow", async () => {
    await setPolicies(
      sql`update tenants set max_concurrent_calls = 2, overflow = ${JSON.stringify({ action: "transfer", transfer_to: TRANSFER_TO })}::jsonb where name = 'Acme'`,
      numberCap(A_CAMPAIGN, 1, { action: "dispatch", agent_id: await idOf("agents", OVERFLOW_AGENT) }),
    );
    const first = await place(via, { to: A_PLAIN, from: "+12125550001" });
    await expectDispatched(via, first, ACME_DEFAULT, null);
    await expectDispatched(via, await place(via, { to: A_PLAIN, from: "+12125550002" }), ACME_DEFAULT, null);
    // The tenant is full, the number A_CAMPAIGN is not: the tenant's overflow, also on a number with a cap of its own.
    await expectTransferred(via, await place(via, { to: A_CAMPAIGN, from: "+12125550003" }), TRANSFER_TO, "over_capacity");
    await expectTransferred(via, await place(via, { to: A_PLAIN, from: "+12125550004" }), TRANSFER_TO, "over_capacity");
    await endCall(via, first);
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550005" }), CAMPAIGN_AGENT, null);
    // Both the number and the tenant are full: the number's cap is checked first, its overflow applies.
    await expectDispatched(via, await place(via, { to: A_CAMPAIGN, from: "+12125550006" }), OVERFLOW_AGENT, "over_capacity");
    await expectTransferred(via, await place(via, { to: A_PLAIN, from: "+12125550007" }), TRANSFER_TO, "over_capacity");
  });

  test("calls arriving at the same moment: never more admitted than the cap", async () => {
    await setPolicies(sql`update tenants set max_concurrent_calls = 3 where name = 'Acme'`, numberCap(A_CAMPAIGN, 2));
    const callers = Array.from({ length: 8 }, (_, i) => `+1212555${String(1000 + i)}`);
    const placed = await Promise.all(callers.map((from, i) => place(via, { to: i % 2 ? A_PLAIN : A_CAMPAIGN, from })));
    expect(placed.map((p) => p.status)).toEqual(callers.map(() => 200));
    const logs = await callLogRows(ctx);
    expect(logs).toHaveLength(8);
    const admitted = logs.filter((l) => l.outcome === "dispatched" && l.outcomeReason === null);
    const campaignId = (await ctx.database.rows<{ campaign_id: string }>(sql`select campaign_id from phone_numbers where e164 = ${A_CAMPAIGN}`))[0]!.campaign_id;
    expect(admitted).toHaveLength(3);
    expect(admitted.filter((l) => l.campaignId === campaignId).length).toBeLessThanOrEqual(2);
    expect(logs.filter((l) => l.outcome === "rejected").map((l) => l.outcomeReason)).toEqual(Array(5).fill("over_capacity"));
    if (via === "livekit") {
      expect(fake.agentDispatches()).toHaveLength(3);
      expect(fake.removedParticipants()).toHaveLength(5);
    } else {
      expect(placed.filter((p) => p.body.action === "dispatch")).toHaveLength(3);
    }
  });
});

describe("caps on LiveKit: the end of a call frees its slot", () => {
  test("room_finished ends the room's call, and a new call is admitted", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 1));
    const first = await place("livekit", { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched("livekit", first, CAMPAIGN_AGENT, null);
    await expectRejected("livekit", await place("livekit", { to: A_CAMPAIGN, from: "+12125550002" }), "over_capacity");
    await deliver(roomFinished({ room: first.call.room }));
    expect((await callLog(ctx, first.call.callId)).endedAt).not.toBeNull();
    await expectDispatched("livekit", await place("livekit", { to: A_CAMPAIGN, from: "+12125550003" }), CAMPAIGN_AGENT, null);
  });

  test("a call admitted by sip-inbound holds its slot once, also when its LiveKit join arrives", async () => {
    await setPolicies(numberCap(A_CAMPAIGN, 2));
    const decided = await place("sip-inbound", { to: A_CAMPAIGN, from: "+12125550001" });
    await expectDispatched("sip-inbound", decided, CAMPAIGN_AGENT, null);
    await expectDispatched("livekit", await place("livekit", { to: A_CAMPAIGN, from: "+12125550001", call: decided.call }), CAMPAIGN_AGENT, null);
    await expectDispatched("livekit", await place("livekit", { to: A_CAMPAIGN, from: "+12125550002" }), CAMPAIGN_AGENT, null);
    await expectRejected("livekit", await place("livekit", { to: A_CAMPAIGN, from: "+12125550003" }), "over_capacity");
    expect(await callLogRows(ctx)).toHaveLength(3);
  });
});

describe("LiveKit hand-off failures", () => {
  test("a removal LiveKit refuses is answered 503; the same delivery again removes the caller, the rejection recorded once", async () => {
    await setPolicies(block(CALLER, null));
    const call = newCall({ to: A_CAMPAIGN });
    const delivery = await sipCallerJoins(fake, call);
    fake.failNext("RemoveParticipant");
    const refused = await postEvent(ctx, delivery);
    expect(refused.status).toBe(503);
    expect(fake.participants(call.room)).toHaveLength(1);
    const again = await postEvent(ctx, delivery);
    expect(again.status).toBe(200);
    expect(fake.participants(call.room)).toEqual([]);
    expect(fake.removedParticipants(call.room)).toMatchObject([{ cause: "RemoveParticipant" }]);
    expect(fake.agentDispatches(call.room)).toEqual([]);
    const logs = await callLogRows(ctx);
    expect(logs.map((l) => [l.providerCallId, l.outcome, l.outcomeReason, l.status])).toEqual([[call.callId, "rejected", "blocklist", "failed"]]);
  });

  test("a transfer dial LiveKit refuses: the webhook is answered 200, the caller removed, the call log says TRANSFER_FAILED", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "transfer", transfer_to: TRANSFER_TO });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    fake.failNext("CreateSIPParticipant");
    const placed = await place("livekit", { to: A_CAMPAIGN });
    expect(placed.status).toBe(200);
    expect(fake.calls("CreateSIPParticipant").map((c) => c.status)).toEqual([503]);
    expect(fake.agentDispatches(placed.call.room)).toEqual([]);
    // Not left ringing with no one to answer: the caller hears the call end.
    expect(fake.removedParticipants(placed.call.room)).toMatchObject([{ cause: "RemoveParticipant" }]);
    const log = await callLog(ctx, placed.call.callId);
    expect(log).toMatchObject({ outcome: "transferred", transferTo: TRANSFER_TO, status: "failed", disconnectReason: "TRANSFER_FAILED" });
    expect(log.metadata.transfer_error).toEqual(expect.any(String));
  });

  test("the caller of a transferred call hangs up: the dialed destination is removed from the room too", async () => {
    const schedule = await acmeSchedule("Day", "closed", { action: "transfer", transfer_to: TRANSFER_TO });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    const placed = await place("livekit", { to: A_CAMPAIGN });
    expect(fake.participants(placed.call.room).map((p) => p.identity)).toContain(`transfer-${placed.call.callId}`);
    await deliver(sipParticipantLeft({ room: placed.call.room, callId: placed.call.callId }));
    expect(fake.removedParticipants(placed.call.room).map((r) => [r.identity, r.cause])).toEqual([
      [`transfer-${placed.call.callId}`, "RemoveParticipant"],
    ]);
  });
});

describe("transfers over LiveKit: one dial per call, and a destination that does not answer", () => {
  async function transferAfterHours() {
    const schedule = await acmeSchedule("Day", "closed", { action: "transfer", transfer_to: TRANSFER_TO });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
  }

  test("sip-inbound decided the transfer, then LiveKit's join of the same call arrives, twice: the destination is dialed once", async () => {
    await transferAfterHours();
    const call = newCall({ to: A_CAMPAIGN });
    const decided = await place("sip-inbound", { to: A_CAMPAIGN, call });
    expect(decided.body).toMatchObject({ action: "transfer", transfer_to: TRANSFER_TO });
    const delivery = await sipCallerJoins(fake, call);
    for (let i = 0; i < 2; i++) expect((await postEvent(ctx, delivery)).status).toBe(200);
    expect(fake.outboundCalls(call.room).map((c) => [c.number, c.identity])).toEqual([[TRANSFER_TO, `transfer-${call.callId}`]]);
    expect(fake.removedParticipants(call.room)).toEqual([]);
  });

  test("the destination does not answer: the caller is removed, the call fails with TRANSFER_FAILED", async () => {
    await transferAfterHours();
    const placed = await place("livekit", { to: A_CAMPAIGN });
    const [dialed] = fake.outboundCalls(placed.call.room);
    const caller = callerIdentity(placed.call)!;
    await deliver(
      sipParticipantLeft({ room: placed.call.room, callId: dialed!.sipCallId, outbound: true, identity: dialed!.identity, from: TRANSFER_TO, reason: "USER_UNAVAILABLE" }),
    );
    expect(fake.removedParticipants(placed.call.room).map((r) => [r.identity, r.cause])).toEqual([[caller, "RemoveParticipant"]]);
    const log = await callLog(ctx, placed.call.callId);
    expect(log).toMatchObject({ outcome: "transferred", status: "failed", disconnectReason: "TRANSFER_FAILED" });
    expect(log.endedAt).not.toBeNull();
  });
});

describe("a policy's agent that moved to another tenant", () => {
  test("a system-wide after-hours agent given to Beta no longer takes Acme's after-hours calls", async () => {
    await ctx.database.rows(sql`insert into agents (tenant_id, name) values (null, 'shared-night')`);
    const schedule = await acmeSchedule("Day", "closed", { action: "dispatch", agent_id: await idOf("agents", "shared-night") });
    await setPolicies(numberSchedule(A_CAMPAIGN, schedule));
    expect((await place("sip-inbound", { to: A_CAMPAIGN })).body).toMatchObject({ agent_name: "shared-night", reason: "after_hours" });
    await setPolicies(sql`update agents set tenant_id = (select id from tenants where name = 'Beta') where name = 'shared-night'`);
    // Acme's callers are not sent to Beta's agent: they get the agent they would have had, after hours.
    expect((await place("sip-inbound", { to: A_CAMPAIGN })).body).toMatchObject({ action: "dispatch", agent_name: CAMPAIGN_AGENT, reason: "after_hours" });
  });
});
