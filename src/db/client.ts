// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import { mkdirSync } from "node:fs";
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
import { tryLockFile } from "../lock-file";
import { isConnectionLost } from "./errors";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: "postgres" | "pglite";
  /**
   * Runs raw SQL and returns its rows, whichever driver is underneath, within the statement
   * timeout. While the database is known to be down it fails at once with DatabaseDownError.
   */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  ping(): Promise<void>;
  /** Whether statements are worth trying: false from a lost connection until a probe gets an answer. */
  readonly available: boolean;
  /** Since when the database has been down, or null while it is up. */
  readonly downSince: Date | null;
  /** Called each time the database answers again after being down. */
  onRecovered(listener: () => void): void;
  /**
   * Calls onNotify for each NOTIFY on `channel`, and onListening each time the subscription is
   * (re)established, when notifications may have been missed. Keeps retrying while the database is down.
   */
  listen(channel: string, onNotify: () => void, onListening: () => void): void;
  close(): Promise<void>;
}

/** How often a database known to be down is asked whether it is back. */
const PROBE_INTERVAL_MS = 250;

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

type Subscribe = (channel: string, onNotify: () => void, onListening: () => void) => Promise<unknown>;

function wrap(
  db: Db,
  kind: Database["kind"],
  timeoutMs: number,
  execute: (query: SQL) => Promise<unknown>,
  subscribe: Subscribe,
  close: () => Promise<void>,
): Database {
  let closed = false;
  let downSince: Date | null = null;
  let downBecause: unknown;
  const recovered: (() => void)[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closed) work();
    }, ms);
    timers.add(timer);
  };
  // statement_timeout cannot help when the server stops answering altogether; this bound can.
  const attempt = async (query: SQL) => rowsOf(await withDeadline(execute(query), timeoutMs, "database query"));
  // Once a connection is lost, callers stop waiting on the database: a probe in the background
  // asks until it answers, so no caller pays a timeout to learn what the last one learned.
  const probe = () =>
    attempt(sql`select 1`).then(
      () => {
        downSince = null;
        for (const listener of recovered) listener();
      },
      () => later(PROBE_INTERVAL_MS, probe),
    );
  const markDown = (error: unknown) => {
    if (closed || downSince || !isConnectionLost(error)) return;
    downSince = new Date();
    downBecause = error;
    later(PROBE_INTERVAL_MS, probe);
  };
  const rows = async <T extends Record<string, unknown>>(query: SQL) => {
    if (closed) throw new DatabaseClosedError();
    if (downSince) throw new DatabaseDownError(downSince, downBecause);
    try {
      return (await attempt(query)) as T[];
    } catch (error) {
      markDown(error);
      throw error;
    }
  };
  const listen = (channel: string, onNotify: () => void, onListening: () => void) => {
    const start = () =>
      subscribe(channel, onNotify, onListening).catch(() => later(PROBE_INTERVAL_MS * 8, start));
    void start();
  };
  return {
    db,
    kind,
    rows,
    ping: async () => {
      await rows(sql`select 1`);
    },
    get available() {
      return !downSince && !closed;
    },
    get downSince() {
      return downSince;
    },
    onRecovered: (listener) => void recovered.push(listener),
    listen,
    close: async () => {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      await close();
    },
  };
}

/** A statement while the database is known to be down: refused at once, a probe watches for its return. */
export class DatabaseDownError extends Error {
  readonly code = "CONNECTION_DOWN";
  /** `cause`: the failure that showed the database was down (refused, timed out...), for the logs. */
  constructor(since: Date, cause?: unknown) {
    super(`database unavailable since ${since.toISOString()}`, { cause });
    this.name = "DatabaseDownError";
  }
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
  // postgres.js listens on a connection of its own and listens again after reconnecting.
  const subscribe: Subscribe = (channel, onNotify, onListening) => client.listen(channel, onNotify, onListening);
  return wrap(db, "postgres", options.statementTimeoutMs, execute, subscribe, () => client.end({ timeout: 5 }));
}

/**
 * PGlite is one process's database: a second process on the same directory would corrupt it.
 * The holder keeps an exclusive lock on DATA_DIR/switchboard.lock (see lock-file.ts).
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const unlock = tryLockFile(join(dataDir, "switchboard.lock"));
  if (!unlock) {
    throw new Error(
      `DATA_DIR ${dataDir} is in use by another switchboard process; stop it first, or use DATABASE_URL to share a PostgreSQL`,
    );
  }
  return unlock;
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
    const subscribe: Subscribe = async (channel, onNotify, onListening) => {
      await client.listen(channel, onNotify);
      onListening();
    };
    return wrap(db, "pglite", statementTimeoutMs, (query) => db.execute(query), subscribe, async () => {
      await client.close();
      unlock();
    });
  } catch (error) {
    unlock();
    throw error;
  }
}
