// The database is down, hung or gone: callers must still be answered (by their own agent when
// the directory was loaded, else the system default), the failure must be logged, and the health
// endpoints must tell the truth without telling where the database is. These apps have no
// journal (journal.test.ts has those): a call the database cannot take is answered "unrecorded".
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { createApp } from "../src/app";
import { loadConfig } from "../src/config";
import { type Database, openDatabase } from "../src/db/client";
import { callLogs } from "../src/db/schema";
import { openJournal } from "../src/journal/journal";
import { createLogger } from "../src/logger";
import { type LogLine, openTestContext, testEnv } from "./support/context";
import {
  acmeDirectory,
  CALLER,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  SIP_INBOUND_PATH,
  startHungPostgres,
  SYSTEM_DEFAULT_AGENT,
} from "./support/livekit-app";

/** A response's JSON body; each test checks the fields it cares about. */
const json = (res: Response): Promise<any> => res.json();

/** An app on `database` with its log lines captured, configured as the CLI would configure it. */
function appOn(database: Database, env: Record<string, string>) {
  const config = loadConfig({ LOG_LEVEL: "debug", ...env });
  const logs: LogLine[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const app = createApp({ database, config, logger });
  const request = (method: string, path: string, body?: unknown) =>
    app.handle(
      new Request(`http://localhost${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
  return { app, config, logs, request };
}

/** A PostgreSQL database at `url` opened the way the CLI opens it (statement timeout from the config). */
function openUnreachable(url: string, statementTimeoutMs: number) {
  return openDatabase({ databaseUrl: url, dataDir: "memory://", poolMax: 2, statementTimeoutMs });
}

type Client = ReturnType<typeof appOn>;

async function sipInbound(client: Client, callId: string) {
  const res = await client.request("POST", SIP_INBOUND_PATH, { call_id: callId, to_number: "(415) 555-0100", from_number: CALLER });
  expect(res.status).toBe(200);
  const answer = await json(res);
  return { answer, meta: JSON.parse(answer.metadata) };
}

/**
 * The shared expectations: answered (by the system default unless the directory was loaded
 * before the database went), the answer says nothing was recorded, an error logged.
 */
async function expectAnsweredWithoutDatabase(client: Client, callId: string, agent = SYSTEM_DEFAULT_AGENT) {
  const { answer, meta } = await sipInbound(client, callId);
  expect(answer.agent_name).toBe(agent);
  expect(answer.record).toBe("unrecorded");
  expect(meta).toMatchObject({
    call_type: "inbound",
    agent_source: agent === SYSTEM_DEFAULT_AGENT ? "system_default" : "campaign",
    call_log_id: null,
    lead_id: null,
    from_number: CALLER,
    to_number: CAMPAIGN_NUMBER,
  });
  // No lead could be read, so no caller_name; the tenant and campaign come from the directory in memory, when it was loaded.
  const known = agent === SYSTEM_DEFAULT_AGENT ? {} : { tenant_id: meta.tenant_id, campaign_id: meta.campaign_id };
  expect(answer.attributes).toEqual({ inbound: "true", phone_number: CAMPAIGN_NUMBER, caller: CALLER, ...known });
  expect(meta.caller).toBeNull();
  const errors = client.logs.filter((l) => l.level === "error" && l.call_id === callId);
  expect(errors.length).toBeGreaterThanOrEqual(1);
  // Enough in the line to rebuild the record later.
  expect(errors[0]).toMatchObject({ from: CALLER, to: CAMPAIGN_NUMBER, agent, record: "unrecorded" });
}

/**
 * Ready (200, degraded) while calls are still routed from a loaded directory; 503 only when it
 * never could be loaded. Public answers never show the database's address or its driver's words.
 */
async function expectHealthReportsDown(client: Client, directoryLoaded: boolean) {
  const ready = await client.request("GET", "/readyz");
  expect(ready.status).toBe(directoryLoaded ? 200 : 503);
  const readiness = await json(ready);
  expect(readiness).toMatchObject({
    status: directoryLoaded ? "degraded" : "unavailable",
    database: { reachable: false },
    routing: { directory_loaded: directoryLoaded },
  });

  const health = await client.request("GET", "/api/v1/webhooks/health");
  const body = await json(health);
  expect(body.database.reachable).toBe(false);
  expect(body.status).toBe("degraded");
  for (const text of [JSON.stringify(readiness), JSON.stringify(body)]) {
    expect(text).not.toMatch(/127\.0\.0\.1|ECONN|timed out|postgres(ql)?:\/\//);
  }

  const alive = await client.request("GET", "/healthz");
  expect(alive.status).toBe(200);
}

/** Key checks need the database: with it gone, an operator is told to retry (503), never a 500. */
async function expectAdminUnavailable(client: Client) {
  const res = await client.app.handle(
    new Request("http://localhost/api/v1/call-logs", { headers: { authorization: `Bearer sb_${"k".repeat(43)}` } }),
  );
  expect(res.status).toBe(503);
  expect((await json(res)).error).toMatchObject({ code: "unavailable", message: expect.stringContaining("database") });
}

describe("connection refused", () => {
  const url = "postgresql://root@127.0.0.1:1/none";
  let database: Database;
  let client: Client;
  beforeAll(async () => {
    database = await openUnreachable(url, 300);
    client = appOn(database, { DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: "300" });
  });
  // postgres.js may wait out its 5 s end timeout while it is still retrying the connection.
  afterAll(() => database.close(), 15_000);

  test("the caller gets the system default and the failure is logged", async () => {
    await expectAnsweredWithoutDatabase(client, "refused-1");
  });

  test("the admin API answers 503 unavailable, not 500, and says so in the error shape", async () => {
    await expectAdminUnavailable(client);
  });

  test("the error line says why: the connection was refused", async () => {
    await sipInbound(client, "refused-why");
    const line = client.logs.find((l) => l.level === "error" && l.call_id === "refused-why");
    // The operator reading this line needs the cause, not only the SQL that failed.
    expect(JSON.stringify(line!.err)).toContain("ECONNREFUSED");
  });

  test("a configured system default is the one used", async () => {
    const custom = appOn(database, { DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: "300", SYSTEM_DEFAULT_AGENT: "front-desk" });
    const { answer } = await sipInbound(custom, "refused-2");
    expect(answer.agent_name).toBe("front-desk");
  });

  test("the health endpoints say the database is down", async () => {
    await expectHealthReportsDown(client, false);
  });

  test("a transaction asked for while the database is known to be down is refused, and its work never runs", async () => {
    await database.rows(sql`select 1`).catch(() => {});
    expect(database.available).toBe(false);
    let ran = false;
    const outcome = await database.db
      .transaction(async () => {
        ran = true;
      })
      .then(
        () => "committed",
        (error: Error) => error.name,
      );
    expect({ outcome, ran }).toEqual({ outcome: "DatabaseDownError", ran: false });
  });

  test("the test endpoint answers but reports it could not record", async () => {
    const res = await client.request("POST", "/api/v1/webhooks/test", { to_number: CAMPAIGN_NUMBER });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.success).toBe(false);
    expect(body.response.agent_name).toBe(SYSTEM_DEFAULT_AGENT);
  });
});

describe("a database that accepts connections and never answers", () => {
  let hung: ReturnType<typeof startHungPostgres>;
  let database: Database;
  let client: Client;
  beforeAll(async () => {
    hung = startHungPostgres();
    database = await openUnreachable(hung.url, 300);
    client = appOn(database, { DATABASE_URL: hung.url, DB_STATEMENT_TIMEOUT_MS: "300" });
  });
  afterAll(() => {
    hung?.stop();
    // postgres.js waits out its 5 s end timeout for a connection that never completed: the
    // close goes on in the background rather than holding up the files after this one.
    void database.close().catch(() => {});
  });

  test("the caller is still answered, by the system default, and the failure is logged", async () => {
    await expectAnsweredWithoutDatabase(client, "hung-1");
  });

  test("the admin API answers 503 unavailable within the statement timeout", async () => {
    await expectAdminUnavailable(client);
  });

  test("the error line says why: a timeout", async () => {
    await sipInbound(client, "hung-why");
    const line = client.logs.find((l) => l.level === "error" && l.call_id === "hung-why");
    // The first timeout marks the database down; later calls do not wait, and say what it was.
    expect(JSON.stringify(line!.err)).toContain("TimeoutError");
    expect(JSON.stringify(line!.err)).toContain("timed out");
  });

  test("the health endpoints say the database is down", async () => {
    await expectHealthReportsDown(client, false);
  });
});

describe("a statement that is merely slow on a live database", () => {
  test.skipIf(!testEnv().DATABASE_URL)("is cancelled by the server and does not mark the database down for everyone else", async () => {
    const database = await openDatabase({ databaseUrl: testEnv().DATABASE_URL, dataDir: "memory://", poolMax: 2, statementTimeoutMs: 300 });
    try {
      const slow = await database.rows(sql`select pg_sleep(2)`).then(
        () => "finished",
        (error: { code?: string }) => error.code,
      );
      expect(slow).toBe("57014"); // canceling statement due to statement timeout
      expect(database.available).toBe(true);
      expect(await database.rows(sql`select 1 as one`)).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
    }
  });
});

describe("a database that goes away while the service runs", () => {
  test("calls are answered before and after, by the campaign's agent from the directory in memory", async () => {
    const ctx = await openTestContext();
    const client: Client = {
      app: ctx.app,
      config: ctx.config,
      logs: ctx.logs,
      request: (method, path, body) => (method === "GET" ? ctx.get(path) : ctx.post(path, body)),
    };
    await ctx.seed(acmeDirectory);
    const before = await sipInbound(client, "away-1");
    expect(before.answer.agent_name).toBe(CAMPAIGN_AGENT);
    expect(before.meta.call_log_id).not.toBeNull();

    await ctx.database.close();

    await expectAnsweredWithoutDatabase(client, "away-2", CAMPAIGN_AGENT);
    await expectHealthReportsDown(client, true);
  }, 30_000);
});

describe("a database too busy to answer within the statement timeout", () => {
  // The database is opened the way the CLI opens it: its statement timeout is the configured one.
  const POOL = 2;
  const env = testEnv({ DB_STATEMENT_TIMEOUT_MS: "300" });
  let database: Database;
  beforeAll(async () => {
    database = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: "memory://", poolMax: POOL, statementTimeoutMs: 300 });
  }, 30_000);
  afterAll(() => database.close());

  test("a call answered while the database is too busy is journaled, then recorded once with the agent it was answered with", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-busy-"));
    const journal = openJournal({ dir, logger: createLogger("silent") });
    const ctx = await openTestContext({ DB_STATEMENT_TIMEOUT_MS: "300" }, { database, journal });
    await ctx.seed(acmeDirectory);

    // Every connection is taken by slow work (PGlite has one connection; PostgreSQL a pool).
    const release = Promise.withResolvers<void>();
    const started: Promise<void>[] = [];
    const holders: Promise<void>[] = [];
    for (let i = 0; i < (database.kind === "postgres" ? POOL : 1); i++) {
      const begun = Promise.withResolvers<void>();
      started.push(begun.promise);
      holders.push(
        database.db.transaction(async (tx) => {
          await tx.execute(sql`select 1`);
          begun.resolve();
          await release.promise;
        }),
      );
    }
    await Promise.all(started);
    const res = await ctx.post(SIP_INBOUND_PATH, { call_id: "busy-1", to_number: CAMPAIGN_NUMBER, from_number: CALLER });
    release.resolve();
    await Promise.all(holders);
    expect(res.status).toBe(200);
    const answer = await json(res);
    // The decision comes from memory: the busy database changes who answers nothing.
    expect(answer.agent_name).toBe(CAMPAIGN_AGENT);
    expect(answer.record).toBe("pending");
    expect(JSON.parse(answer.metadata).call_log_id).toBeNull();

    // The journal is written once the database is free, naming the agent the caller got.
    let rows: (typeof callLogs.$inferSelect)[] = [];
    for (let i = 0; i < 50 && rows.length === 0; i++) {
      await Bun.sleep(100);
      // The timeout marked the database down; statements are refused until its probe gets an answer.
      rows = await database.db
        .select()
        .from(callLogs)
        .where(eq(callLogs.providerCallId, "busy-1"))
        .catch(() => []);
    }
    expect(rows.map((r) => [r.agentName, r.agentSource])).toEqual([[CAMPAIGN_AGENT, "campaign"]]);
    await journal.close();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);
});
