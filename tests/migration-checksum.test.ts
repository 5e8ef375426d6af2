// Each applied migration's file is remembered by its sha256: a file edited after a database applied
// it (the schema would no longer be what the files say) stops the migration with one line naming
// it, and nothing changes. A database migrated before checksums were kept gets them filled in.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import type { Database } from "../src/db/client";
import { KNOWN_MIGRATIONS, MigrationChangedError, migrate } from "../src/db/migrate";
import { type FreshDatabase, freshDatabase } from "./support/fresh-database";

const ROOT = join(import.meta.dir, "..");

// One database for the file (a fresh one takes seconds): the tests run in order on it, the last
// one leaving it refused.
let fresh: FreshDatabase;
let open: Database | undefined;
beforeAll(async () => {
  fresh = await freshDatabase();
  open = await fresh.open();
});
afterAll(async () => {
  await open?.close();
  await fresh?.drop();
});

const recorded = (database: Database) =>
  database.rows<{ tag: string; checksum: string | null }>(sql`select tag, checksum from switchboard_migrations order by tag`);

test("every applied migration is recorded with its file's sha256, and migrating again finds them unchanged", async () => {
  const database = open!;
  expect(await migrate(database)).toEqual({ applied: [...KNOWN_MIGRATIONS] });
  const rows = await recorded(database);
  expect(rows.map((r) => r.tag)).toEqual([...KNOWN_MIGRATIONS]);
  for (const row of rows) expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
  expect(await migrate(database)).toEqual({ applied: [] });
});

test("a database migrated before checksums were kept gets them, and nothing is applied again", async () => {
  const database = open!;
  const expected = await recorded(database);
  await database.rows(sql`alter table switchboard_migrations drop column checksum`);
  expect(await migrate(database)).toEqual({ applied: [] });
  expect(await recorded(database)).toEqual(expected);
});

test("a migration whose file changed after it was applied: refused, naming it, and nothing changes", async () => {
  const database = open!;
  const changed = KNOWN_MIGRATIONS[3]!;
  // As if the file had been edited since: the database remembers another text.
  await database.rows(sql`update switchboard_migrations set checksum = ${"0".repeat(64)} where tag = ${changed}`);
  // A row without a checksum (from before) is filled in only when the whole migration goes through.
  await database.rows(sql`update switchboard_migrations set checksum = null where tag = ${KNOWN_MIGRATIONS[0]!}`);
  const refusal = await migrate(database).catch((error: unknown) => error);
  expect(refusal).toBeInstanceOf(MigrationChangedError);
  expect((refusal as MigrationChangedError).tag).toBe(changed);
  const rows = await recorded(database);
  expect(rows.find((r) => r.tag === KNOWN_MIGRATIONS[0])?.checksum).toBeNull();

  // The command line says so in one line and exits 3, which the systemd unit does not restart.
  await database.close();
  open = undefined;
  const result = Bun.spawnSync([process.execPath, "src/main.ts", "migrate"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "silent", ...fresh.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const stderr = result.stderr.toString();
  expect(result.exitCode).toBe(3);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(stderr).toContain(changed);
});
