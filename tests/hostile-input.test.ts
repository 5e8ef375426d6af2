// Input that could take the callers' path down: bodies built to cost the parser or the schema
// validator seconds and gigabytes, bodies and headers over the limits, unsigned bodies probing
// the schema. Checked through app.handle and over a real socket, where Bun itself answers
// some of these before the app sees them unless it is set up not to.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { listenOptions } from "../src/app";
import { MAX_HEADER_BYTES, MAX_JSON_DEPTH, MAX_JSON_ELEMENTS } from "../src/http/body";
import { openTestContext, type TestContext } from "./support/context";
import { signBody } from "./support/livekit-events";
import { acmeDirectory, CALLER, CAMPAIGN_AGENT, CAMPAIGN_NUMBER, SIP_INBOUND_PATH, TEST_KEYS } from "./support/livekit-app";

const ADMIN_PATH = "/api/v1/tenants";
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const nestedObjects = (depth: number) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);

let ctx: TestContext;
let base: string;
let port: number;
beforeAll(async () => {
  ctx = await openTestContext({ MAX_BODY_BYTES: String(64 * 1024) });
  await ctx.seed(acmeDirectory);
  const server = ctx.app.listen({ ...listenOptions({ host: "127.0.0.1", port: 0 }) }).server!;
  port = server.port!;
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await ctx.app.stop(true);
  await ctx.close();
});

