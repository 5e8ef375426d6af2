// The LiveKit webhook benchmark (issue 14): signed events as livekit-server sends them, a
// realistic stream per call, against Switchboard as a real process on PostgreSQL with agent
// dispatch to a loopback LiveKit stand-in (tests/support/fake-livekit.ts).
//
// Per call, in order, one at a time (LiveKit sends a room's events that way):
//   caller participant_joined (SIP, dialing +14155550100; Switchboard routes and dispatches),
//   agent participant_joined, caller participant_left, room_finished.
// `concurrency` calls are in flight at once. Reported: events/s, latency by event type, errors.
// Afterwards every call is checked: in the database once, completed, answered and ended at the
// stream's times, and dispatched once in the stand-in.
//
// Then the database round trips per event, on a second server process of the same build whose
// DATABASE_URL goes through a counting TCP relay (the "wire" figure: one ReadyForQuery per
// statement or Sync), and, for the SIP join, also as PostgreSQL counts transactions
// (pg_stat_database xact_commit + xact_rollback, each autocommit statement being one). Both
// less the background rate measured over an idle interval.
//
// PostgreSQL 15 flushes a backend's counters at most once a second, and a backend that went idle
// within a second of its last flush holds them up to PGSTAT_IDLE_INTERVAL = 10 s
// (src/backend/utils/activity/pgstat.c): the counters are read only after 11.5 s of quiet.
//
// Alone: `bun bench/livekit-stream.ts [--quick] [--keep] [--binary PATH]`: a fresh database
// switchboard_lkbench_<timestamp> on the local PostgreSQL (dropped afterwards unless --keep),
// bench/.build/switchboard when it is at least as new as src/ and drizzle/, else `bun src/main.ts`.
// bench/run.ts imports measureLiveKitStream.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Socket } from "bun";
import postgres from "postgres";
import { type FakeLiveKit, startFakeLiveKit } from "../tests/support/fake-livekit";
import { EVENTS_PATH, liveKitEnv, newCall, sipCallerJoinedEvent, TEST_KEYS } from "../tests/support/livekit-app";
import { agentJoined, roomFinished, signDelivery, sipParticipantLeft, type WebhookDelivery } from "../tests/support/livekit-events";
import { unitEngineEnvironment } from "./unit-environment";

const root = resolve(import.meta.dir, "..");

/** examples/directory.json: "+1 (415) 555-0100" is Acme Dental's "Spring promo", answered by acme-sales. */
const DIALED = "+14155550100";
const CAMPAIGN_AGENT = "acme-sales";
const CALLER_POOL = 10_000;
/** PGSTAT_IDLE_INTERVAL (10 s) and a margin. */
const STATS_FLUSH_MS = 11_500;
const TARGETS = { eventsPerSecond: 1_500, roundTripsPerSipJoin: 3 } as const;

