// Applies the SQL migrations drizzle-kit generated under drizzle/. The files are imported
// as text so the compiled binary carries them; a new migration adds one line to MIGRATION_SQL.
import { createHash } from "node:crypto";
import { type SQL, sql } from "drizzle-orm";
import journal from "../../drizzle/meta/_journal.json";
import m0000 from "../../drizzle/0000_init.sql" with { type: "text" };
import m0001 from "../../drizzle/0001_livekit_leases_and_tenant_keys.sql" with { type: "text" };
import m0002 from "../../drizzle/0002_agent_tenant_moves.sql" with { type: "text" };
import m0003 from "../../drizzle/0003_numbers_can_move_tenant.sql" with { type: "text" };
import m0004 from "../../drizzle/0004_webhook_event_actions.sql" with { type: "text" };
import m0005 from "../../drizzle/0005_admin_api.sql" with { type: "text" };
import m0006 from "../../drizzle/0006_real_livekit_rooms.sql" with { type: "text" };
import m0007 from "../../drizzle/0007_directory_notify.sql" with { type: "text" };
import m0008 from "../../drizzle/0008_record_calls.sql" with { type: "text" };
import m0009 from "../../drizzle/0009_list_indexes.sql" with { type: "text" };
import m0010 from "../../drizzle/0010_policies.sql" with { type: "text" };
import m0011 from "../../drizzle/0011_schedule_indexes.sql" with { type: "text" };
import m0012 from "../../drizzle/0012_webhook_outbox.sql" with { type: "text" };
import m0013 from "../../drizzle/0013_record_calls_by_index.sql" with { type: "text" };
import m0014 from "../../drizzle/0014_revisit_calls_by_index.sql" with { type: "text" };
import { type Database, rowsOf } from "./database";

const MIGRATION_SQL: Record<string, string> = {
  "0000_init": m0000,
  "0001_livekit_leases_and_tenant_keys": m0001,
  "0002_agent_tenant_moves": m0002,
  "0003_numbers_can_move_tenant": m0003,
  "0004_webhook_event_actions": m0004,
  "0005_admin_api": m0005,
  "0006_real_livekit_rooms": m0006,
  "0007_directory_notify": m0007,
  "0008_record_calls": m0008,
  "0009_list_indexes": m0009,
  "0010_policies": m0010,
  "0011_schedule_indexes": m0011,
  "0012_webhook_outbox": m0012,
  "0013_record_calls_by_index": m0013,
  "0014_revisit_calls_by_index": m0014,
};

/** The migrations this switchboard knows, in the order they apply. */
export const KNOWN_MIGRATIONS: readonly string[] = journal.entries.map((entry) => entry.tag);

export interface AppliedMigration {
  tag: string;
  /** Whether the file this switchboard carries is the one that was applied (null: applied before checksums were kept). */
  unchanged: boolean | null;
}

/** The migrations applied to this database (none when it was never migrated), without writing anything. */
export async function appliedMigrations(database: Database): Promise<AppliedMigration[]> {
  const [table] = await database.rows<{ name: string | null }>(sql`select to_regclass('switchboard_migrations')::text as name`);
  if (!table?.name) return [];
  const checksum = (await hasChecksumColumn((query) => database.rows(query))) ? sql`checksum` : sql`null`;
  const rows = await database.rows<{ tag: string; checksum: string | null }>(
    sql`select tag, ${checksum} as checksum from switchboard_migrations order by tag`,
  );
  return rows.map(({ tag, checksum }) => {
    const text = MIGRATION_SQL[tag];
    return { tag, unchanged: checksum === null || text === undefined ? null : checksum === checksumOf(text) };
  });
}

/**
 * Whether the migrations table records checksums yet. Asked before altering it: ALTER TABLE needs
 * the table's owner even when the column is there, and a role that may only read and write it
 * must still be able to run a migrate that has nothing to do.
 */
async function hasChecksumColumn(query: (statement: SQL) => Promise<unknown>): Promise<boolean> {
  const found = rowsOf(
    await query(
      sql`select 1 from pg_attribute where attrelid = to_regclass('switchboard_migrations') and attname = 'checksum' and not attisdropped`,
    ),
  );
  return found.length > 0;
}

/** Any constant works; it only has to be the same for every Switchboard process. */
const MIGRATION_LOCK_KEY = 7_310_442_019;

export interface MigrationResult {
  applied: string[];
}

/** Applies every pending migration, or those up to and including `until` (a tag; for tests of upgrades). */
export async function migrate(database: Database, until?: string): Promise<MigrationResult> {
  const count = until === undefined ? journal.entries.length : journal.entries.findIndex((e) => e.tag === until) + 1;
  if (count === 0) throw new Error(`no migration ${until} in the journal`);
  const pending = journal.entries.slice(0, count).map((entry) => {
    const text = MIGRATION_SQL[entry.tag];
    if (text === undefined) throw new Error(`migration ${entry.tag} is in the journal but not in MIGRATION_SQL`);
    return { tag: entry.tag, text };
  });
  const applied: string[] = [];
  // Without the client-side statement deadline: a migration may rightly take longer than a call's statement.
  await database.maintenanceDb.transaction(async (tx) => {
    // Migrations are not on a caller's path: lift the per-statement bound for them.
    await tx.execute(sql`set local statement_timeout = 0`);
    // Several instances may start at once: one migrates, the others wait and find nothing to do.
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.execute(
      sql`create table if not exists switchboard_migrations (tag text primary key, applied_at timestamptz not null default now())`,
    );
    // Recorded since migrations are checked; a row from before has none until this run fills it in.
    if (!(await hasChecksumColumn((query) => tx.execute(query)))) {
      await tx.execute(sql`alter table switchboard_migrations add column if not exists checksum text`);
    }
    const done = new Map(
      rowsOf<{ tag: string; checksum: string | null }>(await tx.execute(sql`select tag, checksum from switchboard_migrations`)).map(
        (r) => [r.tag, r.checksum],
      ),
    );
    for (const migration of pending) {
      const checksum = checksumOf(migration.text);
      if (done.has(migration.tag)) {
        await checkUnchanged(tx, migration.tag, done.get(migration.tag) ?? null, checksum);
        continue;
      }
      for (const statement of migration.text.split("--> statement-breakpoint")) {
        if (statement.trim()) await tx.execute(sql.raw(statement));
      }
      await tx.execute(sql`insert into switchboard_migrations (tag, checksum) values (${migration.tag}, ${checksum})`);
      applied.push(migration.tag);
    }
  });
  return { applied };
}

/** A migration that was applied, then edited: what the database has is not what the file says. */
export class MigrationChangedError extends Error {
  constructor(readonly tag: string) {
    super(
      `migration ${tag} was changed after this database applied it (its sha256 differs from the one recorded): ` +
        "restore the file as released; a change to the schema is a new migration",
    );
    this.name = "MigrationChangedError";
  }
}

const checksumOf = (text: string) => createHash("sha256").update(text).digest("hex");

type MigrationTransaction = Parameters<Parameters<Database["maintenanceDb"]["transaction"]>[0]>[0];

/** A row from before checksums gets this file's; a row with another checksum stops the migration. */
async function checkUnchanged(tx: MigrationTransaction, tag: string, recorded: string | null, checksum: string) {
  if (recorded === null) {
    await tx.execute(sql`update switchboard_migrations set checksum = ${checksum} where tag = ${tag}`);
  } else if (recorded !== checksum) {
    throw new MigrationChangedError(tag);
  }
}
