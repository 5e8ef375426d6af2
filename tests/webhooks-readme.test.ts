// The README's webhook receiver, run as written: its code block is copied out of the README and
// started as its own Bun process with the secret an endpoint was created with. Switchboard's
// webhooks for a real call must verify there and be printed once each; a forged one must not.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import { type AdminClient, adminClient } from "./support/admin";
import { openTestContext, type TestContext } from "./support/context";
import { freePort } from "./support/disposable-postgres";
import { acmeDirectory, CALLER, CAMPAIGN_NUMBER, SIP_INBOUND_PATH } from "./support/livekit-app";

const README = await Bun.file(new URL("../README.md", import.meta.url)).text();

/** The receiver's code: the ts block of "Webhooks to your systems". */
function receiverCode(): string {
  const section = README.slice(README.indexOf("## Webhooks to your systems"));
  const start = section.indexOf("```ts") + 5;
  return section.slice(start, section.indexOf("```", start));
}

let ctx: TestContext;
let admin: AdminClient;
let dir: string;
let receiver: ReturnType<typeof Bun.spawn> | undefined;
const printed: string[] = [];

beforeAll(async () => {
  // A short timeout keeps claims short: an attempt whose record failed on a loaded machine is taken
  // over when its claim lapses (twice the timeout), well within the waits below.
  ctx = await openTestContext({ WEBHOOK_DELIVERY: "true", WEBHOOK_ALLOW_PRIVATE_TARGETS: "true", WEBHOOK_POLL_INTERVAL: "20ms", WEBHOOK_TIMEOUT: "2s" });
  await ctx.seed(acmeDirectory);
  const { key } = await createApiKey(ctx.database.db, { tenantId: null, label: "webhooks-readme" });
  admin = adminClient(ctx, key);
  // Inside node_modules, so that the receiver's `import "standardwebhooks"` resolves as in a project that installed it.
  dir = mkdtempSync(join(import.meta.dir, "..", "node_modules", ".readme-receiver-"));
}, 30_000);
afterAll(async () => {
  receiver?.kill();
  await ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function startReceiver(secret: string, port: number) {
  writeFileSync(join(dir, "receiver.ts"), receiverCode());
  receiver = Bun.spawn([process.execPath, join(dir, "receiver.ts")], {
    env: { ...process.env, WEBHOOK_SECRET: secret, PORT: String(port) },
    stdout: "pipe",
    stderr: "inherit",
  });
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of receiver!.stdout as ReadableStream<Uint8Array>) printed.push(...decoder.decode(chunk).split("\n").filter(Boolean));
  })();
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}" }).then(() => true, () => false);
    if (up) return;
    await Bun.sleep(50);
  }
  throw new Error("the README's receiver did not start listening");
}

async function until(predicate: () => boolean, what: string) {
  for (let i = 0; i < 600 && !predicate(); i++) await Bun.sleep(25);
  if (!predicate()) throw new Error(`never saw ${what}; the receiver printed: ${printed.join(" | ") || "nothing"}`);
}

test("the README's receiver verifies and prints each of a call's events once, and refuses a forged one", async () => {
  const port = await freePort();
  const [acme] = await ctx.database.rows<{ id: string }>(sql`select id from tenants where name = 'Acme'`);
  const endpoint = await admin.post("/webhook-endpoints", { tenant_id: acme!.id, url: `http://127.0.0.1:${port}/switchboard` });
  expect(endpoint.status).toBe(201);
  await startReceiver(endpoint.body.secret, port);

  const res = await ctx.post(SIP_INBOUND_PATH, { call_id: "readme-webhook-1", from_number: CALLER, to_number: CAMPAIGN_NUMBER });
  expect(res.status).toBe(200);
  const log = await admin.get("/call-logs/by-call-id/readme-webhook-1");
  await until(() => printed.length >= 2, "call.started and lead.created");
  expect(printed.sort()).toEqual([`call.started ${log.body.id}`, `lead.created ${log.body.lead_id}`].sort());

  // A delivery sent again carries the same webhook-id: verified, acknowledged, not printed twice.
  // Retried once its attempt is recorded (a retry while it is in flight is refused, 409).
  let first: any;
  for (let i = 0; i < 600 && first?.status !== "delivered"; i++) {
    if (i > 0) await Bun.sleep(25);
    first = (await admin.get(`/webhook-endpoints/${endpoint.body.id}/deliveries`)).body.data[0];
  }
  expect(first).toMatchObject({ status: "delivered", attempts: 1 });
  expect((await admin.post(`/webhook-deliveries/${first.id}/retry`)).status).toBe(200);
  for (let i = 0; i < 600; i++) {
    const again = await admin.get(`/webhook-endpoints/${endpoint.body.id}/deliveries`);
    if (again.body.data.find((d: any) => d.id === first.id)?.attempts === 2) break;
    await Bun.sleep(25);
  }
  const retried = (await admin.get(`/webhook-endpoints/${endpoint.body.id}/deliveries`)).body.data.find((d: any) => d.id === first.id);
  expect(retried).toMatchObject({ status: "delivered", attempts: 2, last_status_code: 204 });
  expect(printed).toHaveLength(2);

  // Signed with another secret: refused.
  const forged = await fetch(`http://127.0.0.1:${port}/switchboard`, {
    method: "POST",
    headers: { "webhook-id": "msg_forged", "webhook-timestamp": String(Math.floor(Date.now() / 1000)), "webhook-signature": "v1,AAAA" },
    body: JSON.stringify({ type: "call.started", timestamp: new Date().toISOString(), data: { id: "x" } }),
  });
  expect(forged.status).toBe(400);
  expect(printed).toHaveLength(2);
}, 30_000);
