// The journal: a call the database cannot take is kept on local disk before the caller is
// answered, and written to the database, exactly once, when it answers again; across a restart,
// with a torn last line, and for LiveKit events that arrive while the database is down.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { callLogs, leads } from "../src/db/schema";
import { createLogger } from "../src/logger";
import { type Journal, openJournal, readEntries, REFUSED_FILE } from "../src/journal/journal";
import { type LogLine, openTestContext, type TestContext } from "./support/context";
import { signBody, signDelivery, sipParticipantLeft } from "./support/livekit-events";
import {
  acmeDirectory,
  CALLER,
  CAMPAIGN_AGENT,
  CAMPAIGN_NUMBER,
  liveKitEnv,
  newCall,
  postEvent,
  SIP_INBOUND_PATH,
  sipCallerJoins,
  TEST_KEYS,
  useFakeLiveKit,
} from "./support/livekit-app";
import { openSwitchedDatabase, type SwitchedDatabase } from "./support/switched-database";

const json = (res: Response): Promise<any> => res.json();
const fake = useFakeLiveKit();

let switched: SwitchedDatabase;
let dir: string;
let journal: Journal;
let ctx: TestContext;
const journalLogs: LogLine[] = [];

function openTestJournal(at = dir) {
  const logger = createLogger("debug", { write: (line: string) => void journalLogs.push(JSON.parse(line)) });
  return openJournal({ dir: at, logger });
}