export const EVENT_TYPES = ["caller_joined", "agent_joined", "caller_left", "room_finished"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const LABELS: Record<EventType, string> = {
  caller_joined: "caller participant_joined (+dispatch)",
  agent_joined: "agent participant_joined",
  caller_left: "caller participant_left",
  room_finished: "room_finished",
};

export interface LatencyFigures {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface LiveKitStreamOptions {
  /** The compiled switchboard, or src/main.ts (run with this bun). */
  binary: string;
  /** A fresh database; seeded here with examples/directory.json. */
  databaseUrl: string;
  /** Scratch directory; the servers' DATA_DIRs are made inside it. */
  dataDir: string;
  calls: number;
  concurrency: number;
  /** Calls in each round-trip batch; default calls / 5 within 100..500. */
  roundTripCalls?: number;
  /** Calls sent (whole streams, not measured) before the measured ones; default 2 x concurrency, at most 64. */
  warmupCalls?: number;
}

export interface LiveKitStreamResult {
  calls: number;
  concurrency: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  latency: Record<EventType | "all", LatencyFigures>;
  /** Non-2xx answers (and failed requests), every try counted. */
  errors: number;
  errorsByStatus: Record<string, number>;
  /** Redeliveries after a 5xx or a failed request, as LiveKit makes them. */
  redeliveries: number;
  /** The answers' `result` (handled, journaled, duplicate, ignored), by event type. */
  results: Record<EventType, Record<string, number>>;
  /** Successful CreateDispatch calls in the stand-in for the measured calls. */
  dispatches: number;
  /** LiveKit API calls (ListDispatch, CreateDispatch) per SIP join. */
  liveKitCallsPerSipJoin: number;
  /** Measured calls found in the database exactly once, completed, with the stream's times and the stand-in's dispatch. */
  recordedOk: number;
  /** Every call sent (warm-up, measured, round-trip batches) that failed a check, with why; at most 20 listed. */
  problems: string[];
  problemCount: number;
  /** Database round trips per SIP join, as PostgreSQL counts transactions, joins sent one at a time. */
  roundTripsPerSipJoin: number;
  /** Database round trips per event by type, on the wire (ReadyForQuery), events sent one at a time. */
  roundTripsPerEvent: Record<EventType, number>;
  roundTrips: {
    calls: number;
    sipJoinXact: number;
    sipJoinWire: number;
    /** The same on the wire with `concurrency` joins in flight: records of concurrent calls share statements. */
    sipJoinWireConcurrent: number;
    /** Raw counts over the sequential joins' window, before the background is subtracted. */
    sipJoinTransactions: number;
    sipJoinWireRoundTrips: number;
    /** Autovacuum runs (its transactions count in pg_stat_database) during that window, if any. */
    autovacuumInWindow: string[];
    /** Background transactions per second (directory reloads, autovacuum), subtracted from the above. */
    baselineXactPerSecond: number;
    baselineWirePerSecond: number;
    /** Statements answered with an error during the measured phases. */
    wireErrors: number;
  };
  peakRssMb: number;
  /**
   * CPU used during the measured stream, in cores: Switchboard, this process (client and LiveKit
   * stand-in), Switchboard's PostgreSQL backends, the rest of the machine (PostgreSQL's WAL writer
   * and the like, and whatever else runs there), idle.
   */
  cpu: {
    cores: number;
    server: number;
    bench: number;
    postgres: number;
    rest: number;
    idle: number;
    /** CPU time per event: less swayed by other load on the machine than events/s. */
    serverMsPerEvent: number;
    postgresMsPerEvent: number;
  };
  targets: {
    eventsPerSecond: { target: number; met: boolean };
    roundTripsPerSipJoin: { target: number; met: boolean };
  };
  /** No errors, every call recorded and dispatched once. */
  ok: boolean;
  tookSeconds: number;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Server {
  url: string;
  pid: number;
  exited: Promise<number>;
  output(): string;
  stop(): Promise<void>;
}

/** The switchboard command: the compiled binary, or a .ts entry point run with this bun. */
function command(binary: string): string[] {
  return binary.endsWith(".ts") ? [process.execPath, "--max-http-header-size=65536", binary] : [binary];
}

function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

function seed(binary: string, env: Record<string, string>) {
  const result = Bun.spawnSync([...command(binary), "seed", join(root, "examples/directory.json")], {
    cwd: root,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) throw new Error(`seed failed (${result.exitCode}):\n${result.stderr.toString()}${result.stdout.toString()}`);
}

/** Keeps the last lines a stream wrote, and never lets its pipe fill. */
function tail(stream: ReadableStream<Uint8Array>, lines: string[]) {
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      lines.push(...decoder.decode(chunk, { stream: true }).split("\n").filter(Boolean));
      if (lines.length > 200) lines.splice(0, lines.length - 100);
    }
  })().catch(() => {});
}

async function startServer(binary: string, env: Record<string, string>): Promise<Server> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = Bun.spawn([...command(binary), "serve"], {
    cwd: root,
    env: { ...process.env, ...unitEngineEnvironment(), ...env, HOST: "127.0.0.1", PORT: String(port) },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  tail(child.stdout, lines);
  tail(child.stderr, lines);
  let code: number | null = null;
  const exited = child.exited.then((c) => (code = c));
  const output = () => lines.slice(-30).join("\n");
  const server: Server = {
    url,
    pid: child.pid,
    exited,
    output,
    async stop() {
      if (code !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (code !== null) throw new Error(`switchboard serve exited with ${code} before it was ready:\n${output()}`);
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
      async (r) => r.ok && ((await r.json()) as { status?: string }).status === "ready",
      () => false,
    );
    if (ready) return server;
    await Bun.sleep(50);
  }
  await server.stop();
  throw new Error(`switchboard serve was not ready within 60 s:\n${output()}`);
}

/** The process's peak resident memory (VmHWM), in MB. */
function peakRss(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
    return line ? Math.round(Number(line[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds a process has used (user + system). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** The machine's busy and total CPU seconds, all cores together. */
function machineCpu(): { busy: number; total: number } {
  const [, ...values] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const ticks = values.map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

/** Waits until the server's journal is empty: records written after their answer are in the database. */
async function journalDrained(server: Server) {
  for (let i = 0; i < 300; i++) {
    const ready = (await fetch(`${server.url}/readyz`).then((r) => r.json())) as { journal?: { depth?: number } };
    if ((ready.journal?.depth ?? 0) === 0) return;
    await Bun.sleep(100);
  }
  throw new Error("the journal did not drain within 30 s");
}

// ---------------------------------------------------------------------------------------------
// The wire counter: a TCP relay in front of PostgreSQL counting ReadyForQuery messages

interface WireCounter {
  port: number;
  /** ReadyForQuery messages: one per simple Query or extended-protocol Sync, i.e. per round trip. */
  readonly roundTrips: number;
  /** ErrorResponse messages. */
  readonly errors: number;
  close(): void;
}

interface Link {
  socket?: Socket<unknown>;
  backlog: Uint8Array[];
}

function send(link: Link, chunk: Uint8Array) {
  if (!link.socket || link.backlog.length > 0) {
    link.backlog.push(chunk.slice());
    return;
  }
  const written = link.socket.write(chunk);
  if (written >= 0 && written < chunk.length) link.backlog.push(chunk.slice(written));
}

function flush(link: Link) {
  while (link.socket && link.backlog.length > 0) {
    const chunk = link.backlog[0]!;
    const written = link.socket.write(chunk);
    if (written < 0) {
      link.backlog.length = 0;
      return;
    }
    if (written < chunk.length) {
      link.backlog[0] = chunk.slice(written);
      return;
    }
    link.backlog.shift();
  }
}

/** Relays 127.0.0.1:<port> to PostgreSQL at host:port (no TLS: the URL asks for none). */
function startWireCounter(host: string, port: number): WireCounter {
  const counts = { roundTrips: 0, errors: 0 };
  interface Relay {
    client: Link;
    upstream: Link;
    closed: boolean;
  }
  const relays = new Set<Relay>();
  // Server-to-client messages: a type byte, an int32 length (itself included), the body.
  const scanner = () => {
    const header = new Uint8Array(5);
    let have = 0;
    let skip = 0;
    return (chunk: Uint8Array) => {
      let i = 0;
      while (i < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        header[have++] = chunk[i++]!;
        if (have === 5) {
          const type = header[0];
          if (type === 0x5a) counts.roundTrips++; // 'Z' ReadyForQuery
          if (type === 0x45) counts.errors++; // 'E' ErrorResponse
          skip = (((header[1]! << 24) | (header[2]! << 16) | (header[3]! << 8) | header[4]!) >>> 0) - 4;
          have = 0;
        }
      }
    };
  };
  const listener = Bun.listen<Relay>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const relay: Relay = { client: { socket: client as Socket<unknown>, backlog: [] }, upstream: { backlog: [] }, closed: false };
        client.data = relay;
        relays.add(relay);
        const scan = scanner();
        Bun.connect<Relay>({
          hostname: host,
          port,
          data: relay,
          socket: {
            open(upstream) {
              relay.upstream.socket = upstream as Socket<unknown>;
              if (relay.closed) upstream.end();
              else flush(relay.upstream);
            },
            data(_upstream, chunk) {
              scan(chunk);
              send(relay.client, chunk);
            },
            drain() {
              flush(relay.upstream);
            },
            close() {
              relay.closed = true;
              relays.delete(relay);
              relay.client.socket?.end();
            },
            error() {
              relay.client.socket?.end();
            },
          },
        }).catch(() => client.end());
      },
      data(client, chunk) {
        send(client.data.upstream, chunk);
      },
      drain(client) {
        flush(client.data.client);
      },
      close(client) {
        client.data.closed = true;
        relays.delete(client.data);
        client.data.upstream.socket?.end();
      },
      error(client) {
        client.data.upstream.socket?.end();
      },
    },
  });
  return {
    port: listener.port,
    get roundTrips() {
      return counts.roundTrips;
    },
    get errors() {
      return counts.errors;
    },
    close() {
      for (const relay of relays) {
        relay.client.socket?.end();
        relay.upstream.socket?.end();
      }
      listener.stop(true);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Calls and their event streams

interface BenchCall {
  callId: string;
  room: string;
  from: string;
  joinedAt: Date;
  answeredAt: Date;
  leftAt: Date;
  finishedAt: Date;
  events: { type: EventType; delivery: WebhookDelivery }[];
}

/** A caller from the pool: the same numbers come back now and then, as real callers do. */
function poolCaller(i: number): string {
  // An odd multiplier modulo 10,000 visits every number; a fixed offset per run keeps runs apart a little.
  const n = (i * 7_919 + 4_513) % CALLER_POOL;
  return `+1212555${String(n).padStart(4, "0")}`;
}

/**
 * `count` calls' streams, each event signed as livekit-server signs it. Times: the calls began in
 * the last ten minutes (whole seconds, as LiveKit's createdAt), the agent joined 2 s after the
 * caller, the caller talked 30 s to 3 min, the room finished after the 20 s departure timeout;
 * all of it before now, so nothing a server checks lies in the future.
 */
async function buildCalls(fake: FakeLiveKit, count: number, first: number): Promise<BenchCall[]> {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const base = now - 10 * 60_000;
  const calls: BenchCall[] = [];
  for (let i = 0; i < count; i++) {
    const from = poolCaller(first + i);
    const joinedAt = new Date(base + Math.floor((i / count) * 5 * 60) * 1000);
    const answeredAt = new Date(joinedAt.getTime() + 2_000);
    const leftAt = new Date(answeredAt.getTime() + (30 + ((first + i) % 150)) * 1000);
    const finishedAt = new Date(leftAt.getTime() + 20_000);
    const call = newCall({ from, to: DIALED, at: joinedAt });
    // The caller's join creates the room in the stand-in (as livekit/sip does), so the dispatch finds it.
    const join = sipCallerJoinedEvent(fake, call);
    const agent = agentJoined({ room: call.room, agentName: CAMPAIGN_AGENT, at: answeredAt });
    const left = sipParticipantLeft({ room: call.room, callId: call.callId, at: leftAt, numParticipants: 1 });
    const finished = roomFinished({ room: call.room, at: finishedAt });
    const sign = (event: Parameters<typeof signDelivery>[0]) => signDelivery(event, { ...TEST_KEYS });
    calls.push({
      callId: call.callId,
      room: call.room,
      from,
      joinedAt,
      answeredAt,
      leftAt,
      finishedAt,
      events: [
        { type: "caller_joined", delivery: await sign(join) },
        { type: "agent_joined", delivery: await sign(agent) },
        { type: "caller_left", delivery: await sign(left) },
        { type: "room_finished", delivery: await sign(finished) },
      ],
    });
  }
  return calls;
}

// ---------------------------------------------------------------------------------------------
// Sending

interface Tally {
  latencies: Record<EventType, number[]>;
  errors: number;
  errorsByStatus: Record<string, number>;
  redeliveries: number;
  results: Record<EventType, Record<string, number>>;
}

function newTally(): Tally {
  const byType = <T>(make: () => T) => Object.fromEntries(EVENT_TYPES.map((t) => [t, make()])) as Record<EventType, T>;
  return { latencies: byType(() => []), errors: 0, errorsByStatus: {}, redeliveries: 0, results: byType(() => ({})) };
}

/** LiveKit tries a delivery 5 times, on 5xx and failed requests; its pauses are shortened here. */
const TRIES = 5;
const REDELIVERY_PAUSE_MS = 250;

/** POSTs the signed bytes as they are, with LiveKit's headers; redelivers as LiveKit would. */
async function deliver(serverUrl: string, type: EventType, delivery: WebhookDelivery, tally: Tally) {
  for (let attempt = 1; attempt <= TRIES; attempt++) {
    const started = performance.now();
    let status = 0;
    let result = "";
    try {
      const res = await fetch(`${serverUrl}${EVENTS_PATH}`, {
        method: "POST",
        headers: delivery.headers,
        body: delivery.body,
        signal: AbortSignal.timeout(30_000),
      });
      status = res.status;
      const text = await res.text();
      try {
        result = String((JSON.parse(text) as { result?: unknown }).result ?? "");
      } catch {
        result = "unparsed";
      }
    } catch (error) {
      result = (error as Error).name;
    }
    const ms = performance.now() - started;
    if (attempt === 1) tally.latencies[type].push(ms);
    if (status >= 200 && status < 300) {
      tally.results[type][result] = (tally.results[type][result] ?? 0) + 1;
      return;
    }
    tally.errors++;
    const key = status === 0 ? `failed (${result})` : String(status);
    tally.errorsByStatus[key] = (tally.errorsByStatus[key] ?? 0) + 1;
    if (status !== 0 && status < 500) return; // LiveKit takes any other answer as final
    if (attempt < TRIES) {
      tally.redeliveries++;
      await Bun.sleep(REDELIVERY_PAUSE_MS);
    }
  }
}

/** Each call's events in order, `concurrency` calls at once; the seconds it took. */
async function sendStreams(serverUrl: string, calls: BenchCall[], concurrency: number, tally: Tally, only?: EventType): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const call = calls[next++];
      if (!call) return;
      for (const { type, delivery } of call.events) {
        if (!only || type === only) await deliver(serverUrl, type, delivery, tally);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, calls.length)) }, worker));
  return (performance.now() - started) / 1000;
}

function figures(values: number[]): LatencyFigures {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! : 0);
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return { count: sorted.length, p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(sorted.at(-1) ?? 0) };
}

// ---------------------------------------------------------------------------------------------
// Checks

interface CallRow {
  provider_call_id: string;
  status: string;
  agent_name: string;
  dispatch_id: string | null;
  caller_joined_at: Date | null;
  answered_at: Date | null;
  ended_at: Date | null;
}

/**
 * Every call in the database exactly once, completed (the agent answered, the caller hung up),
 * at the stream's times, with the one dispatch the stand-in holds for its room; every event
 * marked processed. Returns the calls that passed and what failed.
 */
async function checkCalls(sql: postgres.Sql, fake: FakeLiveKit, calls: BenchCall[]): Promise<{ ok: Set<string>; problems: string[] }> {
  const ids = calls.map((c) => c.callId);
  const rows = await sql<CallRow[]>`
    select provider_call_id, status, agent_name, dispatch_id, caller_joined_at, answered_at, ended_at
    from call_logs where provider_call_id = any(${ids})`;
  const byCall = new Map<string, CallRow[]>();
  for (const row of rows) byCall.set(row.provider_call_id, [...(byCall.get(row.provider_call_id) ?? []), row]);
  const eventIds = calls.flatMap((c) => c.events.map((e) => e.delivery.event.id));
  const [events] = await sql<{ processed: number }[]>`
    select count(*)::int as processed from webhook_events where id = any(${eventIds}) and processed_at is not null`;
  const problems: string[] = [];
  if ((events?.processed ?? 0) !== eventIds.length) {
    problems.push(`webhook events processed: ${events?.processed ?? 0} of ${eventIds.length}`);
  }
  const ok = new Set<string>();
  const same = (a: Date | null, b: Date) => a !== null && a.getTime() === b.getTime();
  for (const call of calls) {
    const found = byCall.get(call.callId) ?? [];
    const dispatches = fake.agentDispatches(call.room);
    const why: string[] = [];
    if (found.length !== 1) why.push(`${found.length} call logs`);
    const row = found[0];
    if (row) {
      if (row.status !== "completed") why.push(`status ${row.status}`);
      if (row.agent_name !== CAMPAIGN_AGENT) why.push(`agent ${row.agent_name}`);
      if (!same(row.caller_joined_at, call.joinedAt)) why.push(`caller_joined_at ${row.caller_joined_at?.toISOString()}`);
      if (!same(row.answered_at, call.answeredAt)) why.push(`answered_at ${row.answered_at?.toISOString()}`);
      if (!same(row.ended_at, call.leftAt)) why.push(`ended_at ${row.ended_at?.toISOString()}`);
      if (dispatches.length === 1 && row.dispatch_id !== dispatches[0]!.id) why.push(`dispatch_id ${row.dispatch_id} is not the room's`);
    }
    if (dispatches.length !== 1 || dispatches[0]!.agentName !== CAMPAIGN_AGENT) {
      why.push(`dispatches in LiveKit: [${dispatches.map((d) => d.agentName).join(", ")}]`);
    }
    if (why.length === 0) ok.add(call.callId);
    else problems.push(`${call.callId} (${call.room}): ${why.join("; ")}`);
  }
  return { ok, problems };
}

// ---------------------------------------------------------------------------------------------
// Round trips

/** Committed and rolled-back transactions of the database, read from another database so the reads do not count. */
async function transactions(admin: postgres.Sql, database: string): Promise<number> {
  await admin`select pg_stat_clear_snapshot()`;
  const [row] = await admin<{ n: string }[]>`
    select (xact_commit + xact_rollback)::text as n from pg_stat_database where datname = ${database}`;
  return Number(row?.n ?? Number.NaN);
}

const round2 = (n: number) => Math.round(n * 100) / 100;

// ---------------------------------------------------------------------------------------------

export async function measureLiveKitStream(options: LiveKitStreamOptions): Promise<LiveKitStreamResult> {
  const began = performance.now();
  const { binary, databaseUrl, calls: callCount, concurrency } = options;
  const rtCount = options.roundTripCalls ?? Math.max(100, Math.min(500, Math.round(callCount / 5)));
  const warmupCount = options.warmupCalls ?? Math.min(64, 2 * concurrency);
  const dbUrl = new URL(databaseUrl);
  const databaseName = decodeURIComponent(dbUrl.pathname.slice(1));
  const adminUrl = new URL(databaseUrl);
  adminUrl.pathname = "/postgres";
  const admin = postgres(adminUrl.toString(), { max: 1, onnotice: () => {} });
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  const fake = await startFakeLiveKit({ ...TEST_KEYS });
  const servers: Server[] = [];
  let wire: WireCounter | undefined;
  const log = (message: string) => console.log(`[livekit-stream ${((performance.now() - began) / 1000).toFixed(1)}s] ${message}`);
  try {
    const serverEnv = (dataDir: string, url: string) => ({
      ...liveKitEnv(fake),
      LIVEKIT_DISPATCH: "true",
      LIVEKIT_WEBHOOK_VERIFY: "true",
      DATABASE_URL: url,
      DATA_DIR: dataDir,
      LOG_LEVEL: "error",
    });
    const streamDir = join(options.dataDir, "stream");
    const rtDir = join(options.dataDir, "round-trips");
    mkdirSync(streamDir, { recursive: true });
    mkdirSync(rtDir, { recursive: true });
    seed(binary, { DATABASE_URL: databaseUrl, DATA_DIR: streamDir, LOG_LEVEL: "warn" });

    // ---- The stream: throughput and latency ----
    const server = await startServer(binary, serverEnv(streamDir, databaseUrl));
    servers.push(server);
    const warmup = await buildCalls(fake, warmupCount, 0);
    const calls = await buildCalls(fake, callCount, warmupCount);
    log(`server up (pid ${server.pid}); ${calls.length} calls' streams signed, ${warmup.length} warm-up calls first`);
    await sendStreams(server.url, warmup, concurrency, newTally());
    const tally = newTally();
    const backends = async () => {
      const rows = await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${databaseName} and application_name = 'switchboard'`;
      return new Map(rows.map((r) => [r.pid, cpuSeconds(r.pid)]));
    };
    const backends0 = await backends();
    const cpu0 = { server: cpuSeconds(server.pid), bench: process.cpuUsage(), machine: machineCpu() };
    const seconds = await sendStreams(server.url, calls, concurrency, tally);
    const cpu1 = { server: cpuSeconds(server.pid), bench: process.cpuUsage(), machine: machineCpu() };
    const backends1 = await backends();
    let postgresCpu = 0;
    for (const [pid, used] of backends1) if (Number.isFinite(used)) postgresCpu += used - (backends0.get(pid) ?? 0);
    const benchCpu = (cpu1.bench.user + cpu1.bench.system - cpu0.bench.user - cpu0.bench.system) / 1e6;
    const cores = (busy: number) => round2(busy / seconds);
    const cpu = {
      cores: navigator.hardwareConcurrency,
      server: cores(cpu1.server - cpu0.server),
      bench: cores(benchCpu),
      postgres: cores(postgresCpu),
      rest: cores(cpu1.machine.busy - cpu0.machine.busy - (cpu1.server - cpu0.server) - benchCpu - postgresCpu),
      idle: cores(cpu1.machine.total - cpu0.machine.total - (cpu1.machine.busy - cpu0.machine.busy)),
      serverMsPerEvent: round2(((cpu1.server - cpu0.server) * 1000) / (calls.length * EVENT_TYPES.length)),
      postgresMsPerEvent: round2((postgresCpu * 1000) / (calls.length * EVENT_TYPES.length)),
    };
    const peakRssMb = peakRss(server.pid);
    const events = calls.length * EVENT_TYPES.length;
    log(`stream sent: ${events} events in ${seconds.toFixed(2)} s`);
    await journalDrained(server);
    const rooms = new Set(calls.map((c) => c.room));
    const liveKitCalls = fake.calls().filter((c) => c.request && rooms.has((c.request as { room?: string }).room ?? ""));
    const dispatches = liveKitCalls.filter((c) => c.method === "CreateDispatch" && c.status === 200).length;
    const streamCheck = await checkCalls(sql, fake, [...warmup, ...calls]);
    const recordedOk = calls.filter((c) => streamCheck.ok.has(c.callId)).length;
    await server.stop();

    // ---- Round trips: a second process of the same build, its database connections relayed and counted ----
    wire = startWireCounter(dbUrl.hostname, Number(dbUrl.port || 5432));
    const relayedUrl = new URL(databaseUrl);
    relayedUrl.hostname = "127.0.0.1";
    relayedUrl.port = String(wire.port);
    const rtServer = await startServer(binary, serverEnv(rtDir, relayedUrl.toString()));
    servers.push(rtServer);
    // Every pooled connection prepares the statements it runs once: warm them all up first.
    await sendStreams(rtServer.url, await buildCalls(fake, 64, 100_000), 16, newTally());
    const sequential = await buildCalls(fake, rtCount, 200_000);
    const concurrent = await buildCalls(fake, rtCount, 300_000);
    const rtTally = newTally();
    // Leave autovacuum as little to do as may be in the measured window: its transactions count too.
    await sql.unsafe("vacuum analyze");
    log(`round trips: server up through the counting relay (pid ${rtServer.pid}); waiting for PostgreSQL's counters to settle`);
    await Bun.sleep(STATS_FLUSH_MS);
    const windowStart = new Date();

    // SIP joins one at a time: transactions and wire round trips.
    const x0 = await transactions(admin, databaseName);
    const w0 = wire.roundTrips;
    const e0 = wire.errors;
    const joinSeconds = await sendStreams(rtServer.url, sequential, 1, rtTally, "caller_joined");
    const w1 = wire.roundTrips;
    await Bun.sleep(STATS_FLUSH_MS);
    const x1 = await transactions(admin, databaseName);
    const windowEnd = new Date();
    const xactInterval = joinSeconds + STATS_FLUSH_MS / 1000;
    // The background over an idle interval as long.
    const wb0 = wire.roundTrips;
    const idleStarted = performance.now();
    await Bun.sleep(xactInterval * 1000);
    const xb = await transactions(admin, databaseName);
    const idleSeconds = (performance.now() - idleStarted) / 1000;
    const baselineXactPerSecond = (xb - x1) / idleSeconds;
    const baselineWirePerSecond = (wire.roundTrips - wb0) / idleSeconds;
    const sipJoinXact = (x1 - x0 - baselineXactPerSecond * xactInterval) / rtCount;
    const perEvent = (delta: number, seconds: number) => (delta - baselineWirePerSecond * seconds) / rtCount;
    const roundTripsPerEvent = { caller_joined: perEvent(w1 - w0, joinSeconds) } as Record<EventType, number>;
    log(`SIP joins: ${round2(sipJoinXact)} transactions, ${round2(roundTripsPerEvent.caller_joined)} wire round trips each`);
    // The rest of the stream, one event type at a time, each event alone.
    for (const type of EVENT_TYPES.slice(1)) {
      const before = wire.roundTrips;
      const took = await sendStreams(rtServer.url, sequential, 1, rtTally, type);
      roundTripsPerEvent[type] = perEvent(wire.roundTrips - before, took);
    }
    // SIP joins at `concurrency`: concurrent calls' records share statements.
    const wc = wire.roundTrips;
    const concurrentSeconds = await sendStreams(rtServer.url, concurrent, concurrency, rtTally, "caller_joined");
    const sipJoinWireConcurrent = perEvent(wire.roundTrips - wc, concurrentSeconds);
    const wireErrors = wire.errors - e0;
    for (const type of EVENT_TYPES.slice(1)) await sendStreams(rtServer.url, concurrent, concurrency, rtTally, type);
    await journalDrained(rtServer);
    // Autovacuum's transactions are in pg_stat_database's counts: say so when it ran in the window.
    const autovacuum = await sql<{ relname: string; what: string }[]>`
      select relname, what from pg_stat_user_tables,
        lateral (values ('vacuum', last_autovacuum), ('analyze', last_autoanalyze)) as t(what, at)
      where at between ${windowStart} and ${windowEnd}`;
    const rtCheck = await checkCalls(sql, fake, [...sequential, ...concurrent]);
    await rtServer.stop();

    const problems = [...streamCheck.problems, ...rtCheck.problems];
    if (rtTally.errors > 0) problems.push(`round-trip batches: ${rtTally.errors} errors ${JSON.stringify(rtTally.errorsByStatus)}`);
    const all = EVENT_TYPES.flatMap((t) => tally.latencies[t]);
    const latency = {
      ...(Object.fromEntries(EVENT_TYPES.map((t) => [t, figures(tally.latencies[t])])) as Record<EventType, LatencyFigures>),
      all: figures(all),
    };
    const eventsPerSecond = Math.round(events / seconds);
    const roundTripsPerSipJoin = round2(sipJoinXact);
    const joinsLiveKitCalls = liveKitCalls.filter((c) => c.method === "ListDispatch" || c.method === "CreateDispatch").length;
    return {
      calls: calls.length,
      concurrency,
      events,
      seconds: round2(seconds),
      eventsPerSecond,
      latency,
      errors: tally.errors,
      errorsByStatus: tally.errorsByStatus,
      redeliveries: tally.redeliveries,
      results: tally.results,
      dispatches,
      liveKitCallsPerSipJoin: round2(joinsLiveKitCalls / calls.length),
      recordedOk,
      problems: problems.slice(0, 20),
      problemCount: problems.length,
      roundTripsPerSipJoin,
      roundTripsPerEvent: Object.fromEntries(EVENT_TYPES.map((t) => [t, round2(roundTripsPerEvent[t])])) as Record<EventType, number>,
      roundTrips: {
        calls: rtCount,
        sipJoinXact: roundTripsPerSipJoin,
        sipJoinWire: round2(roundTripsPerEvent.caller_joined),
        sipJoinWireConcurrent: round2(sipJoinWireConcurrent),
        sipJoinTransactions: x1 - x0,
        sipJoinWireRoundTrips: w1 - w0,
        autovacuumInWindow: autovacuum.map((a) => `${a.what} ${a.relname}`),
        baselineXactPerSecond: round2(baselineXactPerSecond),
        baselineWirePerSecond: round2(baselineWirePerSecond),
        wireErrors,
      },
      peakRssMb,
      cpu,
      targets: {
        eventsPerSecond: { target: TARGETS.eventsPerSecond, met: eventsPerSecond >= TARGETS.eventsPerSecond },
        roundTripsPerSipJoin: { target: TARGETS.roundTripsPerSipJoin, met: roundTripsPerSipJoin <= TARGETS.roundTripsPerSipJoin },
      },
      ok: tally.errors === 0 && problems.length === 0 && recordedOk === calls.length && dispatches === calls.length,
      tookSeconds: Math.round((performance.now() - began) / 1000),
    };
  } catch (error) {
    for (const s of servers) {
      const out = s.output();
      if (out) console.error(`--- switchboard (pid ${s.pid}) output ---\n${out}`);
    }
    throw error;
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    wire?.close();
    await fake.close();
    await sql.end({ timeout: 1 });
    await admin.end({ timeout: 1 });
  }
}

/** The table: latency by event type, throughput, round trips, the checks. */
export function reportLiveKitStream(r: LiveKitStreamResult) {
  const mark = (met: boolean) => (met ? "met" : "MISSED");
  console.log(`\nLiveKit stream: ${r.calls} calls, ${r.events} signed events, ${r.concurrency} calls in flight, dispatch to the loopback LiveKit`);
  console.log("\n| event | sent | p50 ms | p99 ms | max ms | answers |\n|---|---|---|---|---|---|");
  for (const type of EVENT_TYPES) {
    const l = r.latency[type];
    const answers = Object.entries(r.results[type]).map(([k, v]) => `${k} ${v}`).join(", ");
    console.log(`| ${LABELS[type]} | ${l.count} | ${l.p50Ms} | ${l.p99Ms} | ${l.maxMs} | ${answers} |`);
  }
  const a = r.latency.all;
  console.log(`| all | ${a.count} | ${a.p50Ms} | ${a.p99Ms} | ${a.maxMs} | errors ${r.errors} |`);
  console.log(`\nevents/s: ${r.eventsPerSecond} (target >= ${r.targets.eventsPerSecond.target}: ${mark(r.targets.eventsPerSecond.met)})`);
  if (r.errors) console.log(`errors: ${JSON.stringify(r.errorsByStatus)}, redeliveries ${r.redeliveries}`);
  const rt = r.roundTrips;
  console.log(
    `database round trips per SIP join: ${r.roundTripsPerSipJoin} (transactions, one join at a time; target <= ${r.targets.roundTripsPerSipJoin.target}: ${mark(r.targets.roundTripsPerSipJoin.met)})`,
  );
  console.log(
    `  on the wire: ${rt.sipJoinWire} one at a time, ${rt.sipJoinWireConcurrent} with ${r.concurrency} in flight (${rt.calls} joins each; background ${rt.baselineXactPerSecond} tx/s, ${rt.baselineWirePerSecond} round trips/s subtracted; ${rt.wireErrors} statement errors)`,
  );
  console.log(`  per event, on the wire: ${EVENT_TYPES.map((t) => `${t} ${r.roundTripsPerEvent[t]}`).join(", ")}`);
  if (rt.autovacuumInWindow.length) console.log(`  autovacuum ran in the transactions' window: ${rt.autovacuumInWindow.join(", ")}`);
  console.log(
    `CPU during the stream, in cores of ${r.cpu.cores}: switchboard ${r.cpu.server}, its PostgreSQL backends ${r.cpu.postgres}, bench client + LiveKit stand-in ${r.cpu.bench}, the rest of the machine ${r.cpu.rest}, idle ${r.cpu.idle}`,
  );
  console.log(
    `CPU per event: switchboard ${r.cpu.serverMsPerEvent} ms, PostgreSQL ${r.cpu.postgresMsPerEvent} ms (events/s is bounded by about ${Math.round(1000 / r.cpu.serverMsPerEvent)} on one core for switchboard alone)`,
  );
  console.log(`LiveKit API calls per SIP join: ${r.liveKitCallsPerSipJoin}`);
  console.log(`calls ${r.calls}: recorded ok ${r.recordedOk}, dispatched ${r.dispatches}; problems ${r.problemCount}${r.problemCount ? ":" : ""}`);
  for (const p of r.problems) console.log(`  ${p}`);
  console.log(`server peak RSS ${r.peakRssMb} MB; took ${r.tookSeconds} s; ${r.ok ? "OK" : "FAILED"}`);
}

// ---------------------------------------------------------------------------------------------
// Alone

/** The newest modification time under `dir`, in ms. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

function chooseBinary(argv: string[]): string {
  const given = argv.indexOf("--binary");
  if (given >= 0 && argv[given + 1]) return resolve(argv[given + 1]!);
  const built = join(root, "bench", ".build", "switchboard");
  const source = join(root, "src", "main.ts");
  let builtAt: number;
  try {
    builtAt = statSync(built).mtimeMs;
  } catch {
    return source;
  }
  if (builtAt >= Math.max(newest(join(root, "src")), newest(join(root, "drizzle")))) return built;
  console.log("bench/.build/switchboard is older than src/ or drizzle/: measuring `bun src/main.ts` instead");
  return source;
}

async function main() {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const binary = chooseBinary(argv);
  const pg = { host: process.env.PGHOST ?? "127.0.0.1", port: process.env.PGPORT ?? "5432", user: process.env.PGUSER ?? "root" };
  const name = `switchboard_lkbench_${Date.now()}`;
  const server = postgres(`postgresql://${pg.user}@${pg.host}:${pg.port}/postgres`, { max: 1, onnotice: () => {} });
  await server.unsafe(`drop database if exists "${name}" with (force)`);
  await server.unsafe(`create database "${name}"`);
  const dataDir = mkdtempSync(join(tmpdir(), "lkbench-"));
  console.log(`measuring ${binary} on database ${name}`);
  try {
    const result = await measureLiveKitStream({
      binary,
      databaseUrl: `postgresql://${pg.user}@${pg.host}:${pg.port}/${name}`,
      dataDir,
      calls: quick ? 500 : 3_000,
      concurrency: 32,
    });
    reportLiveKitStream(result);
    console.log(`\n${JSON.stringify(result)}`);
    return result.ok ? 0 : 1;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    if (!argv.includes("--keep")) await server.unsafe(`drop database if exists "${name}" with (force)`);
    await server.end();
  }
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`livekit-stream: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    },
  );
}
