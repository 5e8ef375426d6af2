// Outbound webhooks: the endpoints a tenant registers, the deliveries kept for each, and the
// events they receive (documented in OpenAPI's webhooks section from the same models).
import { t } from "elysia";
import { CallLog, Lead } from "../admin/model";
import { Nullable, OneOf, Timestamp, Uuid, paging, strict, tenantFilter } from "../admin/fields";
import { WEBHOOK_DELIVERY_STATUSES } from "../db/schema";
import { StorableText } from "../text";

export const CALL_EVENT_TYPES = ["call.started", "call.answered", "call.ended", "call.rejected", "call.transferred"] as const;
export const LEAD_EVENT_TYPES = ["lead.created", "lead.updated"] as const;
export const EVENT_TYPES = [...CALL_EVENT_TYPES, ...LEAD_EVENT_TYPES] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const EVENT_DESCRIPTIONS: Record<EventType, string> = {
  "call.started": "A call was routed to an agent (agent_name, agent_source)",
  "call.answered": "The call's agent joined (answered_at)",
  "call.ended": "A started or transferred call ended (status, duration_ms, disconnect_reason)",
  "call.rejected": "A policy refused the call (outcome_reason)",
  "call.transferred": "A policy passed the call to a phone number (transfer_to, outcome_reason)",
  "lead.created": "A new caller became a lead",
  "lead.updated": "A lead's name, email, status, metadata or campaign changed",
};

export const WEBHOOK_URL_MAX = 2048;
const url = StorableText({ minLength: 1, maxLength: WEBHOOK_URL_MAX, description: "https:// (http:// outside production)" });
const events = t.Array(OneOf(EVENT_TYPES), { uniqueItems: true, description: "Event types sent; empty or absent: all" });
const description = Nullable(StorableText({ maxLength: 500 }));

export const WebhookEndpoint = t.Object({
  id: Uuid,
  tenant_id: Uuid,
  url: t.String(),
  events: t.Array(t.String()),
  description: Nullable(t.String()),
  enabled: t.Boolean(),
  disabled_reason: Nullable(t.String({ description: "Why Switchboard disabled it (410 Gone, failing too long); null otherwise" })),
  failing_since: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const WebhookEndpointWithSecret = t.Composite([
  WebhookEndpoint,
  t.Object({ secret: t.String({ description: "whsec_...: shown this once; verify signatures with it" }) }),
]);
export const WebhookEndpointCreate = t.Object(
  {
    tenant_id: t.Optional(Uuid),
    url,
    events: t.Optional(events),
    description: t.Optional(description),
    enabled: t.Optional(t.Boolean()),
  },
  strict,
);
export const WebhookEndpointUpdate = t.Partial(t.Object({ url, events, description, enabled: t.Boolean() }), strict);
export const WebhookEndpointQuery = t.Object({ ...tenantFilter, enabled: t.Optional(t.Boolean()), ...paging }, strict);

export const WebhookAttempt = t.Object({
  attempt: t.Integer(),
  attempted_at: Timestamp,
  status_code: Nullable(t.Integer()),
  latency_ms: t.Integer(),
  error: Nullable(t.String()),
});
export const WebhookDelivery = t.Object({
  id: Uuid,
  webhook_id: t.String({ description: "The webhook-id header: the same on every attempt" }),
  endpoint_id: Uuid,
  event_type: t.String(),
  subject: Uuid,
  status: OneOf(WEBHOOK_DELIVERY_STATUSES),
  attempts: t.Integer(),
  last_status_code: Nullable(t.Integer()),
  last_latency_ms: Nullable(t.Integer()),
  last_error: Nullable(t.String()),
  next_attempt_at: Nullable(Timestamp),
  delivered_at: Nullable(Timestamp),
  created_at: Timestamp,
  attempt_log: t.Array(WebhookAttempt),
});
export const WebhookDeliveryQuery = t.Object({ status: t.Optional(OneOf(WEBHOOK_DELIVERY_STATUSES)), ...paging }, strict);

/** What a receiver gets: `data` is the call log or lead as the admin API answers it. */
export const CallEventPayload = t.Object({ type: OneOf(CALL_EVENT_TYPES), timestamp: Timestamp, data: CallLog });
export const LeadEventPayload = t.Object({ type: OneOf(LEAD_EVENT_TYPES), timestamp: Timestamp, data: Lead });
