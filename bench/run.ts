// The benchmark: `npm run bench` (`-- --quick` for a one-minute run). It starts everything it
// needs: a fresh database on the local PostgreSQL, Switchboard as the compiled binary, wrk in its
// own process; and, in the same run, the yardsticks: the original design (../shared/peers), pgbench
// doing one call's SQL per transaction on Switchboard's schema (the machine's ceiling), and the
// embedded default. Ratios are printed because absolute figures drift between runs and machines.
// Every call answered is checked to be in the database exactly once afterwards.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";

const root = resolve(import.meta.dir, "..");
const quick = process.argv.includes("--quick");
const LEVELS = quick ? [32] : [1, 32, 128];
const SECONDS = quick ? 5 : 10;
const PG = { host: process.env.PGHOST ?? "127.0.0.1", port: process.env.PGPORT ?? "5432", user: process.env.PGUSER ?? "root" };
const adminUrl = `postgresql://${PG.user}@${PG.host}:${PG.port}/postgres`;

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

const freePort = () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
};

/** A server process, ready once `probe` answers. */
async function startProcess(command: string, args: string[], env: Record<string, string>, probe: string) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  for (let i = 0; i < 200; i++) {
    if (await fetch(probe).then((r) => r.ok, () => false)) return { child, peakRssMb: () => peakRss(child.pid!) };
    await Bun.sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error(`${command} did not start:\n${stderr}`);
}

/** The process's peak resident memory (VmHWM), in MB. */
function peakRss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
  return line ? Math.round(Number(line[1]) / 1024) : Number.NaN;
}

function wrk(url: string, connections: number): Load {
  const out = run("wrk", [`-t${Math.min(2, connections)}`, `-c${connections}`, `-d${SECONDS}s`, "--latency", "-s", "bench/sip-inbound.lua", url]);
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
    p50Ms: ms(/50%\s+(\S+)/.exec(out)?.[1]),
    p99Ms: ms(/99%\s+(\S+)/.exec(out)?.[1]),
    maxMs: ms(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1]),
  };
}

/** Every answered call is in the database once: journaled ones are waited for, duplicates counted. */
async function countCalls(url: string, serverUrl: string, answered: number) {
  for (let i = 0; i < 100; i++) {
    const ready = (await (await fetch(`${serverUrl}/readyz`)).json()) as { journal: { depth: number } };
    if (ready.journal.depth === 0) break;
    await Bun.sleep(100);
  }
  const sql = postgres(url, { max: 1 });
  const [row] = await sql<{ rows: number; distinct: number }[]>`
    select count(*)::int as rows, count(distinct provider_call_id)::int as distinct from call_logs where provider_call_id like 'bench-%'`;
  await sql.end();
  return { answered, recorded: row!.distinct, duplicates: row!.rows - row!.distinct };
}

async function switchboard(binary: string, env: Record<string, string>, label: string) {
  run(binary, ["seed", "examples/directory.json"], env);
  const port = freePort();
  const server = await startProcess(binary, ["serve"], { ...env, PORT: String(port), LOG_LEVEL: "error" }, `http://127.0.0.1:${port}/healthz`);
  const loads = LEVELS.map((c) => wrk(`http://127.0.0.1:${port}/api/v1/webhooks/livekit/sip-inbound`, c));
  const peakRssMb = server.peakRssMb();
  const counted = env.DATABASE_URL
    ? await countCalls(env.DATABASE_URL, `http://127.0.0.1:${port}`, loads.reduce((n, l) => n + l.answered - l.errors, 0))
    : undefined;
  server.child.kill("SIGTERM");
  console.log(`measured ${label}`);
  return { loads, peakRssMb, counted };
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
  const load = wrk(`http://127.0.0.1:${port}/api/v1/webhooks/livekit/sip-inbound`, 32);
  server.child.kill("SIGTERM");
  console.log("measured the original design");
  return load;
}

function pgbench(url: string) {
  const bin = run("pg_config", ["--bindir"]).trim();
  const out = run(join(bin, "pgbench"), ["-n", "-c32", "-j2", `-T${SECONDS}`, "-f", "bench/one-call.sql", url]);
  console.log("measured the pgbench ceiling");
  return Math.round(Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0));
}

async function main() {
  requireTools();
  const build = join(root, "bench", ".build");
  mkdirSync(build, { recursive: true });
  const binary = join(build, "switchboard");
  run(process.execPath, ["scripts/build.ts", "--outfile", binary]);
  const stamp = Date.now();
  const onPostgres = await freshDatabase(`switchboard_bench_${stamp}`);
  const results = {
    at: new Date().toISOString(),
    quick,
    seconds: SECONDS,
    postgres: await switchboard(binary, { DATABASE_URL: onPostgres, DATA_DIR: mkdtempSync(join(tmpdir(), "bench-")) }, "Switchboard on PostgreSQL"),
    embedded: await switchboard(binary, { DATA_DIR: mkdtempSync(join(tmpdir(), "bench-")) }, "Switchboard on the embedded database"),
    original: await peer(await freshDatabase(`peer_bench_${stamp}`)),
    pgbenchCeiling: pgbench(await freshDatabaseWithSchema(binary, `switchboard_pgbench_${stamp}`)),
  };
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
  postgres: Awaited<ReturnType<typeof switchboard>>;
  embedded: Awaited<ReturnType<typeof switchboard>>;
  original: Load | null;
  pgbenchCeiling: number;
}

function report(r: Results) {
  const at32 = r.postgres.loads.find((l) => l.connections === 32);
  const rows = [
    ...r.postgres.loads.map((l) => [`Switchboard, PostgreSQL, c=${l.connections}`, l]),
    ...r.embedded.loads.map((l) => [`Switchboard, embedded, c=${l.connections}`, l]),
    ...(r.original ? [["original design, c=32", r.original]] : []),
  ] as [string, Load][];
  console.log("\n| | calls/s | p50 ms | p99 ms | max ms | errors | journaled |\n|---|---|---|---|---|---|---|");
  for (const [name, l] of rows) {
    console.log(`| ${name} | ${l.callsPerSecond} | ${l.p50Ms} | ${l.p99Ms} | ${l.maxMs} | ${l.errors} | ${l.pending} |`);
  }
  console.log(`| pgbench, one call per transaction, c=32 | ${r.pgbenchCeiling} | | | | | |`);
  console.log(`\npeak RSS: PostgreSQL ${r.postgres.peakRssMb} MB, embedded ${r.embedded.peakRssMb} MB`);
  if (at32 && r.original) console.log(`Switchboard / original design at c=32: ${(at32.callsPerSecond / r.original.callsPerSecond).toFixed(1)}x`);
  if (at32) console.log(`Switchboard / pgbench ceiling at c=32: ${Math.round((100 * at32.callsPerSecond) / r.pgbenchCeiling)}%`);
  const c = r.postgres.counted;
  if (c) console.log(`calls answered ${c.answered}, in the database ${c.recorded}, duplicated ${c.duplicates}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
