// A restart after a clean stop answers calls at once, from the routing directory's snapshot, while
// the embedded database opens in the background (half a second, most of it compiling PGlite's
// WebAssembly); their records are journaled meanwhile and written once it is open. That is right
// only if the snapshot holds what the database holds and there is nothing to migrate. So a stop
// that saved an up-to-date snapshot records the identity of the database's state file and of the
// snapshot as it leaves them, and the migrations this build knows; a start takes that record (once)
// and opens in the background only if all of it is unchanged: nothing (seed, migrate, a restored
// backup, a server on DATABASE_URL with the same DATA_DIR, a new version) came in between. Anything
// else, a crash included, opens the database first, as before.
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { databaseStateFile } from "../db/client";
import { KNOWN_MIGRATIONS } from "../db/migrate";

const RECORD = "clean-stop";

/** A file's identity: a rewrite or a rename over it changes it. Null when there is no such file. */
function identityOf(path: string): string | null {
  try {
    const { ino, size, mtimeNs, ctimeNs } = statSync(path, { bigint: true });
    return `${ino}:${size}:${mtimeNs}:${ctimeNs}`;
  } catch {
    return null;
  }
}

function stateOf(dataDir: string, snapshotPath: string): string | null {
  const database = identityOf(databaseStateFile(dataDir));
  const snapshot = identityOf(snapshotPath);
  if (!database || !snapshot) return null;
  return JSON.stringify({ database, snapshot, migrations: KNOWN_MIGRATIONS });
}

/** After the database is closed, its snapshot saved: what the next start compares with what it finds. */
export function recordCleanStop(dataDir: string, snapshotPath: string): void {
  const state = stateOf(dataDir, snapshotPath);
  if (!state) return;
  const temporary = join(dataDir, `.${RECORD}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, state, { mode: 0o600 });
    renameSync(temporary, join(dataDir, RECORD));
  } catch {
    // Unwritten: the next start opens the database before answering, as after a crash.
    rmSync(temporary, { force: true });
  }
}

/** Before the database is opened: whether the last stop was clean and nothing changed since. Used once. */
export function takeCleanStop(dataDir: string, snapshotPath: string): boolean {
  const path = join(dataDir, RECORD);
  let recorded: string;
  try {
    recorded = readFileSync(path, "utf8");
    rmSync(path, { force: true });
  } catch {
    return false;
  }
  return recorded === stateOf(dataDir, snapshotPath);
}
