// From a checkout, a new embedded database is unpacked from a template cached in
// node_modules/.cache (src/db/pglite.ts). A cache file cut short (a full disk, a crash, two
// checkouts sharing one folder) must not break every later first start: it is noticed by its
// content, replaced, and the database opens as if nothing had happened.
import { expect, test } from "bun:test";
import { readdirSync, rmSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { openDatabase } from "../src/db/client";

const CACHE = join(import.meta.dir, "..", "node_modules", ".cache", "switchboard");
const templates = () => readdirSync(CACHE).filter((name) => name.startsWith("pgdata-template-") && name.endsWith(".tar.gz"));

async function openAndAsk() {
  const database = await openDatabase({ dataDir: "memory://", poolMax: 1, statementTimeoutMs: 30_000 });
  try {
    return await database.rows<{ answer: number }>(sql`select 41 + 1 as answer`);
  } finally {
    await database.close();
  }
}

// The same on both of CI's passes: the PostgreSQL one skips it.
test.skipIf(Boolean(process.env.DATABASE_URL))("a truncated cached template is replaced, and the database still opens", async () => {
  expect(await openAndAsk()).toEqual([{ answer: 42 }]);
  // One cached template (concurrent first starts may each have left one; any whole one is used).
  const [name, ...spare] = templates();
  expect(name).toBeDefined();
  for (const file of spare) rmSync(join(CACHE, file), { force: true });
  const path = join(CACHE, name!);
  const half = Math.floor(statSync(path).size / 2);
  truncateSync(path, half);

  expect(await openAndAsk()).toEqual([{ answer: 42 }]);
  // The cut file is gone; a whole one took its place (initdb's output differs from run to run, so
  // it has another name).
  expect(templates()).not.toContain(name!);
  expect(templates().map((file) => statSync(join(CACHE, file)).size > half)).toEqual(templates().map(() => true));
  expect(templates().length).toBeGreaterThan(0);
  expect(await openAndAsk()).toEqual([{ answer: 42 }]);
});
