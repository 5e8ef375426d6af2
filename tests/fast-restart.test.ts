// A restart after a clean stop answers calls before the embedded database has opened: from the
// routing directory's snapshot, the records journaled and written once it is open. Only when the
// snapshot is known to hold what the database holds; otherwise (a crash, the directory changed
// while the server was stopped) the database is opened first. Real server processes on a DATA_DIR;
// the embedded database's alone, so skipped when the suite runs on DATABASE_URL.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { openDatabase } from "../src/db/client";
import { killAllServers, type ServerProcess, seedDirectory, startServer } from "./support/server-process";

const SIP_INBOUND = "/api/v1/webhooks/livekit/sip-inbound";
// examples/directory.json: this number's campaign (Spring promo) answers with acme-sales.
const SPRING_PROMO = "+14155550100";
const CAMPAIGN_AGENT = "acme-sales";

const scratch = mkdtempSync(join(tmpdir(), "switchboard-fast-restart-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
afterEach(() => killAllServers());

let n = 0;
const freshEnv = () => ({ DATA_DIR: join(scratch, `data-${++n}`), LOG_LEVEL: "info" });

type Readiness = { status: string; database: { reachable: boolean }; routing: { source: string | null }; journal: { depth: number; replayed: number } };
const readiness = async (server: ServerProcess) => (await (await server.get("/readyz")).json()) as Readiness;

async function call(server: ServerProcess, callId: string) {
  const res = await server.post(SIP_INBOUND, { call_id: callId, from_number: "+14155559876", to_number: SPRING_PROMO });
  expect(res.status).toBe(200);
  return (await res.json()) as { agent_name: string; record: string };
}

/** Waits until the server says it is ready: its journal written and its directory loaded from the database. */
async function settled(server: ServerProcess): Promise<Readiness> {
  for (let i = 0; i < 400; i++) {
    const ready = await readiness(server);
    if (ready.status === "ready" && ready.journal.depth === 0 && ready.routing.source === "database") return ready;
    await Bun.sleep(25);
  }
  throw new Error(`never ready: ${JSON.stringify(await readiness(server))}\n${server.output()}`);
}

/** A server that ran, with its directory loaded from the database, stopped with SIGTERM. */
async function runAndStop(env: Record<string, string>) {
  const server = await startServer(env);
  await settled(server);
  server.kill("SIGTERM");
  expect(await server.exited).toBe(0);
}

async function callLogsOf(dataDir: string, callId: string) {
  const database = await openDatabase({ dataDir, poolMax: 1, statementTimeoutMs: 10_000 });
  try {
    return await database.rows<{ agent_name: string; status: string }>(
      sql`select agent_name, status from call_logs where provider_call_id = ${callId}`,
    );
  } finally {
    await database.close();
  }
}

/**
 * Restarts after a clean stop and calls at once, until a call lands while the database is still
 * opening (about half a second; a starved machine can let the open win the race): three tries.
 * Where the restart waits for its database, none does, and the test says so.
 */
async function callWhileOpening(env: Record<string, string>, callId: string, extraEnv: Record<string, string> = {}) {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const server = await startServer({ ...env, ...extraEnv });
    const early = await readiness(server);
    const answer = await call(server, `${callId}-${attempt}`);
    if (answer.record === "pending") return { server, early, answer, callId: `${callId}-${attempt}` };
    server.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  }
  throw new Error("no call in three restarts was answered before the database was open");
}

describe.skipIf(Boolean(process.env.DATABASE_URL))("a restart on the embedded database's DATA_DIR", () => {
  test("after a clean stop, a call is answered by the campaign's agent before the database is open, and recorded once when it is", async () => {
    const env = freshEnv();
    await seedDirectory(env, "examples/directory.json");
    await runAndStop(env);

    // The database still opening, the record goes to the journal (record: pending).
    const { server, early, answer, callId } = await callWhileOpening(env, "fast-restart");
    expect(existsSync(join(env.DATA_DIR, "clean-stop"))).toBe(false); // taken, good for this start only
    expect(answer.agent_name).toBe(CAMPAIGN_AGENT);
    expect(early.status).toBe("degraded");
    expect(early.routing.source).toBe("snapshot");

    expect((await settled(server)).journal.replayed).toBe(1);
    expect((await call(server, "fast-restart-after")).record).toBe("recorded");
    server.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(await callLogsOf(env.DATA_DIR, callId)).toEqual([{ agent_name: CAMPAIGN_AGENT, status: "ringing" }]);
  }, 60_000);

  test("numbers added while the server was stopped: the restart opens the database first and routes them", async () => {
    const env = freshEnv();
    await runAndStop(env); // its snapshot holds no numbers
    await seedDirectory(env, "examples/directory.json");

    const server = await startServer(env);
    const answer = await call(server, "seeded-while-stopped");
    expect(answer.agent_name).toBe(CAMPAIGN_AGENT);
    expect(answer.record).toBe("recorded");
    expect((await readiness(server)).routing.source).toBe("database");
  }, 60_000);

  // The stop vouched for a snapshot that is no longer the one it left.
  const snapshotChanges: [string, string, (snapshot: string) => void][] = [
    ["whose snapshot was removed since", "snapshot-removed", (snapshot) => rmSync(snapshot)],
    [
      "whose snapshot was rewritten while stopped (a server on DATABASE_URL with this DATA_DIR)",
      "snapshot-rewritten",
      // What another database's directory would leave: none of this database's numbers.
      (snapshot) => writeFileSync(snapshot, JSON.stringify({ saved_at: new Date().toISOString(), entries: [] })),
    ],
  ];
  for (const [what, callId, change] of snapshotChanges) {
    test(`a clean stop ${what}: the restart opens the database first rather than route without it`, async () => {
      const env = freshEnv();
      await seedDirectory(env, "examples/directory.json");
      await runAndStop(env);
      change(join(env.DATA_DIR, "directory.json"));

      const server = await startServer(env);
      const answer = await call(server, callId);
      expect(answer.agent_name).toBe(CAMPAIGN_AGENT);
      expect(answer.record).toBe("recorded");
    }, 60_000);
  }

  test("after a crash (SIGKILL), the restart opens the database first, though an earlier stop was clean", async () => {
    const env = freshEnv();
    await seedDirectory(env, "examples/directory.json");
    await runAndStop(env);
    const crashing = await startServer(env);
    await settled(crashing);
    crashing.kill("SIGKILL");
    await crashing.exited;

    const server = await startServer(env);
    const answer = await call(server, "after-crash");
    expect(answer.agent_name).toBe(CAMPAIGN_AGENT);
    expect(answer.record).toBe("recorded");
    const ready = await readiness(server);
    expect(ready.status).toBe("ready");
    expect(ready.journal.replayed).toBe(0);
  }, 60_000);

  test("a stop while the database is still opening exits 0, and the data is there at the next start", async () => {
    const env = freshEnv();
    await seedDirectory(env, "examples/directory.json");
    await runAndStop(env);
    // With tracing on, whose exporter keeps the process busy past the stop's last step.
    const { server: stoppedEarly, callId } = await callWhileOpening(env, "stopped-while-opening", {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
    });
    stoppedEarly.kill("SIGTERM");
    expect(await stoppedEarly.exited).toBe(0);

    // The journaled call is written at the next start, which opens the database first: the stop
    // does not vouch for a snapshot it has not loaded from the database.
    const server = await startServer(env);
    await settled(server);
    server.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(await callLogsOf(env.DATA_DIR, callId)).toEqual([{ agent_name: CAMPAIGN_AGENT, status: "ringing" }]);
  }, 60_000);
});
