// The benchmark: `npm run bench` (`-- --quick` for a one-minute run). It starts everything it
// needs: a fresh database on the local PostgreSQL, Switchboard as the compiled binary, wrk in its
// own process; and, in the same run, the yardsticks: the original design (../shared/peers), pgbench
// doing one call's SQL per transaction on Switchboard's schema (the machine's ceiling), PGlite
// in-process doing one call per statement (the embedded ceiling). Ratios are printed because
// absolute figures drift between runs and machines. Every call answered is checked to be in the
// database exactly once afterwards. The full run adds the LiveKit event stream and the large directory.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { type LiveKitStreamResult, measureLiveKitStream } from "./livekit-stream";
import { measureScale, type ScaleResult } from "./scale";
import { unitEngineEnvironment } from "./unit-environment";

const root = resolve(import.meta.dir, "..");
const quick = process.argv.includes("--quick");
/** `--binary PATH` measures that build (another commit's, a release) instead of building this tree. */
const givenBinary = process.argv.includes("--binary") ? resolve(process.argv[process.argv.indexOf("--binary") + 1] ?? "") : undefined;
const LEVELS = quick ? [32] : [1, 32, 128];
const SECONDS = quick ? 5 : 10;
const PG = { host: process.env.PGHOST ?? "127.0.0.1", port: process.env.PGPORT ?? "5432", user: process.env.PGUSER ?? "root" };
const adminUrl = `postgresql://${PG.user}@${PG.host}:${PG.port}/postgres`;

/** Issue 14's targets; the report says which hold in this run. */
const TARGETS = {
  postgresVsOriginal: 10,
  postgresVsPgbench: 0.6,
  postgresP99Ms: 15,
  embeddedCallsPerSecond: 2_000,
  embeddedVsPglite: 1.0,
  embeddedP99Ms: 40,
  liveKitEventsPerSecond: 1_500,
  liveKitRoundTripsPerJoin: 3,
  postgresRssMb: 120,
  embeddedRssMb: 200,
  firstStartPeakMb: 400,
  restartReadyMs: 300,
};

type Load = {
  connections: number;
  callsPerSecond: number;
  answered: number;
  /** Answers whose record was journaled (written to the database after the answer). */
  pending: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
};

function run(command: string, args: string[], env: Record<string, string | undefined> = {}) {
  const result = spawnSync(command, args, { cwd: root, env: { ...process.env, ...env }, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr || result.stdout}`);
  return result.stdout;
}

/** Like run, without blocking this process: memory is sampled while the load runs. */
async function runAsync(command: string, args: string[]): Promise<string> {
  const child = Bun.spawn([command, ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${err || out}`);
  return out;
}

function requireTools() {
  if (spawnSync("wrk", ["--version"]).error) {
    if (process.getuid?.() !== 0) throw new Error("wrk is missing: apt-get install wrk");
    run("apt-get", ["install", "-y", "-q", "wrk"]);
  }
  if (spawnSync("pg_isready", ["-q", "-h", PG.host, "-p", PG.port]).status !== 0) {
    run("pg_ctlcluster", ["--skip-systemctl-redirect", readdirSync("/etc/postgresql")[0]!, "main", "start"]);
  }
}

async function freshDatabase(name: string): Promise<string> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists "${name}" with (force)`);
  await sql.unsafe(`create database "${name}"`);
  await sql.end();
  return `postgresql://${PG.user}@${PG.host}:${PG.port}/${name}`;
}

/** Drops the databases a run made: every name that ends with the run's stamp. */
async function dropRunDatabases(stamp: number) {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const names = await sql<{ datname: string }[]>`select datname from pg_database where datname like ${`%\\_${stamp}`}`;
  for (const { datname } of names) await sql.unsafe(`drop database if exists "${datname}" with (force)`);
  await sql.end();
}

const freePort = () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
};

/** A server process, ready once `probe` answers 200; how long that took from the spawn. */
async function startProcess(command: string, args: string[], env: Record<string, string>, probe: string) {
  const spawned = performance.now();
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  for (let i = 0; i < 2000; i++) {
    if (await fetch(probe).then((r) => r.ok, () => false)) {
      const readyMs = Math.round(performance.now() - spawned);
      return { child, spawned, readyMs, memory: () => memoryOf(child.pid!), stop: () => stopProcess(child) };
    }
    await Bun.sleep(5);
  }
  child.kill("SIGKILL");
  throw new Error(`${command} did not start:\n${stderr}`);
}

async function stopProcess(child: ReturnType<typeof spawn>) {
  const exited = new Promise((done) => child.once("exit", done));
  child.kill("SIGTERM");
  await exited;
}

