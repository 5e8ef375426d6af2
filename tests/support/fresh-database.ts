// A database with no migrations applied, for tests of migrating: PGlite in a temporary directory,
// or a new database on the PostgreSQL server DATABASE_URL names (the suite's own is migrated).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../src/db/client";

export interface FreshDatabase {
  /** Opens it; PGlite's lives in a directory, so the CLI can open it between two of our opens. */
  open(): Promise<Database>;
  /** What `switchboard` needs in its environment to use it. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

export async function freshDatabase(): Promise<FreshDatabase> {
  const options = { dataDir: "memory://", poolMax: 1, statementTimeoutMs: 30_000 };
  const suiteUrl = process.env.DATABASE_URL;
  if (!suiteUrl) {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-fresh-"));
    const dataDir = join(dir, "data");
    return {
      open: () => openDatabase({ ...options, dataDir }),
      env: { DATA_DIR: dataDir },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  // The suite's database has every migration already: this test needs one that has none.
  const name = `switchboard_fresh_${randomBytes(6).toString("hex")}`;
  const server = await openDatabase({ ...options, databaseUrl: suiteUrl });
  await server.rows(sql.raw(`create database ${name}`));
  const url = new URL(suiteUrl);
  url.pathname = `/${name}`;
  return {
    open: () => openDatabase({ ...options, databaseUrl: url.toString() }),
    env: { DATABASE_URL: url.toString() },
    drop: async () => {
      await server.rows(sql.raw(`drop database if exists ${name} with (force)`));
      await server.close();
    },
  };
}
