// Loading the directory (tenants, agents, campaigns, numbers) from a JSON file: the example
// loads and routes, loading again changes nothing, a bad file is reported by JSON path and
// changes nothing, through the library and through `switchboard seed FILE`.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asc, eq } from "drizzle-orm";
import { applyDirectory, DirectoryError, type DirectoryProblem } from "../src/admin/directory";
import { openDatabase } from "../src/db/client";
import { agents, campaigns, phoneNumbers, tenants } from "../src/db/schema";
import { openTestContext, type TestContext } from "./support/context";
import { CALLER, SIP_INBOUND_PATH, SYSTEM_DEFAULT_AGENT } from "./support/livekit-app";

/** A response's JSON body; each test checks the fields it cares about. */
const json = (res: Response): Promise<any> => res.json();

const ROOT = join(import.meta.dir, "..");
const EXAMPLE_PATH = join(ROOT, "examples/directory.json");
const example = JSON.parse(await Bun.file(EXAMPLE_PATH).text());

let ctx: TestContext;
beforeAll(async () => {
  ctx = await openTestContext();
}, 30_000);
afterAll(() => ctx.close());
beforeEach(() => ctx.reset());

/** Loads `directory` as `switchboard seed` would, with the configured system default agent unless told another. */
/** Seeds as the CLI does; the app's directory is reloaded at once rather than on the NOTIFY, which may come a moment later. */
async function apply(directory: unknown, systemDefaultAgent = ctx.config.systemDefaultAgent) {
  const summary = await applyDirectory(ctx.database.db, directory, "US", systemDefaultAgent);
  await ctx.directory.reload();
  return summary;
}

/** Every row of the directory tables, ordered by id. */
async function snapshot() {
  const db = ctx.database.db;
  return {
    tenants: await db.select().from(tenants).orderBy(asc(tenants.id)),
    agents: await db.select().from(agents).orderBy(asc(agents.id)),
    campaigns: await db.select().from(campaigns).orderBy(asc(campaigns.id)),
    phoneNumbers: await db.select().from(phoneNumbers).orderBy(asc(phoneNumbers.id)),
  };
}

async function counts() {
  const s = await snapshot();
  return { tenants: s.tenants.length, agents: s.agents.length, campaigns: s.campaigns.length, phoneNumbers: s.phoneNumbers.length };
}

/** The problems applyDirectory reports for `directory`; fails when it applies cleanly. */
async function problemsOf(directory: unknown, systemDefaultAgent?: string): Promise<DirectoryProblem[]> {
  try {
    await apply(directory, systemDefaultAgent);
  } catch (error) {
    expect(error).toBeInstanceOf(DirectoryError);
    return (error as DirectoryError).problems;
  }
  throw new Error("the directory was accepted");
}

async function agentFor(to: string) {
  const res = await ctx.post(SIP_INBOUND_PATH, {
    call_id: crypto.randomUUID(),
    to_number: to,
    from_number: CALLER,
  });
  expect(res.status).toBe(200);
  const body = await json(res);
  return { agent: body.agent_name as string, source: JSON.parse(body.metadata).agent_source as string };
}

const tenant = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  agents: [{ name: `${name}-default`, default: true }],
  ...extra,
});

