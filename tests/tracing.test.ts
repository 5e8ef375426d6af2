// OpenTelemetry tracing as an operator switches it on: a real server process with
// OTEL_EXPORTER_OTLP_ENDPOINT pointing at a loopback OTLP/HTTP receiver (this file's), the
// stand-in LiveKit for dispatches, and real signed webhooks. What arrives is what a tracing
// backend would show: one server span per webhook, its database and LiveKit calls as children.
// The server runs on a fresh database (support/fresh-database.ts): on CI's PostgreSQL pass one of
// that server, so the spans come through postgres.js there and through PGlite on the embedded pass.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./support/disposable-postgres";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
import { type FreshDatabase, freshDatabase } from "./support/fresh-database";
import { signBody } from "./support/livekit-events";
import { EVENTS_PATH, liveKitEnv, newCall, SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT, sipCallerJoins, TEST_KEYS } from "./support/livekit-app";
import { killAllServers, type ServerProcess, startServer } from "./support/server-process";

/** OTLP's JSON encoding of span kinds (opentelemetry-proto trace.proto, SpanKind). */
const SERVER = 2;
const CLIENT = 3;
/** Status.code ERROR in trace.proto. */
const STATUS_ERROR = 2;

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean | undefined>;
  status: { code?: number };
  resource: Record<string, string | number | boolean | undefined>;
}

const flatten = (attributes: { key: string; value: AnyValue }[] = []) =>
  Object.fromEntries(
    attributes.map(({ key, value }) => [
      key,
      value.stringValue ?? (value.intValue === undefined ? undefined : Number(value.intValue)) ?? value.boolValue ?? value.doubleValue,
    ]),
  );

/** A loopback OTLP/HTTP receiver: keeps every span of every export it is sent, as JSON. */
function startReceiver() {
  const spans: ExportedSpan[] = [];
  const contentTypes: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      if (request.method !== "POST" || new URL(request.url).pathname !== "/v1/traces") return new Response("", { status: 404 });
      contentTypes.push(request.headers.get("content-type") ?? "");
      const body = (await request.json()) as any;
      for (const resourceSpans of body.resourceSpans ?? []) {
        const resource = flatten(resourceSpans.resource?.attributes);
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({ ...span, attributes: flatten(span.attributes), status: span.status ?? {}, resource });
          }
        }
      }
      return Response.json({});
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, spans, contentTypes, stop: () => server.stop(true) };
}

/** Waits until a server span for `path` and its children have been exported (batches go out every second). */
async function serverSpan(spans: ExportedSpan[], path: string, predicate: (span: ExportedSpan) => boolean = () => true) {
  for (let waited = 0; waited < 15_000; waited += 100) {
    const found = spans.find((s) => s.kind === SERVER && s.attributes["url.path"] === path && predicate(s));
    if (found) return found;
    await Bun.sleep(100);
  }
  throw new Error(`no server span for ${path} in ${spans.length} exported spans: ${spans.map((s) => s.name).join(", ")}`);
}

const childrenOf = (spans: ExportedSpan[], parent: ExportedSpan) =>
  spans.filter((s) => s.traceId === parent.traceId && s.parentSpanId === parent.spanId);

/** POSTs `body` as is, signed with the test keys as LiveKit signs (the server has them set, so it checks). */
async function postSigned(server: ServerProcess, path: string, body: string, headers: Record<string, string> = {}) {
  const authorization = await signBody(body, TEST_KEYS);
  return fetch(`${server.url}${path}`, { method: "POST", body, headers: { "content-type": "application/json", authorization, ...headers } });
}

