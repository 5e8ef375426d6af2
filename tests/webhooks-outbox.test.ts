// The outbox's bookkeeping (issue 18): how long deliveries are kept, when a failed one is tried
// again, that an event exists only with the change it reports, and an https target's certificate.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { createApiKey } from "../src/admin/keys";
import { claimDue, forgetOld, recordAttempt } from "../src/webhooks/outbox";
import { sendWebhook } from "../src/webhooks/sender";
import { nextAttemptAt, RETENTION_MS } from "../src/webhooks/worker";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { acmeDirectory, CALLER, CAMPAIGN_NUMBER, SIP_INBOUND_PATH } from "./support/livekit-app";

let ctx: TestContext;
let admin: AdminClient;
let tenantId: string;

beforeAll(async () => {
  ctx = await openTestContext();
}, 30_000);
afterAll(() => ctx?.close());
beforeEach(async () => {
  await ctx.reset();
  await ctx.seed(acmeDirectory);
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "webhooks-outbox" });
  admin = adminClient(ctx, key);
  const [acme] = await ctx.database.rows<{ id: string }>(sql`select id from tenants where name = 'Acme'`);
  tenantId = acme!.id;
});

const count = async (table: string) =>
  Number((await ctx.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.raw(table)}`))[0]!.n);

async function endpointWithDeliveries(calls: number, events: string[] = ["call.started"]) {
  const endpoint = await admin.post("/webhook-endpoints", { tenant_id: tenantId, url: "https://crm.example.com/hooks", events });
  expect(endpoint.status).toBe(201);
  for (let i = 0; i < calls; i++) {
    const res = await ctx.post(SIP_INBOUND_PATH, { call_id: `outbox-${i}`, from_number: CALLER, to_number: CAMPAIGN_NUMBER });
    expect(res.status).toBe(200);
  }
  return endpoint.body as { id: string };
}

describe("retention", () => {
  test("deliveries past 30 days are forgotten with their attempts and events; pending ones are kept whatever their age", async () => {
    await endpointWithDeliveries(3);
    const ids = (await ctx.database.rows<{ id: string }>(sql`select id from webhook_deliveries order by created_at`)).map((r) => r.id);
    expect(ids).toHaveLength(3);
    const [oldDelivered, oldPending] = ids;
    const old = sql`now() - ${RETENTION_MS + 3_600_000} * interval '1 millisecond'`;
    await ctx.database.rows(sql`update webhook_deliveries set status = 'delivered', attempts = 1, created_at = ${old} where id = ${oldDelivered}`);
    await ctx.database.rows(sql`insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms) values (${oldDelivered}, 1, 200, 5)`);
    await ctx.database.rows(sql`update webhook_deliveries set created_at = ${old} where id = ${oldPending}`);
    await ctx.database.rows(sql`update outbox_events set created_at = ${old}`);

    await forgetOld(ctx.database, RETENTION_MS);
    const left = (await ctx.database.rows<{ id: string }>(sql`select id from webhook_deliveries`)).map((r) => r.id);
    expect(left.sort()).toEqual(ids.slice(1).sort());
    expect(await count("webhook_attempts")).toBe(0);
    // The forgotten delivery's event went with it; the others' stay while their deliveries do.
    expect(await count("outbox_events")).toBe(2);
  });
});

describe("an event exists only with the change it reports", () => {
  test("a lead change that is rolled back leaves no event and no delivery", async () => {
    await endpointWithDeliveries(1, []);
    const before = await count("webhook_deliveries");
    await ctx.database.db
      .transaction(async (tx) => {
        await tx.execute(sql`update leads set name = 'Rolled Back'`);
        throw new Error("roll back");
      })
      .catch(() => undefined);
    expect(await count("webhook_deliveries")).toBe(before);
    expect(await count("outbox_events")).toBe(before);
    // The same change committed: one lead.updated.
    await ctx.database.rows(sql`update leads set name = 'Kept'`);
    expect(await count("webhook_deliveries")).toBe(before + 1);
  });

  test("a tenant with no endpoint gets no outbox rows at all", async () => {
    const res = await ctx.post(SIP_INBOUND_PATH, { call_id: "no-endpoint", from_number: CALLER, to_number: CAMPAIGN_NUMBER });
    expect(res.status).toBe(200);
    expect(await count("outbox_events")).toBe(0);
  });
});

describe("the retry schedule", () => {
  test("the n-th failure waits the schedule's n-th step, within ±10%; past the schedule, no more tries", () => {
    const now = new Date("2026-12-01T00:00:00Z");
    const schedule = [5_000, 300_000];
    expect(nextAttemptAt(1, schedule, now, () => 0)!.getTime() - now.getTime()).toBe(4_500);
    expect(nextAttemptAt(1, schedule, now, () => 1)!.getTime() - now.getTime()).toBe(5_500);
    expect(nextAttemptAt(2, schedule, now, () => 0.5)!.getTime() - now.getTime()).toBe(300_000);
    expect(nextAttemptAt(3, schedule, now)).toBeNull();
  });
});

describe("an https target", () => {
  let dir: string;
  let server: ReturnType<typeof Bun.serve> | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "switchboard-tls-"));
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      { stderr: "pipe" },
    );
    if (made.exitCode !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") },
      fetch: () => new Response(null, { status: 204 }),
    });
  });
  afterAll(async () => {
    await server?.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  test("whose certificate no authority signed is a failed attempt that says so, not a delivery", async () => {
    const message = { id: "msg_tls", body: "{}", secrets: [`whsec_${Buffer.alloc(32, 2).toString("base64")}`] };
    const result = await sendWebhook(`https://localhost:${server!.port}/hooks`, message, { timeoutMs: 5_000, allowPrivateTargets: true });
    expect(result.statusCode).toBeNull();
    expect(result.error).toMatch(/self[- ]signed|certificate/i);
  });
});

