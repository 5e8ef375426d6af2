// Builds the HTTP application from its dependencies without listening: tests drive it with
// app.handle(request), and only the CLI (main.ts) opens a port.
import type { Tracer } from "@opentelemetry/api";
import { Elysia } from "elysia";
import { type AdminDeps, adminRoutes } from "./admin/routes";
import { createRoutingDirectory, type RoutingDirectory } from "./calls/directory";
import { phoneNumberReader } from "./calls/phone";
import { createCallRecorder } from "./calls/recorder";
import { callRoutes } from "./calls/routes";
import { CALL_ENTRY, type CallRouting, type JournaledCall, lateRecords, type RoutingDeps, replayCallRecord } from "./calls/service";
import type { Config } from "./config";
import type { Database } from "./db/client";
import { constraintViolation, isDatabaseUnavailable } from "./db/errors";
import { AppError } from "./errors";
import { healthRoutes } from "./health/routes";
import { boundedBodies } from "./http/body";
import { errorAnswers } from "./http/errors";
import { type Journal, keepReplaying } from "./journal/journal";
import { createLiveKitClients, type LiveKitClients } from "./livekit/clients";
import type { AgentDispatcher } from "./livekit/dispatch";
import { liveKitRoutes } from "./livekit/routes";
import { LIVEKIT_EVENT_ENTRY, type LiveKitEventDeps, replayLiveKitEvent } from "./livekit/service";
import { createWebhookAuth } from "./livekit/webhook";
import type { Logger } from "./logger";
import { createMetrics, type Metrics } from "./metrics/metrics";
import { metricsRoutes } from "./metrics/routes";
import { apiDocs } from "./openapi";
import { traceRequests } from "./tracing/http";
import { outboxDepth } from "./webhooks/outbox";
import { startWebhookWorker } from "./webhooks/worker";
import { annotateRequestSpan } from "./tracing/spans";

export interface AppDeps {
  database: Database;
  config: Config;
  logger: Logger;
  /** LiveKit's server API clients; built from config when not given, absent when LiveKit is not configured. */
  livekit?: LiveKitClients;
  /** The in-memory routing directory; built (and kept fresh) from the database when not given. */
  directory?: RoutingDirectory;
  /** Where call records go while the database cannot take them; without one they are only logged. */
  journal?: Journal;
  /** False until the schema is migrated (the process started with the database down): no replay before. */
  schemaReady?: () => boolean;
  /** Traces every request when given (OTEL_EXPORTER_OTLP_ENDPOINT set); the database and LiveKit clients trace their calls with it. */
  tracer?: Tracer;
  /** The time business hours are judged at: the system clock unless a test sets another. */
  now?: () => Date;
}

/** The safety net under NOTIFY: how often the directory is reloaded whole. */
const DIRECTORY_RELOAD_MS = 60_000;
/** How often the journal is offered to the database while it holds entries. */
const JOURNAL_REPLAY_MS = 1_000;

/**
 * How the call recorder shares the database. PGlite runs one statement at a time, so one
 * statement in flight, with everything queued behind it riding the next. A PostgreSQL pool
 * gives half its connections to call records, the rest staying free for LiveKit events, the
 * admin API and the directory.
 */
function recorderLanes(kind: Database["kind"], poolMax: number) {
  const inProcess = kind === "pglite";
  return { lanes: inProcess ? 1 : Math.max(1, Math.floor(poolMax / 2)), gather: inProcess, maxBatch: 64 };
}

export type App = ReturnType<typeof createApp>;

/**
 * How the CLI listens. The body limit is the app's (MAX_BODY_BYTES, enforced while reading in
 * http/body.ts, answered with a JSON 413); Bun's own would answer first, with an empty body.
 */
export function listenOptions(config: Pick<Config, "host" | "port">) {
  // Elysia asks Bun for SO_REUSEPORT by default: a second switchboard on the same port would then
  // start without error and take half the calls into its own database. One process owns the port.
  return { hostname: config.host, port: config.port, reusePort: false, maxRequestBodySize: Number.MAX_SAFE_INTEGER };
}

