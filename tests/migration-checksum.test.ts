// Each applied migration's file is remembered by its sha256: a file edited after a database applied
// it (the schema would no longer be what the files say) stops the migration with one line naming
// it, and nothing changes. A database migrated before checksums were kept gets them filled in.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../src/db/client";
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

// A deployment may migrate with the role the service runs as: it reads and writes the tables
// but does not own them. With nothing pending, migrate (run at every start) must still pass.
test.skipIf(!process.env.DATABASE_URL)("a role that may write but does not own the tables migrates when nothing is pending", async () => {
  const database = open!;
  const role = `switchboard_writer_${process.pid}`;
  await database.rows(sql.raw(`create role ${role} login`));
  try {
    const [{ name }] = (await database.rows<{ name: string }>(sql`select current_database() as name`)) as [{ name: string }];
    await database.rows(sql.raw(`grant connect, create on database ${name} to ${role}`));
    await database.rows(sql.raw(`grant usage, create on schema public to ${role}`));
    await database.rows(sql.raw(`grant select, insert, update, delete on all tables in schema public to ${role}`));
    const url = new URL(fresh.env.DATABASE_URL!);
    url.username = role;
    const writer = await openDatabase({ databaseUrl: url.toString(), dataDir: "memory://", poolMax: 1, statementTimeoutMs: 30_000 });
    try {
      expect(await migrate(writer)).toEqual({ applied: [] });
    } finally {
      await writer.close();
    }
  } finally {
    await database.rows(sql.raw(`drop owned by ${role}`));
    await database.rows(sql.raw(`drop role ${role}`));
  }
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

  // The doctor, asked before a restart, says the same instead of "all migrations applied".
  const doctor = Bun.spawnSync([process.execPath, "src/main.ts", "doctor"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), HOST: "127.0.0.1", LOG_LEVEL: "silent", ...fresh.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const failures = doctor.stdout.toString().split("\n").filter((line) => line.startsWith("FAIL"));
  expect(doctor.exitCode).toBe(1);
  expect(failures.filter((line) => line.includes(changed))).toHaveLength(1);
});
