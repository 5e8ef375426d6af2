// The compiled executable on its own: built with scripts/build.ts, copied alone into an empty
// directory and run there with a bare environment, so nothing from node_modules or src/ can be
// picked up at runtime. Covers --version, seed, serve (route a call, SIGTERM) and a restart
// that finds the data the first run wrote.
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import type { Subprocess } from "bun";

const root = resolve(import.meta.dir, "..");

// CI runs the whole suite twice, on the embedded database and with DATABASE_URL naming a real
// PostgreSQL. This test is about the executable carrying PGlite and the migrations inside it,
// which only the embedded database exercises; building and booting it a second time against
// PostgreSQL would cost the build and prove nothing new.
const binaryTest = test.skipIf(Boolean(process.env.DATABASE_URL));

const buildDir = mkdtempSync(join(tmpdir(), "switchboard-build-"));
const runDir = mkdtempSync(join(tmpdir(), "switchboard-run-"));
const binary = join(runDir, "switchboard");
const children = new Set<Subprocess>();

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await child.exited;
  }
  rmSync(buildDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
});

/** PATH without node_modules/.bin (npm adds it): the binary must not need bun or anything else. */
const PATH = (process.env.PATH ?? "/usr/bin:/bin")
  .split(delimiter)
  .filter((dir) => dir && !dir.includes("node_modules"))
  .join(delimiter);

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH, HOME: runDir, ...extra };
}

const serverEnv = () => cleanEnv({ DATA_DIR: "./data", HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info" });

async function run(args: string[], env: Record<string, string>) {
  const child = Bun.spawn(["./switchboard", ...args], { cwd: runDir, env, stdout: "pipe", stderr: "pipe" });
  children.add(child);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

interface Server {
  child: Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  base: string;
  /** Every line written so far (stdout and stderr), for assertions and failure messages. */
  lines: string[];
  /** Resolves once the process exits and its output is fully read. */
  done: Promise<number>;
}

/** Starts `switchboard serve` on a port the OS picks; the port is read from the startup log line. */
async function startServer(): Promise<Server> {
  const child = Bun.spawn(["./switchboard", "serve"], {
    cwd: runDir,
    env: serverEnv(),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(child);
  const lines: string[] = [];
  const listening = Promise.withResolvers<number>();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        lines.push(line);
        // The line saying where it listens: PORT=0, so the port is read from it.
        const port = parseLog(line)?.port;
        if (typeof port === "number") listening.resolve(port);
      }
    }
    if (pending) lines.push(pending);
  };
  const output = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const done = Promise.all([child.exited, output]).then(([code]) => code);
  void done.then((code) => listening.reject(new Error(`serve exited with ${code} before listening:\n${lines.join("\n")}`)));
  const timer = setTimeout(() => listening.reject(new Error(`serve did not log the port it listens on in 30 s:\n${lines.join("\n")}`)), 30_000);
  const port = await listening.promise.finally(() => clearTimeout(timer));
  const base = `http://127.0.0.1:${port}`;
  await waitForHealthy(base, lines);
  return { child, port, base, lines, done };
}

function parseLog(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function waitForHealthy(base: string, lines: string[]) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.status === 200) {
        expect(await res.json()).toEqual({ status: "ok" });
        return;
      }
    } catch {
      // not accepting connections yet
    }
    if (Date.now() > deadline) throw new Error(`GET /healthz never answered 200:\n${lines.join("\n")}`);
    await Bun.sleep(100);
  }
}

/** SIGTERM, then the exit code; the server must finish on its own well within the test timeout. */
async function stopServer(server: Server): Promise<number> {
  server.child.kill("SIGTERM");
  return server.done;
}

const call = { call_id: `binary-test-${crypto.randomUUID()}`, from_number: "+12125550111", to_number: "+14155550100" };

/** Until /readyz says ready: the database open and its journal written. */
async function untilDatabaseOpen(base: string) {
  for (let i = 0; i < 400; i++) {
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { status: string; journal: { depth: number } };
    if (ready.status === "ready" && ready.journal.depth === 0) return;
    await Bun.sleep(25);
  }
  throw new Error("the restarted server's database never opened");
}

