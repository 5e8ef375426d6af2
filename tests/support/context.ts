// A Switchboard app wired to a fresh database for one test file: PGlite in memory by default,
// the real PostgreSQL named by DATABASE_URL when the suite runs against it.
import { sql } from "drizzle-orm";
import { applyDirectory } from "../../src/admin/directory";
import { createApp } from "../../src/app";
import { createRoutingDirectory, type RoutingDirectory } from "../../src/calls/directory";
import { type Config, loadConfig } from "../../src/config";
import { type Database, openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";
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
    ...overrides,
  };
}

export async function openTestContext(
  overrides: Record<string, string> = {},
  extra: { database?: Database; journal?: Journal } = {},
): Promise<TestContext> {
  const config = loadConfig(testEnv(overrides));
  const database =
    extra.database ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolMax: config.dbPoolMax,
      statementTimeoutMs: 10_000,
    }));
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
  const app = createApp({ database, config, logger, directory, journal: extra.journal });
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
    close: () => {
      directory.close();
      return database.close();
    },
  };
}

export async function resetData(database: Database): Promise<void> {
  await database.db.execute(
    sql`truncate call_logs, leads, phone_numbers, campaigns, agents, api_keys, tenants, webhook_events restart identity cascade`,
  );
}
