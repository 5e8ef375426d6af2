import { afterAll, beforeAll, expect, test } from "bun:test";
import { openTestContext, type TestContext } from "./support/context";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
});
afterAll(() => ctx.close());

test("the health endpoint lists the routes and sees the database", async () => {
  const res = await ctx.get("/api/v1/webhooks/health");
  expect(res.status).toBe(200);
  const body = (await res.json()) as { database: { reachable: boolean }; endpoints: string[] };
  expect(body.database.reachable).toBe(true);
  expect(body.endpoints).toContain("POST /api/v1/webhooks/livekit/sip-inbound");
});
