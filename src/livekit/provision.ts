// `switchboard livekit provision|status`: one LiveKit SIP inbound trunk carrying every active
// number in the database, and one dispatch rule (a room per caller, no agents: Switchboard
// dispatches). Idempotent: run it after every directory change; a second run changes nothing.
//
// The trunk and the rule are found by name. Nothing of Switchboard's goes into the rule's metadata
// or attributes: LiveKit hands both to every caller it places (livekit/protocol sip/sip.go
// EvaluateDispatchRule: ParticipantMetadata = rule.GetMetadata(), participant attributes start from
// maps.Clone(rule.Attributes)). The trunk's metadata is copied nowhere (EvaluateDispatchRule reads
// only the trunk's id, media, headers, timeouts and krisp), so the trunk keeps its marker.
import {
  ListUpdate,
  SIPDispatchRule,
  SIPDispatchRuleIndividual,
  type SIPDispatchRuleInfo,
  type SIPInboundTrunkInfo,
} from "@livekit/protocol";
import { sql } from "drizzle-orm";
import type { SipClient } from "livekit-server-sdk";
import type { Database } from "../db/client";

export interface ProvisionSettings {
  trunkName: string;
  dispatchRuleName: string;
  roomPrefix: string;
}

type Step<T> =
  | { action: "create" }
  /** `current` is the object as listed; `replace` says the change needs the whole object rewritten. */
  | { action: "update"; id: string; changes: string[]; current: T; replace?: boolean }
  | { action: "unchanged"; id: string; current: T };

export interface ProvisionPlan {
  numbers: string[];
  trunk: Step<SIPInboundTrunkInfo>;
  rule: Step<SIPDispatchRuleInfo>;
  warnings: string[];
}

/** On the trunk Switchboard creates: a note for people reading LiveKit's trunk list. */
const TRUNK_METADATA = "managed by switchboard";
/** What older versions put in the dispatch rule's metadata, which LiveKit copied to every caller. */
const LEGACY_RULE_MARKER = TRUNK_METADATA;

/** Active numbers of active tenants: the ones LiveKit should accept calls for. */
export async function activeNumbers(database: Database): Promise<string[]> {
  const rows = await database.rows<{ e164: string }>(sql`
    select pn.e164 from phone_numbers pn join tenants t on t.id = pn.tenant_id
    where pn.active and t.active order by pn.e164`);
  return rows.map((r) => r.e164);
}

/** What provisioning would change in LiveKit, found by the trunk's and the rule's names; changes nothing. */
export async function planProvisioning(database: Database, sip: SipClient, settings: ProvisionSettings): Promise<ProvisionPlan> {
  const numbers = await activeNumbers(database);
  const [trunks, rules] = await Promise.all([sip.listSipInboundTrunk(), sip.listSipDispatchRule()]);
  const trunk = trunks.find((t) => t.name === settings.trunkName);
  const rule = rules.find((r) => r.name === settings.dispatchRuleName);
  return {
    numbers,
    trunk: trunk ? trunkStep(trunk, numbers) : { action: "create" },
    rule: rule ? ruleStep(rule, trunk, settings) : { action: "create" },
    warnings: [...(rule ? ruleAgentWarnings(rule) : []), ...sharedNumberWarnings(trunks, numbers, settings)],
  };
}

/** An update when `changes` holds any, else unchanged. */
function stepFor<T>(id: string, current: T, changes: string[], replace = false): Step<T> {
  if (!changes.length) return { action: "unchanged", id, current };
  return { action: "update", id, changes, current, ...(replace ? { replace } : {}) };
}

function trunkStep(trunk: SIPInboundTrunkInfo, numbers: string[]): Step<SIPInboundTrunkInfo> {
  const changes = sameSet(trunk.numbers, numbers) ? [] : [`numbers: ${trunk.numbers.join(",") || "(none)"} -> ${numbers.join(",")}`];
  return stepFor(trunk.sipTrunkId, trunk, changes);
}

function ruleStep(rule: SIPDispatchRuleInfo, trunk: SIPInboundTrunkInfo | undefined, settings: ProvisionSettings): Step<SIPDispatchRuleInfo> {
  const changes: string[] = [];
  const roomPerCaller = rule.rule?.rule.case === "dispatchRuleIndividual" ? rule.rule.rule.value : undefined;
  if (roomPerCaller?.roomPrefix !== settings.roomPrefix) changes.push(`rule: individual room per caller, prefix "${settings.roomPrefix}"`);
  if (trunk && !(rule.trunkIds.length === 1 && rule.trunkIds[0] === trunk.sipTrunkId)) {
    changes.push(`trunks: ${rule.trunkIds.join(",") || "(all)"} -> ${trunk.sipTrunkId}`);
  }
  if (rule.metadata === LEGACY_RULE_MARKER) {
    changes.push(`metadata: "${LEGACY_RULE_MARKER}" -> "" (LiveKit copies a rule's metadata into every caller's participant metadata)`);
  }
  // SIPDispatchRuleUpdate (livekit/protocol livekit_sip.proto) has no hide_phone_number: only
  // a replace can reset it, and a replace rewrites the whole rule (protocol livekit/sip.go
  // (*UpdateSIPDispatchRuleRequest_Replace).Apply), so it is sent with every other field as listed.
  if (rule.hidePhoneNumber) {
    changes.push(
      "hide_phone_number: true -> false (a hidden number reaches Switchboard without sip.phoneNumber or " +
        "sip.trunkPhoneNumber: no lead, routed to the system default agent); the rule is replaced whole, " +
        "its other fields as listed",
    );
  }
  return stepFor(rule.sipDispatchRuleId, rule, changes, rule.hidePhoneNumber);
}

