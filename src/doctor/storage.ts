// The doctor's checks of what Switchboard keeps: DATA_DIR (the embedded database, the journal and
// the directory snapshot live there, so it holds callers' numbers) and the database with its
// migrations. Nothing here migrates or writes; the embedded database is opened only when no
// running switchboard holds it, and closed again at once.
import { accessSync, constants, existsSync, type Stats, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { sql } from "drizzle-orm";
import { databaseLocation, firstLine, operatingErrorLine } from "../cli/errors";
import type { Config } from "../config";
import { type Database, openDatabase } from "../db/client";
import { appliedMigrations, KNOWN_MIGRATIONS } from "../db/migrate";
import { withDeadline } from "../errors";
import { tryLockFile } from "../lock-file";
import type { Finding, Status } from "./doctor";

/** What the data dir check found, for the database check: whether the embedded database may be opened. */
export type DataDirState = "memory" | "missing" | "unsafe" | "ready";

const dataDirFinding = (status: Status, text: string): Finding => ({ status, check: "data dir", text });
const databaseFinding = (status: Status, text: string): Finding => ({ status, check: "database", text });

export function dataDirFindings(config: Config): { findings: Finding[]; state: DataDirState } {
  if (config.dataDir === "memory://") {
    const lost = config.databaseUrl
      ? "so there is no journal: a call record the database cannot take is only logged"
      : "so the embedded database and the journal live in memory: nothing survives a restart";
    return { state: "memory", findings: [dataDirFinding(config.production ? "warn" : "skip", `DATA_DIR is memory://, ${lost}`)] };
  }
  const path = resolve(config.dataDir);
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return missingDataDir(path);
    return { state: "unsafe", findings: [dataDirFinding("FAIL", `cannot look at DATA_DIR ${path} (${firstLine(error)}): give the user running switchboard access to it, or set DATA_DIR`)] };
  }
  if (!stat.isDirectory()) {
    return { state: "unsafe", findings: [dataDirFinding("FAIL", `DATA_DIR ${path} is not a directory: set DATA_DIR to a directory`)] };
  }
  const { findings, openable } = permissionFindings(path, stat, !config.databaseUrl);
  return { state: openable ? "ready" : "unsafe", findings };
}

/** Not there yet is fine when it can be made: the first start creates it, for its owner only (umask 077). */
function missingDataDir(path: string): { findings: Finding[]; state: DataDirState } {
  let parent = dirname(path);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  try {
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    const text = `DATA_DIR ${path} does not exist and cannot be created: ${parent} is not writable by the current user; create it (mkdir -m 700) for the user running switchboard, or set DATA_DIR`;
    return { state: "unsafe", findings: [dataDirFinding("FAIL", text)] };
  }
  return { state: "missing", findings: [dataDirFinding("ok", `DATA_DIR ${path} does not exist yet: the first start creates it, readable by its owner only`)] };
}

/**
 * Owned by the user running switchboard, writable, and closed to everyone else: it holds callers'
 * numbers, and a directory others can write to lets them replace the database or the journal.
 */
function permissionFindings(path: string, stat: Stats, embedded: boolean): { findings: Finding[]; openable: boolean } {
  const uid = process.getuid?.();
  const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
  const found: Finding[] = [];
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch {
    found.push(dataDirFinding("FAIL", `DATA_DIR ${path} is not writable by the current user (uid ${uid}): chown it to the user running switchboard, or set DATA_DIR`));
  }
  // Opening the database as another user (root, say) would leave files its owner cannot open.
  const foreign = uid !== undefined && stat.uid !== uid;
  if (foreign && !found.length) {
    found.push(dataDirFinding("warn", `DATA_DIR ${path} belongs to uid ${stat.uid}, not to the current user (uid ${uid}): run doctor as the user that runs switchboard`));
  }
  if (stat.mode & 0o022) {
    found.push(dataDirFinding("FAIL", `DATA_DIR ${path} is writable by group or others (mode ${mode}): chmod 700 ${path}`));
  } else if (stat.mode & 0o077) {
    const narrowed = embedded ? " (opening the embedded database narrows it too)" : "";
    found.push(dataDirFinding("warn", `DATA_DIR ${path} is open to group or others (mode ${mode}) and holds callers' numbers: chmod 700 ${path}${narrowed}`));
  }
  if (!found.length) found.push(dataDirFinding("ok", `DATA_DIR ${path} exists, owned by the current user, mode ${mode}, writable`));
  return { findings: found, openable: !foreign && found.every((f) => f.status !== "FAIL") };
}

export async function databaseFindings(config: Config, dataDir: DataDirState): Promise<Finding[]> {
  return config.databaseUrl ? postgresFindings(config, config.databaseUrl) : embeddedFindings(config, dataDir);
}

async function postgresFindings(config: Config, url: string): Promise<Finding[]> {
  const where = `PostgreSQL at ${databaseLocation(url)}`;
  // The server's own client and bounds (DB_STATEMENT_TIMEOUT_MS covers the connection too).
  const database = await openDatabase({ databaseUrl: url, dataDir: config.dataDir, poolMax: 1, statementTimeoutMs: config.statementTimeoutMs });
  try {
    try {
      await database.ping();
    } catch (error) {
      return [databaseFinding("FAIL", unreachable(error, config, where))];
    }
    return await migrationFindings(database, config, `${where} reachable`);
  } finally {
    // A server that stopped answering would hold a graceful close; the doctor has nothing to finish.
    await withDeadline(database.close(), 1000, "closing the database").catch(() => {});
  }
}

