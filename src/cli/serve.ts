// switchboard serve: the HTTP server with everything it runs beside it (tracing, the routing
// directory, the journal, migrations once the database answers, pruning), and its graceful stop.
import { join } from "node:path";
import type { Tracer } from "@opentelemetry/api";
import { and, eq, isNotNull } from "drizzle-orm";
import { createApp, listenOptions } from "../app";
import { createRoutingDirectory, type RoutingDirectory } from "../calls/directory";
import type { Config } from "../config";
import { type Database, openDatabase, openDatabaseInBackground } from "../db/client";
import { isDatabaseUnavailable } from "../db/errors";
import { agents } from "../db/schema";
import { type Journal, openJournal } from "../journal/journal";
import { createLiveKitClients, type LiveKitClients } from "../livekit/clients";
import { HOLD_MS, pruneWebhookEvents } from "../livekit/event-lease";
import type { Logger } from "../logger";
import { startTracing, type Tracing } from "../tracing/tracing";
import { VERSION } from "../version";
import { recordCleanStop, takeCleanStop } from "./clean-stop";
import { databaseOptions, EXIT_MIGRATION_REFUSED, MigrationRefusedError, migrateDatabase } from "./database";

export async function serve(config: Config, logger: Logger): Promise<number> {
  const tracing = startTracingIfAsked(config, logger);
  const tracer = tracing?.tracer;
  const snapshotPath = config.dataDir === "memory://" ? undefined : join(config.dataDir, "directory.json");
  // Only the embedded database in a DATA_DIR may open in the background (clean-stop.ts).
  const embedded = !config.databaseUrl && snapshotPath ? { dataDir: config.dataDir, snapshotPath } : undefined;
  const start = await openForServing(config, tracer, logger, Boolean(embedded && takeCleanStop(embedded.dataDir, embedded.snapshotPath)));
  const { database } = start;
  void start.ready.then(async (open) => {
    if (open) await warnOnTenantAgentNamedLikeSystemDefault(database, config.systemDefaultAgent, logger);
  });
  const livekit = createLiveKitClients(config.livekit, tracer);
  warnIfHoldTooShort(config, logger);
  logLiveKitMode(config, livekit, logger);
  const directory = await loadDirectory(config, database, logger, snapshotPath, start.inBackground);
  void start.migratedLate?.then(() => directory.changed());
  const journal = openCallJournal(config, logger);
  const app = createApp({ database, config, logger, livekit, directory, journal, tracer, schemaReady: start.schemaReady }).listen(
    listenOptions(config),
  );
  const server = app.server!;
  logger.info({ host: config.host, port: server.port, database: database.kind, version: VERSION }, "switchboard listening");
  const pruning = start.ready.then((open) => (open ? startPruning(database, logger) : undefined));
  return stopOnSignal(async (signal) => {
    void pruning.then(clearInterval);
    logger.info({ signal }, "shutting down: no new connections, finishing in-flight requests");
    // stop() resolves once in-flight requests are answered (and stops the app's background work:
    // directory reloads, journal replay); past the timeout, connections are cut.
    const graceful = app.stop(false);
    let forced = false;
    const timer = setTimeout(() => {
      logger.warn({ timeout_ms: config.shutdownTimeoutMs }, "shutdown timeout: closing open connections");
      forced = true;
      void server.stop(true);
    }, config.shutdownTimeoutMs);
    await graceful;
    clearTimeout(timer);
    // An attempt cut short here is given back untried: another process (or the next start) sends it.
    await app.decorator.webhookDelivery.stop();
    directory.close();
    // A request cut short may still be writing: a forced stop vouches for no snapshot.
    const snapshotCurrent = embedded && !forced ? await directory.snapshotCurrent() : false;
    await journal?.close();
    await database.close();
    if (embedded && snapshotCurrent) recordCleanStop(embedded.dataDir, embedded.snapshotPath);
    // The last requests' spans: a backend that does not answer costs them, not the stop.
    await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, "last spans not exported"));
    logger.info("stopped");
  });
}

