// The README runs Switchboard from a checkout through npm scripts; those must behave like the
// command itself: a signal to `npm start` stops the server (no orphan holding the data
// directory), and --help prints the help instead of starting a server.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "./support/disposable-postgres";

const ROOT = resolve(import.meta.dir, "..");
const env = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", HOST: "127.0.0.1", ...extra });

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

const served = (port: number) => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);

test.skipIf(repeatUnderPostgres)("SIGTERM to `npm start` stops the server: the port closes and the data directory opens again", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "npm-start-"));
  const port = await freePort();
  const npm = Bun.spawn(["npm", "start", "--silent"], { cwd: ROOT, env: env({ DATA_DIR: dataDir, PORT: String(port) }), stdout: "ignore", stderr: "ignore" });
  try {
    for (let i = 0; i < 600 && !(await served(port)); i++) await Bun.sleep(50);
    expect(await served(port)).toBe(true);
    npm.kill("SIGTERM");
    await npm.exited;
    for (let i = 0; i < 300 && (await served(port)); i++) await Bun.sleep(50);
    expect(await served(port)).toBe(false);
    // The server released DATA_DIR: another command can open it.
    const migrate = Bun.spawnSync([process.execPath, "src/main.ts", "migrate"], { cwd: ROOT, env: env({ DATA_DIR: dataDir }), stdout: "pipe", stderr: "pipe" });
    expect(migrate.stderr.toString()).toBe("");
    expect(migrate.exitCode).toBe(0);
  } finally {
    npm.kill("SIGKILL");
  }
}, 60_000);

test.skipIf(repeatUnderPostgres)("`npm start -- --help` and `npm run switchboard -- --help` print the help and exit", async () => {
  for (const args of [["start", "--silent", "--", "--help"], ["run", "--silent", "switchboard", "--", "--help"]]) {
    const result = Bun.spawnSync(["npm", ...args], { cwd: ROOT, env: env({ PORT: String(await freePort()), DATA_DIR: "memory://" }), stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.toString()).toContain("Usage:");
  }
}, 60_000);
