// Outbound webhooks' safety nets (issue 18): targets inside the network are refused unless
// allowed (server-side request forgery), an endpoint failing for WEBHOOK_DISABLE_AFTER is switched
// off, and a call recorded late from the journal still tells the endpoint.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { openDatabase, type Database } from "../src/db/client";
import { openJournal } from "../src/journal/journal";
import { createLogger } from "../src/logger";
import { forbiddenRange, sendWebhook } from "../src/webhooks/sender";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext, testEnv } from "./support/context";
import { acmeDirectory, CALLER, CAMPAIGN_AGENT, CAMPAIGN_NUMBER, SIP_INBOUND_PATH } from "./support/livekit-app";
import { startWebhookReceiver, type WebhookReceiver } from "./support/webhook-receiver";

const FAST = { WEBHOOK_DELIVERY: "true", WEBHOOK_POLL_INTERVAL: "20ms", WEBHOOK_TIMEOUT: "2s" };

let receiver: WebhookReceiver;
beforeAll(() => {
  receiver = startWebhookReceiver();
});
afterAll(() => receiver?.close());

/** An admin client and Acme's id, on a context seeded with acmeDirectory. */
async function acmeAdmin(ctx: TestContext): Promise<{ admin: AdminClient; tenantId: string }> {
  await ctx.seed(acmeDirectory);
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "webhooks-safety" });
  const [acme] = await ctx.database.rows<{ id: string }>(sql`select id from tenants where name = 'Acme'`);
  return { admin: adminClient(ctx, key), tenantId: acme!.id };
}

const sipCall = (ctx: TestContext, callId: string) =>
  ctx.post(SIP_INBOUND_PATH, { call_id: callId, from_number: CALLER, to_number: CAMPAIGN_NUMBER });

async function deliveriesWhen(admin: AdminClient, endpointId: string, predicate: (d: any[]) => boolean) {
  for (let i = 0; i < 600; i++) {
    const page = await admin.get(`/webhook-endpoints/${endpointId}/deliveries`);
    if (predicate(page.body.data)) return page.body.data as any[];
    await Bun.sleep(25);
  }
  throw new Error(`the deliveries never showed what was awaited: ${JSON.stringify((await admin.get(`/webhook-endpoints/${endpointId}/deliveries`)).body)}`);
}

describe("which targets may be sent to", () => {
  test.each([
    ["127.0.0.1", "loopback"],
    ["10.1.2.3", "private"],
    ["192.168.0.10", "private"],
    ["169.254.169.254", "linkLocal"],
    ["224.0.0.251", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["::1", "loopback"],
    ["fe80::1", "linkLocal"],
    ["fd00::1", "uniqueLocal"],
    ["::ffff:127.0.0.1", "loopback"],
    ["100.64.0.1", "carrierGradeNat"],
  ])("%s is refused (%s)", (address, range) => {
    expect(forbiddenRange(address)).toBe(range);
  });

  test.each(["8.8.8.8", "2606:4700:4700::1111"])("%s, a public address, is allowed", (address) => {
    expect(forbiddenRange(address)).toBeNull();
  });

  const message = { id: "msg_test", body: "{}", secrets: [`whsec_${Buffer.alloc(32, 1).toString("base64")}`] };
  test("a name resolving to a loopback address is refused where it is connected to, and nothing is sent", async () => {
    receiver.reset();
    const result = await sendWebhook(`http://localhost:${receiver.port}/hooks`, message, { timeoutMs: 2_000, allowPrivateTargets: false });
    expect(result.statusCode).toBeNull();
    expect(result.error).toMatch(/^refused target: localhost resolves to (127\.0\.0\.1|::1), a loopback address$/);
    expect(receiver.received).toHaveLength(0);
  });

  test("an address written in the URL is refused before any connection", async () => {
    receiver.reset();
    for (const host of ["127.0.0.1", "[::1]"]) {
      const result = await sendWebhook(`http://${host}:${receiver.port}/hooks`, message, { timeoutMs: 2_000, allowPrivateTargets: false });
      expect(result).toMatchObject({ statusCode: null, error: `refused target: ${host.replace(/[[\]]/g, "")} is a loopback address` });
    }
    expect(receiver.received).toHaveLength(0);
  });

  test("with WEBHOOK_ALLOW_PRIVATE_TARGETS the same loopback receiver is sent to", async () => {
    receiver.reset();
    const result = await sendWebhook(`http://localhost:${receiver.port}/hooks`, message, { timeoutMs: 2_000, allowPrivateTargets: true });
    expect(result).toMatchObject({ statusCode: 200, error: null });
    expect(receiver.received).toHaveLength(1);
  });

  describe("a server without the allow flag", () => {
    let ctx: TestContext;
    beforeAll(async () => {
      ctx = await openTestContext(FAST);
    }, 30_000);
    afterAll(() => ctx?.close());

    test("keeps trying a loopback endpoint's deliveries without ever reaching it, saying why on each attempt", async () => {
      receiver.reset();
      const { admin, tenantId } = await acmeAdmin(ctx);
      const created = await admin.post("/webhook-endpoints", { tenant_id: tenantId, url: receiver.url, events: ["call.started"] });
      expect(created.status).toBe(201);
      expect((await sipCall(ctx, "private-1")).status).toBe(200);
      const [delivery] = await deliveriesWhen(admin, created.body.id, (d) => d[0]?.attempts >= 1);
      expect(delivery).toMatchObject({ status: "pending", last_status_code: null, last_error: `refused target: 127.0.0.1 is a loopback address` });
      expect(receiver.received).toHaveLength(0);
    });
  });
});

describe("an endpoint failing for WEBHOOK_DISABLE_AFTER", () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await openTestContext({
      ...FAST,
      WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOK_RETRY_SCHEDULE: Array(20).fill("100ms").join(","),
      WEBHOOK_DISABLE_AFTER: "400ms",
    });
  }, 30_000);
  afterAll(() => ctx?.close());

  test("is disabled with the reason on the endpoint, and no more attempts are made", async () => {
    receiver.reset();
    receiver.fallback = 500;
    const { admin, tenantId } = await acmeAdmin(ctx);
    const created = await admin.post("/webhook-endpoints", { tenant_id: tenantId, url: receiver.url, events: ["call.started"] });
    expect((await sipCall(ctx, "failing-1")).status).toBe(200);
    let endpoint: any;
    for (let i = 0; i < 600 && endpoint?.enabled !== false; i++) {
      await Bun.sleep(25);
      endpoint = (await admin.get(`/webhook-endpoints/${created.body.id}`)).body;
    }
    expect(endpoint.enabled).toBe(false);
    expect(endpoint.disabled_reason).toMatch(/^failing since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ without a success$/);
    const attempts = receiver.received.length;
    expect(attempts).toBeGreaterThanOrEqual(3);
    await Bun.sleep(400);
    expect(receiver.received).toHaveLength(attempts);
  });
});

