// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pgliteData from "@electric-sql/pglite/pglite.data" with { type: "file" };
import initdbWasm from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteWasm from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import { type SQL, sql } from "drizzle-orm";
import { type PgDatabase, PgDialect, type PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import type { Tracer } from "@opentelemetry/api";
import postgres from "postgres";
import { withDeadline } from "../errors";
import { tryLockFile } from "../lock-file";
import { inClientSpan } from "../tracing/spans";
import { type Availability, trackAvailability } from "./availability";
import * as schema from "./schema";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export { DatabaseClosedError, DatabaseDownError } from "./availability";

export interface Database {
  /** Every statement bounded by the statement timeout and refused at once while the database is down. */
  db: Db;
  /** No client-side deadline: for migrations, which may rightly run long. */
  maintenanceDb: Db;
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
  /** Bounded statements sent and not yet answered; more than `connections` means some wait for one. */
  readonly statementsInFlight: number;
  /** How many statements can run at once: DB_POOL_MAX connections, or PGlite's one. */
  readonly connections: number;
  /** Called each time the database answers again after being down. */
  onRecovered(listener: () => void): void;
  /**
   * Calls onNotify for each NOTIFY on `channel`, and onListening each time the subscription is
   * (re)established, when notifications may have been missed. Keeps retrying while the database is down.
   */
  listen(channel: string, onNotify: () => void, onListening: () => void): void;
  close(): Promise<void>;
}


export interface DatabaseOptions {
  databaseUrl?: string;
  /** PGlite data directory; "memory://" keeps it in memory. */
  dataDir: string;
  poolMax: number;
  statementTimeoutMs: number;
  /** Traces each statement when given (OTEL_EXPORTER_OTLP_ENDPOINT set). */
  tracer?: Tracer;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const database = options.databaseUrl ? openPostgres(options.databaseUrl, options) : await openPglite(options);
  return options.tracer ? traceStatements(database, options.tracer) : database;
}

/**
 * A client span per statement run through rows() (every statement on the call and webhook paths),
 * as OpenTelemetry's database conventions describe it: the query text has placeholders, never values.
 */
function traceStatements(database: Database, tracer: Tracer): Database {
  const dialect = new PgDialect();
  const untraced = database.rows;
  database.rows = <T extends Record<string, unknown>>(query: SQL) => {
    const text = dialect.sqlToQuery(query).sql;
    const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? "QUERY";
    const attributes = { "db.system.name": "postgresql", "db.operation.name": operation, "db.query.text": text };
    return inClientSpan(tracer, operation, attributes, () => untraced<T>(query));
  };
  return database;
}

/** The rows of a `db.execute` result: postgres.js answers an array, PGlite an object holding one. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/**
 * The client's deadline on a statement: a little past the server's statement_timeout, so that a
 * statement that is merely slow is cancelled by a live server (57014, "this statement failed")
 * before this deadline can take the silence for a server that stopped answering (the database down).
 */
const clientDeadline = (statementTimeoutMs: number) => statementTimeoutMs + 250;

type Subscribe = (channel: string, onNotify: () => void, onListening: () => void) => Promise<unknown>;

function wrap(
  handles: { db: Db; maintenanceDb: Db },
  kind: Database["kind"],
  connections: number,
  gate: Availability,
  timeoutMs: number,
  execute: (query: SQL) => Promise<unknown>,
  subscribe: Subscribe,
  close: () => Promise<void>,
): Database {
  const rows = async <T extends Record<string, unknown>>(query: SQL) =>
    rowsOf<T>(await gate.run(() => execute(query), clientDeadline(timeoutMs), "database query"));
  const listen = (channel: string, onNotify: () => void, onListening: () => void) => {
    // Once asked, postgres.js keeps the subscription, re-subscribing after every reconnection
    // (asking again would add a second listener); PGlite's cannot fail.
    subscribe(channel, onNotify, onListening).catch(() => {});
  };
  return {
    ...handles,
    kind,
    rows,
    ping: async () => {
      await rows(sql`select 1`);
    },
    get available() {
      return gate.available;
    },
    get downSince() {
      return gate.downSince;
    },
    get statementsInFlight() {
      return gate.inFlight;
    },
    connections,
    onRecovered: gate.onRecovered,
    listen,
    close: async () => {
      gate.close();
      await close();
    },
  };
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const timeoutMs = options.statementTimeoutMs;
  const client = postgres(url, {
    max: options.poolMax,
    // A sick database must not hold a caller: statements and connects are bounded.
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    // Calls come and go; a warm connection saves the handshake on the next caller's path.
    idle_timeout: 600,
    // Switchboard reads no array or custom types: skip the type lookup on every new connection.
    fetch_types: false,
    connection: { statement_timeout: timeoutMs, application_name: "switchboard" },
    // postgres.js waits up to 20 s (growing with every failed attempt) before reconnecting; after
    // an outage that kept the database "down" for seconds after it was back. Here at most 250 ms,
    // the pace of the availability probe (a zero wait would spin the LISTEN connection's retries).
    backoff: (attempts: number) => Math.min(attempts * 0.05, 0.25),
    onnotice: () => {},
  });
  const gate = trackAvailability(() => withDeadline(Promise.resolve(client.unsafe("select 1")), timeoutMs, "database probe"));
  const deadline = clientDeadline(timeoutMs);
  const handles = {
    db: drizzlePostgres(boundedClient(client, gate, deadline), { schema }) as unknown as Db,
    maintenanceDb: drizzlePostgres(client, { schema }) as unknown as Db,
  };
  // The call path's statements run as named prepared statements: one round trip each, where
  // an unprepared statement with parameters costs two (describe, then execute).
  const dialect = new PgDialect();
  const execute = (query: SQL) => {
    const { sql: text, params } = dialect.sqlToQuery(query);
    return Promise.resolve(client.unsafe(text, params as never[], { prepare: true }));
  };
  // postgres.js listens on a connection of its own and listens again after reconnecting.
  const subscribe: Subscribe = (channel, onNotify, onListening) => client.listen(channel, onNotify, onListening);
  return wrap(handles, "postgres", options.poolMax, gate, timeoutMs, execute, subscribe, () => client.end({ timeout: 5 }));
}

/**
 * The postgres.js client as Drizzle sees it, under the rules of Database.rows: each statement
 * bounded by the statement timeout and refused at once while the database is known to be down.
 * A transaction's BEGIN and its COMMIT or ROLLBACK are statements too, bounded the same way, so
 * a server that stops answering mid-transaction fails the request instead of holding it.
 */
function boundedClient(client: postgres.Sql, gate: Availability, timeoutMs: number): postgres.Sql {
  const bounded = (query: postgres.PendingQuery<postgres.Row[]>) => ({
    // Drizzle awaits a query, or calls values() and awaits that.
    values: () => gate.run(() => query.values(), timeoutMs, "database query"),
    then: <A, B>(resolve: (rows: postgres.Row[]) => A, reject: (error: unknown) => B) =>
      gate.run(() => query, timeoutMs, "database query").then(resolve, reject),
  });
  const transaction =
    (begin: (...args: unknown[]) => Promise<unknown>) =>
    (...args: unknown[]) => {
      const work = args.pop() as (tx: postgres.Sql) => Promise<unknown>;
      const started = Promise.withResolvers<void>();
      const finished = Promise.withResolvers<void>();
      // Set when the caller has been told this transaction failed: its work must not run after all.
      let abandoned = false;
      let running: Promise<unknown> | undefined;
      const start = () => {
        running = begin(...args, async (tx: postgres.Sql) => {
          if (abandoned) throw new Error("transaction abandoned: its start timed out");
          started.resolve();
          try {
            return await work(boundedClient(tx, gate, timeoutMs));
          } finally {
            finished.resolve();
          }
        });
        running.catch(() => {}); // its failure reaches the caller through the races below
        return Promise.race([started.promise, running]);
      };
      // BEGIN is sent only if the gate lets it, inside its deadline; COMMIT/ROLLBACK has its own.
      return gate.run(start, timeoutMs, "database transaction start").then(
        () => Promise.race([running!, finished.promise.then(() => withDeadline(running!, timeoutMs, "database transaction end"))]),
        (error: unknown) => {
          abandoned = true;
          throw error;
        },
      );
    };
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key === "unsafe") return (...args: Parameters<typeof target.unsafe>) => bounded(target.unsafe(...args));
      if (key === "begin" || key === "savepoint") return transaction(value.bind(target));
      return value;
    },
  });
}

