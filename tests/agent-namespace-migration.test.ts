// Upgrading to 0006, where agent names become one namespace across tenants (LiveKit dispatches
// agents by name). A database where two tenants' agents share a name is not renamed behind
// anyone's back: the upgrade stops, lists the name and its owners, and changes nothing; once
// one is renamed, it goes through. Each test starts from a fresh database migrated up to 0005:
// PGlite in a temporary directory, or a new database on the PostgreSQL named by DATABASE_URL.
import { afterEach, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SQL, sql } from "drizzle-orm";
import journal from "../drizzle/meta/_journal.json";
import type { Database } from "../src/db/client";
import { constraintViolation } from "../src/db/errors";
import { migrate } from "../src/db/migrate";
import { type FreshDatabase, freshDatabase } from "./support/fresh-database";

const ROOT = join(import.meta.dir, "..");
const BEFORE = "0005_admin_api";
const UPGRADE = "0006_real_livekit_rooms";
const TAGS_BEFORE = journal.entries.map((e) => e.tag).slice(0, journal.entries.findIndex((e) => e.tag === BEFORE) + 1);
// Opening a database, migrating it and a CLI run each take seconds on the embedded database.
const SLOW = 60_000;

interface Owners {
  acme: { tenant: string; agent: string };
  bright: { tenant: string; agent: string };
  /** An agent whose name nobody else has. */
  unique: string;
}

const id = async (database: Database, query: SQL) => (await database.rows<{ id: string }>(query))[0]!.id;

/** A 0005 database where tenants Acme Dental and Bright Plumbing each have an agent "receptionist". */
async function sharedNameBeforeUpgrade(database: Database): Promise<Owners> {
  expect(await migrate(database, BEFORE)).toEqual({ applied: TAGS_BEFORE });
  const acme = await id(database, sql`insert into tenants (name) values ('Acme Dental') returning id`);
  const bright = await id(database, sql`insert into tenants (name) values ('Bright Plumbing') returning id`);
  return {
    acme: { tenant: acme, agent: await id(database, sql`insert into agents (tenant_id, name) values (${acme}, 'receptionist') returning id`) },
    bright: { tenant: bright, agent: await id(database, sql`insert into agents (tenant_id, name) values (${bright}, 'receptionist') returning id`) },
    unique: await id(database, sql`insert into agents (tenant_id, name) values (${acme}, 'acme-sales') returning id`),
  };
}

const appliedTags = async (database: Database) =>
  (await database.rows<{ tag: string }>(sql`select tag from switchboard_migrations order by tag`)).map((r) => r.tag);

/** What 0006 would change: the agents' unique keys and call_logs.room_sid. */
async function upgradeFootprint(database: Database) {
  const keys = await database.rows<{ conname: string }>(
    sql`select conname from pg_constraint where conrelid = 'agents'::regclass and contype = 'u' order by conname`,
  );
  const roomSid = await database.rows(
    sql`select 1 from information_schema.columns where table_name = 'call_logs' and column_name = 'room_sid'`,
  );
  return { agentKeys: keys.map((k) => k.conname), callLogsRoomSid: roomSid.length > 0 };
}

const agentRows = (database: Database) =>
  database.rows<{ id: string; tenant_id: string | null; name: string }>(sql`select id, tenant_id, name from agents order by id`);

let fresh: FreshDatabase | undefined;
let open: Database | undefined;
afterEach(async () => {
  await open?.close();
  await fresh?.drop();
  open = undefined;
  fresh = undefined;
});

async function openFresh(): Promise<Database> {
  fresh = await freshDatabase();
  open = await fresh.open();
  return open;
}