/** The process's resident memory now and at its peak (VmRSS, VmHWM), in MB. */
function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) => Math.round(Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024);
  return { rssMb: mb("VmRSS"), peakMb: mb("VmHWM") };
}

async function wrk(url: string, connections: number): Promise<Load> {
  const out = await runAsync("wrk", [
    `-t${Math.min(2, connections)}`,
    `-c${connections}`,
    `-d${SECONDS}s`,
    "--latency",
    "-s",
    "bench/sip-inbound.lua",
    url,
  ]);
  const ms = (text: string | undefined) => {
    const [, value, unit] = /([\d.]+)(us|ms|s)/.exec(text ?? "") ?? [];
    return Number(value) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);
  };
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + (/Socket errors:.*/.exec(out) ? 1 : 0);
  return {
    connections,
    callsPerSecond: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)),
    answered: total,
    pending: Number(/pending answers: (\d+)/.exec(out)?.[1] ?? 0),
    errors,
    p50Ms: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99Ms: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    maxMs: ms(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]),
  };
}

/** The highest resident memory seen while `work` runs, sampled every 100 ms. */
async function sampleRss<T>(pid: number, work: Promise<T>): Promise<{ result: T; rssMb: number }> {
  let rssMb = memoryOf(pid).rssMb;
  const timer = setInterval(() => (rssMb = Math.max(rssMb, memoryOf(pid).rssMb)), 100);
  try {
    return { result: await work, rssMb };
  } finally {
    clearInterval(timer);
  }
}

/** Every answered call is in the database once: journaled ones are waited for, duplicates counted. */
async function countCalls(url: string, serverUrl: string, answered: number) {
  for (let i = 0; i < 100; i++) {
    const ready = (await (await fetch(`${serverUrl}/readyz`)).json()) as { journal: { depth: number } };
    if (ready.journal.depth === 0) break;
    await Bun.sleep(100);
  }
  const rows = await query<{ rows: number; distinct: number }>(
    url,
    `select count(*)::int as rows, count(distinct provider_call_id)::int as distinct from call_logs where provider_call_id like 'bench-%'`,
  );
  return { answered, recorded: rows[0]!.distinct, duplicates: rows[0]!.rows - rows[0]!.distinct };
}

async function query<T>(url: string, text: string): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return (await sql.unsafe(text)) as unknown as T[];
  } finally {
    await sql.end();
  }
}

/**
 * Statements the database ran, as it counts transactions (each autocommit statement is one).
 * Read while no Switchboard process is connected: a backend's counts reach the statistics when it exits.
 */
async function transactions(url: string): Promise<number> {
  const [row] = await query<{ n: string }>(
    url,
    `select pg_stat_clear_snapshot(), (xact_commit + xact_rollback)::text as n from pg_stat_database where datname = current_database()`,
  );
  return Number(row!.n);
}

async function switchboard(binary: string, env: Record<string, string>, label: string) {
  run(binary, ["seed", "examples/directory.json"], env);
  const before = env.DATABASE_URL ? await transactions(env.DATABASE_URL) : 0;
  const port = freePort();
  const server = await startProcess(binary, ["serve"], { ...unitEngineEnvironment(), ...env, PORT: String(port), LOG_LEVEL: "error" }, `http://127.0.0.1:${port}/healthz`);
  const pid = server.child.pid!;
  const loads: (Load & { rssMb: number })[] = [];
  for (const c of LEVELS) {
    const { result, rssMb } = await sampleRss(pid, wrk(`http://127.0.0.1:${port}/api/v1/webhooks/livekit/sip-inbound`, c));
    loads.push({ ...result, rssMb });
  }
  const { peakMb } = server.memory();
  const answered = loads.reduce((n, l) => n + l.answered - l.errors, 0);
  const counted = env.DATABASE_URL ? await countCalls(env.DATABASE_URL, `http://127.0.0.1:${port}`, answered) : undefined;
  await server.stop();
  // The count includes the server's start (migration check, directory load) and the count above: a few dozen.
  const roundTripsPerCall = env.DATABASE_URL ? round2(((await transactions(env.DATABASE_URL)) - before) / answered) : undefined;
  console.log(`measured ${label}`);
  return { loads, peakRssMb: peakMb, loadRssMb: Math.max(...loads.map((l) => l.rssMb)), counted, roundTripsPerCall };
}

/** The compiled binary's first start in an empty directory, then a restart on it: time to serve, memory. */
async function startup(binary: string) {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-start-"));
  const start = async () => {
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = await startProcess(binary, ["serve"], { ...unitEngineEnvironment(), DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: "error" }, `${url}/readyz`);
    // After a clean stop the restart routes calls from the directory's snapshot while its database
    // opens (/readyz: degraded); the status says ready once the database is open and migrated.
    const databaseOpenMs = await untilStatusReady(url, server.spawned);
    await Bun.sleep(1000);
    const memory = server.memory();
    await server.stop();
    return { readyMs: server.readyMs, databaseOpenMs, peakRssMb: memory.peakMb, idleRssMb: memory.rssMb };
  };
  const first = await start();
  const restart = await start();
  console.log("measured the binary's start");
  return { first, restart };
}

