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
