// Provisioning LiveKit's SIP inbound trunk and dispatch rule from the directory, against the
// stand-in LiveKit API: through the functions and through the CLI.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListUpdate, RoomAgentDispatch, RoomConfiguration, SIPDispatchRule, SIPDispatchRuleUpdate } from "@livekit/protocol";
import type { SipClient } from "livekit-server-sdk";
import { createLiveKitClients } from "../src/livekit/clients";
import {
  applyProvisioning,
  describePlan,
  liveKitStatus,
  planProvisioning,
  type ProvisionSettings,
} from "../src/livekit/provision";
import { type Json, TEST_KEYS, useLiveKitApp } from "./support/livekit-app";
import { seedDirectory } from "./support/server-process";

const ROOT = join(import.meta.dir, "..");
const DIRECTORY_FILE = join(ROOT, "examples/directory.json");

/** The active numbers of examples/directory.json, in E.164, sorted. */
const EXAMPLE_NUMBERS = ["+12125550142", "+14155550100", "+14155550101", "+14155550102", "+18005550199"];

const exampleDirectory = () => JSON.parse(readFileSync(DIRECTORY_FILE, "utf8")) as Json;

const { ctx, fake } = useLiveKitApp();
let sip: SipClient;
let settings: ProvisionSettings;

beforeAll(() => {
  sip = createLiveKitClients(ctx.config.livekit)!.sip;
  settings = {
    trunkName: ctx.config.livekit.trunkName,
    dispatchRuleName: ctx.config.livekit.dispatchRuleName,
    roomPrefix: ctx.config.livekit.roomPrefix,
  };
});

const WRITES = [
  "CreateSIPInboundTrunk",
  "UpdateSIPInboundTrunk",
  "DeleteSIPTrunk",
  "CreateSIPDispatchRule",
  "UpdateSIPDispatchRule",
  "DeleteSIPDispatchRule",
];
const writes = () => fake.calls().filter((c) => WRITES.includes(c.method));

async function provision() {
  const plan = await planProvisioning(ctx.database, sip, settings);
  const result = await applyProvisioning(sip, plan, settings);
  return { plan, result };
}

