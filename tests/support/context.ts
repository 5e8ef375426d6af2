// A Switchboard app wired to an empty database for one test file: PGlite in memory by default
// (wiped and handed on from file to file, see below), the real PostgreSQL named by DATABASE_URL
// when the suite runs against it.
import { type SQL, sql } from "drizzle-orm";
import { applyDirectory } from "../../src/admin/directory";
import { createApp } from "../../src/app";
import { createRoutingDirectory, type RoutingDirectory } from "../../src/calls/directory";
import { type Config, loadConfig } from "../../src/config";
import { type Database, DatabaseClosedError, openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";
import { withDeadline } from "../../src/errors";
import type { Journal } from "../../src/journal/journal";
import { createLogger } from "../../src/logger";

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface TestContext {
  app: ReturnType<typeof createApp>;
  database: Database;
  /** The app's in-memory routing directory (seed and reset reload it before they return). */
  directory: RoutingDirectory;
  config: Config;
  /** Every line the app logged, parsed. */
  logs: LogLine[];
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  get(path: string): Promise<Response>;
  seed(directory: unknown): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** The environment a test app starts from: the suite's database choice plus the test's overrides. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    DATABASE_URL: process.env.DATABASE_URL,
    DATA_DIR: "memory://",
    LOG_LEVEL: "debug",
    // Outbound webhooks are delivered only where a test asks (tests/webhooks*.test.ts).
    WEBHOOK_DELIVERY: "false",
    ...overrides,
  };
}

