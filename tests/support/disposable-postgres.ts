// A real, throw-away PostgreSQL server for fault tests: its own data directory in a temp dir, its
// own loopback port, and handles to crash it (stop -m immediate), freeze it (SIGSTOP), bring it
// back and destroy it. The suite's shared database (DATABASE_URL) cannot be killed or frozen
// without hurting everything else using it; this one belongs to one test file.
//
// PostgreSQL refuses to run as root. When the tests run as root (containers, CI), initdb and
// pg_ctl run as the `postgres` OS user through runuser (or su), and the temp dir is handed to it.
// pg_ctl daemonizes the server, so it would outlive a crashed test runner: every live instance is
// also killed from a process exit hook, not only from destroy().
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";

export interface DisposablePostgres {
  /** postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication, no password). */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding the data directory, the socket and the server log. */
  readonly dir: string;
  /** Whether the server should be up (started and not stopped); it may still be frozen. */
  readonly running: boolean;
  readonly frozen: boolean;
  /** Creates database `name` and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** pg_ctl stop -m immediate: every process exits at once, no checkpoint, like a crash. */
  stopImmediate(): Promise<void>;
  /** Starts the server again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGSTOP the postmaster and every process under it: connections stay open, nothing answers. */
  freeze(): Promise<void>;
  /** SIGCONT everything freeze() stopped. */
  thaw(): Promise<void>;
  /** Thaws, stops and removes the directory. Never throws; safe to call twice. */
  destroy(): Promise<void>;
  /** The tail of the server's log file, for failure messages. */
  logTail(lines?: number): string;
}

let binDirCache: string | null | undefined;

/** Where initdb, pg_ctl and postgres live (`pg_config --bindir`), or null when PostgreSQL is not installed. */
export function postgresBinDir(): string | null {
  if (binDirCache !== undefined) return binDirCache;
  try {
    const result = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" });
    const dir = result.status === 0 ? result.stdout.trim() : "";
    binDirCache = dir && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")) ? dir : null;
  } catch {
    binDirCache = null;
  }
  return binDirCache;
}

/** A loopback port nobody listens on right now (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

const shellQuote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** argv run as the `postgres` OS user when we are root (PostgreSQL will not run as root), else as is. */
function asServerUser(argv: string[]): string[] {
  if (!isRoot()) return argv;
  if (Bun.which("runuser")) return ["runuser", "-u", "postgres", "--", ...argv];
  return ["su", "postgres", "-s", "/bin/sh", "-c", argv.map(shellQuote).join(" ")];
}

/** The uid and gid of the `postgres` OS user, read from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) {
    throw new Error("running as root and there is no `postgres` OS user: PostgreSQL refuses to run as root");
  }
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

async function run(argv: string[], cwd: string): Promise<string> {
  const child = Bun.spawn(asServerUser(argv), {
    cwd,
    // A locale the machine lacks makes initdb fail; everything here is C/UTF-8.
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C", LANG: "C" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${code}\n${err}${out}`);
  return out;
}

/** Every process whose parent is `pid` (and their children): backends, background workers. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  if (existsSync("/proc/self/stat")) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue; // exited while we looked
      }
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    }
  } else {
    // No /proc (macOS): ask pgrep, one level at a time.
    const walk = (parent: number) => {
      const result = spawnSync("pgrep", ["-P", String(parent)], { encoding: "utf8" });
      const list = (result.stdout ?? "").split(/\s+/).filter(Boolean).map(Number);
      children.set(parent, list);
      for (const child of list) walk(child);
    };
    walk(pid);
  }
  const found: number[] = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const next = stack.pop()!;
    found.push(next);
    stack.push(...(children.get(next) ?? []));
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie answers kill(0) but is dead; pg_ctl's daemon is reaped by init, so this is brief.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return !existsSync("/proc/self/stat");
  }
}

/** The postmaster's pid, from the first line of postmaster.pid (absent once it has stopped). */
function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The System V shared memory id in postmaster.pid (line 7: "key id"), if any. */
function sharedMemoryId(dataDir: string): string | null {
  try {
    const id = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[6]?.trim().split(/\s+/)[1];
    return id && /^\d+$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

/** Last resort, synchronous so it can run in an exit hook: SIGKILL the whole tree, remove the dir. */
function killHard(dataDir: string, knownPid: number | null, dir: string) {
  const pid = postmasterPid(dataDir) ?? knownPid;
  if (pid && alive(pid)) {
    const shmid = sharedMemoryId(dataDir);
    // SIGKILL works on stopped processes too. The whole tree: backends of a killed postmaster
    // would otherwise linger until they notice it is gone.
    const tree = descendants(pid);
    signal(pid, "SIGKILL");
    for (const child of tree) signal(child, "SIGKILL");
    // A postmaster that stops normally removes its small System V segment; a killed one cannot.
    // ipcrm marks it for removal once the last (dying) process detaches.
    if (shmid) spawnSync("ipcrm", ["-m", shmid], { stdio: "ignore" });
  }
  rmSync(dir, { recursive: true, force: true });
}

const live = new Set<{ emergencyStop(): void }>();
let hooksInstalled = false;

/** pg_ctl's server is a daemon: if the test runner dies without afterAll, it must not survive us. */
function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const stopAll = () => {
    for (const instance of live) instance.emergencyStop();
    live.clear();
  };
  process.on("exit", stopAll);
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(sig, () => {
      stopAll();
      process.exit(code);
    });
  }
}