describe("provisioning from the directory", () => {
  test("the defaults are the documented ones", () => {
    expect(settings).toEqual({ trunkName: "switchboard-inbound", dispatchRuleName: "switchboard-inbound", roomPrefix: "call-" });
  });

  test("creates one inbound trunk with exactly the active numbers and one individual dispatch rule without agents", async () => {
    await ctx.seed(exampleDirectory());
    const { plan, result } = await provision();
    expect(plan.numbers).toEqual(EXAMPLE_NUMBERS);
    expect(plan.trunk.action).toBe("create");
    expect(plan.rule.action).toBe("create");
    expect(plan.warnings).toEqual([]);

    const trunks = fake.trunks();
    expect(trunks).toHaveLength(1);
    expect(trunks[0]!.name).toBe("switchboard-inbound");
    expect([...trunks[0]!.numbers].sort()).toEqual(EXAMPLE_NUMBERS);
    expect(result.trunkId).toBe(trunks[0]!.sipTrunkId);

    const rules = fake.rules();
    expect(rules).toHaveLength(1);
    const rule = rules[0]!;
    expect(result.ruleId).toBe(rule.sipDispatchRuleId);
    expect(rule.name).toBe("switchboard-inbound");
    expect(rule.rule?.rule.case).toBe("dispatchRuleIndividual");
    expect(rule.rule?.rule.case === "dispatchRuleIndividual" && rule.rule.rule.value.roomPrefix).toBe("call-");
    expect(rule.trunkIds).toEqual([trunks[0]!.sipTrunkId]);
    expect(rule.roomConfig?.agents ?? []).toHaveLength(0);

    expect(fake.calls("CreateSIPInboundTrunk")).toHaveLength(1);
    expect(fake.calls("CreateSIPDispatchRule")).toHaveLength(1);
    expect(writes().map((c) => c.method)).toEqual(["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]);
    expect(fake.calls().every((c) => c.status === 200)).toBe(true);
    expect(fake.calls("CreateSIPInboundTrunk")[0]!.grants?.sip).toEqual({ admin: true });
  });

  test("an inactive number or a number of an inactive tenant is not provisioned", async () => {
    const directory = exampleDirectory();
    directory.tenants[0].phone_numbers[1].active = false; // +14155550101
    directory.tenants[1].active = false; // Bright Plumbing: +12125550142, +18005550199
    await ctx.seed(directory);
    const { plan } = await provision();
    expect(plan.numbers).toEqual(["+14155550100", "+14155550102"]);
    expect([...fake.trunks()[0]!.numbers].sort()).toEqual(["+14155550100", "+14155550102"]);
  });

  test("a second run creates and updates nothing, and the plan says unchanged", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    const before = fake.calls().length;
    const second = await provision();
    expect(second.plan.trunk).toMatchObject({ action: "unchanged", id: first.result.trunkId });
    expect(second.plan.rule).toMatchObject({ action: "unchanged", id: first.result.ruleId });
    expect(second.result).toEqual(first.result);
    expect(describePlan(second.plan, settings).filter((l) => l.startsWith("unchanged"))).toHaveLength(2);

    expect(fake.calls("CreateSIPInboundTrunk")).toHaveLength(1);
    expect(fake.calls("CreateSIPDispatchRule")).toHaveLength(1);
    expect(fake.calls("UpdateSIPInboundTrunk")).toHaveLength(0);
    expect(fake.calls("UpdateSIPDispatchRule")).toHaveLength(0);
    expect(
      fake
        .calls()
        .slice(before)
        .map((c) => c.method)
        .sort(),
    ).toEqual(["ListSIPDispatchRule", "ListSIPInboundTrunk"]);
    expect(fake.trunks()).toHaveLength(1);
    expect(fake.rules()).toHaveLength(1);
  });

  test("a number added to the directory updates the trunk's numbers, no new trunk", async () => {
    const directory = exampleDirectory();
    await ctx.seed(directory);
    const first = await provision();

    directory.tenants[1].phone_numbers.push({ number: "+1 (646) 555-0177" });
    await ctx.seed(directory);
    const { plan, result } = await provision();
    expect(plan.trunk).toMatchObject({ action: "update", id: first.result.trunkId });
    expect(plan.rule.action).toBe("unchanged");
    expect(result).toEqual(first.result);

    const expected = [...EXAMPLE_NUMBERS, "+16465550177"].sort();
    expect(fake.calls("CreateSIPInboundTrunk")).toHaveLength(1);
    const updates = fake.calls("UpdateSIPInboundTrunk");
    expect(updates).toHaveLength(1);
    expect(updates[0]!.request.sipTrunkId).toBe(first.result.trunkId);
    expect(fake.calls("UpdateSIPDispatchRule")).toHaveLength(0);
    const trunks = fake.trunks();
    expect(trunks).toHaveLength(1);
    expect([...trunks[0]!.numbers].sort()).toEqual(expected);

    // And the run after that is quiet again.
    const third = await provision();
    expect(third.plan.trunk.action).toBe("unchanged");
    expect(fake.calls("UpdateSIPInboundTrunk")).toHaveLength(1);
  });

  test("a dispatch rule changed in LiveKit is put back", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    await sip.updateSipDispatchRuleFields(first.result.ruleId, {
      rule: SIPDispatchRule.fromJson({ dispatchRuleIndividual: { roomPrefix: "other-" } }),
    });
    const { plan } = await provision();
    expect(plan.rule).toMatchObject({ action: "update", id: first.result.ruleId });
    const rule = fake.rules()[0]!;
    expect(rule.rule?.rule.case === "dispatchRuleIndividual" && rule.rule.rule.value.roomPrefix).toBe("call-");
    expect(rule.trunkIds).toEqual([first.result.trunkId]);
    expect(fake.rules()).toHaveLength(1);
    expect(fake.trunks()).toHaveLength(1);
  });

  test("a dispatch rule that also dispatches agents itself is warned about", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    const current = fake.rules()[0]!;
    current.roomConfig = new RoomConfiguration({ agents: [new RoomAgentDispatch({ agentName: "rule-agent" })] });
    await sip.updateSipDispatchRule(first.result.ruleId, current);
    const plan = await planProvisioning(ctx.database, sip, settings);
    expect(plan.warnings).toHaveLength(1);
    expect(plan.warnings[0]).toContain("rule-agent");
    expect(describePlan(plan, settings).some((l) => l.startsWith("warning:") && l.includes("LIVEKIT_DISPATCH=false"))).toBe(
      true,
    );
  });

  test("planning alone (--dry-run) changes nothing at LiveKit: only List calls", async () => {
    await ctx.seed(exampleDirectory());
    const plan = await planProvisioning(ctx.database, sip, settings);
    expect(plan.trunk.action).toBe("create");
    expect(plan.rule.action).toBe("create");
    expect(describePlan(plan, settings)[0]).toBe(`numbers (5): ${EXAMPLE_NUMBERS.join(", ")}`);
    expect(
      fake
        .calls()
        .map((c) => c.method)
        .sort(),
    ).toEqual(["ListSIPDispatchRule", "ListSIPInboundTrunk"]);
    expect(fake.trunks()).toHaveLength(0);
    expect(fake.rules()).toHaveLength(0);
  });

  test("an empty directory never creates a trunk that would accept any number", async () => {
    const plan = await planProvisioning(ctx.database, sip, settings);
    expect(plan.numbers).toEqual([]);
    await expect(applyProvisioning(sip, plan, settings)).rejects.toThrow(/no active phone numbers/);
    expect(writes()).toHaveLength(0);
  });

  test("status lists the numbers missing from LiveKit before provisioning and none after", async () => {
    await ctx.seed(exampleDirectory());
    const before = await liveKitStatus(ctx.database, sip);
    expect(before).toContain(`database numbers missing from LiveKit (5): ${EXAMPLE_NUMBERS.join(", ")}`);
    expect(before).toContain("inbound trunks (0):");
    expect(writes()).toHaveLength(0);

    const { result } = await provision();
    const after = await liveKitStatus(ctx.database, sip);
    expect(after).toContain("database numbers missing from LiveKit (0): none");
    expect(after).toContain("inbound trunks (1):");
    expect(after.some((l) => l.includes(result.trunkId) && l.includes("switchboard-inbound"))).toBe(true);
    expect(after.some((l) => l.includes(result.ruleId) && l.includes("dispatchRuleIndividual"))).toBe(true);
  });
});