describe("tracing with OTEL_EXPORTER_OTLP_ENDPOINT set", () => {
  let receiver: ReturnType<typeof startReceiver>;
  let fake: FakeLiveKit;
  let server: ServerProcess;
  let database: FreshDatabase;
  const dataDir = mkdtempSync(join(tmpdir(), "tracing-"));

  beforeAll(async () => {
    receiver = startReceiver();
    fake = await startFakeLiveKit(TEST_KEYS);
    database = await freshDatabase();
    server = await startServer({
      ...liveKitEnv(fake),
      DATA_DIR: dataDir,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: "switchboard-under-test",
      ...database.env,
    });
  });
  afterAll(async () => {
    await killAllServers();
    await fake?.close();
    receiver?.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    receiver.spans.length = 0;
  });

  test("a LiveKit webhook is one server span; its database statements and the agent's dispatch are its children", async () => {
    const call = newCall();
    const delivery = await sipCallerJoins(fake, call);
    const res = await fetch(`${server.url}${EVENTS_PATH}`, { method: "POST", body: delivery.body, headers: delivery.headers });
    expect(res.status).toBe(200);
    expect(fake.calls("CreateDispatch")).toHaveLength(1);

    const webhook = await serverSpan(receiver.spans, EVENTS_PATH);
    expect(webhook.name).toBe(`POST ${EVENTS_PATH}`);
    expect(webhook.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": EVENTS_PATH,
      "http.response.status_code": 200,
      "livekit.webhook.event": "participant_joined",
    });
    expect(webhook.resource["service.name"]).toBe("switchboard-under-test");
    expect(webhook.resource["service.version"]).toEqual(expect.any(String));
    // The delivery's spans end before it is answered, but may come in the next batch (one a second).
    const statementsOf = (spans: ExportedSpan[]) => spans.filter((s) => s.attributes["db.system.name"] === "postgresql");
    let children = childrenOf(receiver.spans, webhook);
    for (let waited = 0; waited < 15_000; waited += 100) {
      children = childrenOf(receiver.spans, webhook);
      if (statementsOf(children).length >= 2 && children.some((s) => s.attributes["rpc.method"] === "CreateDispatch")) break;
      await Bun.sleep(100);
    }
    const statements = statementsOf(children);
    expect(statements.length).toBeGreaterThanOrEqual(2);
    for (const statement of statements) {
      expect(statement.kind).toBe(CLIENT);
      // Placeholders, never values: the caller's number is not in the trace.
      expect(String(statement.attributes["db.query.text"])).not.toContain(call.from);
    }
    const dispatch = children.find((s) => s.attributes["rpc.method"] === "CreateDispatch");
    expect(dispatch?.kind).toBe(CLIENT);
    expect(dispatch?.name).toBe("livekit.AgentDispatchService/CreateDispatch");
    expect(dispatch?.attributes["livekit.agent_name"]).toBe(SYSTEM_DEFAULT_AGENT);
    expect(receiver.contentTypes.every((type) => type.startsWith("application/json"))).toBe(true);
  }, 30_000);

  test("the decision endpoint's span says where the agent came from; a request that carries traceparent joins its trace", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const parentId = "b7ad6b7169203331";
    const res = await postSigned(
      server,
      SIP_INBOUND_PATH,
      JSON.stringify({ call_id: `tracing-${crypto.randomUUID()}`, from_number: "+12125550142", to_number: "+14155550100" }),
      { traceparent: `00-${traceId}-${parentId}-01` },
    );
    expect(res.status).toBe(200);
    const decision = await serverSpan(receiver.spans, SIP_INBOUND_PATH);
    expect(decision.traceId).toBe(traceId);
    expect(decision.parentSpanId).toBe(parentId);
    expect(decision.attributes).toMatchObject({ "http.response.status_code": 200, "switchboard.agent_source": "system_default" });
  }, 30_000);

  test("a refused request is named after its route and is not an error of the server's (4xx)", async () => {
    const res = await postSigned(server, SIP_INBOUND_PATH, "{not json");
    expect(res.status).toBe(400);
    const refused = await serverSpan(receiver.spans, SIP_INBOUND_PATH, (s) => s.attributes["http.response.status_code"] === 400);
    expect(refused.name).toBe(`POST ${SIP_INBOUND_PATH}`);
    expect(refused.status.code).not.toBe(STATUS_ERROR);
    const missing = await server.get("/no-such-path");
    expect(missing.status).toBe(404);
    // No route: the span is named after the method alone, not after a path of the client's choosing.
    expect((await serverSpan(receiver.spans, "/no-such-path")).name).toBe("GET");
  }, 30_000);
});

describe("tracing with its backend down", () => {
  test("calls are answered and the server stops within its timeout: the spans are what is lost", async () => {
    const closedPort = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), "tracing-down-"));
    const database = await freshDatabase();
    try {
      const server = await startServer({
        DATA_DIR: dataDir,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closedPort}`,
        SHUTDOWN_TIMEOUT_MS: "2000",
        ...database.env,
      });
      for (let i = 0; i < 20; i++) {
        const res = await server.post(SIP_INBOUND_PATH, { call_id: `down-${i}`, from_number: "+12125550142", to_number: "+14155550100" });
        expect(res.status).toBe(200);
      }
      // SIGTERM, and SIGKILL (exit 137) if it is not gone in 15 s: the unit gives a stop 20 s
      // (deploy/switchboard.service), and the last export may take 5 of them.
      await server.stop(15_000);
      expect(await server.exited).toBe(0);
    } finally {
      await killAllServers();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  test("a backend that takes the connection and never answers holds the stop at most 2 s", async () => {
    // Accepts every connection and says nothing: each export waits until its own timeout (5 s).
    const silent = createServer(() => {});
    await new Promise<void>((listening) => silent.listen(0, "127.0.0.1", listening));
    const dataDir = mkdtempSync(join(tmpdir(), "tracing-silent-"));
    const database = await freshDatabase();
    try {
      const server = await startServer({
        DATA_DIR: dataDir,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
        ...database.env,
      });
      for (let i = 0; i < 5; i++) {
        const res = await server.post(SIP_INBOUND_PATH, { call_id: `silent-${i}`, from_number: "+12125550142", to_number: "+14155550100" });
        expect(res.status).toBe(200);
      }
      // Nothing left to drain, so the stop is closing the database plus the last export's 2 s;
      // a stop that waited out the export's own 5 s would be killed (exit 137) first.
      await server.stop(4_500);
      expect(await server.exited).toBe(0);
    } finally {
      silent.close();
      await killAllServers();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