/** When /readyz first said "ready", in ms from `since`. */
async function untilStatusReady(url: string, since: number): Promise<number> {
  for (;;) {
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { status: string };
    if (ready.status === "ready") return Math.round(performance.now() - since);
    await Bun.sleep(5);
  }
}

async function peer(url: string) {
  const dir = join(root, "..", "shared", "peers", "seed-express-prisma");
  if (!existsSync(dir)) return null;
  const name = new URL(url).pathname.slice(1);
  run("bash", [join(dir, "setup.sh")], { PEER_DB: name, PGHOST: PG.host, PGPORT: PG.port, PGUSER: PG.user });
  const port = freePort();
  const server = await startProcess("node", [join(dir, "server.js")], { DATABASE_URL: url, PORT: String(port) }, `http://127.0.0.1:${port}/api/v1/webhooks/health`).catch(
    () => null,
  );
  if (!server) return null;
  const load = await wrk(`http://127.0.0.1:${port}/api/v1/webhooks/livekit/sip-inbound`, 32);
  await server.stop();
  console.log("measured the original design");
  return load;
}

async function pgbench(url: string) {
  const bin = run("pg_config", ["--bindir"]).trim();
  const out = await runAsync(join(bin, "pgbench"), ["-n", "-c32", "-j2", `-T${SECONDS}`, "-f", "bench/one-call.sql", url]);
  console.log("measured the pgbench ceiling");
  return Math.round(Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0));
}

async function pgliteCeiling() {
  const out = await runAsync(process.execPath, ["bench/pglite-ceiling.ts", String(SECONDS)]);
  console.log("measured the PGlite ceiling");
  return (JSON.parse(out.trim().split("\n").at(-1)!) as { callsPerSecond: number }).callsPerSecond;
}