describe("provisioning leaves nothing of Switchboard's on callers", () => {
  test("the dispatch rule it creates has no metadata, no attributes and hide_phone_number off; the trunk keeps its marker", async () => {
    await ctx.seed(exampleDirectory());
    await provision();
    const rule = fake.rules()[0]!;
    // LiveKit gives a rule's metadata and attributes to every caller (livekit/protocol sip/sip.go
    // EvaluateDispatchRule): nothing of Switchboard's goes there.
    expect(rule).toMatchObject({ metadata: "", attributes: {}, hidePhoneNumber: false });
    expect(fake.calls("CreateSIPDispatchRule")[0]!.request).toMatchObject({ metadata: "", attributes: {} });
    // Trunk metadata is copied nowhere (EvaluateDispatchRule reads the trunk's id, media, headers,
    // timeouts, krisp only), so the note for people reading the trunk list stays.
    expect(fake.trunks()[0]!.metadata).toBe("managed by switchboard");
  });

  test("a rule carrying the old marker in its metadata has it cleared (an update, planned and shown), then nothing", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    // What an older Switchboard left behind.
    await sip.updateSipDispatchRuleFields(first.result.ruleId, { metadata: "managed by switchboard" });
    const before = fake.calls("UpdateSIPDispatchRule").length;

    const plan = await planProvisioning(ctx.database, sip, settings);
    expect(plan.rule).toMatchObject({ action: "update", id: first.result.ruleId });
    expect(plan.rule.action === "update" && plan.rule.replace).toBeFalsy();
    expect(describePlan(plan, settings)).toContain(
      `update dispatch rule "switchboard-inbound" (room per caller, prefix "call-") ${first.result.ruleId}: ` +
        `metadata: "managed by switchboard" -> "" (LiveKit copies a rule's metadata into every caller's participant metadata)`,
    );
    await applyProvisioning(sip, plan, settings);
    const updates = fake.calls("UpdateSIPDispatchRule").slice(before);
    expect(updates.map((c) => [c.request.action.case, c.request.action.value.metadata])).toEqual([["update", ""]]);
    expect(fake.rules()[0]!.metadata).toBe("");
    expect((await provision()).plan.rule.action).toBe("unchanged");
  });

  test("metadata someone else put on the rule is theirs: left alone", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    await sip.updateSipDispatchRuleFields(first.result.ruleId, { metadata: '{"team":"ops"}' });
    const { plan } = await provision();
    expect(plan.rule.action).toBe("unchanged");
    expect(fake.rules()[0]!.metadata).toBe('{"team":"ops"}');
  });

  test("hide_phone_number=true on the rule is reset by a replace that keeps the rule's other fields", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    const tampered = fake.rules()[0]!;
    tampered.hidePhoneNumber = true;
    tampered.metadata = "managed by switchboard";
    tampered.attributes = { "x-team": "ops" };
    tampered.inboundNumbers = ["+12125550142"];
    tampered.krispEnabled = true;
    tampered.roomPreset = "preset-a";
    await sip.updateSipDispatchRule(first.result.ruleId, tampered);
    const before = fake.calls("UpdateSIPDispatchRule").length;

    const plan = await planProvisioning(ctx.database, sip, settings);
    expect(plan.rule).toMatchObject({ action: "update", id: first.result.ruleId, replace: true });
    const lines = describePlan(plan, settings);
    const ruleLine = lines.find((l) => l.startsWith("update dispatch rule"))!;
    expect(ruleLine).toContain("hide_phone_number: true -> false");
    expect(ruleLine).toContain("no lead, routed to the system default agent");
    expect(ruleLine).toContain("the rule is replaced whole, its other fields as listed");
    expect(ruleLine).toContain('metadata: "managed by switchboard" -> ""');
    expect(fake.calls("UpdateSIPDispatchRule")).toHaveLength(before); // planning writes nothing

    await applyProvisioning(sip, plan, settings);
    const writes = fake.calls("UpdateSIPDispatchRule").slice(before);
    expect(writes.map((c) => c.request.action.case)).toEqual(["replace"]); // one write
    const rule = fake.rules()[0]!;
    expect(rule).toMatchObject({
      sipDispatchRuleId: first.result.ruleId,
      name: "switchboard-inbound",
      hidePhoneNumber: false,
      metadata: "",
      trunkIds: [first.result.trunkId],
      // Not Switchboard's: kept as they were.
      attributes: { "x-team": "ops" },
      inboundNumbers: ["+12125550142"],
      krispEnabled: true,
      roomPreset: "preset-a",
    });
    expect(rule.rule?.rule.case === "dispatchRuleIndividual" && rule.rule.rule.value.roomPrefix).toBe("call-");
    expect((await provision()).plan.rule.action).toBe("unchanged");
  });

  test("status shows a rule that hides callers' numbers", async () => {
    await ctx.seed(exampleDirectory());
    const first = await provision();
    const rule = fake.rules()[0]!;
    rule.hidePhoneNumber = true;
    await sip.updateSipDispatchRule(first.result.ruleId, rule);
    const status = await liveKitStatus(ctx.database, sip);
    expect(status.some((l) => l.includes(first.result.ruleId) && l.includes("hide_phone_number: true"))).toBe(true);
  });
});