export async function startDisposablePostgres(): Promise<DisposablePostgres> {
  const binDir = postgresBinDir();
  if (!binDir) throw new Error("PostgreSQL is not installed (pg_config not found on PATH)");
  const bin = (name: string) => join(binDir, name);

  // Short path: the socket file (DIR/.s.PGSQL.PORT) must fit in 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), "sb-pg-"));
  const dataDir = join(dir, "data");
  const logFile = join(dir, "server.log");
  let port = 0;
  let pid: number | null = null;
  let running = false;
  let frozenPids: number[] = [];

  const instance = {
    emergencyStop: () => {
      for (const p of frozenPids) signal(p, "SIGCONT");
      killHard(dataDir, pid, dir);
    },
  };
  live.add(instance);
  installExitHooks();

  const pgCtlStart = async () => {
    // fsync=off: a test database need not survive a power cut, and it makes every commit cheap.
    // -k DIR: the Unix socket goes in our temp dir (the default one may not exist or be writable).
    // -h: TCP on loopback only.
    const options = `-p ${port} -k ${dir} -h 127.0.0.1 -c fsync=off -c listen_addresses=127.0.0.1`;
    // -w: returns once the server accepts connections (it reports "ready" in postmaster.pid).
    await run([bin("pg_ctl"), "-D", dataDir, "-o", options, "-l", logFile, "-w", "-t", "30", "start"], dir);
    pid = postmasterPid(dataDir);
    if (!pid) throw new Error(`postgres started but left no postmaster.pid\n${tail(logFile, 20)}`);
    running = true;
  };

  try {
    if (isRoot()) {
      const { uid, gid } = postgresUser();
      chownSync(dir, uid, gid);
    }
    const help = await run([bin("initdb"), "--help"], dir);
    await run(
      [
        bin("initdb"),
        "-D",
        dataDir,
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        // Nothing here needs to survive a power cut; skipping fsync saves seconds.
        "--no-sync",
        ...(help.includes("--no-instructions") ? ["--no-instructions"] : []),
      ],
      dir,
    );
    // Between picking a free port and postgres binding it, someone else may take it: try another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await pgCtlStart();
        break;
      } catch (error) {
        if (attempt >= 3 || !/could not (bind|create listen)/i.test(tail(logFile, 20))) throw error;
      }
    }
  } catch (error) {
    instance.emergencyStop();
    live.delete(instance);
    throw error;
  }

  const urlFor = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${database}`;

  const thaw = async () => {
    // Children first: a postmaster that wakes to find children stopped is fine, but there is no
    // reason to let it run ahead of them.
    for (const p of [...frozenPids].reverse()) signal(p, "SIGCONT");
    frozenPids = [];
  };

  const stopImmediate = async () => {
    // A stopped process does not act on SIGQUIT (pg_ctl's immediate stop) until it is continued.
    await thaw();
    if (!running) return;
    await run([bin("pg_ctl"), "-D", dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], dir);
    running = false;
    pid = null;
  };

  return {
    url: urlFor("postgres"),
    get port() {
      return port;
    },
    dir,
    get running() {
      return running;
    },
    get frozen() {
      return frozenPids.length > 0;
    },
    async createDatabase(name: string) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
      const sql = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`create database ${name}`);
      } finally {
        await sql.end({ timeout: 5 });
      }
      return urlFor(name);
    },
    stopImmediate,
    async start() {
      if (running) return;
      // After an immediate stop the server replays its WAL first (crash recovery); -w waits for it.
      await pgCtlStart();
    },
    async freeze() {
      if (!running || !pid || frozenPids.length) return;
      // The postmaster first, so it cannot fork new backends while we stop the ones it has.
      // Each connection is served by a backend of its own (a separate process), and the
      // checkpointer, WAL writer etc. are processes too: stopping only the postmaster would leave
      // every open connection answering. With all of them stopped, clients see a server that
      // accepts TCP connections (the kernel does that) and never answers anything, like a hung host.
      signal(pid, "SIGSTOP");
      frozenPids = [pid];
      // Repeat until no new process shows up: one may have been forked just before the stop.
      for (let round = 0; round < 5; round++) {
        const fresh = descendants(pid).filter((p) => !frozenPids.includes(p));
        if (!fresh.length) break;
        for (const p of fresh) if (signal(p, "SIGSTOP")) frozenPids.push(p);
      }
    },
    thaw,
    async destroy() {
      if (!live.has(instance)) return;
      try {
        await stopImmediate();
      } catch {
        // fall through to the hard way
      }
      instance.emergencyStop();
      live.delete(instance);
    },
    logTail: (lines = 30) => tail(logFile, lines),
  };
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