function ruleAgentWarnings(rule: SIPDispatchRuleInfo): string[] {
  if (!rule.roomConfig?.agents.length) return [];
  return [
    `dispatch rule ${rule.sipDispatchRuleId} also dispatches agents itself (${rule.roomConfig.agents.map((a) => a.agentName).join(", ")}); ` +
      "remove them in LiveKit or set LIVEKIT_DISPATCH=false, or callers get two agents",
  ];
}

/** Other trunks that claim some of the numbers too. */
function sharedNumberWarnings(trunks: SIPInboundTrunkInfo[], numbers: string[], settings: ProvisionSettings): string[] {
  return trunks
    .filter((t) => t.name !== settings.trunkName && t.numbers.some((n) => numbers.includes(n)))
    .map((other) => `trunk ${other.sipTrunkId} (${other.name}) also claims ${other.numbers.filter((n) => numbers.includes(n)).join(", ")}`);
}

/** Makes LiveKit's trunk and rule what the plan says; returns their ids. */
export async function applyProvisioning(
  sip: SipClient,
  plan: ProvisionPlan,
  settings: ProvisionSettings,
): Promise<{ trunkId: string; ruleId: string }> {
  if (plan.numbers.length === 0) {
    // A trunk without numbers accepts calls to any number: never create one by accident.
    throw new Error("no active phone numbers in the database; seed the directory first");
  }
  const trunkId = await applyTrunkStep(sip, plan, settings);
  const ruleId = await applyRuleStep(sip, plan, settings, trunkId);
  return { trunkId, ruleId };
}

async function applyTrunkStep(sip: SipClient, plan: ProvisionPlan, settings: ProvisionSettings): Promise<string> {
  const step = plan.trunk;
  if (step.action === "create") return (await sip.createSipInboundTrunk(settings.trunkName, plan.numbers, { metadata: TRUNK_METADATA })).sipTrunkId;
  if (step.action === "update") await sip.updateSipInboundTrunkFields(step.id, { numbers: new ListUpdate({ set: plan.numbers }) });
  return step.id;
}

async function applyRuleStep(sip: SipClient, plan: ProvisionPlan, settings: ProvisionSettings, trunkId: string): Promise<string> {
  const step = plan.rule;
  if (step.action === "create") {
    const rule = { type: "individual", roomPrefix: settings.roomPrefix } as const;
    return (await sip.createSipDispatchRule(rule, { name: settings.dispatchRuleName, trunkIds: [trunkId] })).sipDispatchRuleId;
  }
  const roomPerCaller = new SIPDispatchRule({
    rule: { case: "dispatchRuleIndividual", value: new SIPDispatchRuleIndividual({ roomPrefix: settings.roomPrefix }) },
  });
  const clearMarker = step.current.metadata === LEGACY_RULE_MARKER;
  if (step.action === "update" && step.replace) {
    // The whole rule as listed, with Switchboard's fields put right.
    const replacement = step.current.clone();
    replacement.rule = roomPerCaller;
    replacement.trunkIds = [trunkId];
    replacement.hidePhoneNumber = false;
    if (clearMarker) replacement.metadata = "";
    await sip.updateSipDispatchRule(step.id, replacement);
  } else if (step.action === "update" || plan.trunk.action === "create") {
    // A newly created trunk also means the existing rule must point at it.
    await sip.updateSipDispatchRuleFields(step.id, {
      trunkIds: new ListUpdate({ set: [trunkId] }),
      rule: roomPerCaller,
      ...(clearMarker ? { metadata: "" } : {}),
    });
  }
  return step.id;
}

export function describePlan(plan: ProvisionPlan, settings: ProvisionSettings): string[] {
  const stepLine = (what: string, step: Step<unknown>) =>
    step.action === "create"
      ? `create ${what}`
      : step.action === "update"
        ? `update ${what} ${step.id}: ${step.changes.join("; ")}`
        : `unchanged ${what} ${step.id}`;
  return [
    `numbers (${plan.numbers.length}): ${plan.numbers.join(", ") || "(none)"}`,
    stepLine(`inbound trunk "${settings.trunkName}"`, plan.trunk),
    stepLine(`dispatch rule "${settings.dispatchRuleName}" (room per caller, prefix "${settings.roomPrefix}")`, plan.rule),
    ...plan.warnings.map((w) => `warning: ${w}`),
  ];
}

export async function liveKitStatus(database: Database, sip: SipClient): Promise<string[]> {
  const numbers = await activeNumbers(database);
  const [trunks, rules] = await Promise.all([sip.listSipInboundTrunk(), sip.listSipDispatchRule()]);
  const inLiveKit = new Set(trunks.flatMap((t) => t.numbers));
  const missing = numbers.filter((n) => !inLiveKit.has(n));
  return [
    `inbound trunks (${trunks.length}):`,
    ...trunks.map((t) => `  ${t.sipTrunkId} "${t.name}" numbers: ${t.numbers.join(", ") || "(any)"}`),
    `dispatch rules (${rules.length}):`,
    ...rules.map(
      (r) =>
        `  ${r.sipDispatchRuleId} "${r.name}" ${r.rule?.rule.case ?? "?"} trunks: ${r.trunkIds.join(", ") || "(all)"}` +
        (r.hidePhoneNumber ? " hide_phone_number: true (callers' numbers hidden from Switchboard)" : ""),
    ),
    `database numbers missing from LiveKit (${missing.length}): ${missing.join(", ") || "none"}`,
  ];
}

function sameSet(a: string[], b: string[]) {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((v) => set.has(v));
}