describe("upgrading to one agent namespace across tenants", () => {
  test("two tenants' agents of one name stop the upgrade, which lists the name and both owners and changes nothing", async () => {
    const database = await openFresh();
    const owners = await sharedNameBeforeUpgrade(database);
    const agentsBefore = await agentRows(database);
    const footprintBefore = await upgradeFootprint(database);
    expect(footprintBefore).toEqual({ agentKeys: ["agents_tenant_name_key"], callLogsRoomSid: false });

    const refused = await migrate(database).then(
      () => null,
      (error: unknown) => constraintViolation(error),
    );
    expect(refused?.kind).toBe("unique");
    const message = refused!.message;
    for (const told of ['"receptionist"', "Acme Dental", "Bright Plumbing", owners.acme.agent, owners.bright.agent]) {
      expect(message).toContain(told);
    }
    expect(message).not.toContain("acme-sales");
    expect(message).toContain("rename");

    // The upgrade runs in one transaction: nothing of 0006 (or anything after it) is left behind.
    expect(await appliedTags(database)).toEqual(TAGS_BEFORE);
    expect(await upgradeFootprint(database)).toEqual(footprintBefore);
    expect(await agentRows(database)).toEqual(agentsBefore);
  }, SLOW);

  test("once one is renamed, the upgrade goes through and a name can then be taken only once", async () => {
    const database = await openFresh();
    const owners = await sharedNameBeforeUpgrade(database);
    expect(await migrate(database).catch(() => "refused")).toBe("refused");

    await database.rows(sql`update agents set name = 'bright-receptionist' where id = ${owners.bright.agent}`);
    const { applied } = await migrate(database);
    expect(applied[0]).toBe(UPGRADE);
    expect(await appliedTags(database)).toContain(UPGRADE);
    expect((await upgradeFootprint(database)).agentKeys).toContain("agents_name_key");

    const again = await database
      .rows(sql`insert into agents (tenant_id, name) values (${owners.bright.tenant}, 'receptionist')`)
      .then(() => null, constraintViolation);
    expect(again).toMatchObject({ kind: "unique", constraint: "agents_name_key" });
  }, SLOW);

  test("a call log an earlier version recorded under an empty call id gets one of its own; an empty one is refused from then on", async () => {
    const database = await openFresh();
    expect(await migrate(database, BEFORE)).toEqual({ applied: TAGS_BEFORE });
    const insertCall = (callId: string) =>
      database.rows<{ id: string }>(sql`
        insert into call_logs (provider_call_id, agent_name, agent_source)
        values (${callId}, 'telephony-agent', 'system_default') returning id`);
    const [shared] = await insertCall("");
    const [other] = await insertCall("SCL_kept");

    await migrate(database);
    const callIds = await database.rows<{ id: string; provider_call_id: string }>(sql`select id, provider_call_id from call_logs`);
    expect(Object.fromEntries(callIds.map((r) => [r.id, r.provider_call_id]))).toEqual({
      [shared!.id]: `empty:${shared!.id}`,
      [other!.id]: "SCL_kept",
    });
    const refused = await insertCall("").then(() => null, constraintViolation);
    expect(refused).toMatchObject({ kind: "check", constraint: "call_logs_provider_call_id_not_empty" });
  }, SLOW);

  test("`switchboard migrate` over them exits 3 (not restarted by the unit) with one line saying what to rename, no stack trace", async () => {
    const database = await openFresh();
    const owners = await sharedNameBeforeUpgrade(database);
    // The embedded database is one process's: let the CLI have it.
    await database.close();
    open = undefined;

    const result = Bun.spawnSync([process.execPath, "src/main.ts", "migrate"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "silent", ...fresh!.env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const stderr = result.stderr.toString();
    expect({ code: result.exitCode, stdout: result.stdout.toString() }).toEqual({ code: 3, stdout: "" });
    expect(stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(stderr).toStartWith("switchboard: ");
    for (const told of ['"receptionist"', owners.acme.agent, owners.bright.agent, "rename"]) expect(stderr).toContain(told);
    expect(stderr).not.toMatch(/^\s+at /m);

    open = await fresh!.open();
    expect(await appliedTags(open)).toEqual(TAGS_BEFORE);
  }, SLOW);
});
