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
const MANAGED = "managed by switchboard";
/** What older versions put in the dispatch rule's metadata, which LiveKit copied to every caller. */
const LEGACY_RULE_MARKER = MANAGED;

/** Active numbers of active tenants: the ones LiveKit should accept calls for. */
export async function activeNumbers(database: Database): Promise<string[]> {
  const rows = await database.rows<{ e164: string }>(sql`
    select pn.e164 from phone_numbers pn join tenants t on t.id = pn.tenant_id
    where pn.active and t.active order by pn.e164`);
  return rows.map((r) => r.e164);
}

export async function planProvisioning(
  database: Database,
  sip: SipClient,
  settings: ProvisionSettings,
): Promise<ProvisionPlan> {
  const numbers = await activeNumbers(database);
  const [trunks, rules] = await Promise.all([sip.listSipInboundTrunk(), sip.listSipDispatchRule()]);
  const warnings: string[] = [];
  const trunk = trunks.find((t) => t.name === settings.trunkName);
  const rule = rules.find((r) => r.name === settings.dispatchRuleName);

  let trunkStep: Step<SIPInboundTrunkInfo> = { action: "create" };
  if (trunk) {
    const changes = sameSet(trunk.numbers, numbers) ? [] : [`numbers: ${trunk.numbers.join(",") || "(none)"} -> ${numbers.join(",")}`];
    trunkStep = changes.length
      ? { action: "update", id: trunk.sipTrunkId, changes, current: trunk }
      : { action: "unchanged", id: trunk.sipTrunkId, current: trunk };
  }

  let ruleStep: Step<SIPDispatchRuleInfo> = { action: "create" };
  if (rule) {
    const changes: string[] = [];
    let replace = false;
    const individual = rule.rule?.rule.case === "dispatchRuleIndividual" ? rule.rule.rule.value : undefined;
    if (individual?.roomPrefix !== settings.roomPrefix) changes.push(`rule: individual room per caller, prefix "${settings.roomPrefix}"`);
    if (trunk && !(rule.trunkIds.length === 1 && rule.trunkIds[0] === trunk.sipTrunkId)) {
      changes.push(`trunks: ${rule.trunkIds.join(",") || "(all)"} -> ${trunk.sipTrunkId}`);
    }
    if (rule.metadata === LEGACY_RULE_MARKER) {
      changes.push(`metadata: "${LEGACY_RULE_MARKER}" -> "" (LiveKit copies a rule's metadata into every caller's participant metadata)`);
    }
    if (rule.hidePhoneNumber) {
      // SIPDispatchRuleUpdate (livekit/protocol livekit_sip.proto) has no hide_phone_number: only
      // a replace can reset it, and a replace rewrites the whole rule (protocol livekit/sip.go
      // (*UpdateSIPDispatchRuleRequest_Replace).Apply), so it is sent with every other field as listed.
      replace = true;
      changes.push(
        "hide_phone_number: true -> false (a hidden number reaches Switchboard without sip.phoneNumber or " +
          "sip.trunkPhoneNumber: no lead, routed to the system default agent); the rule is replaced whole, " +
          "its other fields as listed",
      );
    }
    if (rule.roomConfig?.agents.length) {
      warnings.push(
        `dispatch rule ${rule.sipDispatchRuleId} also dispatches agents itself (${rule.roomConfig.agents.map((a) => a.agentName).join(", ")}); ` +
          "remove them in LiveKit or set LIVEKIT_DISPATCH=false, or callers get two agents",
      );
    }
    ruleStep = changes.length
      ? { action: "update", id: rule.sipDispatchRuleId, changes, current: rule, ...(replace ? { replace } : {}) }
      : { action: "unchanged", id: rule.sipDispatchRuleId, current: rule };
  }
  const otherOwners = trunks.filter((t) => t.name !== settings.trunkName && t.numbers.some((n) => numbers.includes(n)));
  for (const other of otherOwners) {
    warnings.push(`trunk ${other.sipTrunkId} (${other.name}) also claims ${other.numbers.filter((n) => numbers.includes(n)).join(", ")}`);
  }
  return { numbers, trunk: trunkStep, rule: ruleStep, warnings };
}

export async function applyProvisioning(
  sip: SipClient,
  plan: ProvisionPlan,
  settings: ProvisionSettings,
): Promise<{ trunkId: string; ruleId: string }> {
  if (plan.numbers.length === 0) {
    // A trunk without numbers accepts calls to any number: never create one by accident.
    throw new Error("no active phone numbers in the database; seed the directory first");
  }
  let trunkId: string;
  if (plan.trunk.action === "create") {
    trunkId = (await sip.createSipInboundTrunk(settings.trunkName, plan.numbers, { metadata: MANAGED })).sipTrunkId;
  } else {
    trunkId = plan.trunk.id;
    if (plan.trunk.action === "update") {
      await sip.updateSipInboundTrunkFields(trunkId, { numbers: new ListUpdate({ set: plan.numbers }) });
    }
  }
  const individual = new SIPDispatchRule({
    rule: { case: "dispatchRuleIndividual", value: new SIPDispatchRuleIndividual({ roomPrefix: settings.roomPrefix }) },
  });
  let ruleId: string;
  if (plan.rule.action === "create") {
    const created = await sip.createSipDispatchRule(
      { type: "individual", roomPrefix: settings.roomPrefix },
      { name: settings.dispatchRuleName, trunkIds: [trunkId] },
    );
    ruleId = created.sipDispatchRuleId;
  } else {
    ruleId = plan.rule.id;
    const current = plan.rule.current;
    const clearMarker = current.metadata === LEGACY_RULE_MARKER;
    if (plan.rule.action === "update" && plan.rule.replace) {
      // The whole rule as listed, with Switchboard's fields put right.
      const replacement = current.clone();
      replacement.rule = individual;
      replacement.trunkIds = [trunkId];
      replacement.hidePhoneNumber = false;
      if (clearMarker) replacement.metadata = "";
      await sip.updateSipDispatchRule(ruleId, replacement);
    } else if (plan.rule.action === "update" || plan.trunk.action === "create") {
      // A newly created trunk also means the existing rule must point at it.
      await sip.updateSipDispatchRuleFields(ruleId, {
        trunkIds: new ListUpdate({ set: [trunkId] }),
        rule: individual,
        ...(clearMarker ? { metadata: "" } : {}),
      });
    }
  }
  return { trunkId, ruleId };
}

export function describePlan(plan: ProvisionPlan, settings: ProvisionSettings): string[] {
  const line = (what: string, step: Step<unknown>) =>
    step.action === "create"
      ? `create ${what}`
      : step.action === "update"
        ? `update ${what} ${step.id}: ${step.changes.join("; ")}`
        : `unchanged ${what} ${step.id}`;
  return [
    `numbers (${plan.numbers.length}): ${plan.numbers.join(", ") || "(none)"}`,
    line(`inbound trunk "${settings.trunkName}"`, plan.trunk),
    line(`dispatch rule "${settings.dispatchRuleName}" (room per caller, prefix "${settings.roomPrefix}")`, plan.rule),
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