function unreachable(error: unknown, config: Config, where: string): string {
  const line = operatingErrorLine(error, { port: config.port, databaseUrl: config.databaseUrl });
  if (line) return line;
  const e = error as { name?: string; code?: string };
  if (e.name === "TimeoutError" || e.code === "CONNECT_TIMEOUT") {
    return `no answer from ${where} within DB_STATEMENT_TIMEOUT_MS (${config.statementTimeoutMs} ms): check that PostgreSQL is up and reachable from here, and DATABASE_URL`;
  }
  return `cannot use ${where} (${firstLine(error)}): check DATABASE_URL`;
}

async function embeddedFindings(config: Config, dataDir: DataDirState): Promise<Finding[]> {
  if (dataDir === "memory") return [databaseFinding("skip", "the embedded database is in memory (DATA_DIR=memory://): every process starts with an empty one")];
  // Opening it narrows DATA_DIR's modes to its owner (restrictToOwner in db/client.ts), as every
  // command does: a directory others could write to stays as found, for its owner to look into.
  if (dataDir === "unsafe") return [databaseFinding("skip", "the embedded database is not opened until DATA_DIR is fixed (above)")];
  const path = resolve(config.dataDir);
  if (dataDir === "missing" || !existsSync(join(path, "PG_VERSION"))) {
    return [databaseFinding("skip", "no embedded database in DATA_DIR yet: the first start (or `switchboard migrate`) makes it")];
  }
  if (heldByAnotherProcess(path)) return [inUse(config, path)];
  let database: Database;
  try {
    database = await openDatabase({ dataDir: path, poolMax: 1, statementTimeoutMs: config.statementTimeoutMs });
  } catch (error) {
    // A server that started between the look at the lock and the open.
    if (heldByAnotherProcess(path)) return [inUse(config, path)];
    throw error;
  }
  try {
    return await migrationFindings(database, config, `embedded database in ${path} readable`);
  } finally {
    await database.close();
  }
}

/**
 * The embedded database is one process's, guarded by a flock on DATA_DIR/switchboard.lock (see
 * openPglite in db/client.ts). Taking the lock and letting go at once asks without waiting.
 */
function heldByAnotherProcess(dataDir: string): boolean {
  const lock = join(dataDir, "switchboard.lock");
  if (!existsSync(lock)) return false;
  const unlock = tryLockFile(lock, { create: false });
  if (unlock) {
    unlock();
    return false;
  }
  return existsSync(lock); // gone meanwhile: its holder is gone too
}

function inUse(config: Config, path: string): Finding {
  // A server listening on every address answers on loopback (as `switchboard healthcheck` asks).
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const readyz = `http://${host.includes(":") ? `[${host}]` : host}:${config.port}/readyz`;
  return databaseFinding(
    "skip",
    `DATA_DIR ${path} is in use by a running switchboard, and the embedded database takes one process at a time: not checked here; ask that server (GET ${readyz}, or /readyz on its PORT)`,
  );
}

/** Compares the migrations this switchboard knows with those applied. */
async function migrationFindings(database: Database, config: Config, where: string): Promise<Finding[]> {
  const migrations = await appliedMigrations(database);
  const applied = migrations.map((migration) => migration.tag);
  const changed = migrations.filter((migration) => migration.unchanged === false).map((migration) => migration.tag);
  const known = KNOWN_MIGRATIONS;
  const pending = known.filter((tag) => !applied.includes(tag));
  const unknown = applied.filter((tag) => !known.includes(tag));
  const count = `${known.length - pending.length} of ${known.length} migrations applied`;
  const found = [
    pending.length
      ? databaseFinding("FAIL", `${where}, but ${count}; pending: ${applied.length ? pending.join(", ") : "all (never migrated)"}; ${howToMigrate(config)}`)
      : databaseFinding("ok", `${where}, ${count}`),
  ];
  if (changed.length) {
    found.push(
      databaseFinding("FAIL", `migration files changed after this database applied them (${changed.join(", ")}): the server will refuse to start; restore the files as released`),
    );
  }
  if (unknown.length) {
    found.push(
      databaseFinding("warn", `it also has migrations this switchboard does not know (${unknown.join(", ")}): a newer switchboard migrated it; run that version or a newer one`),
    );
  }
  if (!pending.length) found.push(...(await agentNameFindings(database, config.systemDefaultAgent)));
  return found;
}

function howToMigrate(config: Config): string {
  return config.migrateOnStart
    ? "run `switchboard migrate`, or start the server (MIGRATE_ON_START applies them)"
    : "run `switchboard migrate` (MIGRATE_ON_START=false: the server will not)";
}

/** The check the server makes at start: a tenant's agent named like SYSTEM_DEFAULT_AGENT gets the system default's callers. */
async function agentNameFindings(database: Database, name: string): Promise<Finding[]> {
  const [row] = await database.rows<{ n: number }>(sql`select count(*)::int as n from agents where name = ${name} and tenant_id is not null`);
  if (!row?.n) return [];
  return [
    databaseFinding("warn", `a tenant's agent is named "${name}" (SYSTEM_DEFAULT_AGENT): calls for the system default reach that tenant's worker; rename the agent or change SYSTEM_DEFAULT_AGENT`),
  ];
}
