// The API's description: an OpenAPI 3.1 document at GET /openapi.json, generated from the
// routes' TypeBox models, and an interactive page over it at GET /docs.
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import type { OpenAPIV3_1 } from "openapi-types";
// Swagger UI's script and style, embedded in the binary like PGlite's files: the page works on a
// VM without internet access. (Scalar, the plugin's default, loads from a CDN, and its npm package
// brings Vue and twenty more packages to serve one 4 MB file.)
import swaggerScript from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import swaggerStyle from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import { VERSION } from "./version";
import { CallEventPayload, EVENT_DESCRIPTIONS, EVENT_TYPES, LeadEventPayload } from "./webhooks/model";

/** Where the page finds its assets, served by docsAssets below. */
const ASSETS = { script: "/docs/swagger-ui-bundle.js", style: "/docs/swagger-ui.css" };

/** How the webhook endpoints authenticate: LiveKit's signed JWT, not an API key. */
export const LIVEKIT_SIGNATURE = [{ livekitWebhook: [] }];

export function apiDocs() {
  return openapi({
    path: "/docs",
    specPath: "/openapi.json",
    documentation: {
      info: {
        title: "Switchboard",
        version: VERSION,
        description:
          "Inbound call router for AI voice agents on LiveKit. The admin API needs a bearer key; " +
          "every error answers { error: { code, message, details } }.",
      },
      tags: [
        { name: "webhooks", description: "Called by LiveKit (signed like LiveKit's webhooks when keys are set)" },
        { name: "health", description: "Liveness and readiness" },
        { name: "tenants", description: "Admin keys only" },
        { name: "agents" },
        { name: "campaigns" },
        { name: "phone-numbers" },
        { name: "schedules", description: "Business hours, named by campaigns and phone numbers" },
        { name: "blocklist-entries", description: "Callers refused before any agent starts; global entries (tenant_id null) are admin-only" },
        { name: "leads", description: "Made by calls; read, corrected and deleted here" },
        { name: "call-logs", description: "Read-only but for a forward-only status fix" },
        { name: "api-keys" },
        { name: "webhook-endpoints", description: "Where a tenant's systems hear of its calls and leads (see webhooks)" },
      ],
      webhooks: outboundWebhooks(),
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", description: "An admin or tenant API key (sb_...)" },
          livekitWebhook: {
            type: "apiKey",
            in: "header",
            name: "Authorization",
            description: "LiveKit's webhook JWT: signed with the API secret, its sha256 claim covers the body",
          },
        },
      },
    },
    provider: "swagger-ui",
    // The document by absolute path, so /docs/ (trailing slash) finds it too. The plugin's types
    // leave url out (it passes the spec path, relative); its code lets this one win.
    swagger: { cdn: ASSETS.script, theme: ASSETS.style, ...{ url: "/openapi.json" } },
  }).use(docsAssets());
}

const signatureHeaders = [
  ["webhook-id", "msg_...: the same on every attempt of one event to one endpoint; deduplicate by it"],
  ["webhook-timestamp", "Seconds since the epoch, when this attempt was sent"],
  ["webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body>, space-separated, one per secret in use"],
].map(([name, description]) => ({ name, in: "header" as const, required: true, description, schema: { type: "string" } }));

/**
 * What Switchboard POSTs to a tenant's webhook endpoints (OpenAPI 3.1's webhooks): Standard
 * Webhooks (standardwebhooks.com), so any of its libraries verifies them. Any 2xx acknowledges;
 * anything else (or no answer in 10 s) is tried again; 410 Gone disables the endpoint.
 */
function outboundWebhooks(): Webhooks {
  return Object.fromEntries(
    EVENT_TYPES.map((type) => [
      type,
      {
        post: {
          summary: type,
          description: EVENT_DESCRIPTIONS[type],
          tags: ["webhook-endpoints"],
          parameters: signatureHeaders,
          requestBody: {
            required: true,
            content: { "application/json": { schema: type.startsWith("lead.") ? LeadEventPayload : CallEventPayload } },
          },
          responses: {
            "200": { description: "Any 2xx: received" },
            "410": { description: "Gone: Switchboard disables the endpoint" },
          },
        },
      },
    ]),
  ) as Webhooks;
}

/** OpenAPI 3.1's webhooks section (its schema type is not TypeBox's, whose schemas are JSON Schema all the same). */
type Webhooks = OpenAPIV3_1.Document["webhooks"];

function docsAssets() {
  // The files change only with the binary: a day's caching, revalidated by the ETag Bun sets.
  const serve = (path: string, type: string) => () =>
    new Response(Bun.file(path), { headers: { "content-type": type, "cache-control": "public, max-age=86400" } });
  return new Elysia({ name: "docs-assets" })
    .get(ASSETS.script, serve(swaggerScript, "text/javascript; charset=utf-8"), { detail: { hide: true } })
    .get(ASSETS.style, serve(swaggerStyle, "text/css; charset=utf-8"), { detail: { hide: true } });
}