describe("the stand-in's UpdateSIPDispatchRule, as livekit-server applies it", () => {
  // livekit/livekit pkg/service/sip.go UpdateSIPDispatchRule; livekit/protocol livekit/sip.go
  // (*SIPDispatchRuleUpdate).Apply, (*UpdateSIPDispatchRuleRequest_Replace).Apply, types.go.
  async function aRule() {
    const rule = await sip.createSipDispatchRule(
      { type: "individual", roomPrefix: "call-" },
      { name: "r", trunkIds: ["ST_a"], hidePhoneNumber: true, attributes: { a: "1", b: "2" }, metadata: "m" },
    );
    return rule.sipDispatchRuleId;
  }

  test("update: no field for hide_phone_number; attributes merged key by key, an empty value removes one", async () => {
    const id = await aRule();
    const updated = await sip.updateSipDispatchRuleFields(id, { attributes: { b: "", c: "3" }, name: "r2" });
    expect(updated).toMatchObject({ hidePhoneNumber: true, attributes: { a: "1", c: "3" }, name: "r2", metadata: "m", trunkIds: ["ST_a"] });
    expect(SIPDispatchRuleUpdate.fields.list().map((f) => f.name)).not.toContain("hide_phone_number");
  });

  test("update: trunk_ids by ListUpdate (remove then add, no duplicates); a bad ListUpdate is a 400", async () => {
    const id = await aRule();
    const updated = await sip.updateSipDispatchRuleFields(id, { trunkIds: new ListUpdate({ add: ["ST_a", "ST_b"], remove: ["ST_a"] }) });
    expect(updated.trunkIds).toEqual(["ST_a", "ST_b"]);
    await expect(
      sip.updateSipDispatchRuleFields(id, { trunkIds: new ListUpdate({ set: ["ST_c"], add: ["ST_d"] }) }),
    ).rejects.toMatchObject({ status: 400, message: "cannot set and change the list at the same time" });
  });

  test("replace: the rule becomes exactly what was sent, under the same id; fields not sent are gone", async () => {
    const id = await aRule();
    const replacement = fake.rules()[0]!;
    replacement.hidePhoneNumber = false;
    replacement.attributes = {};
    replacement.metadata = "";
    replacement.sipDispatchRuleId = "";
    const replaced = await sip.updateSipDispatchRule(id, replacement);
    expect(replaced).toMatchObject({ sipDispatchRuleId: id, hidePhoneNumber: false, attributes: {}, metadata: "", name: "r" });
    replacement.sipDispatchRuleId = "SDR_other1234567";
    await expect(sip.updateSipDispatchRule(id, replacement)).rejects.toMatchObject({
      status: 400,
      message: "rule id in the info must be empty or match the id in the update",
    });
    await expect(sip.updateSipDispatchRuleFields("SDR_missing12345", { name: "x" })).rejects.toMatchObject({
      status: 404,
      message: "requested sip dispatch rule does not exist",
    });
  });
});