beforeAll(async () => {
  switched = await openSwitchedDatabase();
});
afterAll(async () => {
  await switched?.close();
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "switchboard-journal-"));
  journal = openTestJournal();
  switched.state.down = false;
  ctx = await openTestContext(liveKitEnv(fake, { LIVEKIT_DISPATCH_RETRIES: "0" }), { database: switched.database, journal });
  await ctx.seed(acmeDirectory);
  ctx.logs.length = 0;
  journalLogs.length = 0;
});
afterEach(async () => {
  await ctx.close();
  await journal.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(callId: string) {
  const body = JSON.stringify({ call_id: callId, to_number: CAMPAIGN_NUMBER, from_number: CALLER });
  const res = await ctx.post(SIP_INBOUND_PATH, body, { authorization: await signBody(body, TEST_KEYS) });
  expect(res.status).toBe(200);
  return json(res);
}

async function rowsOf(callId: string) {
  return ctx.database.db.select().from(callLogs).where(eq(callLogs.providerCallId, callId));
}

/** Waits (bounded) until the journal is empty: it is replayed about once a second while it holds entries. */
async function drained() {
  for (let i = 0; i < 100 && journal.status().depth > 0; i++) await Bun.sleep(50);
  expect(journal.status().depth).toBe(0);
}

describe("a call while the database is down", () => {
  test("is answered by its campaign's agent, said to be pending, and recorded once when the database is back", async () => {
    switched.state.down = true;
    const answer = await call("jr-1");
    expect(answer).toMatchObject({ agent_name: CAMPAIGN_AGENT, record: "pending" });
    expect(JSON.parse(answer.metadata)).toMatchObject({ call_log_id: null, agent_source: "campaign" });
    expect(journal.status().depth).toBe(1);
    const health = await json(await ctx.get("/api/v1/webhooks/health"));
    expect(health).toMatchObject({ status: "degraded", journal: { enabled: true, depth: 1 } });

    switched.state.down = false;
    await drained();
    const rows = await rowsOf("jr-1");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ agentName: CAMPAIGN_AGENT, agentSource: "campaign", fromNumber: CALLER, toNumber: CAMPAIGN_NUMBER });
    const [lead] = await ctx.database.db.select().from(leads).where(eq(leads.phoneNumber, CALLER));
    expect(rows[0]!.leadId).toBe(lead!.id);
    expect((await json(await ctx.get("/readyz"))).journal).toMatchObject({ depth: 0, replayed: 1 });
  });

  test("delivered three times during the outage and once after it is still one call log and one lead", async () => {
    switched.state.down = true;
    for (let i = 0; i < 3; i++) expect((await call("jr-dup")).record).toBe("pending");
    switched.state.down = false;
    const after = await call("jr-dup");
    await drained();
    expect(await rowsOf("jr-dup")).toHaveLength(1);
    expect(after.agent_name).toBe(CAMPAIGN_AGENT);
    expect(await ctx.database.db.select().from(leads)).toHaveLength(1);
  });

  test("is recorded at the time it came in, not at the time of the replay", async () => {
    switched.state.down = true;
    const before = Date.now();
    await call("jr-time");
    await Bun.sleep(1200);
    switched.state.down = false;
    await drained();
    const [row] = await rowsOf("jr-time");
    expect(row!.createdAt.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(row!.createdAt.getTime()).toBeLessThan(before + 1000);
  });
});

describe("a LiveKit caller who joins and hangs up while the database is down", () => {
  test("gets the campaign's agent, both webhooks are answered 200, and the call is complete, its dispatch included, once the database is back", async () => {
    const room = newCall();
    const join = await sipCallerJoins(fake, room);
    switched.state.down = true;
    const joined = await postEvent(ctx, join);
    expect(joined.status).toBe(200);
    expect(await json(joined)).toMatchObject({ result: "journaled" });
    expect(fake.agentDispatches(room.room).map((d) => d.agentName)).toEqual([CAMPAIGN_AGENT]);
    const left = await postEvent(ctx, await signDelivery(sipParticipantLeft({ room: room.room, callId: room.callId }), TEST_KEYS));
    expect(left.status).toBe(200);

    switched.state.down = false;
    await drained();
    const [row] = await rowsOf(room.callId);
    expect(row).toMatchObject({ agentName: CAMPAIGN_AGENT, status: "abandoned", disconnectReason: "CLIENT_INITIATED" });
    expect(row!.callerJoinedAt).not.toBeNull();
    expect(row!.endedAt).not.toBeNull();
    // The replay sends no agent: the caller got one when the join came in, and the log names it.
    expect(fake.calls("CreateDispatch")).toHaveLength(1);
    const sent = fake.agentDispatches(room.room).filter((d) => d.agentName !== "");
    expect(row!.dispatchId).toBe(sent[0]!.id);
  });
});

describe("a restart during the outage", () => {
  test("a journal left by a process that is gone is replayed by the next one at start", async () => {
    switched.state.down = true;
    await call("jr-restart");
    // The process "dies": its journal stays on disk with the lock released.
    await ctx.close();
    await journal.close();

    switched.state.down = false;
    journal = openTestJournal();
    expect(journal.status().depth).toBe(1);
    ctx = await openTestContext(liveKitEnv(fake), { database: switched.database, journal });
    await drained();
    expect(await rowsOf("jr-restart")).toHaveLength(1);
    expect(readdirSync(dir).filter((name) => name.endsWith(".jsonl"))).toEqual([]);
  });

  test("a torn last line is skipped with a warning; the lines before it are replayed and the start does not fail", async () => {
    switched.state.down = true;
    await call("jr-torn");
    await ctx.close();
    await journal.close();
    const [file] = readdirSync(dir).filter((name) => name.endsWith(".jsonl"));
    // The process died in the middle of writing its next entry.
    appendFileSync(join(dir, file!), '3f2a9c0d1e2b4a5c {"kind":"call","at":"2026-');

    switched.state.down = false;
    journal = openTestJournal();
    ctx = await openTestContext(liveKitEnv(fake), { database: switched.database, journal });
    await drained();
    expect(await rowsOf("jr-torn")).toHaveLength(1);
    expect(journalLogs.some((line) => line.level === "warn" && line.line === 2)).toBe(true);
  });

  test("a line whose checksum does not match its content is never replayed", () => {
    const path = join(dir, "000000000000001-1-corrupt.jsonl");
    const entry = JSON.stringify({ kind: "call", at: new Date().toISOString(), data: { call: { callId: "x" } } });
    writeFileSync(path, `0000000000000000 ${entry}\n`);
    expect(readEntries(path, createLogger("silent"))).toEqual([]);
  });
});

describe("replay and failures", () => {
  test("an entry that fails for a reason not known to be final stays in the journal; one refused for good is kept aside, not dropped", async () => {
    const ownDir = mkdtempSync(join(tmpdir(), "switchboard-refused-"));
    const own = openTestJournal(ownDir);
    await own.append("flaky", 1);
    await own.append("bad", 2);
    const notYet = Object.assign(new Error("getaddrinfo ENOTFOUND db.internal"), { code: "ENOTFOUND" });
    const refused = Object.assign(new Error("violates check constraint"), { code: "23514" });
    let flakyFails = true;
    const handlers = {
      flaky: async () => {
        if (flakyFails) throw notYet;
      },
      bad: async () => {
        throw refused;
      },
    };
    const isPermanent = (error: unknown) => error === refused;
    await own.replay(handlers, isPermanent);
    expect(own.status()).toMatchObject({ depth: 2, replayed: 0, refused: 0 });
    flakyFails = false;
    await own.replay(handlers, isPermanent);
    expect(own.status()).toMatchObject({ depth: 0, replayed: 1, refused: 1 });
    const kept = readFileSync(join(ownDir, REFUSED_FILE), "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(kept.map((line) => line.entry)).toMatchObject([{ kind: "bad", data: 2 }]);
    await own.close();
  });
});

describe("appends racing a replay", () => {
  test("every append lands on disk and is replayed exactly once, none fails", async () => {
    const own = openTestJournal(mkdtempSync(join(tmpdir(), "switchboard-race-")));
    const replayed: number[] = [];
    const handlers = { n: async (data: unknown) => void replayed.push(data as number) };
    // Writers that append again as soon as their last entry is on disk, while replays keep
    // sealing the file they write to: the next write must go to a new file, not the closing one.
    let writing = true;
    const writer = async (w: number) => {
      for (let i = 0; i < 60; i++) await own.append("n", w * 60 + i);
    };
    const replayer = async () => {
      while (writing) {
        await own.replay(handlers, () => false);
        await Bun.sleep(0);
      }
    };
    const replaying = replayer();
    const results = await Promise.allSettled([0, 1, 2, 3, 4].map(writer));
    writing = false;
    await replaying;
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    await own.replay(handlers, () => false);
    // Those written before a failed append are all replayed, once each.
    expect(replayed.toSorted((a, b) => a - b)).toEqual([...Array(300).keys()]);
    expect(own.status().depth).toBe(0);
    await own.close();
  });
});

describe("two journals on one directory", () => {
  test("a live process's journal is left to it; only files whose owner is gone are adopted", async () => {
    switched.state.down = true;
    await call("jr-live");
    const other = openTestJournal();
    // The first journal's file is held by its (live) owner: the second does not take it.
    expect(other.status().depth).toBe(0);
    await other.close();
  });
});
