// The admin API's models (below) and the directory file `switchboard seed FILE` loads: tenants with their agents, campaigns and numbers.
import { Type } from "@sinclair/typebox";
import { type Static, type TSchema, t } from "elysia";
import { AGENT_SOURCES, CALL_OUTCOMES, CALL_STATUSES, CAMPAIGN_STATUSES, NUMBER_TYPES, OUTCOME_REASONS } from "../db/schema";
import { STORABLE_TEXT_PATTERN, StorableText } from "../text";
import { DEFAULT_PAGE, MAX_PAGE, Nullable, OneOf, PhoneInput, Timestamp, Uuid, name, paging, strict, tenantFilter } from "./fields";
import { PolicyAction, PolicyActionInput, Variables } from "./policy-model";

export { DEFAULT_PAGE, MAX_PAGE };

export const DirectoryAgent = t.Object(
  {
    name,
    default: t.Optional(t.Boolean({ description: "The tenant's default agent (at most one per tenant)" })),
    active: t.Optional(t.Boolean()),
  },
  { additionalProperties: false },
);

export const DirectoryCampaign = t.Object(
  {
    name,
    agent: t.Optional(name),
    status: t.Optional(t.UnionEnum(CAMPAIGN_STATUSES)),
  },
  { additionalProperties: false },
);

export const DirectoryPhoneNumber = t.Object(
  {
    number: StorableText({ minLength: 1, maxLength: 64 }),
    campaign: t.Optional(name),
    type: t.Optional(t.UnionEnum(NUMBER_TYPES)),
    active: t.Optional(t.Boolean()),
  },
  { additionalProperties: false },
);

export const DirectoryTenant = t.Object(
  {
    name,
    active: t.Optional(t.Boolean()),
    agents: t.Optional(t.Array(DirectoryAgent)),
    campaigns: t.Optional(t.Array(DirectoryCampaign)),
    phone_numbers: t.Optional(t.Array(DirectoryPhoneNumber)),
  },
  { additionalProperties: false },
);

export const DirectoryFile = t.Object(
  {
    /** System-wide agents any tenant's campaign may name. */
    agents: t.Optional(t.Array(t.Omit(DirectoryAgent, ["default"]))),
    tenants: t.Array(DirectoryTenant),
  },
  { additionalProperties: false },
);
export type DirectoryFile = Static<typeof DirectoryFile>;

// ---- The admin API: bodies, query strings, path parameters and answers. ----

export const METADATA_MAX_DEPTH = 16;
const Metadata = t.Record(t.String(), t.Unknown(), {
  description: `Free-form JSON object (nested at most ${METADATA_MAX_DEPTH} levels, no NUL characters)`,
});
const LeadStatus = StorableText({ minLength: 1, maxLength: 50 });
const Email = t.String({ format: "email", pattern: STORABLE_TEXT_PATTERN, maxLength: 320 });

export const IdParams = t.Object({ id: Uuid });
export const CallIdParams = t.Object({ provider_call_id: StorableText({ minLength: 1, maxLength: 512 }) });

export const Page = <T extends TSchema>(item: T) =>
  t.Object({ data: t.Array(item), next_cursor: Nullable(t.String({ description: "Pass as cursor for the next page" })) });

export const ErrorBody = t.Object(
  {
    error: t.Object({
      code: t.String(),
      message: t.String(),
      details: t.Optional(t.Record(t.String(), t.Unknown())),
    }),
  },
  { description: "Every error, from every endpoint" },
);

// TypeBox's own Integer: Elysia's also takes numeric text, and a union in a union hides why a value is refused.
const MaxConcurrentCalls = Nullable(Type.Integer({ minimum: 1 }), { description: "Calls at once, at least 1; null: no limit" });
const Overflow = Nullable(PolicyAction, { description: "What happens to a call over max_concurrent_calls" });
const overflowInput = {
  max_concurrent_calls: t.Optional(MaxConcurrentCalls),
  overflow: t.Optional(
    Nullable(PolicyActionInput, { description: "What happens to a call over max_concurrent_calls; null: the call is rejected" }),
  ),
};

