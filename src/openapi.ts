// The API's description: an OpenAPI 3.1 document at GET /openapi.json, generated from the
// routes' TypeBox models, and an interactive page over it at GET /docs.
import { openapi } from "@elysiajs/openapi";
import { VERSION } from "./version";

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
        { name: "leads", description: "Made by calls; read, corrected and deleted here" },
        { name: "call-logs", description: "Read-only but for a forward-only status fix" },
        { name: "api-keys" },
      ],
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
    // The page loads Scalar's script from jsDelivr: pinned, and told where the document is so
    // /docs/ (trailing slash) works too.
    scalar: { version: "1.72.1", url: "/openapi.json" },
  });
}
