import { Elysia, t } from "elysia";
import type { Database } from "../db/client";
import { withDeadline } from "../errors";
import { VERSION } from "../version";

export interface HealthDeps {
  database: Database;
  timeoutMs: number;
  /** The routes the app serves, read when asked so the list is always the real one. */
  endpoints: () => string[];
}

const DatabaseHealth = t.Object({
  kind: t.String(),
  reachable: t.Boolean(),
  latency_ms: t.Optional(t.Number()),
  error: t.Optional(t.String()),
});

async function probeDatabase(deps: HealthDeps) {
  const started = performance.now();
  try {
    await withDeadline(deps.database.ping(), deps.timeoutMs, "database ping");
    return { kind: deps.database.kind, reachable: true, latency_ms: Math.round((performance.now() - started) * 10) / 10 };
  } catch (error) {
    return { kind: deps.database.kind, reachable: false, error: error instanceof Error ? error.message : String(error) };
  }
}

export function healthRoutes(deps: HealthDeps) {
  return new Elysia({ name: "health", detail: { tags: ["health"], security: [] } })
    .get("/healthz", () => ({ status: "ok" }), { detail: { summary: "The process is alive" } })
    .get(
      "/readyz",
      async ({ set }) => {
        const database = await probeDatabase(deps);
        if (!database.reachable) set.status = 503;
        return { status: database.reachable ? "ready" : "unavailable", database };
      },
      { detail: { summary: "The database is reachable (503 otherwise)" } },
    )
    .get(
      "/api/v1/webhooks/health",
      async () => {
        const database = await probeDatabase(deps);
        return {
          status: database.reachable ? ("ok" as const) : ("degraded" as const),
          service: "switchboard",
          version: VERSION,
          endpoints: deps.endpoints(),
          database,
        };
      },
      {
        response: t.Object({
          status: t.Union([t.Literal("ok"), t.Literal("degraded")]),
          service: t.String(),
          version: t.String(),
          endpoints: t.Array(t.String()),
          database: DatabaseHealth,
        }),
        detail: { summary: "Webhook service status, endpoints and database reachability" },
      },
    );
}
