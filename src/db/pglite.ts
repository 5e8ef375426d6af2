// The embedded PostgreSQL (PGlite), persisted in DATA_DIR and locked to one process. A new data
// directory is unpacked from a template made once (embedded in the binary, or cached beside a
// checkout's dependencies) instead of running initdb on every first start.
import { randomUUID } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pgliteData from "@electric-sql/pglite/pglite.data" with { type: "file" };
import initdbWasm from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteWasm from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import type { SQL } from "drizzle-orm";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { tryLockFile } from "../lock-file";
import { trackAvailability } from "./availability";
import { asDatabase, type Database, type Drizzle, type Subscribe } from "./database";
import { startingDatabase } from "./starting";
import * as schema from "./schema";

export interface PgliteOptions {
  /** PGlite data directory; "memory://" keeps it in memory. */
  dataDir: string;
  statementTimeoutMs: number;
  /** Where a checkout keeps its data-directory template (default: node_modules/.cache/switchboard). */
  templateCache?: string;
}

const DEFAULT_TEMPLATE_CACHE = join(import.meta.dir, "../../node_modules/.cache/switchboard");

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
async function pgdataTemplate(cache: string): Promise<Blob | undefined> {
  if (!Bun.isStandaloneExecutable) return cachedPgdataTemplate(cache);
  return Bun.embeddedFiles.find((file) => (file as Blob & { name?: string }).name === PGDATA_TEMPLATE);
}

/**
 * From a checkout, the template is made on the first first start and kept beside the dependencies
 * (node_modules/.cache), named after the PGlite build and start parameters it came from and after
 * its own content's hash: later first starts, and every test's database, unpack it instead of
 * running initdb again (seconds each). A file whose content does not match its name (cut short by
 * a full disk or a crash) is removed and made again. Where it cannot be written (a read-only
 * checkout), the template just made is used once.
 */