async function main() {
  requireTools();
  const build = join(root, "bench", ".build");
  mkdirSync(build, { recursive: true });
  const binary = givenBinary ?? join(build, "switchboard");
  if (!givenBinary) run(process.execPath, ["scripts/build.ts", "--outfile", binary]);
  const stamp = Date.now();
  const scratch = () => mkdtempSync(join(tmpdir(), "bench-"));
  let results: Results;
  try {
    results = {
      at: new Date().toISOString(),
      quick,
      seconds: SECONDS,
      postgres: await switchboard(binary, { DATABASE_URL: await freshDatabase(`switchboard_bench_${stamp}`), DATA_DIR: scratch() }, "Switchboard on PostgreSQL"),
      embedded: await switchboard(binary, { DATA_DIR: scratch() }, "Switchboard on the embedded database"),
      original: await peer(await freshDatabase(`peer_bench_${stamp}`)),
      pgbenchCeiling: await pgbench(await freshDatabaseWithSchema(binary, `switchboard_pgbench_${stamp}`)),
      pgliteCeiling: await pgliteCeiling(),
      startup: await startup(binary),
      liveKit: await measureLiveKitStream({
        binary,
        databaseUrl: await freshDatabase(`switchboard_lkbench_${stamp}`),
        dataDir: scratch(),
        calls: quick ? 500 : 3_000,
        concurrency: 32,
      }),
      scale: quick ? null : await measureScale({ binary, databaseUrl: await freshDatabase(`switchboard_scale_${stamp}`), quick }),
    };
  } finally {
    // Every run makes databases of its own (named with its stamp): none is left behind.
    await dropRunDatabases(stamp);
  }
  report(results);
  writeFileSync(join(root, "bench", "results", "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
}

/** A database with Switchboard's schema and the example directory, for pgbench. */
async function freshDatabaseWithSchema(binary: string, name: string) {
  const url = await freshDatabase(name);
  run(binary, ["seed", "examples/directory.json"], { DATABASE_URL: url, DATA_DIR: mkdtempSync(join(tmpdir(), "bench-")) });
  return url;
}

interface Results {
  at: string;
  quick: boolean;
  seconds: number;
  postgres: Awaited<ReturnType<typeof switchboard>>;
  embedded: Awaited<ReturnType<typeof switchboard>>;
  original: Load | null;
  pgbenchCeiling: number;
  pgliteCeiling: number;
  startup: Awaited<ReturnType<typeof startup>>;
  liveKit: LiveKitStreamResult;
  scale: ScaleResult | null;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

function report(r: Results) {
  const rows = [
    ...r.postgres.loads.map((l) => [`Switchboard, PostgreSQL, c=${l.connections}`, l]),
    ...r.embedded.loads.map((l) => [`Switchboard, embedded, c=${l.connections}`, l]),
    ...(r.original ? [["original design, c=32", r.original]] : []),
  ] as [string, Load & { rssMb?: number }][];
  console.log("\n| | calls/s | p50 ms | p99 ms | max ms | errors | journaled | RSS MB |\n|---|---|---|---|---|---|---|---|");
  for (const [name, l] of rows) {
    console.log(`| ${name} | ${l.callsPerSecond} | ${l.p50Ms} | ${l.p99Ms} | ${l.maxMs} | ${l.errors} | ${l.pending} | ${l.rssMb ?? ""} |`);
  }
  console.log(`| pgbench, one call per transaction, c=32 | ${r.pgbenchCeiling} | | | | | | |`);
  console.log(`| PGlite in-process, one call per statement, one at a time | ${r.pgliteCeiling} | | | | | | |`);
  const lk = r.liveKit;
  console.log(
    `\nLiveKit stream: ${lk.eventsPerSecond} events/s, p99 ${lk.latency.all.p99Ms} ms, ${lk.errors} errors, ` +
      `${lk.roundTripsPerSipJoin} database round trips per SIP join, ${lk.recordedOk}/${lk.calls} calls recorded and dispatched once`,
  );
  const s = r.startup;
  console.log(
    `binary: first start ready in ${s.first.readyMs} ms, peak ${s.first.peakRssMb} MB; restart ready in ${s.restart.readyMs} ms ` +
      `(database open in ${s.restart.databaseOpenMs} ms), ` +
      `peak ${s.restart.peakRssMb} MB, idle ${s.restart.idleRssMb} MB`,
  );
  const c = r.postgres.counted;
  if (c) console.log(`calls answered ${c.answered}, in the database ${c.recorded}, duplicated ${c.duplicates}`);
  console.log(`database round trips per sip-inbound call (PostgreSQL, all levels): ${r.postgres.roundTripsPerCall}`);
  console.log("\n| target | wanted | measured | |\n|---|---|---|---|");
  for (const [name, wanted, measured, holds] of targets(r)) {
    console.log(`| ${name} | ${wanted} | ${measured} | ${holds ? "met" : "missed"} |`);
  }
}

function targets(r: Results): [string, string, string, boolean][] {
  const pg = r.postgres.loads.find((l) => l.connections === 32)!;
  const em = r.embedded.loads.find((l) => l.connections === 32)!;
  const ratio = (a: number, b: number) => (b > 0 ? round2(a / b) : Number.NaN);
  const rows: [string, string, string, boolean][] = [];
  const at = (name: string, wanted: number, measured: number, atLeast: boolean, unit = "") =>
    rows.push([name, `${atLeast ? ">=" : "<="} ${wanted}${unit}`, `${measured}${unit}`, atLeast ? measured >= wanted : measured <= wanted]);
  if (r.original) at("PostgreSQL c=32 / original design", TARGETS.postgresVsOriginal, ratio(pg.callsPerSecond, r.original.callsPerSecond), true, "x");
  at("PostgreSQL c=32 / pgbench ceiling", TARGETS.postgresVsPgbench, ratio(pg.callsPerSecond, r.pgbenchCeiling), true, "x");
  at("PostgreSQL c=32 p99", TARGETS.postgresP99Ms, pg.p99Ms, false, " ms");
  at("embedded c=32 calls/s", TARGETS.embeddedCallsPerSecond, em.callsPerSecond, true);
  at("embedded c=32 / PGlite ceiling", TARGETS.embeddedVsPglite, ratio(em.callsPerSecond, r.pgliteCeiling), true, "x");
  at("embedded c=32 p99", TARGETS.embeddedP99Ms, em.p99Ms, false, " ms");
  at("LiveKit events/s", TARGETS.liveKitEventsPerSecond, r.liveKit.eventsPerSecond, true);
  at("LiveKit round trips per SIP join", TARGETS.liveKitRoundTripsPerJoin, r.liveKit.roundTripsPerSipJoin, false);
  at("RSS under load, PostgreSQL", TARGETS.postgresRssMb, r.postgres.loadRssMb, false, " MB");
  at("RSS under load, embedded", TARGETS.embeddedRssMb, r.embedded.loadRssMb, false, " MB");
  at("first start, peak RSS", TARGETS.firstStartPeakMb, r.startup.first.peakRssMb, false, " MB");
  at("restart on existing data, ready", TARGETS.restartReadyMs, r.startup.restart.readyMs, false, " ms");
  return rows;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
