// The Drizzle schema: the single source of the tables and of the invariants the
// database enforces. `drizzle-kit generate` turns it into the SQL under drizzle/.
// This module imports no feature: features import it.
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

/**
 * Why a call's agent is the one it is: Switchboard's routing (campaign, tenant_default,
 * system_default), or dispatch_rule, an agent LiveKit had already placed in the caller's room
 * (a dispatch rule's room_config) that Switchboard kept rather than start a second one; or a
 * policy's agent: a schedule's after_hours agent, a concurrency cap's overflow agent.
 */
export const AGENT_SOURCES = ["campaign", "tenant_default", "system_default", "dispatch_rule", "after_hours", "overflow"] as const;
export type AgentSource = (typeof AGENT_SOURCES)[number];

export const CAMPAIGN_STATUSES = ["active", "paused", "completed", "archived"] as const;
export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];

export const NUMBER_TYPES = ["LOCAL", "TOLL_FREE", "MOBILE"] as const;
export type NumberType = (typeof NUMBER_TYPES)[number];

/** Call statuses in the only order they may move: a call never goes back to an earlier rank. */
export const CALL_STATUS_RANK = {
  ringing: 0,
  in_progress: 1,
  completed: 2,
  failed: 2,
  abandoned: 2,
} as const;
export type CallStatus = keyof typeof CALL_STATUS_RANK;
export const CALL_STATUSES = Object.keys(CALL_STATUS_RANK) as CallStatus[];

/** What routing did with a call: sent an agent, refused it, or passed it to a phone number. */
export const CALL_OUTCOMES = ["dispatched", "rejected", "transferred"] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** Which policy decided a call's outcome; null (routed as usual) is not in the list. */
export const OUTCOME_REASONS = ["blocklist", "anonymous_blocked", "after_hours", "holiday", "over_capacity"] as const;
export type OutcomeReason = (typeof OUTCOME_REASONS)[number];

/**
 * What a policy does with a call it applies to (a schedule's after_hours, a cap's overflow):
 * dispatch another agent, transfer to a number (E.164), or reject. Checked by the admin API.
 */
export type PolicyAction = { action: "dispatch" | "transfer" | "reject"; agent_id?: string; transfer_to?: string };

