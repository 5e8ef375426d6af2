// A Switchboard app wired to a fresh database for one test file: PGlite in memory by default,
// the real PostgreSQL named by DATABASE_URL when the suite runs against it.
import { sql } from "drizzle-orm";
import { applyDirectory } from "../../src/admin/directory";
import { createApp } from "../../src/app";
import { type Config, loadConfig } from "../../src/config";
import { type Database, openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";
import { createLogger } from "../../src/logger";

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface TestContext {
  app: ReturnType<typeof createApp>;
  database: Database;
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
  extra: { database?: Database } = {},
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
  const app = createApp({ database, config, logger });
  const reset = () => resetData(database);
  await reset();
  return {
    app,
    database,
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
    seed: async (directory) => {
      await applyDirectory(database.db, directory, config.defaultRegion, config.systemDefaultAgent);
    },
    reset,
    close: () => database.close(),
  };
}

export async function resetData(database: Database): Promise<void> {
  await database.db.execute(
    sql`truncate call_logs, leads, phone_numbers, campaigns, agents, api_keys, tenants, webhook_events restart identity cascade`,
  );
}
