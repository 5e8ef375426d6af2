// Whatever a caller of the webhook sends, a bad request is answered with a 4xx that names the
// problem, never a 500, and leaves nothing half-written behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { callLogs, leads } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import { CALLER, SIP_INBOUND_PATH } from "./support/livekit-app";

/** A response's JSON body; each test checks the fields it cares about. */
const json = (res: Response): Promise<any> => res.json();

const TEST_CALL = "/api/v1/webhooks/test";
const NUMBER = "+14155550100";

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext({ MAX_BODY_BYTES: "2048" });
  // A known number and a caller: a request that got through would create a lead and a call log.
  await ctx.seed({
    tenants: [
      {
        name: "Acme",
        agents: [{ name: "acme-default", default: true }],
        phone_numbers: [{ number: NUMBER }],
      },
    ],
  });
}, 30_000);
afterAll(() => ctx.close());

async function expectNothingWritten() {
  expect(await ctx.database.db.select().from(callLogs)).toHaveLength(0);
  expect(await ctx.database.db.select().from(leads)).toHaveLength(0);
}

interface Problem {
  code: string;
  message: string;
  details?: { field?: string };
}

/** The response is a 4xx JSON problem whose `details.field` or `message` names `field`; nothing was written. */
async function expectRejected(res: Response, field: string, status?: number) {
  if (status) expect(res.status).toBe(status);
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = ((await json(res)) as { error: Problem }).error;
  expect(typeof body.code).toBe("string");
  expect(typeof body.message).toBe("string");
  const namesField = body.details?.field === field || body.message.includes(field);
  if (!namesField) throw new Error(`expected the problem to name "${field}", got ${JSON.stringify(body)}`);
  await expectNothingWritten();
  return body;
}

/** POST with an exact body text. */
const postRaw = (path: string, text: string, contentType = "application/json") =>
  ctx.post(path, text, { "content-type": contentType });

describe("unreadable bodies", () => {
  test("malformed JSON", async () => {
    const body = await expectRejected(await postRaw(SIP_INBOUND_PATH, `{"call_id": "c1", "to_number": `), "body", 400);
    expect(body.message).toContain("JSON");
  });

  test("an empty body", async () => {
    await expectRejected(await postRaw(SIP_INBOUND_PATH, ""), "body", 400);
  });

  test("a body of only whitespace", async () => {
    await expectRejected(await postRaw(SIP_INBOUND_PATH, "  \n "), "body", 400);
  });

  test("JSON null", async () => {
    await expectRejected(await postRaw(SIP_INBOUND_PATH, "null"), "body", 400);
  });

  test("a body over MAX_BODY_BYTES, with its Content-Length", async () => {
    const text = JSON.stringify({ call_id: "big-1", to_number: NUMBER, from_number: CALLER, pad: "x".repeat(10 * 1024) });
    const res = await ctx.app.handle(
      new Request(`http://localhost${SIP_INBOUND_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) },
        body: text,
      }),
    );
    const body = await expectRejected(res, "body", 413);
    expect(body.message).toContain("2048");
  });

  test("a body over MAX_BODY_BYTES sent without a Content-Length", async () => {
    const text = JSON.stringify({ call_id: "big-2", to_number: NUMBER, from_number: CALLER, pad: "x".repeat(10 * 1024) });
    const res = await ctx.app.handle(
      new Request(`http://localhost${SIP_INBOUND_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new Blob([text]).stream(),
        duplex: "half",
      } as RequestInit),
    );
    await expectRejected(res, "body", 413);
  });

  test("a body just under MAX_BODY_BYTES is read", async () => {
    // The control for the two above: the limit is the limit, not "any padding".
    const text = JSON.stringify({ call_id: "", to_number: NUMBER, pad: "x".repeat(1500) });
    expect(Buffer.byteLength(text)).toBeLessThan(2048);
    // Rejected for the empty call_id, which proves the body was read and validated.
    await expectRejected(await postRaw(SIP_INBOUND_PATH, text), "call_id", 400);
  });
});