interface ServingStart {
  database: Database;
  /** True once the database is open and migrated (at once, unless opened in the background); false if stopped before. */
  ready: Promise<boolean>;
  inBackground: boolean;
  schemaReady: () => boolean;
  /** Resolves once migrations ran after a start with the database unreachable. */
  migratedLate?: Promise<void>;
}

/**
 * After a clean stop the embedded database opens (and migrates) in the background while calls are
 * answered from the directory's snapshot (clean-stop.ts); otherwise it is opened and migrated first.
 * A database unreachable at start is served without, migrated once it answers.
 */
async function openForServing(config: Config, tracer: Tracer | undefined, logger: Logger, inBackground: boolean): Promise<ServingStart> {
  const options = { ...databaseOptions(config), tracer };
  if (inBackground) {
    const opening = openDatabaseInBackground(options, (database) => migrateIfAsked(config, database, logger));
    // A database that cannot be opened or migrated ends the process, as it does before listening;
    // the next start (systemd's) opens it first.
    const ready = opening.ready.catch((error: unknown) => exitOnStartFailure(error, logger));
    // Nothing reaches the database before it is migrated: until then it refuses every statement.
    return { database: opening.database, ready, inBackground, schemaReady: () => true };
  }
  const database = await openDatabase(options);
  // Started while the database is down (a restart during an outage): serve anyway, from the
  // directory's snapshot, journaling records; migrate once it answers, then replay.
  let schemaReady = await migrateAtStart(config, database, logger);
  const migratedLate = schemaReady
    ? undefined
    : migrateWhenReachable(database, logger).then(() => {
        schemaReady = true;
      });
  return { database, ready: Promise.resolve(true), inBackground, schemaReady: () => schemaReady, migratedLate };
}

/** Resolves with exit status 0 once `stop` has run, on the first SIGTERM or SIGINT. */
function stopOnSignal(stop: (signal: string) => Promise<void>): Promise<number> {
  const stopped = Promise.withResolvers<number>();
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void stop(signal).then(() => stopped.resolve(0));
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  return stopped.promise;
}

function startTracingIfAsked(config: Config, logger: Logger): Tracing | undefined {
  if (!config.tracing) return undefined;
  const { origin, pathname } = new URL(config.tracing.url);
  logger.info({ otlp_traces_url: `${origin}${pathname}`, sampler: config.tracing.sampler }, "tracing on: spans exported as OTLP/HTTP JSON");
  return startTracing(config.tracing, logger);
}

/**
 * A LiveKit join takes three bounded database steps (event claim; the call's record with its join
 * time and dispatch claim; the dispatch's record, marking the event done) and the dispatch budget.
 * Its answer comes within LIVEKIT_WEBHOOK_BUDGET_MS, but the work goes on: the event hold and
 * dispatch claim must outlast it, or a redelivery may act alongside it.
 */
function warnIfHoldTooShort(config: Config, logger: Logger) {
  const worstJoinMs = 3 * config.statementTimeoutMs + config.livekit.dispatchBudgetMs;
  if (worstJoinMs <= HOLD_MS) return;
  logger.warn(
    { worst_join_ms: worstJoinMs, hold_ms: HOLD_MS },
    "DB_STATEMENT_TIMEOUT_MS x3 + LIVEKIT_DISPATCH_BUDGET_MS exceeds the event hold: a slow delivery may overlap its redelivery",
  );
}

function logLiveKitMode(config: Config, livekit: LiveKitClients | undefined, logger: Logger) {
  logger.info(
    {
      webhook_signatures: Boolean(config.livekit.apiKey && config.livekit.verifyWebhooks),
      dispatch: config.livekit.dispatch && Boolean(livekit),
      livekit_url: config.livekit.url ?? null,
    },
    config.livekit.dispatch && !livekit
      ? "LiveKit API not configured (LIVEKIT_URL and keys): calls are routed and logged, agents are not dispatched"
      : "LiveKit mode",
  );
}

