// Outbound webhooks (issue 18), as a tenant's receiver sees them: a loopback receiver that checks
// every signature with the `standardwebhooks` package. Calls come in as LiveKit's signed webhooks
// (stand-in LiveKit), so the events are those of real calls: routed, answered, hung up.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, adminClient } from "./support/admin";
import {
  acmeDirectory,
  answer,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  newCall,
  plus,
  postEvent,
  sipCallerJoinedEvent,
  TEST_KEYS,
  useLiveKitApp,
} from "./support/livekit-app";
import { agentJoined, signDelivery, sipParticipantLeft, type WebhookEvent } from "./support/livekit-events";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook-receiver";

const RETRY_MS = 60;
const { ctx, fake } = useLiveKitApp({
  seed: acmeDirectory,
  env: {
    WEBHOOK_DELIVERY: "true",
    WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOK_POLL_INTERVAL: "20ms",
    WEBHOOK_RETRY_SCHEDULE: `${RETRY_MS}ms,${RETRY_MS}ms,${RETRY_MS}ms,${RETRY_MS}ms`,
    WEBHOOK_TIMEOUT: "2s",
  },
});

let receiver: WebhookReceiver;
let admin: AdminClient;
let tenantId: string;

beforeAll(() => {
  receiver = startWebhookReceiver();
});
afterAll(() => receiver?.close());
beforeEach(async () => {
  receiver.reset();
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "webhooks" });
  admin = adminClient(ctx, key);
  const [acme] = await ctx.database.rows<{ id: string }>(sql`select id from tenants where name = 'Acme'`);
  tenantId = acme!.id;
});

async function createEndpoint(body: Record<string, unknown> = {}) {
  const answer = await admin.post("/webhook-endpoints", { tenant_id: tenantId, url: receiver.url, ...body });
  expect(answer.status).toBe(201);
  return answer.body as { id: string; secret: string; [key: string]: unknown };
}

async function deliver(event: WebhookEvent) {
  const res = await postEvent(ctx, await signDelivery(event, TEST_KEYS));
  expect({ status: res.status, body: await answer(res) }).toMatchObject({ status: 200 });
}

/** A call answered by its agent 2 s after the caller joined, hung up at 30 s. */
async function answeredAndHungUp() {
  const call = newCall();
  await deliver(sipCallerJoinedEvent(fake, call));
  await deliver(agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: plus(call.at, 2_000) }));
  await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 30_000), reason: "CLIENT_INITIATED" }));
  return call;
}

const callEvents = (callId: string) => receiver.received.filter((r) => r.payload.data.provider_call_id === callId);

/** A caller joining: its call is routed (call.started) and, for a new caller, a lead made. */
async function callerJoins(from?: string) {
  const call = newCall(from ? { from } : {});
  await deliver(sipCallerJoinedEvent(fake, call));
  return call;
}

async function deliveriesOf(endpointId: string) {
  const page = await admin.get(`/webhook-endpoints/${endpointId}/deliveries`);
  expect(page.status).toBe(200);
  return page.body.data as any[];
}

/** Polls the endpoint's deliveries until `predicate` holds (bounded), and returns them. */
async function deliveriesWhen(endpointId: string, predicate: (deliveries: any[]) => boolean, what: string) {
  for (let i = 0; i < 600; i++) {
    const deliveries = await deliveriesOf(endpointId);
    if (predicate(deliveries)) return deliveries;
    await Bun.sleep(25);
  }
  throw new Error(`the deliveries never showed ${what}: ${JSON.stringify(await deliveriesOf(endpointId))}`);
}

