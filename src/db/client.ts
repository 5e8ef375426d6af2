// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dlopen, FFIType } from "bun:ffi";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pgliteData from "@electric-sql/pglite/pglite.data" with { type: "file" };
import initdbWasm from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteWasm from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import { type SQL, sql } from "drizzle-orm";
import { type PgDatabase, PgDialect, type PgQueryResultHKT } from "drizzle-orm/pg-core";
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

function wrap(
  db: Db,
  kind: Database["kind"],
  timeoutMs: number,
  execute: (query: SQL) => Promise<unknown>,
  close: () => Promise<void>,
): Database {
  let closed = false;
  // statement_timeout cannot help when the server stops answering altogether; this bound can.
  const rows = async <T extends Record<string, unknown>>(query: SQL) => {
    if (closed) throw new DatabaseClosedError();
    return rowsOf<T>(await withDeadline(execute(query), timeoutMs, "database query"));
  };
  return {
    db,
    kind,
    rows,
    ping: async () => {
      await rows(sql`select 1`);
    },
    close: async () => {
      closed = true;
      await close();
    },
  };
}

/** A statement after close() (during shutdown): unavailable, like a connection postgres.js has ended. */
export class DatabaseClosedError extends Error {
  readonly code = "CONNECTION_ENDED";
  constructor() {
    super("database closed");
    this.name = "DatabaseClosedError";
  }
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const client = postgres(url, {
    max: options.poolMax,
    // A sick database must not hold a caller: statements and connects are bounded.
    connect_timeout: Math.max(1, Math.ceil(options.statementTimeoutMs / 1000)),
    // Calls come and go; a warm connection saves the handshake on the next caller's path.
    idle_timeout: 600,
    // Switchboard reads no array or custom types: skip the type lookup on every new connection.
    fetch_types: false,
    connection: { statement_timeout: options.statementTimeoutMs, application_name: "switchboard" },
    onnotice: () => {},
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  // The call path's statements run as named prepared statements: one round trip each, where
  // an unprepared statement with parameters costs two (describe, then execute).
  const dialect = new PgDialect();
  const execute = (query: SQL) => {
    const { sql: text, params } = dialect.sqlToQuery(query);
    return Promise.resolve(client.unsafe(text, params as never[], { prepare: true }));
  };
  return wrap(db, "postgres", options.statementTimeoutMs, execute, () => client.end({ timeout: 5 }));
}

/**
 * PGlite is one process's database: a second process on the same directory would corrupt it.
 * The holder keeps an exclusive flock(2) on DATA_DIR/switchboard.lock. The kernel drops it when
 * the holder exits however it exits, it is atomic (two openers cannot both win), and it works
 * across containers sharing a volume, where a pid would not (everyone is pid 1).
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const fd = openSync(join(dataDir, "switchboard.lock"), "a");
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    throw new Error(
      `DATA_DIR ${dataDir} is in use by another switchboard process; stop it first, or use DATABASE_URL to share a PostgreSQL`,
    );
  }
  return () => closeSync(fd); // closing the descriptor releases the lock
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** libc's flock(2); loaded only when an embedded database is opened. */
function flock(fd: number, operation: number): number {
  const libc = dlopen(process.platform === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  });
  try {
    return libc.symbols.flock(fd, operation);
  } finally {
    libc.close();
  }
}

async function openPglite({ dataDir, statementTimeoutMs }: DatabaseOptions): Promise<Database> {
  const inMemory = dataDir === "memory://";
  const unlock = inMemory ? () => {} : lockDataDir(dataDir);
  // The WebAssembly modules and the file-system bundle are read from files Bun embeds
  // in the compiled binary, so the executable needs nothing next to it.
  try {
    const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
      Bun.file(pgliteWasm).arrayBuffer().then((b) => WebAssembly.compile(b)),
      Bun.file(initdbWasm).arrayBuffer().then((b) => WebAssembly.compile(b)),
    ]);
    const client = await PGlite.create({
      dataDir: inMemory ? undefined : dataDir,
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: Bun.file(pgliteData),
    });
    const db = drizzlePglite(client, { schema }) as unknown as Db;
    return wrap(db, "pglite", statementTimeoutMs, (query) => db.execute(query), async () => {
      await client.close();
      unlock();
    });
  } catch (error) {
    unlock();
    throw error;
  }
}