async function routeCall(base: string) {
  const res = await fetch(`${base}/api/v1/webhooks/livekit/sip-inbound`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(call),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { agent_name: string; metadata: string };
  return { agentName: body.agent_name, metadata: JSON.parse(body.metadata) as Record<string, unknown> };
}

let firstCallLogId: string | undefined;

binaryTest(
  "npm run build:all produces standalone executables for linux x64, arm64 and baseline x64",
  () => {
    const outfile = join(buildDir, "switchboard");
    // What `npm run build:all` runs, into a scratch directory.
    const build = Bun.spawnSync([process.execPath, "scripts/build.ts", "--all", "--outfile", outfile], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(build.exitCode, `${build.stdout}\n${build.stderr}`).toBe(0);
    expect(build.stdout.toString()).toContain(outfile);
    for (const file of [outfile, `${outfile}-linux-arm64`, `${outfile}-linux-x64-baseline`]) {
      expect(statSync(file).size).toBeGreaterThan(1024 * 1024);
      expect(existsSync(`${file}.map`)).toBe(false);
    }
    // Alone in an empty directory, next to nothing but the example directory file.
    copyFileSync(outfile, binary);
    copyFileSync(join(root, "examples/directory.json"), join(runDir, "directory.json"));
  },
  180_000,
);

binaryTest("the baseline x64 executable runs here, and the arm64 one under an arm64 emulator where there is one", async () => {
  const outfile = join(buildDir, "switchboard");
  const baseline = Bun.spawnSync([`${outfile}-linux-x64-baseline`, "--version"], { env: cleanEnv() });
  expect(baseline.exitCode, baseline.stderr.toString()).toBe(0);
  expect(baseline.stdout.toString()).toMatch(/^\d+\.\d+\.\d+ \(commit /);
  // ELF e_machine (offset 18, little-endian): 0xb7 is AArch64, 0x3e x86-64.
  const header = new Uint8Array(await Bun.file(`${outfile}-linux-arm64`).slice(0, 20).arrayBuffer());
  expect(header[18]).toBe(0xb7);
  const qemu = Bun.which("qemu-aarch64");
  const arm64Libraries = "/usr/aarch64-linux-gnu";
  if (!qemu || !existsSync(arm64Libraries)) return; // .ci/run installs both where it can
  const arm64 = Bun.spawnSync([qemu, "-L", arm64Libraries, `${outfile}-linux-arm64`, "--version"], { env: cleanEnv() });
  expect(arm64.exitCode, arm64.stderr.toString()).toBe(0);
  expect(arm64.stdout.toString()).toBe(baseline.stdout.toString());
}, 60_000);

binaryTest(
  "--version prints the package version and the commit the binary was built from",
  async () => {
    const pkg = (await Bun.file(join(root, "package.json")).json()) as { version: string };
    const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root }).stdout.toString().trim();
    const result = await run(["--version"], cleanEnv());
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(new RegExp(`^${pkg.version.replaceAll(".", "\\.")} \\(commit ${head}(-dirty)?\\)$`));
  },
  30_000,
);

binaryTest(
  "seed loads the example directory into the embedded database in DATA_DIR",
  async () => {
    const result = await run(["seed", "directory.json"], cleanEnv({ DATA_DIR: "./data" }));
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain("seeded directory.json: 2 tenants, 3 agents, 3 campaigns, 5 phone numbers");
    expect(existsSync(join(runDir, "data"))).toBe(true);
  },
  60_000,
);

binaryTest(
  "serve routes a call to the campaign agent and stops cleanly on SIGTERM",
  async () => {
    const server = await startServer();
    // The embedded database, carried inside the executable.
    expect(server.lines.map(parseLog).find((l) => typeof l?.port === "number")?.database).toBe("pglite");
    const routed = await routeCall(server.base);
    expect(routed.agentName).toBe("acme-sales");
    expect(routed.metadata.call_log_id).toEqual(expect.any(String));
    expect(routed.metadata.agent_source).toBe("campaign");
    firstCallLogId = routed.metadata.call_log_id as string;
    // The docs page's script is inside the executable: /docs works without internet access.
    const script = await fetch(`${server.base}/docs/swagger-ui-bundle.js`);
    expect(script.status).toBe(200);
    expect(await script.text()).toContain("SwaggerUIBundle");

    expect(await stopServer(server), server.lines.join("\n")).toBe(0);
  },
  60_000,
);

binaryTest(
  "a restarted server finds the data the first one wrote",
  async () => {
    expect(firstCallLogId).toBeDefined();
    const server = await startServer();
    // After a clean stop the restart answers before its database is open, from the directory's
    // snapshot (its records journaled meanwhile): the right agent either way.
    expect((await routeCall(server.base)).agentName).toBe("acme-sales");
    await untilDatabaseOpen(server.base);
    const routed = await routeCall(server.base);
    expect(routed.agentName).toBe("acme-sales");
    // The same call_id is the same call: it gets the call log row written before the restart.
    expect(routed.metadata.call_log_id).toBe(firstCallLogId!);
    expect(await stopServer(server), server.lines.join("\n")).toBe(0);
  },
  60_000,
);