describe("a routed, answered and ended call", () => {
  test("reaches the endpoint as call.started, call.answered, call.ended, once each, in order, signed", async () => {
    const endpoint = await createEndpoint();
    const call = await answeredAndHungUp();
    await receiver.waitFor(() => callEvents(call.callId).length >= 3);
    await Bun.sleep(200);
    const events = callEvents(call.callId);
    expect(events.map((e) => e.payload.type)).toEqual(["call.started", "call.answered", "call.ended"]);
    expect(new Set(events.map((e) => e.id)).size).toBe(3);
    expect(receiver.verifies(endpoint.secret)).toBe(true);
    const [started, answered, ended] = events.map((e) => e.payload);
    expect(started!.data).toMatchObject({ agent_name: CAMPAIGN_AGENT, agent_source: "campaign", outcome: "dispatched", status: "ringing" });
    expect(answered!.data).toMatchObject({ status: "in_progress" });
    expect(ended!.data).toMatchObject({ status: "completed", duration_ms: 30_000, disconnect_reason: "CLIENT_INITIATED" });
    // The data is the call log as the admin API answers it.
    const log = await admin.get(`/call-logs/${ended!.data.id}`);
    expect(ended!.data).toEqual(log.body);
  });
});

describe("retries", () => {
  test("a receiver answering 500 three times, then 200, gets the event once more after recovery, with the same webhook-id", async () => {
    const endpoint = await createEndpoint({ events: ["call.started"] });
    receiver.answers = [500, 500, 500];
    const call = await callerJoins();
    await receiver.waitFor(() => callEvents(call.callId).length >= 4);
    await Bun.sleep(6 * RETRY_MS);
    const attempts = callEvents(call.callId);
    expect(attempts).toHaveLength(4);
    expect(new Set(attempts.map((a) => a.id)).size).toBe(1);
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    expect(receiver.verifies(endpoint.secret)).toBe(true);
    const [delivery] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "a delivered call.started");
    expect(delivery).toMatchObject({ webhook_id: attempts[0]!.id, event_type: "call.started", attempts: 4, last_status_code: 200, next_attempt_at: null });
    expect(delivery.attempt_log.map((a: any) => a.status_code)).toEqual([500, 500, 500, 200]);
  });

  test("a later event of the same call waits while an earlier one is retrying: the receiver sees them in order", async () => {
    await createEndpoint({ events: ["call.started", "call.answered", "call.ended"] });
    receiver.answers = [503, 503];
    const call = await answeredAndHungUp();
    await receiver.waitFor(() => callEvents(call.callId).some((e) => e.payload.type === "call.ended"));
    expect(callEvents(call.callId).map((e) => e.payload.type)).toEqual(["call.started", "call.started", "call.started", "call.answered", "call.ended"]);
  });

  test("a spent schedule leaves the delivery failed; a person's retry sends it again with the same webhook-id", async () => {
    const endpoint = await createEndpoint({ events: ["call.started"] });
    receiver.fallback = 500;
    const call = await callerJoins();
    const [failed] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "failed", "a failed delivery");
    // The first try and one per wait of the schedule.
    expect(failed.attempts).toBe(5);
    expect(callEvents(call.callId)).toHaveLength(5);
    receiver.fallback = 200;
    const retried = await admin.post(`/webhook-deliveries/${failed.id}/retry`);
    expect(retried.status).toBe(200);
    const [delivered] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "the retried delivery delivered");
    expect(delivered.attempts).toBe(6);
    expect(new Set(callEvents(call.callId).map((e) => e.id))).toEqual(new Set([failed.webhook_id]));
  });

  test("an answer slower than WEBHOOK_TIMEOUT is a failed attempt, tried again", async () => {
    const endpoint = await createEndpoint({ events: ["call.started"] });
    receiver.answers = [{ status: 200, delayMs: 2_500 }];
    await callerJoins();
    const [delivery] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "a delivered call.started");
    expect(delivery.attempt_log.map((a: any) => [a.status_code, a.error])).toEqual([
      [null, "timed out after 2000 ms"],
      [200, null],
    ]);
  });

  test("a redirect is not followed: it is a failed attempt, and the place it points to gets nothing", async () => {
    const elsewhere = startWebhookReceiver();
    try {
      const endpoint = await createEndpoint({ events: ["call.started"] });
      receiver.answers = [{ status: 307, headers: { location: elsewhere.url } }];
      await callerJoins();
      const [delivery] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "a delivered call.started");
      expect(delivery.attempt_log.map((a: any) => a.status_code)).toEqual([307, 200]);
      expect(elsewhere.received).toHaveLength(0);
    } finally {
      await elsewhere.close();
    }
  });

  test("a receiver answering 200 with an endless body is delivered: the body is read only so far", async () => {
    const endless = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () =>
        new Response(
          new ReadableStream({
            async pull(controller) {
              controller.enqueue(new Uint8Array(16 * 1024).fill(120));
              await Bun.sleep(1);
            },
          }),
        ),
    });
    try {
      const endpoint = await createEndpoint({ url: `http://127.0.0.1:${endless.port}/`, events: ["call.started"] });
      await callerJoins();
      const [delivery] = await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "a delivered call.started");
      expect(delivery.attempt_log).toMatchObject([{ status_code: 200, error: null }]);
    } finally {
      await endless.stop(true);
    }
  });
});

