// Applies the SQL migrations drizzle-kit generated under drizzle/. The files are imported
// as text so the compiled binary carries them; a new migration adds one line to MIGRATION_SQL.
import { sql } from "drizzle-orm";
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
import { type Database, rowsOf } from "./client";

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
};

/** The migrations this switchboard knows, in the order they apply. */
export const KNOWN_MIGRATIONS: readonly string[] = journal.entries.map((entry) => entry.tag);

/** The tags applied to this database (none when it was never migrated), without writing anything. */
export async function appliedMigrations(database: Database): Promise<string[]> {
  const [table] = await database.rows<{ name: string | null }>(sql`select to_regclass('switchboard_migrations')::text as name`);
  if (!table?.name) return [];
  const rows = await database.rows<{ tag: string }>(sql`select tag from switchboard_migrations order by tag`);
  return rows.map((row) => row.tag);
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
    return { tag: entry.tag, statements: text.split("--> statement-breakpoint") };
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
    const done = new Set(
      rowsOf<{ tag: string }>(await tx.execute(sql`select tag from switchboard_migrations`)).map((r) => r.tag),
    );
    for (const migration of pending) {
      if (done.has(migration.tag)) continue;
      for (const statement of migration.statements) {
        if (statement.trim()) await tx.execute(sql.raw(statement));
      }
      await tx.execute(sql`insert into switchboard_migrations (tag) values (${migration.tag})`);
      applied.push(migration.tag);
    }
  });
  return { applied };
}
