#!/usr/bin/env -S bun --max-http-header-size=65536
// The switchboard command: serve (default), migrate, seed FILE, livekit provision|status.
import { get as httpGet } from "node:http";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { and, eq, isNotNull } from "drizzle-orm";
import { applyDirectory, DirectoryError } from "./admin/directory";
import { apiKeyView, createApiKey, revokeApiKey, tenantIdByName } from "./admin/keys";
import { createApp, listenOptions } from "./app";
import { createRoutingDirectory } from "./calls/directory";
import { firstLine, operatingErrorLine } from "./cli-errors";
import { assertServable, type Config, ConfigError, loadConfig } from "./config";
import { type Database, openDatabase } from "./db/client";
import { constraintViolation, isDatabaseUnavailable } from "./db/errors";
import { migrate, MigrationChangedError } from "./db/migrate";
import { agents, apiKeys } from "./db/schema";
import { runDoctor } from "./doctor/doctor";
import { AppError } from "./errors";
import { type Journal, openJournal } from "./journal/journal";
import { createLiveKitClients } from "./livekit/clients";
import { HOLD_MS, pruneWebhookEvents } from "./livekit/event-lease";
import { applyProvisioning, describePlan, liveKitStatus, planProvisioning } from "./livekit/provision";
import { createLogger, type Logger } from "./logger";
import { startTracing } from "./tracing/tracing";
import { VERSION, VERSION_LINE } from "./version";

const HELP = `switchboard ${VERSION}: inbound call router for AI voice agents on LiveKit

Usage:
  switchboard [serve]            start the HTTP server (migrates first unless MIGRATE_ON_START=false)
  switchboard migrate            apply database migrations and exit
  switchboard seed FILE          load tenants, agents, campaigns and numbers from a JSON directory file
  switchboard livekit provision [--dry-run]
                                 create or update the LiveKit SIP inbound trunk and dispatch rule
  switchboard livekit status     list LiveKit trunks and rules, and numbers missing from LiveKit
  switchboard keys create --admin [--label L]
  switchboard keys create --tenant NAME [--label L]
                                 print a new API key for every tenant (--admin) or for one
                                 (shown once; only its hash is stored)
  switchboard keys list          list API keys (prefix, tenant, label, created, last used, revoked)
  switchboard keys revoke ID     revoke an API key
  switchboard healthcheck        exit 0 if the server on PORT answers /healthz (for container health checks)
  switchboard doctor             check configuration, DATA_DIR, database, LiveKit and webhook keys; say what to fix
  switchboard --help | --version

Configuration is read from environment variables; see README.md. Without DATABASE_URL the
embedded PostgreSQL in DATA_DIR (default ./data) is used.`;

class UsageError extends Error {}

/** The database refused a migration over data someone has to fix first (the message says what). */
class MigrationRefusedError extends Error {}

/**
 * Exit statuses a restart cannot cure (deploy/switchboard.service: RestartPreventExitStatus):
 * 2 for a configuration or usage error, 3 for a migration refused until someone fixes the data or files.
 */
const EXIT_CONFIGURATION = 2;
const EXIT_MIGRATION_REFUSED = 3;

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...args] = argv;
  // `npm start -- --help` arrives as `serve --help`: help wins wherever it is asked for.
  if (["--help", "-h", "help"].includes(command) || args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  if (command === "--version" || command === "-v" || command === "version") {
    console.log(VERSION_LINE);
    return 0;
  }
  const config = loadConfig();
  // The data directory holds callers' numbers: what switchboard creates is for its own user only.
  process.umask(0o077);
  const logger = createLogger(config.logLevel);
  switch (command) {
    case "serve":
      assertServable(config);
      return serve(config, logger);
    case "migrate":
      return withDatabase(config, async (database) => {
        const { applied } = await migrateDatabase(database);
        console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
        return 0;
      });
    case "seed": {
      const file = args[0];
      if (!file) throw new UsageError("seed needs a FILE: switchboard seed examples/directory.json");
      return withDatabase(config, async (database) => {
        if (config.migrateOnStart) await migrateDatabase(database);
        const directory = await readJson(file);
        const summary = await applyDirectory(database.db, directory, config.defaultRegion, config.systemDefaultAgent);
        console.log(
          `seeded ${file}: ${summary.tenants} tenants, ${summary.agents} agents, ` +
            `${summary.campaigns} campaigns, ${summary.phoneNumbers} phone numbers`,
        );
        return 0;
      });
    }
    case "livekit":
      return liveKitCommand(config, args);
    case "keys":
      return keysCommand(config, args);
    case "healthcheck":
      return healthcheck(config);
    case "doctor":
      return runDoctor(config, (line) => console.log(line));
    default:
      throw new UsageError(`unknown command "${command}" (try --help)`);
  }
}

