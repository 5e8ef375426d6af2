// `switchboard doctor` as an operator runs it: a real process with an environment of its own, one
// line per finding ("ok", "warn", "FAIL", "skip", then the check), exit 1 only when something
// failed, never a stack trace or a secret. The tests look at the status of a check and the
// variable or command it names, not at whole sentences.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import journal from "../drizzle/meta/_journal.json";
import { type FakeLiveKit, startFakeLiveKit } from "./support/fake-livekit";
import { TEST_KEYS } from "./support/livekit-app";
import { freePort } from "./support/disposable-postgres";
import { killAllServers, startServer } from "./support/server-process";

const ROOT = resolve(import.meta.dir, "..");
const bun = process.execPath;
const CLI_TIMEOUT = 60_000;
const MIGRATIONS = journal.entries.length;
const PG = `postgresql://${process.env.PGUSER ?? "postgres"}@${process.env.PGHOST ?? "127.0.0.1"}:${process.env.PGPORT ?? "5432"}`;

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

const scratch = mkdtempSync(join(tmpdir(), "doctor-"));
afterAll(async () => {
  await killAllServers();
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number;
  lines: string[];
  output: string;
}

/**
 * Runs a command in its own process, asynchronously: the stand-in LiveKit lives in this process
 * and must be free to answer while the doctor waits for it. HOST is loopback unless a test says
 * otherwise, so that the warnings about an exposed port stay out of the way.
 */
async function run(args: string[], env: Record<string, string>): Promise<Run> {
  const child = Bun.spawn([bun, "src/main.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", HOST: "127.0.0.1", LOG_LEVEL: "error", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  const output = `${stdout}${stderr}`;
  return { code, lines: stdout.trim().split("\n"), output };
}

const doctor = (env: Record<string, string>) => run(["doctor"], env);

/** The lines of one check ("database", "livekit", ...) as [status, text]. */
function findings(result: Run, check: string): [string, string][] {
  return result.lines
    .map((line) => /^(ok|warn|FAIL|skip) +([a-z ]+): (.*)$/.exec(line))
    .filter((match) => match?.[2] === check)
    .map((match) => [match![1]!, match![3]!]);
}

const statuses = (result: Run, check: string) => findings(result, check).map(([status]) => status);
const text = (result: Run, check: string) => findings(result, check).map(([, said]) => said).join("\n");

/** Every run: each line a finding or the summary, no stack trace. */
function expectWellFormed(result: Run) {
  expect(result.output).not.toMatch(/^\s+at /m);
  for (const line of result.lines) expect(line).toMatch(/^(ok {4}|warn {2}|FAIL {2}|skip {2})[a-z ]+: |^doctor: /);
}

describe("the embedded database", () => {
  // One data directory made by `switchboard migrate` (PGlite's initdb takes seconds), checked as
  // it is, then with a server holding it.
  const dataDir = join(scratch, "data");
  let migrated: Promise<void> | undefined;
  const migratedDataDir = () =>
    (migrated ??= run(["migrate"], { DATA_DIR: dataDir }).then((result) => {
      if (result.code !== 0) throw new Error(`migrate failed: ${result.output}`);
    }));

  test.skipIf(repeatUnderPostgres)("after `switchboard migrate`: exit 0, the data dir closed to others and every migration applied", async () => {
    await migratedDataDir();
    const result = await doctor({ DATA_DIR: dataDir });
    expectWellFormed(result);
    expect(result.code).toBe(0);
    expect(statuses(result, "data dir")).toEqual(["ok"]);
    expect(text(result, "data dir")).toContain("0700");
    expect(statuses(result, "database")).toEqual(["ok"]);
    expect(text(result, "database")).toContain(`${MIGRATIONS} of ${MIGRATIONS} migrations applied`);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("held by a running server: the database check is skipped as in use (the doctor does not wait for the server), and the server keeps serving", async () => {
    await migratedDataDir();
    const server = await startServer({ DATA_DIR: dataDir, LOG_LEVEL: "error" });
    for (let i = 0; i < 200 && (await server.get("/readyz")).status !== 200; i++) await Bun.sleep(50);
    const result = await doctor({ DATA_DIR: dataDir });
    expectWellFormed(result);
    expect(result.code).toBe(0);
    expect(statuses(result, "database")).toEqual(["skip"]);
    expect(text(result, "database")).toContain("in use by a running switchboard");
    expect(text(result, "database")).toContain("/readyz");
    expect((await server.get("/readyz")).status).toBe(200);
    await server.stop();
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("a DATA_DIR others can write to: exit 1 naming chmod 700, and the doctor leaves it as it found it", async () => {
    const open = mkdtempSync(join(scratch, "open-"));
    chmodSync(open, 0o777);
    const result = await doctor({ DATA_DIR: open });
    expectWellFormed(result);
    expect(result.code).toBe(1);
    expect(statuses(result, "data dir")).toContain("FAIL");
    expect(text(result, "data dir")).toContain(`chmod 700 ${open}`);
    expect(statuses(result, "database")).toEqual(["skip"]);
    expect(statSync(open).mode & 0o777).toBe(0o777);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("a DATA_DIR not made yet is fine: the first start makes it (the doctor does not)", async () => {
    const missing = join(scratch, "not-yet");
    const result = await doctor({ DATA_DIR: missing });
    expectWellFormed(result);
    expect(result.code).toBe(0);
    expect(statuses(result, "data dir")).toEqual(["ok"]);
    expect(text(result, "data dir")).toContain("first start");
    expect(statuses(result, "database")).toEqual(["skip"]);
    expect(() => statSync(missing)).toThrow();
  }, CLI_TIMEOUT);
});

describe("PostgreSQL", () => {
  test("nothing listening at DATABASE_URL: exit 1 naming DATABASE_URL and the address, never the password", async () => {
    const port = await freePort();
    const result = await doctor({ DATA_DIR: "memory://", DATABASE_URL: `postgres://u:s3cret@127.0.0.1:${port}/x` });
    expectWellFormed(result);
    expect(result.code).toBe(1);
    expect(statuses(result, "database")).toEqual(["FAIL"]);
    expect(text(result, "database")).toContain("DATABASE_URL");
    expect(text(result, "database")).toContain(`127.0.0.1:${port}`);
    expect(result.output).not.toContain("s3cret");
  }, CLI_TIMEOUT);

  const pgUp = Bun.spawnSync(["pg_isready", "-q", "-d", `${PG}/postgres`]).exitCode === 0;
  const name = `switchboard_doctor_${process.pid}`;
  const admin = () => postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
  afterAll(async () => {
    if (!pgUp) return;
    const sql = admin();
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
    await sql.end();
  });

  test.skipIf(!pgUp)("a database never migrated: exit 1 naming the pending migrations and `switchboard migrate`; migrated: exit 0", async () => {
    const sql = admin();
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
    await sql.unsafe(`create database "${name}"`);
    await sql.end();
    const env = { DATA_DIR: "memory://", DATABASE_URL: `${PG}/${name}` };

    const before = await doctor(env);
    expectWellFormed(before);
    expect(before.code).toBe(1);
    expect(statuses(before, "database")).toEqual(["FAIL"]);
    expect(text(before, "database")).toContain(`0 of ${MIGRATIONS} migrations applied`);
    expect(text(before, "database")).toContain("switchboard migrate");

    expect((await run(["migrate"], env)).code).toBe(0);
    const after = await doctor(env);
    expectWellFormed(after);
    expect(after.code).toBe(0);
    expect(statuses(after, "database")).toEqual(["ok"]);
    expect(text(after, "database")).toContain(`${MIGRATIONS} of ${MIGRATIONS} migrations applied`);
  }, CLI_TIMEOUT);
});

describe("LiveKit and webhook keys", () => {
  let fake: FakeLiveKit;
  beforeAll(async () => {
    fake = await startFakeLiveKit(TEST_KEYS);
  });
  afterAll(() => fake?.close());
  const liveKitEnv = (secret: string = TEST_KEYS.apiSecret) => ({
    DATA_DIR: "memory://",
    LIVEKIT_URL: fake.url,
    LIVEKIT_API_KEY: TEST_KEYS.apiKey,
    LIVEKIT_API_SECRET: secret,
  });

  test.skipIf(repeatUnderPostgres)("keys LiveKit accepts: ok through one list call, exit 0, webhooks signed with that key", async () => {
    fake.reset();
    const result = await doctor(liveKitEnv());
    expectWellFormed(result);
    expect(result.code).toBe(0);
    expect(statuses(result, "livekit")[0]).toBe("ok");
    expect(statuses(result, "webhooks")).toEqual(["ok"]);
    // A harmless question: it lists, it changes nothing in LiveKit.
    expect(fake.calls().map((call) => call.method)).toEqual(["ListSIPInboundTrunk"]);
    expect(result.output).not.toContain(TEST_KEYS.apiSecret);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("a wrong secret: exit 1 naming LIVEKIT_API_KEY/LIVEKIT_API_SECRET, never the secret", async () => {
    const wrong = "not-the-secret-livekit-knows-0123456789";
    const result = await doctor(liveKitEnv(wrong));
    expectWellFormed(result);
    expect(result.code).toBe(1);
    expect(statuses(result, "livekit")).toEqual(["FAIL"]);
    expect(text(result, "livekit")).toContain("LIVEKIT_API_KEY/LIVEKIT_API_SECRET rejected");
    expect(result.output).not.toContain(wrong);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("LIVEKIT_URL at a closed port: exit 1 naming LIVEKIT_URL", async () => {
    const port = await freePort();
    const result = await doctor({ ...liveKitEnv(), LIVEKIT_URL: `http://127.0.0.1:${port}` });
    expectWellFormed(result);
    expect(result.code).toBe(1);
    expect(statuses(result, "livekit")).toEqual(["FAIL"]);
    expect(text(result, "livekit")).toContain("LIVEKIT_URL");
    expect(text(result, "livekit")).toContain(`127.0.0.1:${port}`);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("settings loadConfig accepts but a production start would regret", async () => {
    // No keys in production: serve would refuse; the doctor says so and which variable to set.
    const bare = await doctor({ DATA_DIR: "memory://", NODE_ENV: "production" });
    expectWellFormed(bare);
    expect(bare.code).toBe(1);
    expect(statuses(bare, "config")).toContain("FAIL");
    expect(text(bare, "config")).toContain("LIVEKIT_API_KEY");
    expect(statuses(bare, "webhooks")).toEqual(["warn"]);

    // Keys set but signatures off, the port open to all without a metrics token: warnings, not failures.
    const loose = await doctor({ ...liveKitEnv(), LIVEKIT_WEBHOOK_VERIFY: "false", HOST: "0.0.0.0" });
    expectWellFormed(loose);
    expect(loose.code).toBe(0);
    expect(statuses(loose, "webhooks")).toEqual(["warn"]);
    expect(text(loose, "webhooks")).toContain("LIVEKIT_WEBHOOK_VERIFY");
    expect(text(loose, "config")).toContain("METRICS_TOKEN");
  }, CLI_TIMEOUT);
});
