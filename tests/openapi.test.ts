// The API description a person or a client generator reads: valid OpenAPI, every route in it,
// bodies and parameters from the same TypeBox models the routes validate with.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { openTestContext, type TestContext } from "./support/context";

let ctx: TestContext;
let doc: any;

beforeAll(async () => {
  ctx = await openTestContext({ ENABLE_TEST_ENDPOINT: "true" });
  const res = await ctx.get("/openapi.json");
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(() => ctx.close());

/** `/api/v1/agents/:id` is `/api/v1/agents/{id}` in OpenAPI. */
const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");
const operations = () =>
  Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ path, method, operation })),
  );

describe("GET /openapi.json", () => {
  test("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toStartWith("3.1");
  });

  test("lists every route the app serves, except the documentation itself", () => {
    const served = ctx.app.routes
      .filter((r) => !["/openapi.json", "/docs", "/docs/"].includes(r.path) && !r.path.startsWith("/docs/swagger-ui"))
      .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`)
      .sort();
    const documented = operations()
      .map((o) => `${o.method} ${o.path}`)
      .sort();
    expect(documented).toEqual(served);
    // The admin API is there, resource by resource.
    for (const resource of ["tenants", "agents", "campaigns", "phone-numbers", "leads", "call-logs", "api-keys"]) {
      expect(doc.paths[`/api/v1/${resource}`]?.get).toBeDefined();
    }
  });

  test("every body-taking admin route documents its JSON body with the model's fields", () => {
    const withBodies = operations().filter((o) => o.path.startsWith("/api/v1/") && ["post", "patch"].includes(o.method));
    expect(withBodies.length).toBeGreaterThan(10);
    for (const { path, method, operation } of withBodies) {
      // Actions on a resource take no body; LiveKit's events are protobuf JSON, read by the SDK.
      if (/\/(deactivate|rotate-secret|retry)$/.test(path) || path.endsWith("/livekit/events")) continue;
      const schema = operation.requestBody?.content?.["application/json"]?.schema;
      if (!schema?.properties) throw new Error(`${method} ${path}: no JSON body schema`);
    }
    const number = doc.paths["/api/v1/phone-numbers"].post.requestBody.content["application/json"].schema;
    expect(number.required).toEqual(["number"]);
    expect(Object.keys(number.properties)).toEqual(expect.arrayContaining(["tenant_id", "campaign_id", "type", "is_active"]));
    const sip = doc.paths["/api/v1/webhooks/livekit/sip-inbound"].post.requestBody.content["application/json"].schema;
    expect(sip.required).toEqual(["call_id"]);
  });

  test("query and path parameters come from the models", () => {
    const list = doc.paths["/api/v1/call-logs"].get.parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(list).toEqual(expect.arrayContaining(["query:limit", "query:cursor", "query:since", "query:to_number", "query:status"]));
    const get = doc.paths["/api/v1/agents/{id}"].get.parameters;
    expect(get).toContainEqual(expect.objectContaining({ in: "path", name: "id", required: true }));
  });

  test("admin routes need the bearer key; webhooks and health say how they are reached", () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    for (const { path, method, operation } of operations()) {
      const isAdmin = path.startsWith("/api/v1/") && !path.startsWith("/api/v1/webhooks/");
      if (isAdmin) expect({ path, method, security: operation.security }).toEqual({ path, method, security: [{ bearerAuth: [] }] });
      else expect({ path, method, bearer: JSON.stringify(operation.security ?? []).includes("bearerAuth") }).toEqual({ path, method, bearer: false });
    }
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    expect(doc.paths["/api/v1/webhooks/livekit/events"].post.security).toEqual([{ livekitWebhook: [] }]);
  });

  test("errors are documented in the one error shape", () => {
    const notFound = doc.paths["/api/v1/leads/{id}"].get.responses["404"].content["application/json"].schema;
    expect(notFound.properties.error.required).toEqual(expect.arrayContaining(["code", "message"]));
  });
});

describe("GET /docs", () => {
  test("is an HTML page that loads the document", async () => {
    const res = await ctx.get("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toContain("/openapi.json");
  });

  test("works offline: every script and style the page loads is served by switchboard itself", async () => {
    for (const path of ["/docs", "/docs/"]) {
      const page = await (await ctx.get(path)).text();
      const assets = [...page.matchAll(/<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(assets.length).toBe(2);
      for (const asset of assets) {
        // Not another host's (a CDN's): a path on this server.
        expect(asset).toStartWith("/");
        const res = await ctx.get(asset);
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toMatch(asset.endsWith(".css") ? /^text\/css/ : /^text\/javascript/);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
      }
    }
  });
});

describe("the outbound webhooks section", () => {
  test("documents each event a tenant's endpoint receives, its Standard Webhooks headers, and data shaped like the admin API's answers", () => {
    expect(Object.keys(doc.webhooks).sort()).toEqual(
      ["call.answered", "call.ended", "call.rejected", "call.started", "call.transferred", "lead.created", "lead.updated"],
    );
    const callLog = doc.paths["/api/v1/call-logs/{id}"].get.responses["200"].content["application/json"].schema;
    const lead = doc.paths["/api/v1/leads/{id}"].get.responses["200"].content["application/json"].schema;
    for (const [type, item] of Object.entries(doc.webhooks as Record<string, any>)) {
      const body = item.post.requestBody.content["application/json"].schema;
      expect(Object.keys(body.properties).sort()).toEqual(["data", "timestamp", "type"]);
      const shape = type.startsWith("lead.") ? lead : callLog;
      expect(Object.keys(body.properties.data.properties).sort()).toEqual(Object.keys(shape.properties).sort());
      expect(item.post.parameters.map((p: any) => `${p.in}:${p.name}`)).toEqual(["header:webhook-id", "header:webhook-timestamp", "header:webhook-signature"]);
    }
  });
});