/** Calls are routed from memory: the directory (or its last snapshot) is loaded before the first one. */
async function loadDirectory(
  config: Config,
  database: Database,
  logger: Logger,
  snapshotPath: string | undefined,
  opening: boolean,
): Promise<RoutingDirectory> {
  const directory = createRoutingDirectory({ database, logger, waitMs: config.statementTimeoutMs, reloadIntervalMs: 60_000, snapshotPath });
  await directory.firstLoad.catch(async (error: unknown) => {
    if (await directory.restoreSnapshot(opening)) return;
    logger.error({ err: error }, "routing directory not loaded: every call gets the system default until the database answers");
  });
  return directory;
}

/** Webhook event ids are kept a week (LiveKit redelivers within seconds): pruned at start and hourly. */
function startPruning(database: Database, logger: Logger) {
  const prune = () =>
    pruneWebhookEvents({ database }).then(
      (removed) => removed && logger.info({ removed }, "old webhook event ids pruned"),
      (error: unknown) => logger.warn({ err: error }, "pruning webhook event ids failed"),
    );
  void prune();
  return setInterval(prune, 60 * 60 * 1000);
}

/** Migrates unless told not to (MIGRATE_ON_START=false). */
async function migrateIfAsked(config: Config, database: Database, logger: Logger): Promise<void> {
  if (!config.migrateOnStart) return;
  const { applied } = await migrateDatabase(database);
  if (applied.length) logger.info({ applied }, "migrations applied");
}

/** Migrates unless told not to; false when the database could not be reached (serve goes on without it). */
async function migrateAtStart(config: Config, database: Database, logger: Logger): Promise<boolean> {
  try {
    await migrateIfAsked(config, database, logger);
    return true;
  } catch (error) {
    if (!isDatabaseUnavailable(error)) throw error;
    logger.error({ err: error }, "database unreachable at start: routing from memory, records journaled; migrating once it answers");
    return false;
  }
}

/** Retries the migrations every second until the database answers; a migration it refuses ends the process. */
async function migrateWhenReachable(database: Database, logger: Logger): Promise<void> {
  for (;;) {
    await Bun.sleep(1000);
    try {
      const { applied } = await migrateDatabase(database);
      logger.info({ applied }, "database reachable: migrations checked, journal replay can start");
      return;
    } catch (error) {
      if (isDatabaseUnavailable(error)) continue;
      exitOnStartFailure(error, logger);
    }
  }
}

function exitOnStartFailure(error: unknown, logger: Logger): never {
  logger.fatal({ err: error }, "the database could not be opened or migrated after the server started");
  process.exit(error instanceof MigrationRefusedError ? EXIT_MIGRATION_REFUSED : 1);
}

/** The journal lives beside the embedded database, in DATA_DIR; an in-memory DATA_DIR has none. */
function openCallJournal(config: Config, logger: Logger): Journal | undefined {
  if (config.dataDir === "memory://") {
    logger.warn("DATA_DIR is memory://: no journal; calls the database cannot take are only logged");
    return undefined;
  }
  return openJournal({ dir: join(config.dataDir, "journal"), logger });
}

/**
 * A tenant's agent the admin API would refuse today can exist from before SYSTEM_DEFAULT_AGENT
 * changed: LiveKit dispatches by name, so that tenant's worker would get the system default's callers.
 */
async function warnOnTenantAgentNamedLikeSystemDefault(database: Database, name: string, logger: Logger) {
  try {
    const taken = await database.db
      .select({ id: agents.id, tenantId: agents.tenantId })
      .from(agents)
      .where(and(eq(agents.name, name), isNotNull(agents.tenantId)));
    for (const agent of taken) {
      logger.warn(
        { agent_id: agent.id, tenant_id: agent.tenantId, agent_name: name },
        "a tenant's agent has the SYSTEM_DEFAULT_AGENT name: calls for the system default reach that tenant's worker; rename the agent or change SYSTEM_DEFAULT_AGENT",
      );
    }
  } catch (error) {
    logger.warn({ err: error }, "could not check agent names against SYSTEM_DEFAULT_AGENT");
  }
}