export async function openTestContext(
  overrides: Record<string, string> = {},
  extra: { database?: Database; journal?: Journal; now?: () => Date } = {},
): Promise<TestContext> {
  const config = loadConfig(testEnv(overrides));
  const own = extra.database
    ? undefined
    : await openTestDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: config.dbPoolMax });
  const database = extra.database ?? own!.database;
  await migrate(database);
  const logs: LogLine[] = [];
  const logger = createLogger(config.logLevel, {
    write: (line: string) => {
      logs.push(JSON.parse(line) as LogLine);
    },
  });
  // Wiped before the app starts: its journal replay (if it has a journal) starts at once.
  await resetData(database);
  const directory = createRoutingDirectory({ database, logger, waitMs: 10_000, reloadIntervalMs: 60_000 });
  const app = createApp({ database, config, logger, directory, journal: extra.journal, now: extra.now });
  const reset = async () => {
    await resetData(database);
    await directory.reload();
  };
  await directory.reload();
  return {
    app,
    database,
    directory,
    config,
    logs,
    post: (path, body, headers = {}) =>
      app.handle(
        new Request(`http://localhost${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
      ),
    get: (path) => app.handle(new Request(`http://localhost${path}`)),
    seed: async (entries) => {
      await applyDirectory(database.db, entries, config.defaultRegion, config.systemDefaultAgent);
      await directory.reload();
    },
    reset,
    close: async () => {
      await app.decorator.webhookDelivery.stop();
      directory.close();
      return own ? own.close() : database.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Embedded databases kept from one test file to the next

/**
 * `bun test` runs the files one after another in one process (and `bun test --parallel --no-isolate`
 * several files in each worker), and each embedded database costs seconds to open (loading its data
 * directory, starting postgres in WebAssembly, migrating). A context's
 * close() therefore hands its database back here instead of closing it, and the next context
 * takes it: migrated already, and wiped by openTestContext like a new one. One a test closed,
 * broke or left busy is closed for real and never handed out again.
 */
const spare: Database[] = [];
/** More than this many idle databases are closed: a few files hold two or three at once. */
const MAX_SPARE = 2;

export interface TestDatabase {
  /** The database, usable until close() (or until a test closes it itself: then for good). */
  database: Database;
  /** Hands an embedded database on to the next test file; closes any other. */
  close(): Promise<void>;
}

/**
 * The suite's database (migrated by whoever opens a context on it): the PostgreSQL DATABASE_URL
 * names, or an in-memory embedded one, reused from an earlier test file when one is free.
 */
export async function openTestDatabase(
  options: { databaseUrl?: string; dataDir?: string; poolMax?: number } = {},
): Promise<TestDatabase> {
  const databaseUrl = "databaseUrl" in options ? options.databaseUrl : testEnv().DATABASE_URL;
  const { dataDir = "memory://", poolMax = 4 } = options;
  const open = () => openDatabase({ databaseUrl, dataDir, poolMax, statementTimeoutMs: 10_000 });
  if (databaseUrl || dataDir !== "memory://") {
    const database = await open();
    return { database, close: () => database.close() };
  }
  return leaseEmbeddedDatabase(open);
}

async function leaseEmbeddedDatabase(open: () => Promise<Database>): Promise<TestDatabase> {
  let real: Database | undefined;
  while (!real && spare.length) {
    const candidate = spare.pop()!;
    // A database still held by something of the last file (a transaction never finished) does
    // not answer within the deadline: closed, and the next one tried.
    const usable = await withDeadline(candidate.ping(), 5_000, "reusing a test database").then(
      () => true,
      () => false,
    );
    if (usable) real = candidate;
    // Not waited for: PGlite's close waits for the transaction that holds it, which may never end.
    else void candidate.close().catch(() => {});
  }
  real ??= await open();
  const database = real;
  let live = true;
  let hooks: ((() => void) | undefined)[] = [];
  const closed = () => new DatabaseClosedError();
  // Late work of this file's app (a background reload, a journal replay) must not reach the next
  // file's data: once released, every use fails as it would on a closed database.
  const guard = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, key) {
        const value = Reflect.get(object, key, object);
        if (typeof value !== "function" || key === "constructor") return value;
        return (...args: unknown[]) => {
          if (!live) throw closed();
          return value.apply(object, args);
        };
      },
    });
  const db = guard(database.db);
  const maintenanceDb = database.maintenanceDb === database.db ? db : guard(database.maintenanceDb);
  const leased = new Proxy(database, {
    get(object, key) {
      switch (key) {
        case "db":
          return db;
        case "maintenanceDb":
          return maintenanceDb;
        case "rows":
          return <T extends Record<string, unknown>>(query: SQL) => (live ? object.rows<T>(query) : Promise.reject(closed()));
        case "ping":
          return () => (live ? object.ping() : Promise.reject(closed()));
        // The database keeps its listeners for good; what they call is dropped on release, so a
        // finished file's app (its directory, its logs) is not kept alive by the next file's.
        case "listen":
          return (channel: string, onNotify: () => void, onListening: () => void) => {
            hooks.push(onNotify, onListening);
            const [notify, listening] = [hooks.length - 2, hooks.length - 1];
            object.listen(channel, () => hooks[notify]?.(), () => hooks[listening]?.());
          };
        case "onRecovered":
          return (listener: () => void) => {
            hooks.push(listener);
            const index = hooks.length - 1;
            object.onRecovered(() => hooks[index]?.());
          };
        case "close":
          // A test that closes the database means it (an outage): it is not handed out again.
          return async () => {
            live = false;
            hooks = [];
            await object.close();
          };
        default:
          return Reflect.get(object, key, object);
      }
    },
  });
  return {
    database: leased,
    async close() {
      if (!live) return; // the test closed it itself
      live = false;
      hooks = [];
      if (database.available && spare.length < MAX_SPARE) spare.push(database);
      else await database.close();
    },
  };
}

/**
 * Empties every table. A statement still reading them (the routing directory reloading on the
 * last test's NOTIFY) can meet TRUNCATE's locks in the other order: PostgreSQL then cancels one
 * of the two (deadlock detected), and a reset that lost is simply run again. It runs without the
 * database's statement timeout: tests of a busy database open it with 300 ms, which a TRUNCATE of
 * every table can take on a loaded machine, failing the setup rather than the test.
 */
export async function resetData(database: Database): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await database.maintenanceDb.transaction(async (tx) => {
        await tx.execute(sql`set local statement_timeout = 0`);
        await tx.execute(
          sql`truncate call_logs, leads, phone_numbers, campaigns, schedules, blocklist_entries, agents, api_keys, webhook_attempts, webhook_deliveries, outbox_events, webhook_endpoints, tenants, webhook_events restart identity cascade`,
        );
      });
      return;
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if (code !== "40P01" || attempt === 5) throw error;
    }
  }
}