describe("claims and their records", () => {
  const SETTINGS = { disableAfterMs: 24 * 3_600_000 };
  const failure = { statusCode: 500, latencyMs: 5, error: "500 Internal Server Error", nextAttemptAt: new Date(Date.now() + 60_000), delivered: false, gone: false };
  const attemptsRecorded = () => count("webhook_attempts");

  test("a worker whose claim lapsed and was taken over records nothing: the attempt counts once, by the worker that holds it", async () => {
    await endpointWithDeliveries(1);
    const [lost] = await claimDue(ctx.database, 1, 10);
    await Bun.sleep(30);
    const [taken] = await claimDue(ctx.database, 1, 60_000);
    expect(taken?.id).toBe(lost!.id);

    expect(await recordAttempt(ctx.database, { deliveryId: lost!.id, lease: lost!.lease, ...failure, ...SETTINGS })).toBeUndefined();
    expect(await attemptsRecorded()).toBe(0);
    expect(await recordAttempt(ctx.database, { deliveryId: taken!.id, lease: taken!.lease, ...failure, ...SETTINGS })).toEqual({ disabledReason: null });
    expect(await attemptsRecorded()).toBe(1);
  });

  test("a person's retry of a delivery whose attempt is in flight is refused (409), and taken once that attempt is recorded", async () => {
    const endpoint = await endpointWithDeliveries(1);
    const [claimed] = await claimDue(ctx.database, 1, 60_000);
    const refused = await admin.post(`/webhook-deliveries/${claimed!.id}/retry`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain("in flight");

    await recordAttempt(ctx.database, { deliveryId: claimed!.id, lease: claimed!.lease, ...failure, ...SETTINGS });
    const retried = await admin.post(`/webhook-deliveries/${claimed!.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: "pending", attempts: 1 });
    const [again] = await claimDue(ctx.database, 1, 60_000);
    expect(again?.id).toBe(claimed!.id);
    expect((await admin.get(`/webhook-endpoints/${endpoint.id}`)).body.enabled).toBe(true);
  });

  // On the embedded database's one connection the claim runs in the session set here; a pool's
  // other connections would not have the setting.
  test.skipIf(Boolean(process.env.DATABASE_URL))("the event's time is sent as ISO 8601 whatever the database session's DateStyle", async () => {
    await endpointWithDeliveries(1);
    const [event] = await ctx.database.rows<{ at: string }>(sql`select to_json(occurred_at)#>>'{}' as at from outbox_events`);
    await ctx.database.rows(sql`set datestyle = 'SQL, DMY'`);
    try {
      const [claimed] = await claimDue(ctx.database, 1, 60_000);
      expect(new Date(claimed!.occurred_at).getTime()).toBe(new Date(event!.at).getTime());
      expect(claimed!.occurred_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/);
    } finally {
      await ctx.database.rows(sql`set datestyle = 'ISO, MDY'`);
    }
  });

  test.skipIf(!process.env.DATABASE_URL)(
    "a failure recorded while a success is being recorded does not put back the old failing_since, and does not disable the endpoint (PostgreSQL)",
    async () => {
      const endpoint = await endpointWithDeliveries(1);
      // Failing for 25 hours: one more failure, read from a stale failing_since, would disable it.
      await ctx.database.rows(sql`update webhook_endpoints set failing_since = now() - interval '25 hours' where id = ${endpoint.id}`);
      const [claimed] = await claimDue(ctx.database, 1, 60_000);
      const pg = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      const held = await pg.reserve();
      try {
        // Another worker's success, not yet committed, holds the endpoint's row.
        await held`begin`;
        await held`update webhook_endpoints set failing_since = null where id = ${endpoint.id}`;
        const recording = recordAttempt(ctx.database, { deliveryId: claimed!.id, lease: claimed!.lease, ...failure, ...SETTINGS });
        await Bun.sleep(300);
        await held`commit`;
        expect(await recording).toEqual({ disabledReason: null });
      } finally {
        held.release();
        await pg.end();
      }
      const after = await admin.get(`/webhook-endpoints/${endpoint.id}`);
      expect(after.body).toMatchObject({ enabled: true, disabled_reason: null });
      expect(Date.now() - new Date(after.body.failing_since).getTime()).toBeLessThan(60_000);
    },
  );
});