describe("the CLI", () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "switchboard-provision-"));
  });
  afterAll(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  function cliEnv(): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? tmpdir(),
      DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
      LIVEKIT_URL: fake.url,
      LIVEKIT_API_KEY: TEST_KEYS.apiKey,
      LIVEKIT_API_SECRET: TEST_KEYS.apiSecret,
    };
    if (process.env.DATABASE_URL) env.DATABASE_URL = process.env.DATABASE_URL;
    return env;
  }

  async function cli(...args: string[]) {
    const proc = Bun.spawn([join(ROOT, "node_modules/.bin/bun"), "src/main.ts", ...args], {
      cwd: ROOT,
      env: cliEnv(),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { stdout, stderr, exitCode };
  }

  test(
    "seed, provision --dry-run, provision twice, status",
    async () => {
      // With DATABASE_URL the CLI shares the suite's database: start it empty (beforeEach did).
      const seeded = await cli("seed", "examples/directory.json");
      expect({ code: seeded.exitCode, stderr: seeded.stderr }).toEqual({ code: 0, stderr: "" });
      expect(seeded.stdout).toContain("5 phone numbers");

      const dry = await cli("livekit", "provision", "--dry-run");
      expect({ code: dry.exitCode, stderr: dry.stderr }).toEqual({ code: 0, stderr: "" });
      expect(dry.stdout).toContain(`numbers (5): ${EXAMPLE_NUMBERS.join(", ")}`);
      expect(dry.stdout).toContain('create inbound trunk "switchboard-inbound"');
      expect(dry.stdout).toContain("dry run: nothing changed");
      expect(writes()).toHaveLength(0);
      expect(fake.trunks()).toHaveLength(0);

      const first = await cli("livekit", "provision");
      expect({ code: first.exitCode, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
      const trunks = fake.trunks();
      const rules = fake.rules();
      expect(trunks).toHaveLength(1);
      expect(rules).toHaveLength(1);
      expect(first.stdout).toContain(`provisioned: trunk ${trunks[0]!.sipTrunkId}, dispatch rule ${rules[0]!.sipDispatchRuleId}`);
      expect([...trunks[0]!.numbers].sort()).toEqual(EXAMPLE_NUMBERS);
      expect(rules[0]!.trunkIds).toEqual([trunks[0]!.sipTrunkId]);
      expect(writes().map((c) => c.method)).toEqual(["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]);

      const second = await cli("livekit", "provision");
      expect({ code: second.exitCode, stderr: second.stderr }).toEqual({ code: 0, stderr: "" });
      expect(second.stdout).toContain(`unchanged inbound trunk "switchboard-inbound" ${trunks[0]!.sipTrunkId}`);
      expect(writes().map((c) => c.method)).toEqual(["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]);
      expect(fake.calls("CreateSIPInboundTrunk")).toHaveLength(1);
      expect(fake.trunks()).toHaveLength(1);

      const status = await cli("livekit", "status");
      expect(status.exitCode).toBe(0);
      expect(status.stdout).toContain("database numbers missing from LiveKit (0): none");
      expect(writes()).toHaveLength(2);
    },
    120_000,
  );

  test(
    "provision --dry-run shows the planned reset of hide_phone_number and of the old marker; provision carries it out",
    async () => {
      // The seeding is setup here (the test above runs `switchboard seed`): done in this process.
      await seedDirectory(cliEnv(), "examples/directory.json");
      expect((await cli("livekit", "provision")).exitCode).toBe(0);
      const rule = fake.rules()[0]!;
      rule.hidePhoneNumber = true;
      rule.metadata = "managed by switchboard";
      await sip.updateSipDispatchRule(rule.sipDispatchRuleId, rule);
      const before = writes().length;

      const dry = await cli("livekit", "provision", "--dry-run");
      expect({ code: dry.exitCode, stderr: dry.stderr }).toEqual({ code: 0, stderr: "" });
      expect(dry.stdout).toContain(`update dispatch rule "switchboard-inbound" (room per caller, prefix "call-") ${rule.sipDispatchRuleId}: `);
      expect(dry.stdout).toContain('metadata: "managed by switchboard" -> ""');
      expect(dry.stdout).toContain("hide_phone_number: true -> false");
      expect(dry.stdout).toContain("dry run: nothing changed");
      expect(writes()).toHaveLength(before);
      expect(fake.rules()[0]!.hidePhoneNumber).toBe(true);

      const applied = await cli("livekit", "provision");
      expect({ code: applied.exitCode, stderr: applied.stderr }).toEqual({ code: 0, stderr: "" });
      expect(writes().slice(before).map((c) => [c.method, c.request.action?.case])).toEqual([["UpdateSIPDispatchRule", "replace"]]);
      expect(fake.rules()[0]).toMatchObject({ hidePhoneNumber: false, metadata: "" });
    },
    120_000,
  );
});