async function liveKitCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...flags] = args;
  if (sub !== "provision" && sub !== "status") throw new UsageError("usage: switchboard livekit provision [--dry-run] | status");
  const clients = createLiveKitClients(config.livekit);
  if (!clients) throw new UsageError("LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set");
  const settings = {
    trunkName: config.livekit.trunkName,
    dispatchRuleName: config.livekit.dispatchRuleName,
    roomPrefix: config.livekit.roomPrefix,
  };
  return withDatabase(config, async (database) => {
    if (config.migrateOnStart) await migrateDatabase(database);
    if (sub === "status") {
      for (const line of await liveKitStatus(database, clients.sip)) console.log(line);
      return 0;
    }
    const plan = await planProvisioning(database, clients.sip, settings);
    for (const line of describePlan(plan, settings)) console.log(line);
    if (flags.includes("--dry-run")) {
      console.log("dry run: nothing changed");
      return 0;
    }
    const { trunkId, ruleId } = await applyProvisioning(clients.sip, plan, settings);
    console.log(`provisioned: trunk ${trunkId}, dispatch rule ${ruleId}`);
    return 0;
  });
}

async function keysCommand(config: Config, args: string[]): Promise<number> {
  const usage = "usage: switchboard keys create --admin | --tenant NAME [--label L] | list | revoke ID";
  let parsed: ReturnType<typeof parseKeyArgs>;
  try {
    parsed = parseKeyArgs(args);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${usage}`);
  }
  const { positionals, values } = parsed;
  const [sub, id] = positionals;
  return withDatabase(config, async (database) => {
    if (config.migrateOnStart) await migrateDatabase(database);
    const db = database.db;
    if (sub === "create") {
      if (Boolean(values.admin) === Boolean(values.tenant)) throw new UsageError(`give --admin or --tenant NAME\n${usage}`);
      const tenantId = values.tenant ? await tenantIdByName(db, values.tenant) : null;
      const { key, apiKey } = await createApiKey(db, { tenantId, label: values.label });
      console.log(key);
      console.error(
        `created ${tenantId ? `a key for tenant "${values.tenant}"` : "an admin key"} (id ${apiKey.id}); ` +
          "it is shown only now: store it as a secret",
      );
      return 0;
    }
    if (sub === "list") {
      console.log(["id", "prefix", "tenant", "label", "created", "last used", "status"].join("\t"));
      for (const row of await db.select().from(apiKeys).orderBy(apiKeys.createdAt)) {
        const key = apiKeyView(row);
        console.log(
          [key.id, key.prefix, key.tenant_id ?? "admin", key.label ?? "-", key.created_at, key.last_used_at ?? "never", key.revoked_at ? `revoked ${key.revoked_at}` : "active"].join("\t"),
        );
      }
      return 0;
    }
    if (sub === "revoke" && id) {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
        throw new UsageError(`"${id}" is not a key id (the first column of switchboard keys list)`);
      }
      const outcome = await revokeApiKey(db, { kind: "admin", keyId: "cli" }, id);
      console.log(`${outcome} ${id}`);
      return 0;
    }
    throw new UsageError(usage);
  });
}

function parseKeyArgs(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { admin: { type: "boolean" }, tenant: { type: "string" }, label: { type: "string" } },
  });
}

/**
 * For a container's HEALTHCHECK (no shell, no curl in the image): 0 when the server on this
 * machine's PORT answers /healthz within 3 s. Liveness, not readiness: while the database is
 * down the server still routes calls, and a restart would not bring the database back.
 */
async function healthcheck(config: Config): Promise<number> {
  // A server on any address (0.0.0.0, ::) takes IPv4 loopback too, and ::1 may not exist in a container.
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${config.port}/healthz`;
  // node:http, not fetch: fetch would send it through HTTP_PROXY, set in many containers.
  const status = await new Promise<number | Error>((done) => {
    const request = httpGet(url, { timeout: 3_000 }, (answer) => {
      answer.resume();
      done(answer.statusCode ?? 0);
    });
    request.on("timeout", () => request.destroy(new Error("no answer within 3 s")));
    request.on("error", done);
  });
  if (status === 200) return 0;
  console.error(`switchboard: unhealthy: ${url} ${typeof status === "number" ? `answered ${status}` : `did not answer (${status.message})`}`);
  return 1;
}

async function readJson(path: string): Promise<unknown> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new UsageError(`${path}: no such file`);
  try {
    return JSON.parse(await file.text());
  } catch (error) {
    throw new UsageError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

/**
 * Migrates in one transaction. A constraint the data breaks (0006's check for agent names two
 * tenants share) leaves everything as it was, and its message says what to fix: no stack trace.
 */
async function migrateDatabase(database: Database) {
  try {
    return await migrate(database);
  } catch (error) {
    const violation = constraintViolation(error);
    if (violation) throw new MigrationRefusedError(violation.message);
    if (error instanceof MigrationChangedError) throw new MigrationRefusedError(error.message);
    throw error;
  }
}

async function withDatabase(config: Config, work: (database: Database) => Promise<number>): Promise<number> {
  const database = await openDatabase(databaseOptions(config));
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

function databaseOptions(config: Config) {
  return {
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    statementTimeoutMs: config.statementTimeoutMs,
  };
}

async function serve(config: Config, logger: Logger): Promise<number> {
  const tracing = config.tracing && startTracing(config.tracing, logger);
  if (config.tracing) {
    const { origin, pathname } = new URL(config.tracing.url);
    logger.info({ otlp_traces_url: `${origin}${pathname}`, sampler: config.tracing.sampler }, "tracing on: spans exported as OTLP/HTTP JSON");
  }
  const tracer = tracing?.tracer;
  const database = await openDatabase({ ...databaseOptions(config), tracer });
  // Started while the database is down (a restart during an outage): serve anyway, from the
  // directory's snapshot, journaling records; migrate once it answers, then replay.
  let schemaReady = await migrateAtStart(config, database, logger);
  void warnOnTenantAgentNamedLikeSystemDefault(database, config.systemDefaultAgent, logger);
  const livekit = createLiveKitClients(config.livekit, tracer);
  // A LiveKit join takes three bounded database steps (event claim; the call's record with its
  // join time and dispatch claim; the dispatch's record, marking the event done) and the dispatch
  // budget. Its answer comes within LIVEKIT_WEBHOOK_BUDGET_MS, but the work goes on: the event
  // hold and dispatch claim must outlast it, or a redelivery may act alongside it.
  const worstJoinMs = 3 * config.statementTimeoutMs + config.livekit.dispatchBudgetMs;
  if (worstJoinMs > HOLD_MS) {
    logger.warn(
      { worst_join_ms: worstJoinMs, hold_ms: HOLD_MS },
      "DB_STATEMENT_TIMEOUT_MS x3 + LIVEKIT_DISPATCH_BUDGET_MS exceeds the event hold: a slow delivery may overlap its redelivery",
    );
  }
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
  const directory = createRoutingDirectory({
    database,
    logger,
    waitMs: config.statementTimeoutMs,
    reloadIntervalMs: 60_000,
    snapshotPath: config.dataDir === "memory://" ? undefined : join(config.dataDir, "directory.json"),
  });
  // Calls are routed from memory: load the directory (or its last snapshot) before the first one.
  await directory.firstLoad.catch(async (error: unknown) => {
    if (await directory.restoreSnapshot()) return;
    logger.error({ err: error }, "routing directory not loaded: every call gets the system default until the database answers");
  });
  const journal = openCallJournal(config, logger);
  const app = createApp({ database, config, logger, livekit, directory, journal, tracer, schemaReady: () => schemaReady }).listen(
    listenOptions(config),
  );
  if (!schemaReady) {
    void migrateWhenReachable(database, logger).then(() => {
      schemaReady = true;
      directory.changed();
    });
  }
  const server = app.server!;
  logger.info(
    { host: config.host, port: server.port, database: database.kind, version: VERSION },
    "switchboard listening",
  );

  const prune = () =>
    pruneWebhookEvents({ database }).then(
      (removed) => removed && logger.info({ removed }, "old webhook event ids pruned"),
      (error: unknown) => logger.warn({ err: error }, "pruning webhook event ids failed"),
    );
  void prune();
  const pruning = setInterval(prune, 60 * 60 * 1000);

  const stopped = Promise.withResolvers<number>();
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(pruning);
    logger.info({ signal }, "shutting down: no new connections, finishing in-flight requests");
    // stop() resolves once in-flight requests are answered (and stops the app's background work:
    // directory reloads, journal replay); past the timeout, connections are cut.
    const graceful = app.stop(false);
    const timer = setTimeout(() => {
      logger.warn({ timeout_ms: config.shutdownTimeoutMs }, "shutdown timeout: closing open connections");
      void server.stop(true);
    }, config.shutdownTimeoutMs);
    await graceful;
    clearTimeout(timer);
    directory.close();
    await journal?.close();
    await database.close();
    // The last requests' spans: a backend that does not answer costs them, not the stop.
    await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, "last spans not exported"));
    logger.info("stopped");
    stopped.resolve(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  return stopped.promise;
}

/** Migrates unless told not to; false when the database could not be reached (serve goes on without it). */
async function migrateAtStart(config: Config, database: Database, logger: Logger): Promise<boolean> {
  if (!config.migrateOnStart) return true;
  try {
    const { applied } = await migrateDatabase(database);
    if (applied.length) logger.info({ applied }, "migrations applied");
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
      logger.fatal({ err: error }, "migration failed after the database came back");
      process.exit(error instanceof MigrationRefusedError ? EXIT_MIGRATION_REFUSED : 1);
    }
  }
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      console.error(`switchboard: configuration error: ${error.message}`);
      process.exit(EXIT_CONFIGURATION);
    }
    if (error instanceof UsageError) {
      console.error(`switchboard: ${error.message}`);
      process.exit(EXIT_CONFIGURATION);
    }
    if (error instanceof AppError) {
      console.error(`switchboard: ${error.message}`);
      process.exit(1);
    }
    if (error instanceof MigrationRefusedError) {
      console.error(`switchboard: migration refused, nothing was changed: ${error.message}`);
      process.exit(EXIT_MIGRATION_REFUSED);
    }
    if (error instanceof DirectoryError) {
      console.error(`switchboard: the directory file has problems, nothing was changed:\n${error.message}`);
      process.exit(1);
    }
    // The configuration loaded before the command failed, so it loads again here.
    const config = (() => {
      try {
        return loadConfig();
      } catch {
        return undefined;
      }
    })();
    const context = { port: config?.port ?? 0, databaseUrl: config?.databaseUrl, liveKitUrl: config?.livekit.url };
    console.error(`switchboard: ${operatingErrorLine(error, context) ?? firstLine(error)}`);
    if (error instanceof Error && (config?.logLevel === "debug" || config?.logLevel === "trace")) console.error(error.stack);
    process.exit(1);
  },
);