describe("the example directory", () => {
  test("loads, and says what it loaded", async () => {
    const summary = await apply(example);
    expect(summary).toEqual({ tenants: 2, agents: 3, campaigns: 3, phoneNumbers: 5 });
    const s = await snapshot();
    expect(s.tenants.map((t) => t.name).sort()).toEqual(["Acme Dental", "Bright Plumbing"]);
    expect(s.phoneNumbers.map((n) => n.e164).sort()).toEqual([
      "+12125550142",
      "+14155550100",
      "+14155550101",
      "+14155550102",
      "+18005550199",
    ]);
    const tollFree = s.phoneNumbers.find((n) => n.e164 === "+18005550199")!;
    expect(tollFree.numberType).toBe("TOLL_FREE");
    const defaults = s.agents.filter((a) => a.isDefault).map((a) => a.name);
    expect(defaults).toEqual(["acme-receptionist"]);
    const winter = s.campaigns.find((c) => c.name === "Winter promo")!;
    expect(winter.status).toBe("paused");
  });

  test("routes calls afterwards", async () => {
    await apply(example);
    expect(await agentFor("+14155550100")).toEqual({ agent: "acme-sales", source: "campaign" });
    expect(await agentFor("+14155550101")).toEqual({ agent: "acme-receptionist", source: "tenant_default" });
    expect(await agentFor("+14155550102")).toEqual({ agent: "acme-receptionist", source: "tenant_default" });
    expect(await agentFor("(212) 555-0142")).toEqual({ agent: "bright-dispatcher", source: "campaign" });
    expect(await agentFor("+18005550199")).toEqual({ agent: SYSTEM_DEFAULT_AGENT, source: "system_default" });
  });

  test("loading it twice changes nothing", async () => {
    await apply(example);
    const first = await snapshot();
    await apply(example);
    expect(await snapshot()).toEqual(first);
  });
});

describe("changing the directory", () => {
  test("a second file naming another default agent moves the default", async () => {
    await apply(example);
    await apply({
      tenants: [{ name: "Acme Dental", agents: [{ name: "acme-sales", default: true }] }],
    });
    const acme = (await snapshot()).agents.filter((a) => a.name.startsWith("acme-"));
    expect(acme.filter((a) => a.isDefault).map((a) => a.name)).toEqual(["acme-sales"]);
    expect(await agentFor("+14155550101")).toEqual({ agent: "acme-sales", source: "tenant_default" });
  });

  test("a second file can move a number to another campaign and pause a campaign", async () => {
    await apply(example);
    await apply({
      tenants: [
        {
          name: "Acme Dental",
          agents: [{ name: "acme-receptionist", default: true }, { name: "acme-sales" }],
          campaigns: [{ name: "Spring promo", agent: "acme-sales", status: "paused" }],
          phone_numbers: [{ number: "+14155550101", campaign: "Spring promo" }],
        },
      ],
    });
    const moved = (await snapshot()).phoneNumbers.find((n) => n.e164 === "+14155550101")!;
    const [spring] = await ctx.database.db.select().from(campaigns).where(eq(campaigns.name, "Spring promo"));
    expect(moved.campaignId).toBe(spring!.id);
    expect(await agentFor("+14155550100")).toEqual({ agent: "acme-receptionist", source: "tenant_default" });
  });

  test("a campaign may use a system-wide agent", async () => {
    await apply({
      agents: [{ name: "shared-overflow" }],
      tenants: [
        {
          name: "Solo",
          campaigns: [{ name: "Overflow", agent: "shared-overflow" }],
          phone_numbers: [{ number: "+14155550900", campaign: "Overflow" }],
        },
      ],
    });
    expect(await agentFor("+14155550900")).toEqual({ agent: "shared-overflow", source: "campaign" });
  });

  test("system-wide agents are not duplicated by a second load", async () => {
    const file = {
      agents: [{ name: "shared-overflow" }, { name: "shared-night", active: false }],
      tenants: [tenant("Solo", { campaigns: [{ name: "Overflow", agent: "shared-overflow" }] })],
    };
    await apply(file);
    const first = await snapshot();
    await apply(file);
    expect(await snapshot()).toEqual(first);
    expect(first.agents.filter((a) => a.tenantId === null).map((a) => a.name).sort()).toEqual(["shared-night", "shared-overflow"]);
  });
});

