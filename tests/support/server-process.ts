// Switchboard as a real server process (`bun src/main.ts serve`), for tests that must kill it,
// run two of them, or restart one on the same DATA_DIR: what an in-process app cannot show.
// Every process started here is killed by stopAllServers() (call it in afterEach/afterAll) and,
// as a last resort, when the test runner exits.
import { isAbsolute, join, resolve } from "node:path";
import { applyDirectory } from "../../src/admin/directory";
import { loadConfig } from "../../src/config";
import { openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";
import { freePort } from "./disposable-postgres";

const ROOT = resolve(import.meta.dir, "../..");
const bun = process.execPath;

/** Only what a child needs from our environment: never the suite's DATABASE_URL or LiveKit keys. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  return env;
}

export interface ServerProcess {
  url: string;
  port: number;
  pid: number;
  /** Every stdout line that parsed as JSON (the server's log lines), in order. */
  logs: Record<string, unknown>[];
  /** What the process wrote that was not a JSON log line, stderr included. */
  output(): string;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  get(path: string): Promise<Response>;
  kill(signal?: NodeJS.Signals | number): void;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The exit code (or 128 + signal) once the process has ended. */
  exited: Promise<number>;
}

const running = new Set<ReturnType<typeof Bun.spawn>>();
let exitHook = false;

/** Reads a stream line by line until it ends; never lets the pipe fill (a full pipe blocks the server's logger). */
async function drain(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let newline = rest.indexOf("\n");
    while (newline >= 0) {
      onLine(rest.slice(0, newline));
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
    }
  }
  if (rest) onLine(rest);
}

/** Starts `bun src/main.ts serve` with `env` on a free loopback port; resolves once GET /healthz answers 200. */
export async function startServer(env: Record<string, string>, options: { readyTimeoutMs?: number } = {}): Promise<ServerProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = Bun.spawn([bun, "src/main.ts", "serve"], {
    cwd: ROOT,
    env: { ...baseEnv(), HOST: "127.0.0.1", ...env, PORT: String(port) },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(child);
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const p of running) p.kill("SIGKILL");
    });
  }
  const exited = child.exited.then((code) => {
    running.delete(child);
    return code;
  });

  const logs: Record<string, unknown>[] = [];
  const other: string[] = [];
  const stdoutDone = drain(child.stdout, (line) => {
    try {
      const parsed = JSON.parse(line);
      if (parsed && typeof parsed === "object") {
        logs.push(parsed);
        return;
      }
    } catch {
      // not a log line
    }
    if (line.trim()) other.push(line);
  });
  const stderrDone = drain(child.stderr, (line) => void (line.trim() && other.push(line)));
  const output = () => other.join("\n");
  const describe = () => {
    const lastLogs = logs.slice(-15).map((l) => JSON.stringify(l));
    return `--- output ---\n${other.slice(-40).join("\n")}\n--- last log lines ---\n${lastLogs.join("\n")}`;
  };

  const request = (path: string, init: RequestInit = {}) =>
    // Bounded: a server that hangs gives the test a failure to report, not a test timeout.
    fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(20_000) });

  // Poll /healthz; fail at once if the process exits, or with its output after the deadline.
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  const state: { exitCode: number | null } = { exitCode: null };
  void exited.then((code) => (state.exitCode = code));
  for (;;) {
    if (state.exitCode !== null) {
      await Promise.allSettled([stdoutDone, stderrDone]);
      throw new Error(`switchboard exited with ${state.exitCode} before it was ready\n${describe()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      throw new Error(`switchboard did not answer GET /healthz with 200 within ${options.readyTimeoutMs ?? 20_000} ms\n${describe()}`);
    }
    await Bun.sleep(50);
  }

  return {
    url,
    port,
    pid: child.pid,
    logs,
    output,
    post: (path, body, headers = {}) =>
      request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      }),
    get: (path) => request(path),
    kill: (signal = "SIGTERM") => child.kill(signal),
    async stop(graceMs = 5_000) {
      if (state.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    exited,
  };
}

/**
 * Loads FILE (relative to the repository root) into the database `env` names, migrating it first,
 * as `switchboard seed FILE` does; in this process, since for the tests using it the seeding is
 * their setup, not what they test (seed.test.ts runs the command itself).
 */
export async function seedDirectory(env: Record<string, string>, file: string): Promise<void> {
  const path = isAbsolute(file) ? file : join(ROOT, file);
  const config = loadConfig(env);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolMax: 1, statementTimeoutMs: 30_000 });
  try {
    await migrate(database);
    await applyDirectory(database.db, await Bun.file(path).json(), config.defaultRegion, config.systemDefaultAgent);
  } finally {
    await database.close();
  }
}

/**
 * `switchboard keys create --admin` as an operator runs it, on the database `env` names (a
 * DATA_DIR before the server holds it, or a DATABASE_URL): the new key.
 */
export function createAdminKey(env: Record<string, string>, label: string): string {
  const result = Bun.spawnSync([bun, "src/main.ts", "keys", "create", "--admin", "--label", label], {
    cwd: ROOT,
    env: { ...baseEnv(), ...env, LOG_LEVEL: "error" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const key = result.stdout.toString().trim();
  if (result.exitCode !== 0 || !key) throw new Error(`keys create --admin failed (${result.exitCode}): ${result.stderr.toString()}`);
  return key;
}

/** Kills (SIGKILL) every server process still running: for afterEach/afterAll, whatever happened. */
export async function killAllServers(): Promise<void> {
  const children = [...running];
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(children.map((child) => child.exited));
}