describe("endpoints switched off by what receivers say", () => {
  test("410 Gone disables the endpoint at once, saying why; later events are not sent", async () => {
    const endpoint = await createEndpoint();
    receiver.fallback = 410;
    await callerJoins();
    await receiver.waitFor((r) => r.length >= 1);
    let state: any;
    for (let i = 0; i < 100 && state?.enabled !== false; i++) {
      await Bun.sleep(20);
      state = (await admin.get(`/webhook-endpoints/${endpoint.id}`)).body;
    }
    expect(state).toMatchObject({ enabled: false, disabled_reason: "the receiver answered 410 Gone" });
    const before = receiver.received.length;
    await callerJoins("+12125550177");
    await Bun.sleep(300);
    expect(receiver.received).toHaveLength(before);
    // Enabled again by a person: the reason is gone and events flow.
    receiver.fallback = 200;
    const enabled = await admin.patch(`/webhook-endpoints/${endpoint.id}`, { enabled: true });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
    const call = await callerJoins("+12125550178");
    await receiver.waitFor(() => callEvents(call.callId).length === 1);
  });
});

describe("what an endpoint hears of", () => {
  test("only the event types it lists", async () => {
    await createEndpoint({ events: ["call.ended"] });
    const call = await answeredAndHungUp();
    await receiver.waitFor(() => callEvents(call.callId).length >= 1);
    await Bun.sleep(200);
    expect(receiver.received.map((r) => r.payload.type)).toEqual(["call.ended"]);
  });

  test("a new caller's lead.created, and lead.updated when a person changes the lead, with the lead as the admin API answers it", async () => {
    await createEndpoint({ events: ["lead.created", "lead.updated"] });
    await callerJoins("+12125550199");
    const [created] = await receiver.waitFor((r) => r.length >= 1);
    expect(created!.payload).toMatchObject({ type: "lead.created", data: { phone_number: "+12125550199" } });
    const leadId = created!.payload.data.id;
    const renamed = await admin.patch(`/leads/${leadId}`, { name: "Dana Scully" });
    expect(renamed.status).toBe(200);
    const received = await receiver.waitFor((r) => r.some((w) => w.payload.type === "lead.updated"));
    const updated = received.find((w) => w.payload.type === "lead.updated")!;
    expect(updated.payload.data).toEqual(renamed.body);
    expect(updated.payload.timestamp).toBe(renamed.body.updated_at);
  });

  test("a rejected call is call.rejected with its reason, and nothing more", async () => {
    await createEndpoint();
    const entry = await admin.post("/blocklist-entries", { tenant_id: tenantId, pattern: "+12125550166" });
    expect(entry.status).toBe(201);
    await ctx.directory.reload();
    const call = newCall({ from: "+12125550166" });
    await deliver(sipCallerJoinedEvent(fake, call));
    await receiver.waitFor(() => callEvents(call.callId).length >= 1);
    await Bun.sleep(200);
    expect(callEvents(call.callId).map((e) => [e.payload.type, e.payload.data.outcome_reason])).toEqual([["call.rejected", "blocklist"]]);
  });

  test("a transferred call is call.transferred with its destination, then call.ended when the caller leaves", async () => {
    await createEndpoint({ events: ["call.started", "call.transferred", "call.ended"] });
    // Closed all week: every call is after hours, and after hours go to the front desk.
    const schedule = await admin.post("/schedules", {
      tenant_id: tenantId,
      name: "Never open",
      time_zone: "UTC",
      weekly_hours: {},
      after_hours: { action: "transfer", transfer_to: "+14155550999" },
    });
    expect(schedule.status).toBe(201);
    const numbers = await admin.get(`/phone-numbers?number=${encodeURIComponent(CAMPAIGN_NUMBER)}`);
    expect((await admin.patch(`/phone-numbers/${numbers.body.data[0].id}`, { schedule_id: schedule.body.id })).status).toBe(200);
    await ctx.directory.reload();
    const call = newCall();
    await deliver(sipCallerJoinedEvent(fake, call));
    await deliver(sipParticipantLeft({ room: call.room, callId: call.callId, at: plus(call.at, 20_000), reason: "CLIENT_INITIATED" }));
    await receiver.waitFor(() => callEvents(call.callId).length >= 2);
    await Bun.sleep(200);
    expect(callEvents(call.callId).map((e) => [e.payload.type, e.payload.data.transfer_to, e.payload.data.outcome_reason])).toEqual([
      ["call.transferred", "+14155550999", "after_hours"],
      ["call.ended", "+14155550999", "after_hours"],
    ]);
  });

  test("another tenant's endpoint hears nothing of this tenant's calls", async () => {
    const other = startWebhookReceiver();
    try {
      const tenant = await admin.post("/tenants", { name: "Other Co" });
      const created = await admin.post("/webhook-endpoints", { tenant_id: tenant.body.id, url: other.url });
      expect(created.status).toBe(201);
      await createEndpoint({ events: ["call.started"] });
      const call = await callerJoins();
      await receiver.waitFor(() => callEvents(call.callId).length >= 1);
      await Bun.sleep(200);
      expect(other.received).toHaveLength(0);
    } finally {
      await other.close();
    }
  });
});