/** Per-tenant or per-number limit of simultaneous calls; null is no limit. */
const maxConcurrentCalls = () => integer("max_concurrent_calls");
/** Custom values passed to the agent with each call (at most 4 KB, checked by the admin API). */
const variables = () => jsonb("variables").$type<Record<string, unknown>>().notNull().default({});

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} in (${values.map((v) => `'${v}'`).join(", ")})`);

export const tenants = pgTable(
  "tenants",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull().unique(),
    active: boolean("active").notNull().default(true),
    maxConcurrentCalls: maxConcurrentCalls(),
    overflow: jsonb("overflow").$type<PolicyAction>(),
    variables: variables(),
    createdAt: createdAt(),
  },
  (t) => [
    // Newest-first pages of the admin API.
    index("tenants_created_idx").on(t.createdAt, t.id),
    check("tenants_max_concurrent_calls_positive", sql`${t.maxConcurrentCalls} > 0`),
  ],
);

export const agents = pgTable(
  "agents",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** null: a system-wide agent any tenant's campaign may use. */
    tenantId: uuid("tenant_id").references(() => tenants.id),
    /**
     * The agent name LiveKit dispatches; the worker registers with the same `agentName`. LiveKit
     * knows one namespace of agent names per project, so names are unique across tenants: a
     * tenant's agent named like another tenant's would receive that tenant's callers.
     */
    name: text("name").notNull().unique("agents_name_key"),
    isDefault: boolean("is_default").notNull().default(false),
    active: boolean("active").notNull().default(true),
    description: text("description"),
    /** Free-form facts for operators and the agent's own configuration. */
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [
    // Keeps tenant_id a key column: the campaign trigger's FOR KEY SHARE then waits for an agent
    // moving to another tenant (0005). Names alone are unique, so this is not about names.
    unique("agents_id_tenant_key").on(t.id, t.tenantId),
    // An empty name is what LiveKit gives the implicit dispatch of a room without agents: no agent's.
    check("agents_name_not_empty", sql`${t.name} <> ''`),
    // At most one default agent per tenant.
    uniqueIndex("agents_one_default_per_tenant").on(t.tenantId).where(sql`${t.isDefault}`),
    // The system-wide fallback is configuration (SYSTEM_DEFAULT_AGENT), not a row.
    check("agents_default_has_tenant", sql`not ${t.isDefault} or ${t.tenantId} is not null`),
    // Newest-first pages of the admin API across tenants.
    index("agents_created_idx").on(t.createdAt, t.id),
  ],
);

/** A tenant's business hours; campaigns and phone numbers name one (the number's wins). */
export const schedules = pgTable(
  "schedules",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    /** IANA time zone the hours and holidays are in. */
    timeZone: text("time_zone").notNull(),
    /** mon..sun -> [{ open: "09:00", close: "17:00" }]; the shape is calls/model.ts WeeklyHours. */
    weeklyHours: jsonb("weekly_hours").$type<Record<string, { open: string; close: string }[]>>().notNull(),
    /** YYYY-MM-DD dates closed all day. */
    holidays: jsonb("holidays").$type<string[]>().notNull().default([]),
    /** What happens to a call while closed. */
    afterHours: jsonb("after_hours").$type<PolicyAction>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    unique("schedules_tenant_name_key").on(t.tenantId, t.name),
    // Target of the composite foreign keys that keep campaigns and numbers on their tenant's schedules.
    unique("schedules_id_tenant_key").on(t.id, t.tenantId),
    index("schedules_created_idx").on(t.createdAt, t.id),
  ],
);

/**
 * Callers refused before any agent starts: a whole number or a prefix ending in "*", in E.164.
 * tenant_id null: a global entry (admin keys only), applied to every tenant's calls.
 */
export const blocklistEntries = pgTable(
  "blocklist_entries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").references(() => tenants.id),
    pattern: text("pattern").notNull(),
    reason: text("reason"),
    createdAt: createdAt(),
  },
  (t) => [
    unique("blocklist_entries_tenant_pattern_key").on(t.tenantId, t.pattern).nullsNotDistinct(),
    index("blocklist_entries_created_idx").on(t.createdAt, t.id),
  ],
);

export const campaigns = pgTable(
  "campaigns",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    agentId: uuid("agent_id").references(() => agents.id),
    status: text("status").$type<CampaignStatus>().notNull().default("active"),
    scheduleId: uuid("schedule_id"),
    variables: variables(),
    createdAt: createdAt(),
    /**
     * Campaigns are deleted softly: their leads and call logs keep pointing at them. A deleted
     * campaign has no numbers and no agent, and its name can be taken again.
     */
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("campaigns_tenant_name_key").on(t.tenantId, t.name).where(sql`${t.deletedAt} is null`),
    // Target of the composite foreign keys that keep rows inside one tenant.
    unique("campaigns_id_tenant_key").on(t.id, t.tenantId),
    check("campaigns_status_check", inList("status", CAMPAIGN_STATUSES)),
    foreignKey({
      name: "campaigns_schedule_same_tenant_fk",
      columns: [t.scheduleId, t.tenantId],
      foreignColumns: [schedules.id, schedules.tenantId],
    }),
    // The campaigns of a schedule: a schedule's deletion looks them up (and its foreign key checks them).
    index("campaigns_schedule_idx").on(t.scheduleId),
    // Newest-first pages of the admin API across tenants (a tenant's few use campaigns_tenant_name_key).
    index("campaigns_created_idx").on(t.createdAt, t.id),
  ],
);

export const phoneNumbers = pgTable(
  "phone_numbers",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** E.164, the key every inbound call is looked up by. */
    e164: text("e164").notNull().unique(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    campaignId: uuid("campaign_id"),
    numberType: text("number_type").$type<NumberType>().notNull().default("LOCAL"),
    active: boolean("active").notNull().default(true),
    /** Reject callers who withhold their number. */
    blockAnonymous: boolean("block_anonymous").notNull().default(false),
    /** Business hours; wins over the campaign's. */
    scheduleId: uuid("schedule_id"),
    maxConcurrentCalls: maxConcurrentCalls(),
    overflow: jsonb("overflow").$type<PolicyAction>(),
    createdAt: createdAt(),
  },
  (t) => [
    // A number can only point at a campaign of its own tenant.
    foreignKey({
      name: "phone_numbers_campaign_same_tenant_fk",
      columns: [t.campaignId, t.tenantId],
      foreignColumns: [campaigns.id, campaigns.tenantId],
    }),
    check("phone_numbers_type_check", inList("number_type", NUMBER_TYPES)),
    check("phone_numbers_max_concurrent_calls_positive", sql`${t.maxConcurrentCalls} > 0`),
    foreignKey({
      name: "phone_numbers_schedule_same_tenant_fk",
      columns: [t.scheduleId, t.tenantId],
      foreignColumns: [schedules.id, schedules.tenantId],
    }),
    index("phone_numbers_schedule_idx").on(t.scheduleId),
    // Newest-first pages of the admin API, per tenant and across tenants; a campaign's numbers
    // (its list, and unlinking them when it is deleted).
    index("phone_numbers_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    index("phone_numbers_created_idx").on(t.createdAt, t.id),
    index("phone_numbers_campaign_idx").on(t.campaignId),
  ],
);

export const leads = pgTable(
  "leads",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    campaignId: uuid("campaign_id"),
    phoneNumber: text("phone_number").notNull(),
    name: text("name").notNull(),
    status: text("status").notNull().default("new"),
    email: text("email"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    lastCallAt: timestamp("last_call_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // One lead per caller per campaign (or per tenant when the number has no campaign);
    // concurrent calls from one caller meet here and become one row.
    unique("leads_caller_key").on(t.tenantId, t.campaignId, t.phoneNumber).nullsNotDistinct(),
    unique("leads_id_tenant_key").on(t.id, t.tenantId),
    // Newest-first pages of the admin API: per tenant, across tenants, per campaign; a caller's leads.
    index("leads_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    index("leads_created_idx").on(t.createdAt, t.id),
    index("leads_campaign_created_idx").on(t.campaignId, t.createdAt, t.id),
    index("leads_phone_number_idx").on(t.phoneNumber),
    foreignKey({
      name: "leads_campaign_same_tenant_fk",
      columns: [t.campaignId, t.tenantId],
      foreignColumns: [campaigns.id, campaigns.tenantId],
    }),
  ],
);

export const callLogs = pgTable(
  "call_logs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** The SIP provider's call id: the idempotency key of every webhook about this call. */
    providerCallId: text("provider_call_id").notNull().unique(),
    roomName: text("room_name"),
    /**
     * The sid (RM_...) of the room the caller joined. Room names are reused by later callers; the
     * sid is not, so agent joins and room_finished find their call by it.
     */
    roomSid: text("room_sid"),
    trunkId: text("trunk_id"),
    /** Caller in E.164; null when withheld or unparsable (the raw value is kept in from_raw). */
    fromNumber: text("from_number"),
    fromRaw: text("from_raw"),
    toNumber: text("to_number"),
    toRaw: text("to_raw"),
    tenantId: uuid("tenant_id").references(() => tenants.id),
    campaignId: uuid("campaign_id"),
    leadId: uuid("lead_id"),
    /**
     * The number dialed. Not tied to the number's current tenant: numbers can be reassigned, and
     * a call's history stays with the tenant that owned the number when it rang.
     */
    phoneNumberId: uuid("phone_number_id").references(() => phoneNumbers.id, { onDelete: "set null" }),
    /** The agent sent; null for a call rejected or transferred. */
    agentName: text("agent_name"),
    agentSource: text("agent_source").$type<AgentSource>(),
    outcome: text("outcome").$type<CallOutcome>().notNull().default("dispatched"),
    /** The policy behind the outcome; null when the call was routed as usual. */
    outcomeReason: text("outcome_reason").$type<OutcomeReason>(),
    /** Where a transferred call went (E.164). */
    transferTo: text("transfer_to"),
    status: text("status").$type<CallStatus>().notNull().default("ringing"),
    createdAt: createdAt(),
    /** When the SIP caller joined the room: the start of the billed duration. */
    callerJoinedAt: timestamp("caller_joined_at", { withTimezone: true }),
    answeredAt: timestamp("answered_at", { withTimezone: true }),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    durationMs: integer("duration_ms"),
    disconnectReason: text("disconnect_reason"),
    dispatchId: text("dispatch_id"),
    /** Set by the one webhook delivery allowed to create the dispatch; see claimDispatch. */
    dispatchClaimedAt: timestamp("dispatch_claimed_at", { withTimezone: true }),
    dispatchAttempts: integer("dispatch_attempts").notNull().default(0),
    dispatchError: text("dispatch_error"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    foreignKey({
      name: "call_logs_campaign_same_tenant_fk",
      columns: [t.campaignId, t.tenantId],
      foreignColumns: [campaigns.id, campaigns.tenantId],
    }),
    // Deleting a lead unlinks its calls. The migration limits SET NULL to lead_id (drizzle-kit
    // cannot say so): nulling tenant_id too would take the call away from its tenant.
    foreignKey({
      name: "call_logs_lead_same_tenant_fk",
      columns: [t.leadId, t.tenantId],
      foreignColumns: [leads.id, leads.tenantId],
    }).onDelete("set null"),
    // Composite keys are not checked when tenant_id is null, so a call without a tenant may
    // reference nothing that belongs to one.
    check(
      "call_logs_tenant_owned_refs",
      sql`${t.tenantId} is not null or (${t.campaignId} is null and ${t.leadId} is null and ${t.phoneNumberId} is null)`,
    ),
    check("call_logs_status_check", inList("status", CALL_STATUSES)),
    // Every later event of a call finds it by this id: an empty one would be shared by strangers.
    check("call_logs_provider_call_id_not_empty", sql`${t.providerCallId} <> ''`),
    check("call_logs_agent_source_check", inList("agent_source", AGENT_SOURCES)),
    check("call_logs_outcome_check", inList("outcome", CALL_OUTCOMES)),
    check("call_logs_outcome_reason_check", inList("outcome_reason", OUTCOME_REASONS)),
    // A dispatched call names its agent; a transferred one its destination.
    check("call_logs_dispatched_has_agent", sql`${t.outcome} <> 'dispatched' or (${t.agentName} is not null and ${t.agentSource} is not null)`),
    check("call_logs_transferred_has_destination", sql`${t.outcome} <> 'transferred' or ${t.transferTo} is not null`),
    // The calls holding a concurrency slot (routed as usual, not ended), counted per number and per tenant.
    index("call_logs_open_by_number_idx").on(t.phoneNumberId, t.createdAt).where(sql`${t.endedAt} is null and ${t.outcome} = 'dispatched' and ${t.outcomeReason} is null`),
    index("call_logs_open_by_tenant_idx").on(t.tenantId, t.createdAt).where(sql`${t.endedAt} is null and ${t.outcome} = 'dispatched' and ${t.outcomeReason} is null`),
    index("call_logs_outcome_created_idx").on(t.outcome, t.createdAt, t.id),
    index("call_logs_room_name_idx").on(t.roomName),
    index("call_logs_room_sid_idx").on(t.roomSid),
    // Newest-first pages of the admin API, per tenant and across tenants.
    index("call_logs_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    index("call_logs_created_idx").on(t.createdAt, t.id),
    // Newest-first pages for each filter of the admin list: without them a rare status (calls
    // still ringing) or one campaign's, lead's or number's calls meant reading the whole history.
    // lead_id's also serves deleting a lead (its calls are unlinked).
    index("call_logs_status_created_idx").on(t.status, t.createdAt, t.id),
    index("call_logs_campaign_created_idx").on(t.campaignId, t.createdAt, t.id),
    index("call_logs_lead_created_idx").on(t.leadId, t.createdAt, t.id),
    index("call_logs_from_created_idx").on(t.fromNumber, t.createdAt, t.id),
    index("call_logs_to_created_idx").on(t.toNumber, t.createdAt, t.id),
  ],
);

/**
 * Bearer keys for the admin API. Only a SHA-256 of the key is kept: keys are 256 random bits,
 * so a fast hash is as strong as a slow one and the lookup stays one indexed read.
 */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** null: an admin key (every tenant). */
    tenantId: uuid("tenant_id").references(() => tenants.id),
    label: text("label"),
    /** The first characters of the key, so people can tell their keys apart. */
    prefix: text("prefix").notNull(),
    keyHash: text("key_hash").notNull().unique(),
    createdAt: createdAt(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [
    // A presented key is found by its prefix, then its hash is compared in constant time.
    index("api_keys_prefix_idx").on(t.prefix),
    index("api_keys_tenant_created_idx").on(t.tenantId, t.createdAt),
  ],
);

/** LiveKit webhook deliveries already acted on, keyed by the event id (`EV_...`). */
export const webhookEvents = pgTable(
  "webhook_events",
  {
    id: text("id").primaryKey(),
    event: text("event").notNull(),
    /** What Switchboard made of it: caller_joined, agent_joined, caller_left or room_finished. */
    action: text("action"),
    /** When it happened (for a join, the participant's join time). */
    occurredAt: timestamp("occurred_at", { withTimezone: true }),
    roomName: text("room_name"),
    /** The room's sid (RM_...): room names can be reused, sids cannot. */
    roomSid: text("room_sid"),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    /** A delivery working on this event holds it until then; a stale hold is taken over. */
    claimedAt: timestamp("claimed_at", { withTimezone: true }).notNull().defaultNow(),
    /** Set once the event has been acted on; later deliveries are acknowledged and skipped. */
    processedAt: timestamp("processed_at", { withTimezone: true }),
  },
  (t) => [
    // What already happened in a room (finished, an agent joined) is looked up through this index.
    index("webhook_events_room_action_idx").on(t.roomSid, t.action),
    index("webhook_events_received_idx").on(t.receivedAt),
  ],
);

/** Where a tenant's systems want call and lead events, sent as Standard Webhooks (webhooks/). */
export const webhookEndpoints = pgTable(
  "webhook_endpoints",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    url: text("url").notNull(),
    /** The event types sent; empty: all of them. */
    events: text("events").array().notNull().default(sql`'{}'::text[]`),
    description: text("description"),
    enabled: boolean("enabled").notNull().default(true),
    /** whsec_ and base64 of 32 random bytes: the receiver needs it to verify, so it is kept as is. */
    secret: text("secret").notNull(),
    /** A rotated-out secret keeps signing, alongside the new one, until previous_secret_expires_at. */
    previousSecret: text("previous_secret"),
    previousSecretExpiresAt: timestamp("previous_secret_expires_at", { withTimezone: true }),
    /** Why the endpoint was switched off by Switchboard (410 Gone, failing too long); null when a person did. */
    disabledReason: text("disabled_reason"),
    /** The first failure since the last success: failing for WEBHOOK_DISABLE_AFTER disables the endpoint. */
    failingSince: timestamp("failing_since", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique("webhook_endpoints_id_tenant_key").on(t.id, t.tenantId),
    index("webhook_endpoints_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    index("webhook_endpoints_created_idx").on(t.createdAt, t.id),
    check("webhook_endpoints_url_http", sql`${t.url} ~ '^https?://'`),
  ],
);

/**
 * The outbox: one row per call or lead change some endpoint of its tenant wants to hear of,
 * written by triggers (migration 0012) in the transaction that made the change.
 */
export const outboxEvents = pgTable(
  "outbox_events",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenants.id),
    type: text("type").notNull(),
    /** The call log or lead the event is about: one subject's events reach an endpoint in order. */
    subject: uuid("subject").notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    /** The row as it was when the event happened (to_jsonb of the call log or lead). */
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("outbox_events_created_idx").on(t.createdAt)],
);

export const WEBHOOK_DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];

/** One event for one endpoint: its webhook-id is `msg_` and this id, the same on every attempt. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    eventId: bigint("event_id", { mode: "number" })
      .notNull()
      .references(() => outboxEvents.id, { onDelete: "cascade" }),
    endpointId: uuid("endpoint_id").notNull(),
    tenantId: uuid("tenant_id").notNull(),
    subject: uuid("subject").notNull(),
    status: text("status").$type<WebhookDeliveryStatus>().notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    /** A worker sending it holds it until then; one that died is taken over after. */
    leasedUntil: timestamp("leased_until", { withTimezone: true }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    lastLatencyMs: integer("last_latency_ms"),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    foreignKey({
      name: "webhook_deliveries_endpoint_same_tenant_fk",
      columns: [t.endpointId, t.tenantId],
      foreignColumns: [webhookEndpoints.id, webhookEndpoints.tenantId],
    }).onDelete("cascade"),
    check("webhook_deliveries_status_check", inList("status", WEBHOOK_DELIVERY_STATUSES)),
    // What the workers claim: due and pending.
    index("webhook_deliveries_due_idx").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // An earlier pending event of the same subject for the same endpoint holds a later one back.
    index("webhook_deliveries_order_idx").on(t.endpointId, t.subject, t.eventId).where(sql`${t.status} = 'pending'`),
    index("webhook_deliveries_endpoint_created_idx").on(t.endpointId, t.createdAt, t.id),
    index("webhook_deliveries_created_idx").on(t.createdAt),
    // Deleting an old event (30 days) finds its deliveries.
    index("webhook_deliveries_event_idx").on(t.eventId),
  ],
);

/** Each try of a delivery, kept 30 days with it. */
export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: uuid("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    attemptedAt: timestamp("attempted_at", { withTimezone: true }).notNull().defaultNow(),
    /** The receiver's answer; null when there was none (refused target, timeout, connection error). */
    statusCode: integer("status_code"),
    latencyMs: integer("latency_ms").notNull(),
    error: text("error"),
  },
  (t) => [index("webhook_attempts_delivery_idx").on(t.deliveryId, t.attempt)],
);
