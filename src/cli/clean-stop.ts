// A restart after a clean stop answers calls at once, from the routing directory's snapshot, while
// the embedded database opens in the background (half a second, most of it compiling PGlite's
// WebAssembly); their records are journaled meanwhile and written once it is open. That is right
// only if the snapshot holds what the database holds. So a stop that saved an up-to-date snapshot
// records the data directory's state as the database left it; a start takes that record (once)
// and finds the same state only if nothing (seed, migrate, a restored backup) has opened the
// directory since. Anything else, including a crash, opens the database first, as before.
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dataDirState } from "../db/client";

const RECORD = "clean-stop";

/** After the database is closed: the directory's state, which the next start compares with its own. */
export function recordCleanStop(dataDir: string): void {
  const state = dataDirState(dataDir);
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

/** Before the database is opened: whether the last stop was clean and nothing opened the directory since. Used once. */
export function takeCleanStop(dataDir: string): boolean {
  const path = join(dataDir, RECORD);
  let recorded: string;
  try {
    recorded = readFileSync(path, "utf8");
    rmSync(path, { force: true });
  } catch {
    return false;
  }
  return recorded === dataDirState(dataDir);
}