describe("a call recorded late, from the journal", () => {
  // As in outage.test.ts: every connection held by slow work, so the call's record is journaled.
  const env = testEnv({ DB_STATEMENT_TIMEOUT_MS: "300" });
  let database: Database;
  beforeAll(async () => {
    database = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: "memory://", poolMax: 2, statementTimeoutMs: 300 });
  }, 30_000);
  // The context's close() closes the database it was given; this is for a test that failed before.
  afterAll(() => database?.close().catch(() => undefined));

  test("reaches the endpoint once the journal is replayed, as call.started with its agent", async () => {
    receiver.reset();
    const dir = mkdtempSync(join(tmpdir(), "switchboard-webhook-journal-"));
    const journal = openJournal({ dir, logger: createLogger("silent") });
    const ctx = await openTestContext({ ...FAST, WEBHOOK_ALLOW_PRIVATE_TARGETS: "true", DB_STATEMENT_TIMEOUT_MS: "300" }, { database, journal });
    try {
      const { admin, tenantId } = await acmeAdmin(ctx);
      const created = await admin.post("/webhook-endpoints", { tenant_id: tenantId, url: receiver.url, events: ["call.started"] });
      expect(created.status).toBe(201);
      const release = Promise.withResolvers<void>();
      const holders: Promise<void>[] = [];
      for (let i = 0; i < (database.kind === "postgres" ? 2 : 1); i++) {
        const begun = Promise.withResolvers<void>();
        holders.push(database.db.transaction(async (tx) => {
          await tx.execute(sql`select 1`);
          begun.resolve();
          await release.promise;
        }));
        await begun.promise;
      }
      const res = await sipCall(ctx, "journaled-1");
      release.resolve();
      await Promise.all(holders);
      expect(await res.json()).toMatchObject({ agent_name: CAMPAIGN_AGENT, record: "pending" });
      const [webhook] = await receiver.waitFor((r) => r.length >= 1, 15_000);
      expect(webhook!.payload).toMatchObject({ type: "call.started", data: { provider_call_id: "journaled-1", agent_name: CAMPAIGN_AGENT } });
      expect(receiver.verifies(created.body.secret)).toBe(true);
    } finally {
      await ctx.close();
      await journal.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("a failed query in the log", () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await openTestContext();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  test("names the statement but not its parameters: a secret being written (rotate-secret) never reaches the log", async () => {
    const lines: string[] = [];
    const logger = createLogger("info", { write: (line: string) => void lines.push(line) });
    const secret = `whsec_${Buffer.alloc(24, 7).toString("base64")}`;
    const error = await ctx.database.db.execute(sql`select ${secret} as secret from no_such_table`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toContain(secret);

    logger.error({ err: error }, "query failed");
    const logged = JSON.parse(lines[0]!);
    expect(JSON.stringify(logged)).not.toContain(secret);
    expect(logged.err.message).toContain("no_such_table");
  });
});