// Tenants
export const Tenant = t.Object({
  id: Uuid,
  name: t.String(),
  is_active: t.Boolean(),
  max_concurrent_calls: Nullable(t.Integer()),
  overflow: Overflow,
  variables: Variables,
  created_at: Timestamp,
});
export const TenantCreate = t.Object(
  { name, is_active: t.Optional(t.Boolean()), ...overflowInput, variables: t.Optional(Variables) },
  strict,
);
export const TenantUpdate = t.Partial(TenantCreate, strict);
export const TenantQuery = t.Object({ is_active: t.Optional(t.Boolean()), ...paging }, strict);

// Agents
export const Agent = t.Object({
  id: Uuid,
  tenant_id: Nullable(Uuid),
  name: t.String({ description: "The agent name LiveKit dispatches" }),
  is_default: t.Boolean(),
  is_active: t.Boolean(),
  description: Nullable(t.String()),
  metadata: Metadata,
  created_at: Timestamp,
});
const agentFields = {
  name,
  is_default: t.Optional(t.Boolean()),
  is_active: t.Optional(t.Boolean()),
  description: t.Optional(Nullable(StorableText({ maxLength: 2000 }))),
  metadata: t.Optional(Metadata),
};
export const AgentCreate = t.Object(
  {
    tenant_id: t.Optional(Nullable(Uuid, { description: "null: system-wide (admin keys only); omitted with a tenant key: its tenant" })),
    ...agentFields,
  },
  strict,
);
export const AgentUpdate = t.Partial(t.Object({ tenant_id: Nullable(Uuid), ...agentFields }), strict);
export const AgentQuery = t.Object(
  { ...tenantFilter, is_active: t.Optional(t.Boolean()), is_default: t.Optional(t.Boolean()), name: t.Optional(name), ...paging },
  strict,
);
export const AgentDeleteQuery = t.Object(
  { unlink: t.Optional(t.Boolean({ description: "Detach the agent from the campaigns using it, then delete it" })) },
  strict,
);

// Campaigns
const CampaignStatus = OneOf(CAMPAIGN_STATUSES);
export const Campaign = t.Object({
  id: Uuid,
  tenant_id: Uuid,
  name: t.String(),
  agent_id: Nullable(Uuid),
  status: CampaignStatus,
  schedule_id: Nullable(Uuid),
  variables: Variables,
  created_at: Timestamp,
});
const scheduleIdInput = t.Optional(Nullable(Uuid, { description: "A schedule of the same tenant; null: none" }));
const campaignFields = {
  name,
  agent_id: t.Optional(Nullable(Uuid)),
  status: t.Optional(CampaignStatus),
  schedule_id: scheduleIdInput,
  variables: t.Optional(Variables),
};
export const CampaignCreate = t.Object({ tenant_id: t.Optional(Uuid), ...campaignFields }, strict);
export const CampaignUpdate = t.Partial(t.Object(campaignFields), strict);
export const CampaignQuery = t.Object({ ...tenantFilter, status: t.Optional(CampaignStatus), agent_id: t.Optional(Uuid), ...paging }, strict);

// Phone numbers
const NumberType = OneOf(NUMBER_TYPES);
export const PhoneNumber = t.Object({
  id: Uuid,
  tenant_id: Uuid,
  number: t.String({ description: "E.164" }),
  campaign_id: Nullable(Uuid),
  type: NumberType,
  is_active: t.Boolean(),
  block_anonymous: t.Boolean({ description: "Callers who withhold their number are rejected" }),
  schedule_id: Nullable(Uuid, { description: "Business hours; wins over the campaign's" }),
  max_concurrent_calls: Nullable(t.Integer()),
  overflow: Overflow,
  created_at: Timestamp,
});
const numberFields = {
  number: PhoneInput,
  campaign_id: t.Optional(Nullable(Uuid)),
  type: t.Optional(NumberType),
  is_active: t.Optional(t.Boolean()),
  block_anonymous: t.Optional(t.Boolean()),
  schedule_id: scheduleIdInput,
  ...overflowInput,
};
export const PhoneNumberCreate = t.Object({ tenant_id: t.Optional(Uuid), ...numberFields }, strict);
export const PhoneNumberUpdate = t.Partial(t.Object({ tenant_id: Uuid, ...numberFields }), {
  ...strict,
  description:
    "A number moving to another tenant (tenant_id) drops its campaign_id and schedule_id unless they are given, and " +
    "its overflow unless given or still usable there (a dispatch to an agent of the tenant it leaves is not)",
});
export const PhoneNumberQuery = t.Object(
  { ...tenantFilter, campaign_id: t.Optional(Uuid), is_active: t.Optional(t.Boolean()), number: t.Optional(PhoneInput), ...paging },
  strict,
);

