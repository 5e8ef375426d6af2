// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pgliteData from "@electric-sql/pglite/pglite.data" with { type: "file" };
import initdbWasm from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteWasm from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import { type SQL, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "postgres" | "pglite";
  /** Runs raw SQL and returns its rows, whichever driver is underneath. */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  /** PGlite data directory; "memory://" keeps it in memory. */
  dataDir: string;
  poolMax: number;
  statementTimeoutMs: number;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options.dataDir);
}

/** The rows of a `db.execute` result: postgres.js answers an array, PGlite an object holding one. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

function wrap(db: Db, kind: Database["kind"], close: () => Promise<void>): Database {
  const rows = async <T extends Record<string, unknown>>(query: SQL) => rowsOf<T>(await db.execute(query));
  return {
    db,
    kind,
    rows,
    ping: async () => {
      await rows(sql`select 1`);
    },
    close,
  };
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const client = postgres(url, {
    max: options.poolMax,
    // A sick database must not hold a caller: statements and connects are bounded.
    connect_timeout: Math.max(1, Math.ceil(options.statementTimeoutMs / 1000)),
    idle_timeout: 60,
    connection: { statement_timeout: options.statementTimeoutMs, application_name: "switchboard" },
    onnotice: () => {},
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return wrap(db, "postgres", () => client.end({ timeout: 5 }));
}

/**
 * PGlite is one process's database: a second process on the same directory would corrupt it.
 * A pid file refuses that with a clear message; a stale one (its process gone) is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lock = join(dataDir, "switchboard.pid");
  try {
    writeFileSync(lock, String(process.pid), { flag: "wx" });
  } catch {
    const owner = Number(readFileSync(lock, "utf8").trim());
    if (owner && owner !== process.pid && processAlive(owner)) {
      throw new Error(
        `DATA_DIR ${dataDir} is in use by another switchboard process (pid ${owner}); stop it first, or use DATABASE_URL to share a PostgreSQL`,
      );
    }
    writeFileSync(lock, String(process.pid));
  }
  return () => rmSync(lock, { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function openPglite(dataDir: string): Promise<Database> {
  const inMemory = dataDir === "memory://";
  const unlock = inMemory ? () => {} : lockDataDir(dataDir);
  // The WebAssembly modules and the file-system bundle are read from files Bun embeds
  // in the compiled binary, so the executable needs nothing next to it.
  const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
    Bun.file(pgliteWasm).arrayBuffer().then((b) => WebAssembly.compile(b)),
    Bun.file(initdbWasm).arrayBuffer().then((b) => WebAssembly.compile(b)),
  ]);
  try {
    const client = await PGlite.create({
      dataDir: inMemory ? undefined : dataDir,
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: Bun.file(pgliteData),
    });
    const db = drizzlePglite(client, { schema }) as unknown as Db;
    return wrap(db, "pglite", async () => {
      await client.close();
      unlock();
    });
  } catch (error) {
    unlock();
    throw error;
  }
}
