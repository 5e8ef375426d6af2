// Loaded before every test file (bunfig.toml): `bun test` and `npm test` run alike. Several tests
// boot an embedded PostgreSQL or a child process, which takes seconds on a small machine; Bun's
// default of 5 s per test would fail them for being slow, not wrong.
//
// setDefaultTimeout here reaches only the first test file of a run: Bun 1.4.5 starts each later
// file with the 5 s default again (the preload runs once per process). So each test file, as it
// is loaded, sets it for itself, on its first line (line numbers in failures stay right).
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { plugin } from "bun";
import { setDefaultTimeout } from "bun:test";
import postgres from "postgres";

const TIMEOUT_MS = 60_000;

setDefaultTimeout(TIMEOUT_MS);

plugin({
  name: "test-file-timeout",
  setup(build) {
    build.onLoad({ filter: /\.test\.ts$/ }, async ({ path }) => ({
      contents: `import { setDefaultTimeout as __setDefaultTimeout } from "bun:test"; __setDefaultTimeout(${TIMEOUT_MS}); ${await Bun.file(path).text()}`,
      loader: "ts",
    }));
  },
});

// `bun test --parallel` runs files in several worker processes at once. On the embedded database
// each file has its own; on DATABASE_URL they would share one and wipe each other's tables
// (openTestContext truncates them). So each worker gets a database of its own on that server,
// made empty once per run (with --isolate this preload runs again for every file: the marker
// file, named after the run's coordinator process, says it was done) and kept for the next run.
const worker = process.env.BUN_TEST_WORKER_ID;
if (worker && process.env.DATABASE_URL) {
  const url = new URL(process.env.DATABASE_URL);
  const name = `${url.pathname.slice(1)}_worker_${worker}`;
  const marker = join(tmpdir(), `switchboard-test-run-${process.ppid}-${name}`);
  if (!existsSync(marker)) {
    const server = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await server.unsafe(`drop database if exists "${name}" with (force)`);
      await server.unsafe(`create database "${name}"`);
    } finally {
      await server.end();
    }
    writeFileSync(marker, "");
    // Markers of earlier runs are of no use any more.
    for (const file of readdirSync(tmpdir())) {
      if (file.startsWith("switchboard-test-run-") && file.endsWith(`-${name}`) && file !== basename(marker)) {
        rmSync(join(tmpdir(), file), { force: true });
      }
    }
  }
  url.pathname = `/${name}`;
  process.env.DATABASE_URL = url.toString();
}