describe("wrong fields", () => {
  test("call_id is a number", async () => {
    await expectRejected(await ctx.post(SIP_INBOUND_PATH, { call_id: 5, to_number: NUMBER, from_number: CALLER }), "call_id", 400);
  });

  test("from_number is a number", async () => {
    await expectRejected(
      await ctx.post(SIP_INBOUND_PATH, { call_id: "c-from", to_number: NUMBER, from_number: 12 }),
      "from_number",
      400,
    );
  });

  test("to_number is a number", async () => {
    await expectRejected(
      await ctx.post(SIP_INBOUND_PATH, { call_id: "c-to", to_number: 14155550100, from_number: CALLER }),
      "to_number",
      400,
    );
  });

  test("call_id is missing", async () => {
    await expectRejected(await ctx.post(SIP_INBOUND_PATH, { to_number: NUMBER, from_number: CALLER }), "call_id", 400);
  });

  test("call_id is empty", async () => {
    await expectRejected(await ctx.post(SIP_INBOUND_PATH, { call_id: "", to_number: NUMBER, from_number: CALLER }), "call_id", 400);
  });

  test("from_number far too long: the answer names the length limit, not the type", async () => {
    const body = await expectRejected(
      await ctx.post(SIP_INBOUND_PATH, { call_id: "c-long-from", to_number: NUMBER, from_number: "1".repeat(600) }),
      "from_number",
      400,
    );
    expect(body.message).toBe("from_number: expected string length less or equal to 512");
  });

  test("call_id is longer than any provider's", async () => {
    await expectRejected(
      await ctx.post(SIP_INBOUND_PATH, { call_id: "x".repeat(300), to_number: NUMBER, from_number: CALLER }),
      "call_id",
      400,
    );
  });

  test("neither to_number nor trunk_phone_number", async () => {
    await expectRejected(await ctx.post(SIP_INBOUND_PATH, { call_id: "c-none", from_number: CALLER }), "to_number", 400);
  });

  test("to_number and trunk_phone_number both empty", async () => {
    await expectRejected(
      await ctx.post(SIP_INBOUND_PATH, { call_id: "c-empty", to_number: "", trunk_phone_number: "", from_number: CALLER }),
      "to_number",
      400,
    );
  });

  test("the test endpoint without to_number", async () => {
    await expectRejected(await ctx.post(TEST_CALL, { from_number: CALLER }), "to_number", 400);
  });

  test("the test endpoint with malformed JSON", async () => {
    await expectRejected(await postRaw(TEST_CALL, "{"), "body", 400);
  });
});

describe("text PostgreSQL cannot store", () => {
  test("an unpaired surrogate in call_id is refused naming the field (it would merge with other call ids)", async () => {
    // Written as JSON escapes: the parsed string holds a lone high surrogate.
    const res = await postRaw(SIP_INBOUND_PATH, `{"call_id":"X\\ud800","to_number":"${NUMBER}","from_number":"${CALLER}"}`);
    await expectRejected(res, "call_id", 400);
  });

  // "\u0000" is valid JSON but no PostgreSQL text column takes it. Accepting it means the call is
  // routed without a record (and logged as a database outage) instead of refused as bad input.
  test.each([
    ["call_id", { call_id: "nul\u0000call", to_number: NUMBER, from_number: CALLER }],
    ["room_name", { call_id: "nul-room", to_number: NUMBER, from_number: CALLER, room_name: "call-\u0000" }],
    ["from_number", { call_id: "nul-from", to_number: NUMBER, from_number: `${CALLER}\u0000` }],
  ])("a NUL character in %s is refused naming the field", async (field, body) => {
    const res = await ctx.post(SIP_INBOUND_PATH, body);
    const errorsLogged = ctx.logs.filter((l) => l.level === "error").length;
    await expectRejected(res, field);
    expect(errorsLogged).toBe(0);
  });
});

describe("routes", () => {
  test("an unknown route is a JSON 404", async () => {
    const res = await ctx.post("/api/v1/webhooks/nope", { call_id: "c-404", to_number: NUMBER });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/json");
    const body = (await json(res)).error;
    expect(body.code).toBe("not_found");
    expect(body.message).toContain("/api/v1/webhooks/nope");
    await expectNothingWritten();
  });

  test("a GET of an unknown path is a JSON 404", async () => {
    const res = await ctx.get("/nope");
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe("not_found");
  });
});

describe("after all of that", () => {
  test("nothing was written, and a good request still is", async () => {
    await expectNothingWritten();
    const res = await ctx.post(SIP_INBOUND_PATH, { call_id: "good-1", to_number: NUMBER, from_number: CALLER });
    expect(res.status).toBe(200);
    expect((await json(res)).agent_name).toBe("acme-default");
    expect(await ctx.database.db.select().from(callLogs)).toHaveLength(1);
    expect(await ctx.database.db.select().from(leads)).toHaveLength(1);
  });
});