export function createApp(deps: AppDeps) {
  const { database, config, logger } = deps;
  const livekit = "livekit" in deps ? deps.livekit : createLiveKitClients(config.livekit, deps.tracer);
  const webhookAuth = createWebhookAuth(config.livekit);
  const bodies = boundedBodies(config.maxBodyBytes);
  const directory =
    deps.directory ??
    createRoutingDirectory({ database, logger, waitMs: config.statementTimeoutMs, reloadIntervalMs: DIRECTORY_RELOAD_MS });
  const metrics = createMetrics({
    journalDepth: () => deps.journal?.status().depth ?? 0,
    databaseAvailable: () => database.available,
    databaseStatements: () => ({ inFlight: database.statementsInFlight, connections: database.connections }),
    outbox: () => outboxDepth(database),
  });
  const routing = routingDeps(deps, directory, metrics);
  const events = eventDeps(routing, config, livekit, metrics);
  const replaying = deps.journal && replayJournal(deps, deps.journal, events);
  const delivering = config.webhooks.deliver ? deliverWebhooks(deps, metrics) : undefined;
  let routes: { method: string; path: string }[] = [];
  const endpoints = () => routes.map((r) => `${r.method} ${r.path}`);
  // With LiveKit keys configured, sip-inbound must be signed like LiveKit's webhooks.
  const authorize = (request: Request) => webhookAuth.verifyBody(bodies.rawBody(request), request.headers.get("authorization"));
  const observe = (event: string, outcome: string) => countEvent(metrics, event, outcome);
  const app = new Elysia({ normalize: false })
    // First, so that its span covers everything after it.
    .use(deps.tracer ? traceRequests(deps.tracer) : new Elysia({ name: "tracing-off" }))
    .use(bodies.plugin)
    .use(errorAnswers(logger, (answer, cause, path) => countProblem(metrics, answer, cause, path)))
    // A change made through this process's admin API is seen by its next call, not a NOTIFY later.
    .onAfterHandle({ as: "global" }, ({ request }) => {
      if (request.method !== "GET" && isDirectoryPath(new URL(request.url).pathname)) directory.changed();
    })
    .onStop(() => {
      directory.close();
      replaying?.stop();
    })
    // Stopped by its owner before the database closes (serve.ts, the tests): Elysia does not wait for onStop.
    .decorate("webhookDelivery", { stop: async () => delivering?.stop() })
    .use(healthRoutes({ database, directory, journal: deps.journal, endpoints }))
    .use(callRoutes(routing, { testEndpointEnabled: config.testEndpointEnabled, authorize }))
    .use(adminRoutes(adminDeps(deps)))
    .use(liveKitRoutes({ auth: webhookAuth, rawBody: bodies.rawBody, events, observe }))
    .use(metricsRoutes(metrics, config.metricsToken))
    .use(apiDocs());
  routes = app.routes;
  return app;
}

function adminDeps({ database, logger, config }: AppDeps): AdminDeps {
  const { defaultRegion: region, systemDefaultAgent, webhooks } = config;
  return { database, logger, region, systemDefaultAgent, requireHttpsWebhooks: webhooks.requireHttps };
}

/** What routing a call needs; each routed call is counted once, when it is first decided. */
function routingDeps(deps: AppDeps, directory: RoutingDirectory, metrics: Metrics): RoutingDeps {
  const { database, config, journal, logger } = deps;
  return {
    database,
    directory,
    readNumber: phoneNumberReader(config.defaultRegion),
    lateRecords: lateRecords(),
    recorder: createCallRecorder(database, recorderLanes(database.kind, config.dbPoolMax)),
    journal,
    logger,
    now: deps.now,
    onRouted: (routed: CallRouting, seconds: number) => {
      // A repeated webhook gets its call's stored decision back: one call, counted once.
      if (routed.replayed) return;
      const agentSource = routed.agentSource ?? "none";
      annotateRequestSpan({ "switchboard.call_outcome": routed.outcome, "switchboard.agent_source": agentSource, "switchboard.tenant_id": routed.tenantId ?? "none" });
      metrics.callsRouted.inc({ outcome: routed.outcome, agent_source: agentSource, tenant_id: routed.tenantId ?? "none" });
      metrics.callRecords.inc({ state: routed.record });
      metrics.routingSeconds.observe(seconds);
    },
    settings: {
      systemDefaultAgent: config.systemDefaultAgent,
      // With nowhere else to keep the record, the caller waits for the database as long as it may.
      // So it does on the embedded database: in this process, it is slow only when busy with calls,
      // and journaling a record only to write it again later would double that work.
      recordWaitMs: journal && database.kind !== "pglite" ? config.callRecordWaitMs : config.statementTimeoutMs,
      maxCallSeconds: config.maxCallDurationS,
    },
  };
}

