// The admin API's models of call policies: the action a policy takes (a schedule's after_hours, a
// concurrency cap's overflow), the variables passed to agents, schedules and blocklist entries.
import { t } from "elysia";
import { BusinessHours, WeeklyHours } from "../calls/model";
import { StorableText } from "../text";
import { Nullable, OneOf, Timestamp, Uuid, name, paging, PhoneInput, strict, tenantFilter } from "./fields";

export const POLICY_ACTIONS = ["dispatch", "transfer", "reject"] as const;
const policyActionDescription =
  "dispatch: send the agent agent_id (the tenant's own or a system-wide one); transfer: pass the call to " +
  "transfer_to (any common shape; stored as E.164); reject: refuse it. A field of another action is refused.";
export const PolicyAction = t.Object(
  { action: OneOf(POLICY_ACTIONS), agent_id: t.Optional(Uuid), transfer_to: t.Optional(t.String({ description: "E.164" })) },
  { description: policyActionDescription },
);
export const PolicyActionInput = t.Object(
  { action: OneOf(POLICY_ACTIONS), agent_id: t.Optional(Uuid), transfer_to: t.Optional(PhoneInput) },
  { ...strict, description: policyActionDescription },
);

export const VARIABLES_MAX_BYTES = 4096;
export const Variables = t.Record(t.String(), t.Unknown(), {
  description: `Values passed to the agent with each call: a JSON object of at most ${VARIABLES_MAX_BYTES} bytes as compact JSON text`,
});

// Schedules
export const Schedule = t.Object({
  id: Uuid,
  tenant_id: Uuid,
  name: t.String(),
  time_zone: t.String(),
  weekly_hours: WeeklyHours,
  holidays: t.Array(t.String()),
  after_hours: PolicyAction,
  created_at: Timestamp,
});
const scheduleFields = {
  name,
  time_zone: BusinessHours.properties.time_zone,
  weekly_hours: WeeklyHours,
  holidays: t.Optional(BusinessHours.properties.holidays),
  after_hours: t.Object(PolicyActionInput.properties, { ...strict, description: `While closed: ${policyActionDescription}` }),
};
export const ScheduleCreate = t.Object({ tenant_id: t.Optional(Uuid), ...scheduleFields }, strict);
export const ScheduleUpdate = t.Partial(t.Object(scheduleFields), strict);
export const ScheduleQuery = t.Object({ ...tenantFilter, name: t.Optional(name), ...paging }, strict);

// Blocklist entries
const BlockPatternInput = StorableText({
  minLength: 1,
  maxLength: 64,
  description: "A phone number in any common shape, or a prefix with its country code ending in * (+1 900*); stored as E.164",
});
export const BlocklistEntry = t.Object({
  id: Uuid,
  tenant_id: Nullable(Uuid, { description: "null: a global entry, applied to every tenant's calls" }),
  pattern: t.String({ description: "E.164 number, or an E.164 prefix ending in *" }),
  reason: Nullable(t.String()),
  created_at: Timestamp,
});
const blocklistFields = { pattern: BlockPatternInput, reason: t.Optional(Nullable(StorableText({ maxLength: 500 }))) };
export const BlocklistEntryCreate = t.Object(
  {
    tenant_id: t.Optional(
      Nullable(Uuid, {
        description:
          "With an admin key: required, a tenant's id or null for a global entry (so none is made by accident). " +
          "With a tenant key: omitted or its own tenant.",
      }),
    ),
    ...blocklistFields,
  },
  strict,
);
export const BlocklistEntryUpdate = t.Partial(t.Object(blocklistFields), strict);
export const BlocklistEntryQuery = t.Object(
  {
    ...tenantFilter,
    global: t.Optional(t.Boolean({ description: "true: global entries only (admin keys); false: tenants' entries only" })),
    pattern: t.Optional(BlockPatternInput),
    ...paging,
  },
  strict,
);