describe("problems are reported by JSON path", () => {
  test("a campaign naming an unknown agent", async () => {
    const problems = await problemsOf({
      tenants: [tenant("a", { campaigns: [{ name: "c", agent: "nobody" }] })],
    });
    expect(problems).toEqual([{ path: "$.tenants[0].campaigns[0].agent", message: expect.stringContaining("nobody") }]);
  });

  test("a phone number that is not one", async () => {
    const problems = await problemsOf({ tenants: [tenant("a", { phone_numbers: [{ number: "not-a-number" }] })] });
    expect(problems).toEqual([{ path: "$.tenants[0].phone_numbers[0].number", message: expect.stringContaining("not-a-number") }]);
  });

  test("the same number listed twice in the file, in different shapes", async () => {
    const problems = await problemsOf({
      tenants: [
        tenant("a", { phone_numbers: [{ number: "+14155550100" }] }),
        tenant("b", { phone_numbers: [{ number: "(415) 555-0100" }] }),
      ],
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe("$.tenants[1].phone_numbers[0].number");
    expect(problems[0]!.message).toContain("$.tenants[0].phone_numbers[0]");
  });

  test("a number that already belongs to another tenant in the database", async () => {
    await apply({ tenants: [tenant("owner", { phone_numbers: [{ number: "+14155550100" }] })] });
    const problems = await problemsOf({ tenants: [tenant("thief", { phone_numbers: [{ number: "+1 415 555 0100" }] })] });
    expect(problems).toEqual([
      { path: "$.tenants[0].phone_numbers[0].number", message: expect.stringContaining("another tenant") },
    ]);
    const [number] = (await snapshot()).phoneNumbers;
    const [owner] = await ctx.database.db.select().from(tenants).where(eq(tenants.name, "owner"));
    expect(number!.tenantId).toBe(owner!.id);
  });

  test("one agent name under two tenants of the file (LiveKit dispatches by name)", async () => {
    const problems = await problemsOf({
      tenants: [
        { name: "a", agents: [{ name: "receptionist", default: true }] },
        { name: "b", agents: [{ name: "b-sales" }, { name: "receptionist" }] },
      ],
    });
    expect(problems).toEqual([{ path: "$.tenants[1].agents[1].name", message: expect.stringContaining("$.tenants[0].agents[0]") }]);
    expect(await counts()).toEqual({ tenants: 0, agents: 0, campaigns: 0, phoneNumbers: 0 });
  });

  test("a tenant's agent named like a system-wide agent of the file, or two system-wide agents of one name", async () => {
    const problems = await problemsOf({
      agents: [{ name: "shared-overflow" }, { name: "shared-overflow", active: false }],
      tenants: [{ name: "a", agents: [{ name: "shared-overflow" }] }],
    });
    expect(problems).toEqual([
      { path: "$.agents[1].name", message: expect.stringContaining("$.agents[0]") },
      { path: "$.tenants[0].agents[0].name", message: expect.stringContaining("$.agents[0]") },
    ]);
  });

  test("a tenant's agent named like the system default agent; a system-wide one may be", async () => {
    const systemDefault = ctx.config.systemDefaultAgent;
    const problems = await problemsOf({ tenants: [{ name: "a", agents: [{ name: systemDefault, default: true }] }] });
    expect(problems).toEqual([{ path: "$.tenants[0].agents[0].name", message: expect.stringContaining("system default") }]);
    expect(await counts()).toEqual({ tenants: 0, agents: 0, campaigns: 0, phoneNumbers: 0 });

    await apply({ agents: [{ name: systemDefault }], tenants: [tenant("a", { campaigns: [{ name: "c", agent: systemDefault }] })] });
    const [row] = await ctx.database.db.select().from(agents).where(eq(agents.name, systemDefault));
    expect(row!.tenantId).toBeNull();
  });

  test("the system default agent's name is the configured one (SYSTEM_DEFAULT_AGENT)", async () => {
    const directory = { tenants: [{ name: "a", agents: [{ name: "front-desk" }] }] };
    expect(await problemsOf(directory, "front-desk")).toEqual([
      { path: "$.tenants[0].agents[0].name", message: expect.stringContaining("system default") },
    ]);
    expect(await apply(directory)).toMatchObject({ tenants: 1, agents: 1 });
  });

  test("an agent name that already belongs to another tenant in the database", async () => {
    await apply({ tenants: [{ name: "owner", agents: [{ name: "receptionist", default: true }] }] });
    const before = await snapshot();
    const problems = await problemsOf({
      tenants: [
        tenant("bystander"),
        { name: "thief", agents: [{ name: "thief-sales" }, { name: "receptionist", default: true }] },
      ],
    });
    expect(problems).toEqual([{ path: "$.tenants[1].agents[1].name", message: expect.stringContaining("another tenant") }]);
    // The owner keeps its agent (still its default); nothing of the file was applied.
    expect(await snapshot()).toEqual(before);
  });

  test("an agent name that is system-wide in the database, or a system-wide name a tenant's agent has", async () => {
    await apply({ agents: [{ name: "shared-overflow" }], tenants: [tenant("owner")] });
    const before = await snapshot();
    expect(await problemsOf({ tenants: [{ name: "a", agents: [{ name: "shared-overflow" }] }] })).toEqual([
      { path: "$.tenants[0].agents[0].name", message: expect.stringContaining("system-wide") },
    ]);
    expect(await problemsOf({ agents: [{ name: "owner-default" }], tenants: [] })).toEqual([
      { path: "$.agents[0].name", message: expect.stringContaining("another tenant") },
    ]);
    expect(await snapshot()).toEqual(before);
  });

  test("two default agents in one tenant", async () => {
    const problems = await problemsOf({
      tenants: [{ name: "a", agents: [{ name: "x", default: true }, { name: "y", default: true }] }],
    });
    expect(problems).toEqual([{ path: "$.tenants[0].agents[1].default", message: expect.any(String) }]);
  });

  test("a number pointing at a campaign the tenant does not have", async () => {
    const problems = await problemsOf({
      tenants: [tenant("a", { phone_numbers: [{ number: "+14155550100", campaign: "Nope" }] })],
    });
    expect(problems).toEqual([{ path: "$.tenants[0].phone_numbers[0].campaign", message: expect.stringContaining("Nope") }]);
  });

  test("schema errors: a missing name, a wrong type, an unknown field", async () => {
    expect((await problemsOf({ tenants: [{ agents: [] }] })).map((p) => p.path)).toContain("$.tenants[0].name");
    expect((await problemsOf({ tenants: [{ name: "a", active: "yes" }] })).map((p) => p.path)).toContain("$.tenants[0].active");
    expect((await problemsOf({ tenants: [tenant("a", { campaigns: [{ name: "c", status: "running" }] })] })).map((p) => p.path)).toContain(
      "$.tenants[0].campaigns[0].status",
    );
    expect((await problemsOf({ tenants: [{ name: "a", colour: "red" }] })).map((p) => p.path)).toContain("$.tenants[0].colour");
    expect((await problemsOf({})).map((p) => p.path)).toContain("$.tenants");
  });

  test("every problem in the file is reported at once", async () => {
    const problems = await problemsOf({
      tenants: [
        tenant("a", { campaigns: [{ name: "c", agent: "nobody" }] }),
        tenant("b", { phone_numbers: [{ number: "garbage" }] }),
      ],
    });
    expect(problems.map((p) => p.path)).toEqual(["$.tenants[0].campaigns[0].agent", "$.tenants[1].phone_numbers[0].number"]);
  });
});

describe("a failing file changes nothing", () => {
  test("valid tenants before the bad one are not applied", async () => {
    await apply({ tenants: [tenant("owner", { phone_numbers: [{ number: "+14155550100" }] })] });
    const before = await snapshot();
    // Valid in itself; only the database knows the number is taken, and only at the last tenant.
    await problemsOf({
      tenants: [
        tenant("new-1", {
          agents: [{ name: "n1", default: true }, { name: "n1-sales" }],
          campaigns: [{ name: "c", agent: "n1-sales" }],
          phone_numbers: [{ number: "+14155550200", campaign: "c" }],
        }),
        { name: "owner", agents: [{ name: "owner-new-default", default: true }] },
        tenant("new-2", { phone_numbers: [{ number: "+14155550100" }] }),
      ],
    });
    expect(await snapshot()).toEqual(before);
    expect(await counts()).toEqual({ tenants: 1, agents: 1, campaigns: 0, phoneNumbers: 1 });
  });

  test("a file with a checked problem touches nothing", async () => {
    await apply(example);
    const before = await snapshot();
    await problemsOf({
      tenants: [{ ...example.tenants[0], active: false }, tenant("b", { phone_numbers: [{ number: "nope" }] })],
    });
    expect(await snapshot()).toEqual(before);
  });
});

describe("switchboard seed FILE", () => {
  // Each run starts a process (and, without DATABASE_URL, an embedded PostgreSQL): allow for a slow machine.
  const CLI_TIMEOUT = 60_000;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "switchboard-seed-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the CLI on the suite's database: DATABASE_URL when set, else an embedded one in a temp DATA_DIR. */
  function seed(file: string, extraEnv: Record<string, string> = {}) {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? dir,
      DATA_DIR: join(dir, "data"),
      LOG_LEVEL: "silent",
      ...extraEnv,
    };
    if (process.env.DATABASE_URL) env.DATABASE_URL = process.env.DATABASE_URL;
    const result = Bun.spawnSync([process.execPath, "src/main.ts", "seed", file], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
  }

  async function tenantNamesInCliDatabase() {
    const database = await openDatabase({
      databaseUrl: process.env.DATABASE_URL,
      dataDir: join(dir, "data"),
      poolMax: 1,
      statementTimeoutMs: 10_000,
    });
    try {
      return (await database.db.select().from(tenants)).map((t) => t.name).sort();
    } finally {
      await database.close();
    }
  }

  test("loads the example and says what it loaded", async () => {
    const first = seed(EXAMPLE_PATH);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("2 tenants, 3 agents, 3 campaigns, 5 phone numbers");
    // Again: same answer, nothing new.
    const second = seed(EXAMPLE_PATH);
    expect(second.code).toBe(0);
    expect(await tenantNamesInCliDatabase()).toEqual(["Acme Dental", "Bright Plumbing"]);
  }, CLI_TIMEOUT);

  test("a bad file exits 1 with the JSON path on stderr, and changes nothing", async () => {
    const file = join(dir, "bad.json");
    writeFileSync(
      file,
      JSON.stringify({
        tenants: [{ name: "Bad Tenant", agents: [{ name: "x" }], campaigns: [{ name: "c", agent: "nobody" }] }],
      }),
    );
    const { code, stdout, stderr } = seed(file);
    expect(code).toBe(1);
    expect(stderr).toContain("$.tenants[0].campaigns[0].agent");
    expect(stdout).not.toContain("seeded");
    expect(await tenantNamesInCliDatabase()).not.toContain("Bad Tenant");
  }, CLI_TIMEOUT);

  test("a tenant's agent named like SYSTEM_DEFAULT_AGENT exits 1 with the JSON path, and changes nothing", async () => {
    const file = join(dir, "system-default.json");
    writeFileSync(file, JSON.stringify({ tenants: [{ name: "Front Desk Tenant", agents: [{ name: "front-desk" }] }] }));
    const { code, stdout, stderr } = seed(file, { SYSTEM_DEFAULT_AGENT: "front-desk" });
    expect(code).toBe(1);
    expect(stderr).toContain("$.tenants[0].agents[0].name");
    expect(stdout).not.toContain("seeded");
    expect(await tenantNamesInCliDatabase()).not.toContain("Front Desk Tenant");
  }, CLI_TIMEOUT);

  test("a file that is not JSON, or not there, fails naming the file, before any database is made", () => {
    const file = join(dir, "broken.json");
    writeFileSync(file, "{ tenants: ");
    // A data directory of its own, not made yet: a mistyped file name must not create one.
    const dataDir = join(dir, "never-made");
    const broken = seed(file, { DATA_DIR: dataDir });
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain(file);
    const missing = seed(join(dir, "missing.json"), { DATA_DIR: dataDir });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("missing.json");
    expect(existsSync(dataDir)).toBe(false);
  }, CLI_TIMEOUT);
});