/** What handling LiveKit's events needs: routing, plus dispatch through LiveKit's API when configured. */
function eventDeps(routing: RoutingDeps, config: Config, livekit: LiveKitClients | undefined, metrics: Metrics): LiveKitEventDeps {
  const { dispatch, dispatchRetries, dispatchRetryBaseMs, dispatchBudgetMs, webhookBudgetMs } = config.livekit;
  return {
    ...routing,
    // A LiveKit join is not a caller waiting on this answer: it waits for the record as long as a
    // statement may, so the call log's dispatch claim (one agent per call across processes) is there.
    settings: { ...routing.settings, recordWaitMs: config.statementTimeoutMs },
    dispatch:
      dispatch && livekit
        ? {
            dispatcher: countingDispatcher(livekit.dispatch, metrics),
            retries: dispatchRetries,
            retryBaseMs: dispatchRetryBaseMs,
            budgetMs: dispatchBudgetMs,
          }
        : undefined,
    handoff: dispatch && livekit ? livekit.handoff : undefined,
    deliveryBudgetMs: webhookBudgetMs,
    clock: () => new Date(),
  };
}

/** Offers the journal's entries to the database while it holds any; each kind has its writer. */
function replayJournal(deps: AppDeps, journal: Journal, events: LiveKitEventDeps) {
  const { database, logger } = deps;
  return keepReplaying(journal, {
    handlers: {
      [CALL_ENTRY]: (data, at) => replayCallRecord(database, data as JournaledCall, at, events.lateRecords),
      // Replay writes without the journal and without dispatching (replayLiveKitEvent).
      [LIVEKIT_EVENT_ENTRY]: (data, at) => replayLiveKitEvent(events, data, at),
    },
    // Final only when the database or the handler says so; anything else is tried again later.
    isPermanent: (error) =>
      constraintViolation(error) !== null || (error instanceof AppError && error.status >= 400 && error.status < 500),
    available: () => database.available && (deps.schemaReady?.() ?? true),
    onRecovered: database.onRecovered,
    logger,
    intervalMs: JOURNAL_REPLAY_MS,
  });
}

/** Outbound webhooks from the outbox, each attempt counted and timed. */
function deliverWebhooks(deps: AppDeps, metrics: Metrics) {
  const { database, logger, config } = deps;
  return startWebhookWorker({
    database,
    logger,
    settings: config.webhooks,
    available: () => database.available && (deps.schemaReady?.() ?? true),
    onAttempt: (outcome, result) => {
      metrics.webhookDeliveries.inc({ outcome });
      metrics.webhookAttemptSeconds.observe(result.latencyMs / 1000);
    },
  });
}

function countProblem(metrics: Metrics, answer: AppError, cause: unknown, path: string) {
  if (answer.status === 401 && path.startsWith("/api/v1/webhooks/")) metrics.signatureFailures.inc();
  if (answer.status === 503 && isDatabaseUnavailable(cause)) metrics.databaseErrors.inc();
}

function countEvent(metrics: Metrics, event: string, outcome: string) {
  annotateRequestSpan({ "livekit.webhook.event": event, "switchboard.outcome": outcome });
  metrics.webhookEvents.inc({ event, outcome });
}

/** LiveKit's dispatch API, its CreateDispatch calls counted by outcome. */
function countingDispatcher(dispatcher: AgentDispatcher, metrics: Metrics): AgentDispatcher {
  return {
    listDispatch: (roomName) => dispatcher.listDispatch(roomName),
    createDispatch: async (...args) => {
      try {
        const created = await dispatcher.createDispatch(...args);
        metrics.dispatches.inc({ outcome: "success" });
        return created;
      } catch (error) {
        metrics.dispatches.inc({ outcome: "failure" });
        throw error;
      }
    },
  };
}

/** The admin API's resources the routing directory is built from. */
const isDirectoryPath = (path: string) => /^\/api\/v1\/(tenants|agents|campaigns|phone-numbers|schedules|blocklist-entries)(\/|$)/.test(path);