/**
 * PGlite is one process's database: a second process on the same directory would corrupt it.
 * The holder keeps an exclusive lock on DATA_DIR/switchboard.lock (see lock-file.ts).
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const unlock = tryLockFile(join(dataDir, "switchboard.lock"), { create: true });
  if (!unlock) {
    throw new Error(
      `DATA_DIR ${dataDir} is in use by another switchboard process; stop it first, or use DATABASE_URL to share a PostgreSQL`,
    );
  }
  return unlock;
}

/**
 * PGlite's postgres runs inside this process, in a WebAssembly memory that never shrinks, and it
 * allocates and touches its shared memory at start: with the shared_buffers of 128MB that initdb
 * writes in postgresql.conf, that memory is about 155 MB resident before the first query; with
 * 16MB, about 30 MB. The buffer pool only saves copies: PGlite reads and writes the data files
 * with plain read/write calls, so a page missing from it usually comes from the kernel's page
 * cache, not the disk (measured: 2-4% fewer calls/s with indexes 20 times the pool's size).
 * Given on the command line so that it applies to data directories made before as well.
 * PGlite's other defaults are kept (-F among them: no fsync, as before), so durability is unchanged.
 */
const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"];

/** The name under which scripts/build.ts embeds a fresh data directory in the executable. */
export const PGDATA_TEMPLATE = "pgdata-template.tar.gz";

