// From a checkout, a new embedded database is unpacked from a template cached in
// node_modules/.cache (src/db/pglite.ts). A cache file cut short (a full disk, a crash, two
// checkouts sharing one folder) must not break every later first start: it is noticed by its
// content, replaced, and the database opens as if nothing had happened. The test cuts a copy in a
// cache folder of its own: the checkout's is in use by every other test file running beside it.
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { openDatabase } from "../src/db/client";

const SHARED_CACHE = join(import.meta.dir, "..", "node_modules", ".cache", "switchboard");
const cache = mkdtempSync(join(tmpdir(), "template-cache-"));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

const templatesIn = (folder: string) => readdirSync(folder).filter((name) => name.startsWith("pgdata-template-") && name.endsWith(".tar.gz"));

async function openAndAsk(templateCache?: string) {
  const database = await openDatabase({ dataDir: "memory://", poolMax: 1, statementTimeoutMs: 30_000, templateCache });
  try {
    return await database.rows<{ answer: number }>(sql`select 41 + 1 as answer`);
  } finally {
    await database.close();
  }
}

// The same on both of CI's passes: the PostgreSQL one skips it.
test.skipIf(Boolean(process.env.DATABASE_URL))("a truncated cached template is replaced, and the database still opens", async () => {
  // The checkout's template (made by this open if no test made it yet), copied and cut in half.
  expect(await openAndAsk()).toEqual([{ answer: 42 }]);
  const name = templatesIn(SHARED_CACHE).find((file) => readFileSync(join(SHARED_CACHE, file)).length > 0);
  expect(name).toBeDefined();
  const path = join(cache, name!);
  copyFileSync(join(SHARED_CACHE, name!), path);
  const half = Math.floor(statSync(path).size / 2);
  truncateSync(path, half);

  expect(await openAndAsk(cache)).toEqual([{ answer: 42 }]);
  // The cut file is gone; a whole one took its place (initdb's output differs from run to run, so
  // it has another name), and the next open uses it.
  const [replacement, ...others] = templatesIn(cache);
  expect({ replacement: replacement !== name, others }).toEqual({ replacement: true, others: [] });
  expect(statSync(join(cache, replacement!)).size).toBeGreaterThan(half);
  expect(await openAndAsk(cache)).toEqual([{ answer: 42 }]);
  expect(templatesIn(cache)).toEqual([replacement!]);
});
