// The embedded database (PGlite) is one process's: a second opener of the same DATA_DIR would
// corrupt it. The holder keeps an exclusive flock on DATA_DIR/switchboard.lock; a newcomer is
// refused ("in use"), and a lock file left by a process that died is free again. These tests use
// the embedded database whatever the suite's DATABASE_URL says: the lock only exists there.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { type Database, openDatabase, rowsOf } from "../src/db/client";
import { killAllServers, startServer } from "./support/server-process";

const ROOT = `${import.meta.dir}/..`;
const bun = process.execPath;
const scratch = mkdtempSync(join(tmpdir(), "switchboard-lock-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
/** A fresh, not yet existing DATA_DIR. */
const freshDir = () => join(scratch, `data-${++n}`);
const open = (dataDir: string) => openDatabase({ dataDir, poolMax: 1, statementTimeoutMs: 10_000 });
const lockOf = (dataDir: string) => join(dataDir, "switchboard.lock");

async function refusal(opening: Promise<Database>): Promise<string> {
  try {
    const database = await opening;
    await database.close();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the second opener was let in");
}

/** Leaves DATA_DIR/switchboard.lock behind as a process killed with SIGKILL while holding it does. */
async function leaveLockOfKilledProcess(dataDir: string) {
  const child = Bun.spawn(
    [
      bun,
      "-e",
      `const { openDatabase } = await import(${JSON.stringify(`${ROOT}/src/db/client.ts`)});
       await openDatabase({ dataDir: process.env.DIR, poolMax: 1, statementTimeoutMs: 10000 });
       console.log("holding");
       setInterval(() => {}, 1000);`,
    ],
    { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DIR: dataDir }, stdout: "pipe", stderr: "inherit" },
  );
  const reader = child.stdout.getReader();
  let said = "";
  while (!said.includes("holding")) {
    const { value, done } = await reader.read();
    if (done) break;
    said += new TextDecoder().decode(value);
  }
  expect(await refusal(open(dataDir))).toContain("in use");
  child.kill("SIGKILL");
  await child.exited;
  expect(existsSync(lockOf(dataDir))).toBe(true);
}

// A DATA_DIR is the embedded database's alone: with DATABASE_URL set these would run the very same
// PGlite code as CI's embedded pass already does, so that pass alone runs them.
describe.skipIf(Boolean(process.env.DATABASE_URL))("openDatabase on a DATA_DIR", () => {
  test("a second opener while the first holds it is refused, naming the directory and 'in use'", async () => {
    const dir = freshDir();
    const first = await open(dir);
    try {
      const message = await refusal(open(dir));
      expect(message).toContain("in use");
      expect(message).toContain(dir);
      expect(message).toContain("DATABASE_URL");
      // The holder is unharmed.
      expect(rowsOf<{ one: number }>(await first.db.execute(sql`select 1 as one`))[0]!.one).toBe(1);
    } finally {
      await first.close();
    }
  });

  test("after the first closes, opening again works and finds its data", async () => {
    const dir = freshDir();
    const first = await open(dir);
    expect(existsSync(lockOf(dir))).toBe(true);
    await first.db.execute(sql`create table kept (v text)`);
    await first.db.execute(sql`insert into kept values ('still here')`);
    await first.close();

    const second = await open(dir);
    try {
      expect(rowsOf<{ v: string }>(await second.db.execute(sql`select v from kept`))).toEqual([{ v: "still here" }]);
      // And it holds the lock in turn.
      expect(await refusal(open(dir))).toContain("in use");
    } finally {
      await second.close();
    }
  });

  test("the lock of a process that was killed is free again", async () => {
    const dir = freshDir();
    await leaveLockOfKilledProcess(dir);

    const database = await open(dir);
    try {
      expect(rowsOf<{ one: number }>(await database.db.execute(sql`select 1 as one`))[0]!.one).toBe(1);
      // The taken-over lock works: the next opener is refused.
      expect(await refusal(open(dir))).toContain("in use");
    } finally {
      await database.close();
    }
  });

  test("a switchboard killed while holding the directory: the next start takes over and finds the data", async () => {
    const dir = freshDir();
    const child = Bun.spawn(
      [
        bun,
        "-e",
        `const { openDatabase } = await import(${JSON.stringify(`${ROOT}/src/db/client.ts`)});
         const { sql } = await import("drizzle-orm");
         const db = await openDatabase({ dataDir: process.env.DIR, poolMax: 1, statementTimeoutMs: 10000 });
         await db.db.execute(sql\`create table marker (v text)\`);
         await db.db.execute(sql\`insert into marker values ('before the crash')\`);
         console.log("written");
         setInterval(() => {}, 1000);`,
      ],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DIR: dir }, stdout: "pipe", stderr: "pipe" },
    );
    const reader = child.stdout.getReader();
    let said = "";
    while (!said.includes("written")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the child stopped early: ${await new Response(child.stderr).text()}`);
      said += new TextDecoder().decode(value);
    }
    child.kill("SIGKILL");
    await child.exited;

    const database = await open(dir);
    try {
      expect(rowsOf<{ v: string }>(await database.db.execute(sql`select v from marker`))).toEqual([{ v: "before the crash" }]);
    } finally {
      await database.close();
    }
  });

  test("two openers racing after a crash: one gets the directory, the other is refused", async () => {
    // After a crash, two processes may start on the directory at once (the restarted server and a
    // `seed`, or two replicas on one volume): only one may open PGlite on the files.
    const dir = freshDir();
    await leaveLockOfKilledProcess(dir);

    const results = await Promise.allSettled([open(dir), open(dir)]);
    for (const result of results) if (result.status === "fulfilled") await result.value.close().catch(() => {});
    const opened = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(opened).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect((refused[0]!.reason as Error).message).toContain("in use");
  });

  test("a switchboard.lock file copied along with a backup does not lock the directory", async () => {
    // Only a live holder's flock counts, not the file.
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(lockOf(dir), "12345\n");
    const database = await open(dir);
    try {
      expect(await database.rows(sql`select 1 as one`)).toEqual([{ one: 1 }]);
      // The opener holds the directory now, as after any start: a second one is refused.
      expect(await refusal(open(dir))).toContain("in use");
    } finally {
      await database.close();
    }
  });
});

// The CLI part starts real processes on the embedded database. Under DATABASE_URL the suite is
// about PostgreSQL, where serve and seed share the server and no directory lock is involved; the
// embedded run covers this, so it is not repeated (it costs several process start-ups).
describe.skipIf(Boolean(process.env.DATABASE_URL))("the switchboard command on one DATA_DIR", () => {
  const env = (dataDir: string) => ({
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    DATA_DIR: dataDir,
    HOST: "127.0.0.1",
    PORT: "0",
  });
  const seed = (dataDir: string) => {
    const result = Bun.spawnSync([bun, "src/main.ts", "seed", "examples/directory.json"], {
      cwd: ROOT,
      env: env(dataDir),
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
  };

  test("seed while serve runs exits non-zero naming the problem; after SIGTERM of the server, seed succeeds", async () => {
    const dir = freshDir();
    // Resolves once the server answers GET /healthz: it holds the directory.
    const server = await startServer({ DATA_DIR: dir });
    try {
      const refused = seed(dir);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain("in use");
      expect(refused.stderr).toContain(dir);
      expect(refused.stdout).not.toContain("seeded");

      server.kill("SIGTERM");
      expect(await server.exited).toBe(0);

      const seeded = seed(dir);
      expect(seeded.stderr).toBe("");
      expect(seeded.code).toBe(0);
      expect(seeded.stdout).toContain("seeded examples/directory.json");
    } finally {
      await killAllServers();
    }
  }, 60_000);
});