/**
 * A fresh data directory, as a tarball, for scripts/build.ts to embed in the executable. It is
 * what PGlite makes on a first start (initdb, one start, a clean shutdown), made once at build
 * time instead of on every first start, where initdb (a second postgres instance and copies of
 * its memory) peaks near 1 GB and takes seconds.
 */
export async function createPgdataTemplate(scratchDir: string): Promise<Blob> {
  const { pgliteWasmModule, initdbWasmModule } = await compilePglite({ initdb: true });
  const fsBundle = Bun.file(pgliteData);
  const startParams = PGLITE_START_PARAMS;
  await (await PGlite.create({ dataDir: scratchDir, pgliteWasmModule, initdbWasmModule, fsBundle, startParams })).close();
  // Left behind by the shutdown; a first start must not find another server's lock file.
  rmSync(join(scratchDir, "postmaster.pid"), { force: true });
  // noInitDb opens the directory without starting postgres, to read its files.
  const reader = await PGlite.create({ dataDir: scratchDir, noInitDb: true, pgliteWasmModule, fsBundle });
  try {
    return await reader.dumpDataDir("gzip");
  } finally {
    await reader.close();
  }
}

/** The template embedded in the executable, if this is one built by scripts/build.ts. */
async function pgdataTemplate(): Promise<Blob | undefined> {
  if (!Bun.isStandaloneExecutable) return cachedPgdataTemplate();
  return Bun.embeddedFiles.find((file) => (file as Blob & { name?: string }).name === PGDATA_TEMPLATE);
}

/**
 * From a checkout, the template is made on the first first start and kept beside the dependencies
 * (node_modules/.cache), named after the PGlite build it came from: later first starts, and every
 * test's database, unpack it instead of running initdb again (seconds each). Where it cannot be
 * written (a read-only checkout), PGlite runs initdb as before.
 */
