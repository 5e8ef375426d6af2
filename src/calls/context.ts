// What the agent is told about its call: the job metadata (a JSON string) it reads when it starts,
// the same from sip-inbound and from a LiveKit dispatch. Beyond the call's ids it carries who is
// calling (the caller's lead, as it was before this call), the tenant's and campaign's custom
// variables, and the SIP X- headers the trunk passed on.
import type { StoredCaller } from "./recorder";
/**
 * The caller as the agent may greet them: their lead before this call; previous_calls counts the
 * calls they made before this one (to this tenant and campaign), last_call_at (ISO 8601) is when
 * the last of them came in, null for a first call.
 */
export type CallerContext = StoredCaller;

/** The facts of a routed call the metadata is made from. */
export interface MetadataFacts {
  outcome: string;
  outcomeReason: string | null;
  phoneNumberId: string | null;
  tenantId: string | null;
  campaignId: string | null;
  leadId: string | null;
  callLogId: string | null;
  fromNumber: string | null;
  toNumber: string | null;
  agentSource: string | null;
  caller: CallerContext | null;
  variables: Record<string, unknown>;
  sipHeaders: Record<string, string>;
}

/**
 * LiveKit keeps job metadata small; Switchboard keeps its own under 16 KB. When the whole would be
 * larger, the SIP headers are left out first, then the variables (the call's ids and the caller
 * never are), and `truncated` names what was left out.
 */
export const MAX_METADATA_BYTES = 16 * 1024;

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** The JSON the agent receives as job metadata, from sip-inbound and from LiveKit dispatch alike. */
export function callMetadata(routing: MetadataFacts): Record<string, unknown> {
  const metadata: Record<string, unknown> = {
    call_type: "inbound",
    outcome: routing.outcome,
    outcome_reason: routing.outcomeReason,
    phone_number_id: routing.phoneNumberId,
    tenant_id: routing.tenantId,
    campaign_id: routing.campaignId,
    lead_id: routing.leadId,
    call_log_id: routing.callLogId,
    from_number: routing.fromNumber,
    to_number: routing.toNumber,
    agent_source: routing.agentSource,
    caller: routing.caller,
    variables: routing.variables,
    sip_headers: routing.sipHeaders,
  };
  const truncated: string[] = [];
  for (const field of ["sip_headers", "variables"]) {
    if (bytes(metadata) <= MAX_METADATA_BYTES) break;
    if (Object.keys(metadata[field] as object).length === 0) continue;
    metadata[field] = {};
    truncated.push(field);
  }
  if (truncated.length > 0) metadata.truncated = truncated;
  return metadata;
}

/** The caller's context as the call's record kept it; null for a call without a lead. */
export function callerOf(stored: StoredCaller | null): CallerContext | null {
  if (!stored) return null;
  // JSON of a timestamptz has PostgreSQL's offset form; the agent gets ISO 8601 in UTC.
  const lastCallAt = stored.last_call_at === null ? null : new Date(stored.last_call_at).toISOString();
  return { ...stored, previous_calls: Number(stored.previous_calls), last_call_at: lastCallAt };
}
