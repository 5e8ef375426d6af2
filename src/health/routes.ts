import { Elysia, t } from "elysia";
import type { RoutingDirectory } from "../calls/directory";
import type { Database } from "../db/client";
import type { Journal } from "../journal/journal";
import { VERSION } from "../version";

export interface HealthDeps {
  database: Database;
  directory: RoutingDirectory;
  journal?: Journal;
  /** The routes the app serves, read when asked so the list is always the real one. */
  endpoints: () => string[];
}

// Public: they say whether things work, never where the database is or what its driver said.
const DatabaseHealth = t.Object({
  kind: t.String(),
  reachable: t.Boolean(),
  latency_ms: t.Optional(t.Number()),
  down_since: t.Optional(t.String({ description: "When the database stopped answering (ISO 8601)" })),
});

const RoutingHealth = t.Object({
  directory_loaded: t.Boolean({ description: "Calls are routed from the in-memory directory once it is loaded" }),
  numbers: t.Integer(),
  loaded_at: t.Nullable(t.String()),
  source: t.Nullable(t.Union([t.Literal("database"), t.Literal("snapshot")], { description: "snapshot: read from disk at start, the database being down" })),
  fresh: t.Boolean({ description: "False while an announced directory change is not yet loaded" }),
});

const JournalHealth = t.Object({
  enabled: t.Boolean(),
  depth: t.Integer({ description: "Records on disk waiting for the database" }),
  replayed: t.Integer({ description: "Records written to the database from the journal since start" }),
  refused: t.Integer({ description: "Records the database refused for good (logged, then dropped)" }),
  replaying: t.Boolean(),
});

const Readiness = t.Object({
  status: t.Union([t.Literal("ready"), t.Literal("degraded"), t.Literal("unavailable")]),
  database: DatabaseHealth,
  routing: RoutingHealth,
  journal: JournalHealth,
});

async function probeDatabase(deps: HealthDeps): Promise<typeof DatabaseHealth.static> {
  const started = performance.now();
  const { database } = deps;
  try {
    // Bounded by the statement timeout, and failing at once while the database is known to be down.
    await database.ping();
    return { kind: database.kind, reachable: true, latency_ms: Math.round((performance.now() - started) * 10) / 10 };
  } catch {
    const since = database.downSince;
    return { kind: database.kind, reachable: false, ...(since ? { down_since: since.toISOString() } : {}) };
  }
}

/** Ready: routing from a loaded directory with the database up; degraded: still routing, records journaled. */
async function readiness(deps: HealthDeps): Promise<typeof Readiness.static> {
  const database = await probeDatabase(deps);
  const directory = deps.directory.status();
  const journal = deps.journal?.status();
  const status = !directory.loaded ? "unavailable" : database.reachable ? "ready" : "degraded";
  return {
    status,
    database,
    routing: {
      directory_loaded: directory.loaded,
      numbers: directory.numbers,
      loaded_at: directory.loadedAt?.toISOString() ?? null,
      source: directory.source,
      fresh: directory.fresh,
    },
    journal: {
      enabled: Boolean(journal),
      depth: journal?.depth ?? 0,
      replayed: journal?.replayed ?? 0,
      refused: journal?.refused ?? 0,
      replaying: journal?.replaying ?? false,
    },
  };
}

export function healthRoutes(deps: HealthDeps) {
  return new Elysia({ name: "health", detail: { tags: ["health"], security: [] } })
    .get("/healthz", () => ({ status: "ok" }), { detail: { summary: "The process is alive" } })
    .get(
      "/readyz",
      async ({ set }) => {
        const ready = await readiness(deps);
        if (ready.status === "unavailable") set.status = 503;
        return ready;
      },
      {
        response: { 200: Readiness, 503: Readiness },
        detail: {
          summary: "Ready to route calls (503 only before the routing directory could be loaded)",
          description:
            "status is degraded while the database is down: calls are still routed from memory and their records journaled to disk.",
        },
      },
    )
    .get(
      "/api/v1/webhooks/health",
      async () => {
        const ready = await readiness(deps);
        return {
          ...ready,
          status: ready.status === "ready" ? ("ok" as const) : ("degraded" as const),
          service: "switchboard",
          version: VERSION,
          endpoints: deps.endpoints(),
        };
      },
      {
        response: t.Object({
          status: t.Union([t.Literal("ok"), t.Literal("degraded")]),
          service: t.String(),
          version: t.String(),
          endpoints: t.Array(t.String()),
          database: DatabaseHealth,
          routing: RoutingHealth,
          journal: JournalHealth,
        }),
        detail: { summary: "Webhook service status, endpoints, database reachability, routing directory and journal" },
      },
    );
}