async function cachedPgdataTemplate(): Promise<Blob | undefined> {
  const build = Bun.hash(await Bun.file(initdbWasm).arrayBuffer(), Bun.hash(await Bun.file(pgliteWasm).arrayBuffer()));
  const path = join(import.meta.dir, "../../node_modules/.cache/switchboard", `pgdata-template-${build.toString(16)}.tar.gz`);
  if (await Bun.file(path).exists()) return Bun.file(path);
  const scratch = mkdtempSync(join(tmpdir(), "switchboard-template-"));
  try {
    const template = await createPgdataTemplate(join(scratch, "pgdata"));
    mkdirSync(dirname(path), { recursive: true });
    // Written whole, then renamed: two processes making it at once each leave a complete one.
    const temporary = `${path}.${process.pid}.tmp`;
    await Bun.write(temporary, template);
    renameSync(temporary, path);
    return Bun.file(path);
  } catch {
    return undefined;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Unpacks the template into an empty data directory. Bun's native tar is used rather than
 * PGlite's loader (loadDataDir), which takes a second and 200 MB to write the same files.
 * PG_VERSION, which tells PGlite a data directory is there, is written last: a first start
 * interrupted before the end leaves none, and the next start unpacks again.
 */
async function unpackPgdataTemplate(template: Blob, dataDir: string): Promise<void> {
  const archive = new Bun.Archive(await template.bytes());
  await archive.extract(dataDir, { glob: ["**", "!PG_VERSION"] });
  await archive.extract(dataDir, { glob: "PG_VERSION" });
}

/**
 * PGlite's initdb and the template leave files readable (some writable) by every user; the
 * directory holds callers' numbers. Run at every open, so directories made before this are fixed too.
 */
function restrictToOwner(dataDir: string) {
  try {
    for (const entry of [".", ...(readdirSync(dataDir, { recursive: true }) as string[])]) {
      const path = join(dataDir, entry);
      const stat = lstatSync(path);
      if (stat.mode & 0o077 && !stat.isSymbolicLink()) chmodSync(path, stat.mode & 0o700);
    }
  } catch {
    // Something in it is not this user's (an operator's copy, a backup tool's): its modes are theirs to keep.
  }
}

/**
 * The WebAssembly modules, read from files Bun embeds in the compiled binary (so the executable
 * needs nothing next to it). initdb's is compiled only when initdb is going to run.
 */
async function compilePglite({ initdb }: { initdb: boolean }) {
  const compile = (path: string) => Bun.file(path).arrayBuffer().then((bytes) => WebAssembly.compile(bytes));
  const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
    compile(pgliteWasm),
    initdb ? compile(initdbWasm) : undefined,
  ]);
  return { pgliteWasmModule, initdbWasmModule };
}

async function openPglite({ dataDir, statementTimeoutMs }: DatabaseOptions): Promise<Database> {
  const inMemory = dataDir === "memory://";
  const unlock = inMemory ? () => {} : lockDataDir(dataDir);
  try {
    // A new data directory is made from the template (embedded in the binary, or cached from a
    // checkout; in memory, PGlite's own loader copies it in); without one, PGlite runs initdb
    // where it finds no PG_VERSION.
    const fresh = inMemory || !existsSync(join(dataDir, "PG_VERSION"));
    const template = fresh ? await pgdataTemplate() : undefined;
    if (template && !inMemory) await unpackPgdataTemplate(template, dataDir);
    const client = await PGlite.create({
      dataDir: inMemory ? undefined : dataDir,
      ...(await compilePglite({ initdb: fresh && !template })),
      fsBundle: Bun.file(pgliteData),
      loadDataDir: inMemory ? template : undefined,
      startParams: PGLITE_START_PARAMS,
    });
    if (!inMemory) restrictToOwner(dataDir);
    // PGlite runs statements in this process, in WebAssembly: nothing can interrupt one (it has
    // no statement_timeout either), so the deadline here only bounds waiting behind others.
    const db = drizzlePglite(client, { schema }) as unknown as Db;
    const subscribe: Subscribe = async (channel, onNotify, onListening) => {
      await client.listen(channel, onNotify);
      onListening();
    };
    const gate = trackAvailability(() => client.query("select 1"));
    const handles = { db, maintenanceDb: db };
    return wrap(handles, "pglite", 1, gate, statementTimeoutMs, (query) => db.execute(query), subscribe, async () => {
      await client.close();
      unlock();
    });
  } catch (error) {
    unlock();
    throw error;
  }
}
