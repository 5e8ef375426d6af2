// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import { mkdirSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
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
import { withDeadline } from "../errors";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "postgres" | "pglite";
  /** Runs raw SQL and returns its rows, whichever driver is underneath, within the statement timeout. */
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
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options);
}

/** The rows of a `db.execute` result: postgres.js answers an array, PGlite an object holding one. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

function wrap(db: Db, kind: Database["kind"], timeoutMs: number, close: () => Promise<void>): Database {
  // statement_timeout cannot help when the server stops answering altogether; this bound can.
  const rows = async <T extends Record<string, unknown>>(query: SQL) =>
    rowsOf<T>(await withDeadline(Promise.resolve(db.execute(query)), timeoutMs, "database query"));
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
  return wrap(db, "postgres", options.statementTimeoutMs, () => client.end({ timeout: 5 }));
}

/**
 * PGlite is one process's database: a second process on the same directory would corrupt it.
 * The holder listens on a Unix socket in the directory. A newcomer that can connect to it
 * is refused; a socket nobody answers is left over from a crash and is taken over. Unlike a
 * pid file this also works across containers sharing a volume (where everyone is pid 1).
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, "switchboard.lock");
  const server = createServer((socket) => socket.end());
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
  try {
    await listen();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") {
      throw new Error(`cannot lock DATA_DIR ${dataDir}: ${(error as Error).message}`);
    }
    if (await answers(path)) {
      throw new Error(
        `DATA_DIR ${dataDir} is in use by another switchboard process; stop it first, or use DATABASE_URL to share a PostgreSQL`,
      );
    }
    rmSync(path, { force: true });
    await listen();
  }
  return () =>
    new Promise<void>((resolve) =>
      server.close(() => {
        rmSync(path, { force: true });
        resolve();
      }),
    );
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function openPglite({ dataDir, statementTimeoutMs }: DatabaseOptions): Promise<Database> {
  const inMemory = dataDir === "memory://";
  const unlock = inMemory ? async () => {} : await lockDataDir(dataDir);
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
    return wrap(db, "pglite", statementTimeoutMs, async () => {
      await client.close();
      await unlock();
    });
  } catch (error) {
    await unlock();
    throw error;
  }
}