type Answer = { status: number; body: any };
async function overSocket(path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
async function inProcess(path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await ctx.post(path, body, headers);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const routes = [
  ["through app.handle", inProcess],
  ["over a real socket", overSocket],
] as const;

for (const [how, send] of routes) {
  describe(`bodies built to be expensive, ${how}`, () => {
    test("60 KB of nested arrays to sip-inbound is a 400 naming the body, and the next caller is answered", async () => {
      const answer = await send(SIP_INBOUND_PATH, nested(30_000));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatchObject({ code: "invalid_request", details: { field: "body" } });
      expect(answer.body.error.message).toContain(`deeper than ${MAX_JSON_DEPTH}`);
      const next = await send(SIP_INBOUND_PATH, JSON.stringify({ call_id: `after-${how}`, to_number: CAMPAIGN_NUMBER, from_number: CALLER }));
      expect(next.status).toBe(200);
      expect(next.body.agent_name).toBe(CAMPAIGN_AGENT);
    });

    test("nested objects to an admin route are refused the same way, before authentication is even looked at", async () => {
      const answer = await send(ADMIN_PATH, nestedObjects(5_000));
      expect(answer.status).toBe(400);
      expect(answer.body.error.details).toEqual({ field: "body" });
    });

    test("an array of more values than any request holds is a 400 naming the body", async () => {
      const answer = await send(SIP_INBOUND_PATH, `[${"0,".repeat(MAX_JSON_ELEMENTS)}0]`);
      expect(answer.status).toBe(400);
      expect(answer.body.error.details).toEqual({ field: "body" });
    });

    test("brackets and commas inside strings are text, not structure", async () => {
      const callId = `${"[{,".repeat(60)}-${how}`;
      const answer = await send(SIP_INBOUND_PATH, JSON.stringify({ call_id: callId, to_number: CAMPAIGN_NUMBER, from_number: CALLER }));
      expect(answer.status).toBe(200);
      expect(answer.body.record).toBe("recorded");
    });

    test("exactly the allowed depth is parsed and then judged by the schema", async () => {
      const answer = await send(SIP_INBOUND_PATH, JSON.stringify({ call_id: "deep", to_number: CAMPAIGN_NUMBER, extra: JSON.parse(nested(MAX_JSON_DEPTH - 1)) }));
      expect(answer.status).toBe(200);
    });
  });
}

describe("limits over a real socket answer with the documented JSON error", () => {
  test("a body over MAX_BODY_BYTES with an honest Content-Length: 413 with the error body", async () => {
    const answer = await overSocket(SIP_INBOUND_PATH, JSON.stringify({ call_id: "big", pad: "x".repeat(70 * 1024) }));
    expect(answer.status).toBe(413);
    expect(answer.body.error).toMatchObject({ code: "payload_too_large", details: { field: "body" } });
  });

  test("a chunked body over the limit (no Content-Length): 413 with the error body", async () => {
    const chunk = `{"call_id":"chunked","pad":"${"y".repeat(80 * 1024)}"}`;
    const raw = await rawExchange(
      `POST ${SIP_INBOUND_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(raw.status).toBe(413);
    expect(JSON.parse(raw.body).error.code).toBe("payload_too_large");
  });

  test("a body that arrives in pieces, with its Content-Length, is read whole and answered", async () => {
    const body = JSON.stringify({ call_id: "in-pieces", from_number: CALLER, to_number: CAMPAIGN_NUMBER });
    const head = `POST ${SIP_INBOUND_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const third = Math.ceil(body.length / 3);
    const raw = await rawExchange(head, [body.slice(0, third), body.slice(third, 2 * third), body.slice(2 * third)]);
    expect(raw.status).toBe(200);
    expect(JSON.parse(raw.body).agent_name).toBe(CAMPAIGN_AGENT);
  });

  // Request smuggling's shape; the body reader trusts a Content-Length only without Transfer-Encoding.
  test("Content-Length and chunked together: refused before the app reads a byte", async () => {
    const chunk = `{"call_id":"both","pad":"${"w".repeat(80 * 1024)}"}`;
    const raw = await rawExchange(
      `POST ${SIP_INBOUND_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(raw.status).toBe(400);
  });

  test("headers over the limit: 431 with the error body naming the headers", async () => {
    const res = await fetch(`${base}/healthz`, { headers: { "x-padding": "z".repeat(MAX_HEADER_BYTES + 100) } });
    expect(res.status).toBe(431);
    expect(await res.json()).toMatchObject({ error: { code: "headers_too_large", details: { field: "headers" } } });
  });
});

describe("values that trip up the validator or the decoder", () => {
  test("an object with its own toString key where a string goes is a 400 naming the field, not a 500", async () => {
    const answer = await inProcess(SIP_INBOUND_PATH, JSON.stringify({ call_id: { toString: 1, valueOf: "x" }, to_number: CAMPAIGN_NUMBER }));
    expect(answer.status).toBe(400);
    expect(answer.body.error.details).toEqual({ field: "call_id" });
    // The same key spelled with JSON escapes is the same key once parsed.
    const escaped = await inProcess(SIP_INBOUND_PATH, `{"call_id":{"\\u0074oString":1},"to_number":"${CAMPAIGN_NUMBER}"}`);
    expect(escaped.status).toBe(400);
    expect(escaped.body.error.details).toEqual({ field: "call_id" });
  });

  test("a body longer than its Content-Length says (built in-process) is refused past the limit", async () => {
    const body = JSON.stringify({ call_id: "understated", pad: "v".repeat(70 * 1024) });
    const answer = await inProcess(SIP_INBOUND_PATH, body, { "content-length": "20" });
    expect(answer.status).toBe(413);
    expect(answer.body.error.code).toBe("payload_too_large");
  });

  test("bytes that are not UTF-8 are a 400 naming the body, not text stored with replacement characters", async () => {
    const bytes = Buffer.concat([Buffer.from('{"call_id":"utf8-'), Buffer.from([0xed, 0xa0, 0x80, 0xff]), Buffer.from(`","to_number":"${CAMPAIGN_NUMBER}"}`)]);
    const res = await fetch(`${base}${SIP_INBOUND_PATH}`, { method: "POST", headers: { "content-type": "application/json" }, body: bytes });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toMatchObject({ message: "body: not valid UTF-8", details: { field: "body" } });
  });
});

describe("sip-inbound with signing keys configured", () => {
  let signed: TestContext;
  beforeAll(async () => {
    signed = await openTestContext({ LIVEKIT_API_KEY: TEST_KEYS.apiKey, LIVEKIT_API_SECRET: TEST_KEYS.apiSecret });
    await signed.seed(acmeDirectory);
  });
  afterAll(() => signed.close());

  test("an unsigned body that breaks the schema is a 401, so it learns nothing of the schema", async () => {
    const res = await signed.post(SIP_INBOUND_PATH, { call_id: 42, to_number: ["no"] });
    expect(res.status).toBe(401);
  });

  test("a signed body that breaks the schema is a 400 naming the field", async () => {
    const body = JSON.stringify({ call_id: 42, to_number: CAMPAIGN_NUMBER });
    const res = await signed.post(SIP_INBOUND_PATH, body, { authorization: await signBody(body, TEST_KEYS) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.details.field).toBe("call_id");
  });
});

/** Sends raw bytes and reads the answer's status and body (for requests fetch will not make). */
function rawExchange(request: string, later: string[] = []): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      const [head, rest = ""] = data.split("\r\n\r\n", 2);
      const length = Number(/content-length: (\d+)/i.exec(head ?? "")?.[1] ?? Number.NaN);
      if (rest.length >= length) {
        socket.destroy();
        resolve({ status: Number(head!.split(" ")[1]), body: rest.slice(0, length) });
      }
    });
    socket.on("error", reject);
    // Bun answers some requests itself, with no body, and closes.
    socket.on("close", () => resolve({ status: Number(data.split(" ")[1]), body: data.split("\r\n\r\n", 2)[1] ?? "" }));
    socket.write(request);
    // The rest in pieces, 30 ms apart, as a slow client's packets arrive.
    later.forEach((piece, i) => setTimeout(() => socket.write(piece), 30 * (i + 1)));
  });
}
