// The embedded database's directory holds callers' numbers and call records: nothing in it may be
// readable or writable by other users of the machine, including directories made before this rule.
import { expect, test } from "bun:test";
import { chmodSync, lstatSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

function migrate(dataDir: string) {
  const result = Bun.spawnSync([process.execPath, "src/main.ts", "migrate"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATA_DIR: dataDir },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(result.stderr.toString()).toBe("");
  expect(result.exitCode).toBe(0);
}

/** Paths in `dir` (and `dir` itself) that other users may read, write or enter. */
const openToOthers = (dir: string) =>
  [".", ...(readdirSync(dir, { recursive: true }) as string[])].filter((entry) => {
    const stat = lstatSync(join(dir, entry));
    return !stat.isSymbolicLink() && (stat.mode & 0o077) !== 0;
  });

test.skipIf(repeatUnderPostgres)("a new data directory and every file in it are for the owner only", () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), "perm-")), "data");
  migrate(dataDir);
  expect(readdirSync(dataDir)).toContain("PG_VERSION");
  expect(openToOthers(dataDir)).toEqual([]);
}, 60_000);

test.skipIf(repeatUnderPostgres)("a data directory made with open modes is closed at the next start", () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), "perm-")), "data");
  migrate(dataDir);
  chmodSync(dataDir, 0o755);
  chmodSync(join(dataDir, "postgresql.conf"), 0o666);
  chmodSync(join(dataDir, "base"), 0o777);
  expect(openToOthers(dataDir).length).toBe(3);
  migrate(dataDir);
  expect(openToOthers(dataDir)).toEqual([]);
  expect(statSync(join(dataDir, "postgresql.conf")).mode & 0o777).toBe(0o600);
}, 60_000);
