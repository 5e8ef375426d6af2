// `curl -d '{"call_id": ...}'` sends the JSON as application/x-www-form-urlencoded; other clients
// send text/plain. Every endpoint takes JSON, so such a body gets a 415 naming the content type,
// not a confusing validation error about fields, and nothing is written.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { rowsOf } from "../src/db/client";
import { callLogs, leads } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import { acmeDirectory, CALLER, CAMPAIGN_AGENT, CAMPAIGN_NUMBER, SIP_INBOUND_PATH } from "./support/livekit-app";

const TEST_CALL = "/api/v1/webhooks/test";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
});
afterAll(async () => {
  await ctx?.close();
});
beforeEach(async () => {
  await ctx.reset();
  await ctx.seed(acmeDirectory);
});

const body = (callId: string) => JSON.stringify({ call_id: callId, to_number: CAMPAIGN_NUMBER, from_number: CALLER });

/** POSTs `payload` with exactly the content type given (none when null). */
function postAs(path: string, payload: string, contentType: string | null) {
  const headers: Record<string, string> = contentType === null ? {} : { "content-type": contentType };
  // Bytes, not a string: a string body would get text/plain added by Request itself.
  return ctx.app.handle(new Request(`http://localhost${path}`, { method: "POST", headers, body: new TextEncoder().encode(payload) }));
}

async function expectNothingWritten() {
  expect(await ctx.database.db.select().from(callLogs)).toHaveLength(0);
  expect(await ctx.database.db.select().from(leads)).toHaveLength(0);
}

const notJson: Array<[string, string | null]> = [
  ["application/x-www-form-urlencoded (curl -d)", "application/x-www-form-urlencoded"],
  ["text/plain", "text/plain"],
  ["text/plain;charset=UTF-8", "text/plain;charset=UTF-8"],
  ["no content type at all", null],
];

describe("a JSON text sent as something other than JSON", () => {
  for (const [name, contentType] of notJson) {
    test(`sip-inbound, ${name}: 415 naming content-type; nothing written`, async () => {
      const res = await postAs(SIP_INBOUND_PATH, body(`ct-${crypto.randomUUID()}`), contentType);
      expect(res.status).toBe(415);
      const answer = ((await res.json()) as { error: { code: string; message: string; details: { field: string } } }).error;
      expect(answer.code).toBe("unsupported_media_type");
      expect(answer.details.field).toBe("content-type");
      expect(answer.message).toContain("content-type");
      expect(answer.message).toContain("application/json");
      if (contentType) expect(answer.message).toContain(contentType.split(";")[0]!);
      await expectNothingWritten();
    });
  }

  test("the test endpoint answers a curl -d body the same way", async () => {
    const res = await postAs(TEST_CALL, JSON.stringify({ to_number: CAMPAIGN_NUMBER }), "application/x-www-form-urlencoded");
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { details: { field: string } } }).error.details.field).toBe("content-type");
    await expectNothingWritten();
  });

  test("the same body as application/json is routed and recorded (the control)", async () => {
    const callId = `ct-${crypto.randomUUID()}`;
    const res = await postAs(SIP_INBOUND_PATH, body(callId), "application/json");
    expect(res.status).toBe(200);
    expect(((await res.json()) as Record<string, string>).agent_name).toBe(CAMPAIGN_AGENT);
    const rows = rowsOf<{ provider_call_id: string }>(await ctx.database.db.execute(sql`select provider_call_id from call_logs`));
    expect(rows.map((r) => r.provider_call_id)).toEqual([callId]);
  });
});
