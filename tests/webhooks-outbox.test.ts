// The outbox's bookkeeping (issue 18): how long deliveries are kept, when a failed one is tried
// again, that an event exists only with the change it reports, and an https target's certificate.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { forgetOld } from "../src/webhooks/outbox";
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
