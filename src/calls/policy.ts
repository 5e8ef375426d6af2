// The policies applied to a call once its number is known, in this order: blocklist, business
// hours, concurrency caps. The first two are decided here, from the in-memory directory, so they
// hold while the database is down. A cap can only be counted by the database (every process's
// calls hold its slots): the decision carries it, and the call's record applies it (recorder.ts).
import type { AgentSource, CallOutcome, OutcomeReason } from "../db/schema";
import type { Blocklist } from "./blocklist";
import type { CompiledSchedule } from "./schedule";

/**
 * A policy's action with its agent resolved to a name: what a schedule does after hours, what a
 * cap does with a call past it. A dispatch whose agent is gone or inactive (agentName null) sends
 * the agent the call would have had anyway after hours, and rejects the call past a cap.
 */
export type PolicyOutcome =
  | { action: "dispatch"; agentName: string | null }
  | { action: "transfer"; transferTo: string }
  | { action: "reject" };

/** What routing does with a call: the outcome, why (null: routed as usual), and its agent or destination. */
export type RoutedOutcome =
  | { outcome: "dispatched"; outcomeReason: OutcomeReason | null; agentName: string; agentSource: AgentSource; transferTo: null }
  | { outcome: "transferred"; outcomeReason: OutcomeReason; agentName: null; agentSource: null; transferTo: string }
  | { outcome: "rejected"; outcomeReason: OutcomeReason; agentName: null; agentSource: null; transferTo: null };

/** The cap a call routed as usual is admitted under; the database decides against it (record_capped_call). */
export interface CapCheck {
  /** Calls of the number at once at most, and what happens past that. */
  number?: { limit: number; overflow: RoutedOutcome };
  tenant?: { limit: number; overflow: RoutedOutcome };
}

export interface CallPolicies {
  /** The tenant's entries and the global ones. */
  blocklist: Pick<Blocklist, "matches">;
  blockAnonymous: boolean;
  schedule: { hours: CompiledSchedule; afterHours: PolicyOutcome } | null;
  numberCap: { limit: number; overflow: PolicyOutcome | null } | null;
  tenantCap: { limit: number; overflow: PolicyOutcome | null } | null;
}

export interface PolicyDecision {
  outcome: RoutedOutcome;
  cap: CapCheck | null;
}

/** What a cap does with a call past it when nobody said: the caller hears the call end. */
const REJECT: PolicyOutcome = { action: "reject" };

/**
 * Applies the policies to a call from `fromNumber` (E.164, null when withheld) at `now`; `usual`
 * is the agent the routing rule picks. Pure: the same facts give the same outcome.
 */
export function applyPolicies(
  policies: CallPolicies,
  fromNumber: string | null,
  now: Date,
  usual: { agentName: string; agentSource: AgentSource },
): PolicyDecision {
  if (policies.blocklist.matches(fromNumber)) return { outcome: rejected("blocklist"), cap: null };
  if (policies.blockAnonymous && !fromNumber) return { outcome: rejected("anonymous_blocked"), cap: null };
  const state = policies.schedule?.hours.stateAt(now) ?? "open";
  if (state !== "open") {
    return { outcome: outcomeOf(policies.schedule!.afterHours, state, "after_hours", usual), cap: null };
  }
  const outcome: RoutedOutcome = { outcome: "dispatched", outcomeReason: null, ...usual, transferTo: null };
  const over = (cap: CallPolicies["numberCap"]) =>
    cap ? { limit: cap.limit, overflow: outcomeOf(cap.overflow ?? REJECT, "over_capacity", "overflow", usual) } : undefined;
  const cap: CapCheck = { number: over(policies.numberCap), tenant: over(policies.tenantCap) };
  return { outcome, cap: cap.number || cap.tenant ? cap : null };
}

function rejected(reason: OutcomeReason): RoutedOutcome {
  return { outcome: "rejected", outcomeReason: reason, agentName: null, agentSource: null, transferTo: null };
}

/** A policy's action as the call's outcome; a dispatch names its agent's source after the policy. */
function outcomeOf(
  action: PolicyOutcome,
  reason: OutcomeReason,
  source: "after_hours" | "overflow",
  usual: { agentName: string; agentSource: AgentSource },
): RoutedOutcome {
  switch (action.action) {
    case "dispatch":
      if (action.agentName) return { outcome: "dispatched", outcomeReason: reason, agentName: action.agentName, agentSource: source, transferTo: null };
      // An overflow agent that is gone cannot mean "the usual agent": the cap would then admit
      // every call. After hours it can: the caller still gets the agent they would have had.
      if (source === "overflow") return rejected(reason);
      return { outcome: "dispatched", outcomeReason: reason, ...usual, transferTo: null };
    case "transfer":
      return { outcome: "transferred", outcomeReason: reason, agentName: null, agentSource: null, transferTo: action.transferTo };
    case "reject":
      return rejected(reason);
  }
}

/** The action an answer names for an outcome (sip-inbound's `action`). */
export const ACTION_OF: Record<CallOutcome, "dispatch" | "reject" | "transfer"> = {
  dispatched: "dispatch",
  rejected: "reject",
  transferred: "transfer",
};
