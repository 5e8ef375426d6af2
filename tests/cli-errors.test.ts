// Operating errors a new user meets on the command line end in one line saying what to fix:
// no stack trace, no credentials. Each test runs the real command in its own process.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { freePort } from "./support/disposable-postgres";
import { killAllServers, startServer } from "./support/server-process";

const ROOT = resolve(import.meta.dir, "..");
const bun = process.execPath;
const CLI_TIMEOUT = 60_000;
const PG = `postgresql://${process.env.PGUSER ?? "root"}@${process.env.PGHOST ?? "127.0.0.1"}:${process.env.PGPORT ?? "5432"}`;

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

const baseEnv = (extra: Record<string, string>) => ({
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "/tmp",
  HOST: "127.0.0.1",
  ...extra,
});

async function runCommand(args: string[], env: Record<string, string>) {
  const child = Bun.spawn([bun, "src/main.ts", ...args], { cwd: ROOT, env: baseEnv(env), stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  return { code, stderr: stderr.trim() };
}

afterAll(killAllServers);

// One server for the tests that need one running (each start costs seconds): they only read it.
const sharedDataDir = mkdtempSync(join(tmpdir(), "cli-shared-"));
let sharedPort: Promise<number> | undefined;
const sharedServer = () => (sharedPort ??= startServer({ DATA_DIR: sharedDataDir }).then((server) => server.port));

const expectOneLine = (stderr: string) => {
  expect(stderr.split("\n")).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
};

// The tests start processes of their own or only read the shared server: they run at once.
describe.concurrent("operating errors on the command line", () => {
  test.skipIf(repeatUnderPostgres)("a second server on a port already served exits with one line naming the port, and the first keeps serving", async () => {
    const port = await sharedServer();
    const second = await runCommand(["serve"], { DATA_DIR: mkdtempSync(join(tmpdir(), "cli-b-")), PORT: String(port) });
    expect(second.code).toBe(1);
    expectOneLine(second.stderr);
    expect(second.stderr).toContain(`port ${port} is in use`);
    expect(second.stderr).toContain("PORT");
    // Every request still reaches the first server: the second never shared the port.
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status)));
    expect(answers.every((status) => status === 200)).toBe(true);
  }, CLI_TIMEOUT);

  test.skipIf(repeatUnderPostgres)("a data directory held by a running server: one line naming DATA_DIR", async () => {
    const dataDir = sharedDataDir;
    await sharedServer();
    const second = await runCommand(["migrate"], { DATA_DIR: dataDir });
    expect(second.code).toBe(1);
    expectOneLine(second.stderr);
    expect(second.stderr).toContain(dataDir);
  }, CLI_TIMEOUT);

  test("a refused database connection: one line naming where it tried and DATABASE_URL, without the password", async () => {
    const port = await freePort();
    const result = await runCommand(["migrate"], { DATABASE_URL: `postgresql://someone:s3cret-pass@127.0.0.1:${port}/app` });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain(`127.0.0.1:${port}`);
    expect(result.stderr).toContain("DATABASE_URL");
    expect(result.stderr).not.toContain("s3cret-pass");
  }, CLI_TIMEOUT);

  const pgUp = Bun.spawnSync(["pg_isready", "-q", "-d", `${PG}/postgres`]).exitCode === 0;
  test.skipIf(!pgUp)("a database that does not exist: one line naming it and how to create it", async () => {
    const name = `switchboard_missing_${process.pid}`;
    const admin = postgres(`${PG}/postgres`, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists "${name}"`);
    await admin.end();
    const result = await runCommand(["migrate"], { DATABASE_URL: `${PG}/${name}` });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain(name);
    expect(result.stderr).toContain("createdb");
  }, CLI_TIMEOUT);
});

describe("switchboard healthcheck (the container's HEALTHCHECK)", () => {
  test.skipIf(repeatUnderPostgres)("exits 0 while a server answers on PORT, 1 with one line once nothing does", async () => {
    const port = await sharedServer();
    expect(await runCommand(["healthcheck"], { PORT: String(port) })).toEqual({ code: 0, stderr: "" });
    // A proxy in the environment (common in containers) is not asked about the server's own port.
    const proxied = { PORT: String(port), HTTP_PROXY: `http://127.0.0.1:${await freePort()}`, http_proxy: `http://127.0.0.1:${await freePort()}` };
    expect(await runCommand(["healthcheck"], proxied)).toEqual({ code: 0, stderr: "" });
    // The real server's /metrics, over its socket, as Prometheus scrapes it.
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(await metrics.text()).toMatch(/^switchboard_journal_depth 0$/m);
    const none = await runCommand(["healthcheck"], { PORT: String(await freePort()) });
    expect(none.code).toBe(1);
    expectOneLine(none.stderr);
  }, CLI_TIMEOUT);
});

describe("LiveKit unreachable", () => {
  test.skipIf(repeatUnderPostgres)("livekit status with LiveKit down names LIVEKIT_URL, not the database", async () => {
    const port = await freePort();
    const result = await runCommand(["livekit", "status"], {
      DATA_DIR: "memory://",
      LIVEKIT_URL: `http://127.0.0.1:${port}`,
      LIVEKIT_API_KEY: "key",
      LIVEKIT_API_SECRET: "secret-secret-secret-secret-secret-0",
    });
    expect(result.code).toBe(1);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain("LIVEKIT_URL");
    expect(result.stderr).toContain(`127.0.0.1:${port}`);
    expect(result.stderr).not.toContain("database");
  }, CLI_TIMEOUT);
});