export async function cachedPgdataTemplate(folder = DEFAULT_TEMPLATE_CACHE): Promise<Blob | undefined> {
  const prefix = `pgdata-template-${(await templateBuild()).toString(16)}-`;
  const cached = readCachedTemplate(folder, prefix);
  if (cached) return cached;
  const scratch = mkdtempSync(join(tmpdir(), "switchboard-template-"));
  try {
    const template = new Uint8Array(await (await createPgdataTemplate(join(scratch, "pgdata"))).arrayBuffer());
    writeCachedTemplate(folder, `${prefix}${Bun.hash(template).toString(16)}.tar.gz`, template);
    return new Blob([template]);
  } catch {
    return undefined;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** What a template depends on: PGlite's build (its WebAssembly and file bundle) and how it is started. */
async function templateBuild(): Promise<bigint | number> {
  let hash: bigint | number = Bun.hash(PGLITE_START_PARAMS.join(" "));
  for (const file of [initdbWasm, pgliteWasm, pgliteData]) hash = Bun.hash(await Bun.file(file).arrayBuffer(), hash);
  return hash;
}

function readCachedTemplate(folder: string, prefix: string): Blob | undefined {
  const names = existsSync(folder) ? readdirSync(folder).filter((name) => name.startsWith(prefix) && name.endsWith(".tar.gz")) : [];
  for (const name of names) {
    const path = join(folder, name);
    try {
      const bytes = readFileSync(path);
      if (`${prefix}${Bun.hash(bytes).toString(16)}.tar.gz` === name) return new Blob([bytes]);
      rmSync(path, { force: true });
    } catch {
      // Removed by another process meanwhile, or unreadable: made again below.
    }
  }
  return undefined;
}

/** Written whole and synced under a name of its own, then renamed: a reader finds all of it or nothing. */
function writeCachedTemplate(folder: string, name: string, template: Uint8Array): void {
  const temporary = join(folder, `.${name}.${randomUUID()}.tmp`);
  try {
    mkdirSync(folder, { recursive: true });
    const fd = openSync(temporary, "w", 0o644);
    try {
      writeSync(fd, template);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, join(folder, name));
    // Templates of earlier PGlite builds are of no further use.
    const current = name.slice(0, name.lastIndexOf("-") + 1);
    for (const other of readdirSync(folder)) {
      if (other.startsWith("pgdata-template-") && !other.startsWith(current)) rmSync(join(folder, other), { force: true });
    }
  } catch {
    // A read-only checkout: the template is used this once and made again next time.
  } finally {
    rmSync(temporary, { force: true });
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

export async function openPglite(options: PgliteOptions): Promise<Database> {
  const { unlock, fresh } = claimDataDir(options.dataDir);
  try {
    return pgliteDatabase(await startPglite(options, fresh), options, unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

/**
 * An existing data directory opened in the background: it is locked at once, and the database
 * answers every statement as a database that is down does (DatabaseDownError) until PGlite has
 * started (about half a second, most of it compiling its WebAssembly) and `prepare` (the
 * migrations) has run on it. `ready` resolves then (false: closed before), or rejects with what stopped it.
 */
export function openPgliteInBackground(
  options: PgliteOptions,
  prepare: (database: Database) => Promise<void>,
): { database: Database; ready: Promise<boolean> } {
  const { unlock, fresh } = claimDataDir(options.dataDir);
  let client: PGlite | undefined;
  const opening = startPglite(options, fresh).then(
    async (started) => {
      const database = pgliteDatabase(started, options, unlock);
      await prepare(database).catch(async (error: unknown) => {
        await database.close();
        throw error;
      });
      client = started;
      return database;
    },
    (error: unknown) => {
      unlock();
      throw error;
    },
  );
  return startingDatabase(
    "pglite",
    opening,
    (refuse) => drizzlePglite(forwardingClient(() => client ?? refuse()), { schema }) as unknown as Drizzle,
  );
}

/** Locks the data directory; fresh: it holds no database yet (a first start). */
function claimDataDir(dataDir: string) {
  const inMemory = dataDir === "memory://";
  const unlock = inMemory ? () => {} : lockDataDir(dataDir);
  return { unlock, fresh: inMemory || !existsSync(join(dataDir, "PG_VERSION")) };
}

async function startPglite({ dataDir, templateCache = DEFAULT_TEMPLATE_CACHE }: PgliteOptions, fresh: boolean): Promise<PGlite> {
  const inMemory = dataDir === "memory://";
  // A new data directory is made from the template (embedded in the binary, or cached from a
  // checkout; in memory, PGlite's own loader copies it in); without one, PGlite runs initdb
  // where it finds no PG_VERSION.
  const template = fresh ? await pgdataTemplate(templateCache) : undefined;
  if (template && !inMemory) await unpackPgdataTemplate(template, dataDir);
  const client = await PGlite.create({
    dataDir: inMemory ? undefined : dataDir,
    ...(await compilePglite({ initdb: fresh && !template })),
    fsBundle: Bun.file(pgliteData),
    // Unpacked here first: PGlite reads a plain tarball in half the time it takes to gunzip one.
    loadDataDir: inMemory && template ? new Blob([Bun.gunzipSync(await template.bytes())]) : undefined,
    startParams: PGLITE_START_PARAMS,
  });
  if (!inMemory) restrictToOwner(dataDir);
  return client;
}

function pgliteDatabase(client: PGlite, { statementTimeoutMs }: PgliteOptions, unlock: () => void): Database {
  // PGlite runs statements in this process, in WebAssembly: nothing can interrupt one (it has
  // no statement_timeout either), so the deadline here only bounds waiting behind others.
  const db = drizzlePglite(client, { schema }) as unknown as Drizzle;
  const subscribe: Subscribe = async (channel, onNotify, onListening) => {
    await client.listen(channel, onNotify);
    onListening();
  };
  const gate = trackAvailability(() => client.query("select 1"));
  const close = async () => {
    await client.close();
    unlock();
  };
  const execute = (query: SQL) => db.execute(query);
  const driver = { kind: "pglite" as const, db, maintenanceDb: db, connections: 1, execute, subscribe, close };
  return asDatabase(driver, gate, statementTimeoutMs);
}

/**
 * What Drizzle's PGlite session asks of its client (query, transaction), handed to the client
 * `current` gives, or refused as it refuses (the database still opening).
 */
function forwardingClient(current: () => PGlite): PGlite {
  const forwarding: Pick<PGlite, "query" | "transaction"> = {
    query: (...args) => current().query(...args),
    transaction: (work) => current().transaction(work),
  };
  return forwarding as PGlite;
}

/**
 * The file whose identity tells the state of a data directory's database: PostgreSQL rewrites
 * global/pg_control at every start and clean stop, so it changes whenever anything opens the directory.
 */
export const databaseStateFile = (dataDir: string) => join(dataDir, "global", "pg_control");
