// The embedded database's ceiling: PGlite in this process, on a data directory on disk as the
// server keeps it, doing one call's database work (the number's directory entry, the caller's
// lead upserted, the call log inserted) in one statement, one call at a time. No HTTP, no
// routing, no batching: what one call per statement costs PGlite itself.
// `bun bench/pglite-ceiling.ts SECONDS` prints {"callsPerSecond": N, "calls": N} on stdout.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { sql } from "drizzle-orm";
import { applyDirectory } from "../src/admin/directory";
import { openDatabase } from "../src/db/client";
import { migrate } from "../src/db/migrate";

const seconds = Number(process.argv[2] ?? 5);
const dataDir = mkdtempSync(join(tmpdir(), "bench-pglite-"));
const database = await openDatabase({ dataDir, poolMax: 1, statementTimeoutMs: 10_000 });
await migrate(database);
const directory = JSON.parse(readFileSync(resolve(import.meta.dir, "..", "examples", "directory.json"), "utf8"));
await applyDirectory(database.db, directory, "US", "telephony-agent");

const oneCall = (n: number) => {
  const caller = `+1212${String(Math.floor(Math.random() * 10_000)).padStart(7, "0")}`;
  return sql`
    with number as (
      select pn.id, pn.tenant_id, pn.campaign_id from phone_numbers pn join tenants t on t.id = pn.tenant_id and t.active
      where pn.e164 = '+14155550100' and pn.active
    ), lead as (
      insert into leads (tenant_id, campaign_id, phone_number, name, status, last_call_at)
      select tenant_id, campaign_id, ${caller}, 'Inbound Caller', 'calling', now() from number
      on conflict (tenant_id, campaign_id, phone_number)
      do update set status = 'calling', last_call_at = excluded.last_call_at, updated_at = now()
      returning id
    )
    insert into call_logs (provider_call_id, tenant_id, campaign_id, phone_number_id, lead_id, from_number, to_number, agent_name, agent_source)
    select ${`ceiling-${n}`}, tenant_id, campaign_id, id, (select id from lead), ${caller}, '+14155550100', 'acme-sales', 'campaign'
    from number returning id`;
};

let calls = 0;
const started = performance.now();
const until = started + seconds * 1000;
while (performance.now() < until) await database.rows(oneCall(calls++));
const elapsed = (performance.now() - started) / 1000;
await database.close();
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify({ callsPerSecond: Math.round(calls / elapsed), calls }));
process.exit(0);