describe("secret rotation", () => {
  test("for 24 hours after a rotation, every webhook is signed with both secrets", async () => {
    const endpoint = await createEndpoint({ events: ["call.started"] });
    const rotated = await admin.post(`/webhook-endpoints/${endpoint.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toStartWith("whsec_");
    expect(rotated.body.secret).not.toBe(endpoint.secret);
    await callerJoins();
    const [webhook] = await receiver.waitFor((r) => r.length >= 1);
    expect(webhook!.signature.split(" ").map((s) => s.split(",")[0])).toEqual(["v1", "v1"]);
    expect(receiver.verifies(rotated.body.secret)).toBe(true);
    expect(receiver.verifies(endpoint.secret)).toBe(true);
    expect(receiver.verifies(`whsec_${Buffer.alloc(32, 7).toString("base64")}`)).toBe(false);
  });
});

describe("metrics", () => {
  test("attempts by outcome and the outbox's depth are on /metrics", async () => {
    const endpoint = await createEndpoint({ events: ["call.started"] });
    receiver.answers = [500];
    await callerJoins();
    await deliveriesWhen(endpoint.id, (d) => d[0]?.status === "delivered", "a delivered call.started");
    const text = await (await ctx.get("/metrics")).text();
    const value = (line: RegExp) => Number(text.match(line)?.[1] ?? Number.NaN);
    expect(value(/^switchboard_outbound_webhook_attempts_total\{outcome="retrying"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^switchboard_outbound_webhook_attempts_total\{outcome="delivered"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^switchboard_outbound_webhook_attempt_duration_seconds_count (\d+)/m)).toBeGreaterThanOrEqual(2);
    expect(value(/^switchboard_outbox_depth (\d+)/m)).toBe(0);
  });
});