// Leads
export const Lead = t.Object({
  id: Uuid,
  tenant_id: Uuid,
  campaign_id: Nullable(Uuid),
  phone_number: t.String(),
  name: t.String(),
  email: Nullable(t.String()),
  status: t.String(),
  metadata: Metadata,
  last_call_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const LeadUpdate = t.Partial(
  t.Object({ name, status: LeadStatus, email: Nullable(Email), metadata: Metadata }),
  strict,
);
export const LeadQuery = t.Object(
  { ...tenantFilter, campaign_id: t.Optional(Uuid), status: t.Optional(LeadStatus), phone_number: t.Optional(PhoneInput), ...paging },
  strict,
);

// Call logs
const CallStatus = OneOf(CALL_STATUSES);
const CallOutcome = OneOf(CALL_OUTCOMES);
const OutcomeReason = OneOf(OUTCOME_REASONS);
export const CallLog = t.Object({
  id: Uuid,
  provider_call_id: t.String(),
  tenant_id: Nullable(Uuid),
  campaign_id: Nullable(Uuid),
  lead_id: Nullable(Uuid),
  phone_number_id: Nullable(Uuid),
  room_name: Nullable(t.String()),
  /** The sid of the room the caller joined (LiveKit reuses room names, not sids). */
  room_sid: Nullable(t.String()),
  trunk_id: Nullable(t.String()),
  from_number: Nullable(t.String()),
  to_number: Nullable(t.String()),
  agent_name: Nullable(t.String(), { description: "null when the call was rejected or transferred" }),
  agent_source: Nullable(OneOf(AGENT_SOURCES)),
  outcome: CallOutcome,
  outcome_reason: Nullable(OutcomeReason, { description: "The policy behind the outcome; null: routed as usual" }),
  transfer_to: Nullable(t.String({ description: "E.164, where a transferred call went" })),
  status: CallStatus,
  created_at: Timestamp,
  caller_joined_at: Nullable(Timestamp),
  answered_at: Nullable(Timestamp),
  ended_at: Nullable(Timestamp),
  duration_ms: Nullable(t.Integer()),
  disconnect_reason: Nullable(t.String()),
  dispatch_id: Nullable(t.String()),
  metadata: Metadata,
  updated_at: Timestamp,
});
export const CallLogUpdate = t.Object({ status: CallStatus }, strict);
export const CallLogQuery = t.Object(
  {
    ...tenantFilter,
    campaign_id: t.Optional(Uuid),
    lead_id: t.Optional(Uuid),
    status: t.Optional(CallStatus),
    outcome: t.Optional(CallOutcome),
    outcome_reason: t.Optional(OutcomeReason),
    from_number: t.Optional(PhoneInput),
    to_number: t.Optional(PhoneInput),
    since: t.Optional(t.String({ format: "date-time", description: "Calls created at or after" })),
    until: t.Optional(t.String({ format: "date-time", description: "Calls created before" })),
    ...paging,
  },
  strict,
);

// API keys
export const ApiKey = t.Object({
  id: Uuid,
  tenant_id: Nullable(Uuid, { description: "null: an admin key" }),
  label: Nullable(t.String()),
  prefix: t.String({ description: "The key's first characters" }),
  created_at: Timestamp,
  last_used_at: Nullable(Timestamp),
  revoked_at: Nullable(Timestamp),
});
export const NewApiKey = t.Composite([ApiKey, t.Object({ key: t.String({ description: "Shown only in this answer" }) })]);
export const ApiKeyCreate = t.Object(
  {
    tenant_id: t.Optional(Uuid),
    admin: t.Optional(t.Boolean({ description: "An admin key (all tenants); admin keys only" })),
    label: t.Optional(StorableText({ maxLength: 200 })),
  },
  strict,
);
export const ApiKeyQuery = t.Object({ ...tenantFilter, ...paging }, strict);
