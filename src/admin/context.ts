// What every admin route shares, used by each resource's plugin: the caller's principal, resolved
// from its bearer key before the request is validated (so an unauthenticated caller learns nothing
// about the API's rules), a log line per write, the `adminOnly` option, and a resource's docs and
// error answers.
import { Elysia } from "elysia";
import type { Database } from "../db/client";
import type { Logger } from "../logger";
import { authenticate } from "./keys";
import { ErrorBody } from "./model";
import { assertAdmin } from "./scope";

export interface AdminDeps {
  database: Database;
  logger: Logger;
  /** Region for numbers written without a country code. */
  region: string;
  /** SYSTEM_DEFAULT_AGENT: the agent name calls no tenant claims are dispatched to. */
  systemDefaultAgent: string;
  /** Webhook endpoints must be https:// (production). */
  requireHttpsWebhooks: boolean;
}

/** The principal, the audit log and `adminOnly`, for the plugin that uses it (scoped: one level up). */
export const adminContext = (deps: AdminDeps) =>
  new Elysia()
    .derive({ as: "scoped" }, async ({ request }) => ({
      principal: await authenticate(deps.database, request.headers.get("authorization")),
    }))
    // Who changed what: one line per write, naming the key (never the key itself).
    .onAfterResponse({ as: "scoped" }, ({ request, set, principal }) => {
      if (request.method === "GET") return;
      deps.logger.info(
        {
          key_id: principal?.keyId ?? null,
          key_tenant: principal?.kind === "tenant" ? principal.tenantId : null,
          method: request.method,
          path: new URL(request.url).pathname,
          status: set.status,
        },
        "admin write",
      );
    })
    // Checked after validation, like any handler's own check: a tenant key learns the rules, not the data.
    .macro({ adminOnly: { beforeHandle: ({ principal }) => assertAdmin(principal) } });

const errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  422: ErrorBody,
  503: ErrorBody,
};

/**
 * A guard for one resource's routes: its tag in the docs, the bearer key, and every error answer.
 * Standalone, so each route's own answers (200, 201) are added to these, not put in their place.
 */
export const resource = (tag: string) => ({
  schema: "standalone" as const,
  detail: { tags: [tag], security: [{ bearerAuth: [] }] },
  response: errors,
});

/**
 * Deletes answer 204 with no body. The OpenAPI plugin turns a void response schema into an
 * invalid document, so the summary says it instead.
 */
export const deleted = (summary: string) => ({ summary: `${summary}; answers 204, no body` });
