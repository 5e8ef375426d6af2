// The routing decision and the call record. Every entry point (sip-inbound, the LiveKit
// participant_joined webhook, the test endpoint) routes through routeInboundCall.
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { type AgentSource, CALL_STATUS_RANK, type CallStatus } from "../db/schema";
import { withDeadline } from "../errors";
import type { Logger } from "../logger";
import { normalizePhoneNumber } from "./phone";

export interface RoutingSettings {
  systemDefaultAgent: string;
  defaultRegion: string;
  /** Budget for all database work while the caller waits. */
  statementTimeoutMs: number;
}

export interface RoutingDeps {
  database: Database;
  settings: RoutingSettings;
  logger: Logger;
}

export interface InboundCall {
  callId: string;
  from?: string | null;
  to?: string | null;
  trunkId?: string | null;
  roomName?: string | null;
  /** The room's unique id (LiveKit's RM_...), when known; room names are reused, sids are not. */
  roomSid?: string | null;
  /** Where the call was first seen (sip-inbound, livekit, test); kept in the call log's metadata. */
  source: string;
  /** Extra facts worth keeping with the call (SIP attributes, provider ids). */
  details?: Record<string, unknown>;
}

/** Who answers the call and which records it belongs to. */
export interface CallRouting {
  callId: string;
  agentName: string;
  agentSource: AgentSource;
  callLogId: string | null;
  leadId: string | null;
  tenantId: string | null;
  campaignId: string | null;
  phoneNumberId: string | null;
  fromNumber: string | null;
  toNumber: string | null;
  /** False when the database could not record the call (the caller was still answered). */
  recorded: boolean;
  /** Why the call could not be recorded, when it could not. */
  recordError?: unknown;
  /** True when this call id had been routed before and the stored decision was returned. */
  replayed: boolean;
}

/** The directory facts the decision needs, as read in one query. */
export interface DirectoryEntry {
  phoneNumberId: string | null;
  tenantId: string | null;
  campaignId: string | null;
  campaignActive: boolean;
  campaignAgent: string | null;
  tenantDefaultAgent: string | null;
}

/** The routing rule: the campaign's agent, else the tenant's default, else the system default. */
export function chooseAgent(entry: DirectoryEntry | null, systemDefaultAgent: string) {
  if (entry?.campaignActive && entry.campaignAgent) {
    return { agentName: entry.campaignAgent, agentSource: "campaign" as const };
  }
  if (entry?.tenantDefaultAgent) {
    return { agentName: entry.tenantDefaultAgent, agentSource: "tenant_default" as const };
  }
  return { agentName: systemDefaultAgent, agentSource: "system_default" as const };
}

type StoredCall = {
  call_log_id: string;
  lead_id: string | null;
  tenant_id: string | null;
  campaign_id: string | null;
  phone_number_id: string | null;
  agent_name: string;
  agent_source: AgentSource;
  from_number: string | null;
  to_number: string | null;
};

type LookupRow = Partial<StoredCall> & {
  number_id: string | null;
  number_tenant_id: string | null;
  number_campaign_id: string | null;
  campaign_active: boolean | null;
  campaign_agent: string | null;
  tenant_default_agent: string | null;
};

/**
 * Decides who answers an inbound call, creates or refreshes the caller's lead and records
 * the call, in at most two statements. A call id seen before gets its stored decision back
 * and nothing is written. When the database fails or is slower than the statement timeout,
 * the caller still gets an agent: bookkeeping never fails a call.
 */
export async function routeInboundCall(deps: RoutingDeps, call: InboundCall): Promise<CallRouting> {
  const { settings, logger } = deps;
  const fromNumber = normalizePhoneNumber(call.from, settings.defaultRegion);
  const toNumber = normalizePhoneNumber(call.to, settings.defaultRegion);
  let decided: Pick<CallRouting, "agentName" | "agentSource"> & Partial<CallRouting> = chooseAgent(
    null,
    settings.systemDefaultAgent,
  );
  const started = performance.now();
  let expired = false;
  try {
    const routing = await withDeadline(
      (async () => {
        const row = await lookUpCall(deps.database, call.callId, toNumber);
        if (row.call_log_id) return fromStored(call.callId, row as StoredCall, true);
        // Past the deadline the caller already got the fallback agent; a record naming another would lie.
        if (expired) throw new Error("directory read finished after the deadline");
        const entry = directoryEntry(row);
        decided = { ...chooseAgent(entry, settings.systemDefaultAgent), ...ids(entry) };
        const stored = await recordNewCall(deps.database, call, { fromNumber, toNumber, entry, decided });
        return fromStored(call.callId, stored.row, !stored.inserted);
      })(),
      settings.statementTimeoutMs,
      "routing database work",
    );
    logger.info(
      { ...logFields(routing), source: call.source, room: call.roomName ?? null, ms: elapsed(started) },
      routing.replayed ? "call routed again (stored decision)" : "call routed",
    );
    return routing;
  } catch (error) {
    expired = true;
    // The caller is answered with what we know: the decided agent if the directory was
    // read, else the system default. The log line keeps everything needed to rebuild the record.
    const routing: CallRouting = {
      callId: call.callId,
      callLogId: null,
      leadId: null,
      tenantId: null,
      campaignId: null,
      phoneNumberId: null,
      ...decided,
      fromNumber,
      toNumber,
      recorded: false,
      recordError: error,
      replayed: false,
    };
    logger.error(
      {
        ...logFields(routing),
        source: call.source,
        room: call.roomName ?? null,
        trunk: call.trunkId ?? null,
        err: error,
        ms: elapsed(started),
      },
      "call routed without a record: database unavailable",
    );
    return routing;
  }
}

/** The JSON the agent receives as job metadata, from sip-inbound and from LiveKit dispatch alike. */
export function callMetadata(routing: CallRouting): Record<string, string | null> {
  return {
    call_type: "inbound",
    phone_number_id: routing.phoneNumberId,
    tenant_id: routing.tenantId,
    campaign_id: routing.campaignId,
    lead_id: routing.leadId,
    call_log_id: routing.callLogId,
    from_number: routing.fromNumber,
    to_number: routing.toNumber,
    agent_source: routing.agentSource,
  };
}

/** One read: the stored decision if the call id is known, else the dialed number's directory entry. */
async function lookUpCall(database: Database, callId: string, toNumber: string | null): Promise<LookupRow> {
  const rows = await database.rows<LookupRow>(sql`
    select cl.id as call_log_id, cl.lead_id, cl.tenant_id, cl.campaign_id, cl.phone_number_id,
           cl.agent_name, cl.agent_source, cl.from_number, cl.to_number,
           pn.id as number_id, t.id as number_tenant_id, pn.campaign_id as number_campaign_id,
           c.status = 'active' as campaign_active,
           case when ca.active then ca.name end as campaign_agent,
           td.name as tenant_default_agent
    from (select 1) as one
    left join call_logs cl on cl.provider_call_id = ${callId}
    left join phone_numbers pn on cl.id is null and pn.e164 = ${toNumber} and pn.active
    left join tenants t on t.id = pn.tenant_id and t.active
    left join campaigns c on c.id = pn.campaign_id and t.id is not null
    left join agents ca on ca.id = c.agent_id
    left join agents td on td.tenant_id = t.id and td.is_default and td.active`);
  return rows[0] as LookupRow;
}

function directoryEntry(row: LookupRow): DirectoryEntry | null {
  // A number of an inactive tenant is treated like an unknown number.
  if (!row.number_id || !row.number_tenant_id) return null;
  return {
    phoneNumberId: row.number_id,
    tenantId: row.number_tenant_id,
    campaignId: row.number_campaign_id,
    campaignActive: row.campaign_active === true,
    campaignAgent: row.campaign_agent,
    tenantDefaultAgent: row.tenant_default_agent,
  };
}

function ids(entry: DirectoryEntry | null) {
  return {
    tenantId: entry?.tenantId ?? null,
    campaignId: entry?.campaignId ?? null,
    phoneNumberId: entry?.phoneNumberId ?? null,
  };
}

/**
 * One statement: upsert the caller's lead (when the caller and the tenant are known) and
 * insert the call log. The unique keys make concurrent calls from one caller meet on one
 * lead, and concurrent deliveries of one call id meet on one call log.
 */
async function recordNewCall(
  database: Database,
  call: InboundCall,
  facts: {
    fromNumber: string | null;
    toNumber: string | null;
    entry: DirectoryEntry | null;
    decided: Pick<CallRouting, "agentName" | "agentSource">;
  },
): Promise<{ row: StoredCall; inserted: boolean }> {
  const { fromNumber, toNumber, entry, decided } = facts;
  const tenantId = entry?.tenantId ?? null;
  const campaignId = entry?.campaignId ?? null;
  const metadata = JSON.stringify({ source: call.source, ...call.details });
  const inserted = await database.rows<StoredCall>(sql`
    with lead as (
      insert into leads (tenant_id, campaign_id, phone_number, name, status, last_call_at)
      select ${tenantId}::uuid, ${campaignId}::uuid, ${fromNumber}::text, 'Inbound Caller ' || ${fromNumber}::text, 'calling', now()
      where ${tenantId}::uuid is not null and ${fromNumber}::text is not null
      on conflict (tenant_id, campaign_id, phone_number)
      do update set status = 'calling', last_call_at = excluded.last_call_at, updated_at = now()
      returning id
    )
    insert into call_logs (provider_call_id, room_name, room_sid, trunk_id, from_number, from_raw, to_number, to_raw,
                           tenant_id, campaign_id, lead_id, phone_number_id, agent_name, agent_source, metadata)
    values (${call.callId}, ${call.roomName ?? null}, ${call.roomSid ?? null}, ${call.trunkId ?? null}, ${fromNumber}, ${call.from ?? null},
            ${toNumber}, ${call.to ?? null}, ${tenantId}::uuid, ${campaignId}::uuid, (select id from lead),
            ${entry?.phoneNumberId ?? null}::uuid, ${decided.agentName}, ${decided.agentSource}, ${metadata}::jsonb)
    on conflict (provider_call_id) do nothing
    returning id as call_log_id, lead_id, tenant_id, campaign_id, phone_number_id,
              agent_name, agent_source, from_number, to_number`);
  if (inserted[0]) return { row: inserted[0], inserted: true };
  // Another delivery of the same call id inserted first; its decision is the one that stands.
  const existing = await database.rows<StoredCall>(sql`
    select id as call_log_id, lead_id, tenant_id, campaign_id, phone_number_id,
           agent_name, agent_source, from_number, to_number
    from call_logs where provider_call_id = ${call.callId}`);
  if (!existing[0]) throw new Error(`call log for ${call.callId} vanished`);
  return { row: existing[0], inserted: false };
}

function fromStored(callId: string, row: StoredCall, replayed: boolean): CallRouting {
  return {
    callId,
    agentName: row.agent_name,
    agentSource: row.agent_source,
    callLogId: row.call_log_id,
    leadId: row.lead_id,
    tenantId: row.tenant_id,
    campaignId: row.campaign_id,
    phoneNumberId: row.phone_number_id,
    fromNumber: row.from_number,
    toNumber: row.to_number,
    recorded: true,
    replayed,
  };
}

function logFields(routing: CallRouting) {
  return {
    call_id: routing.callId,
    from: routing.fromNumber,
    to: routing.toNumber,
    tenant: routing.tenantId,
    campaign: routing.campaignId,
    agent: routing.agentName,
    decision: routing.agentSource,
    call_log_id: routing.callLogId,
    lead_id: routing.leadId,
  };
}

function elapsed(started: number) {
  return Math.round((performance.now() - started) * 10) / 10;
}

/** A room as events name it: by its sid when they carry one, else by its (reusable) name. */
export interface RoomRef {
  name: string;
  sid: string | null;
}

/** The calls of this room and no other: by sid, so a later room of the same name is not matched. */
const inRoom = (room: RoomRef) => (room.sid ? sql`room_sid = ${room.sid}` : sql`room_name = ${room.name}`);

/**
 * The caller is in the call's room: remember when (the start of its duration) and which room.
 * First values win, so a repeated or late event changes nothing.
 */
export async function recordCallerJoined(
  database: Database,
  call: { callId: string; room: RoomRef; joinedAt: Date },
): Promise<void> {
  await database.rows(sql`
    update call_logs
    set caller_joined_at = coalesce(caller_joined_at, ${call.joinedAt.toISOString()}::timestamptz),
        room_name = coalesce(room_name, ${call.room.name || null}),
        room_sid = coalesce(room_sid, ${call.room.sid}),
        updated_at = now()
    where provider_call_id = ${call.callId}
    returning id`);
}

/** An agent is in the room: the ringing call there is answered. Status only moves forward. */
export async function recordCallAnswered(
  database: Database,
  answer: { room: RoomRef; answeredAt: Date; agentIdentity?: string },
): Promise<number> {
  const rows = await database.rows<{ id: string }>(sql`
    update call_logs
    set status = 'in_progress',
        answered_at = coalesce(answered_at, ${answer.answeredAt.toISOString()}::timestamptz),
        metadata = metadata || jsonb_build_object('answered_by', ${answer.agentIdentity ?? null}::text),
        updated_at = now()
    where ${inRoom(answer.room)} and status = 'ringing'
    returning id`);
  return rows.length;
}

export interface CallEnd {
  /** End the call with this provider id, or every unfinished call in this room. */
  callId?: string;
  room?: RoomRef;
  endedAt: Date;
  /** When the caller joined, if the ending event knows it better than the record does. */
  joinedAt?: Date | null;
  disconnectReason: string;
  /** Final status when no agent ever answered: abandoned (caller hung up) or failed. */
  unansweredStatus: "abandoned" | "failed";
}

/**
 * Closes calls: ended time, duration from the caller's join, reason and final status
 * (completed when an agent answered), and moves the caller's lead on, in one statement.
 * Calls already ended are left alone, so repeated and late events change nothing.
 */
export async function recordCallEnded(database: Database, end: CallEnd): Promise<{ id: string; status: string }[]> {
  if (!end.callId && !end.room) throw new Error("recordCallEnded needs a callId or a room");
  const endedAt = end.endedAt.toISOString();
  const joinedAt = end.joinedAt ? end.joinedAt.toISOString() : null;
  const which = end.callId ? sql`provider_call_id = ${end.callId}` : inRoom(end.room!);
  return database.rows<{ id: string; status: string }>(sql`
    with ended as (
      update call_logs
      set ended_at = ${endedAt}::timestamptz,
          caller_joined_at = coalesce(caller_joined_at, ${joinedAt}::timestamptz),
          -- Negative (events out of order) is 0; beyond a week is no call's duration: left unknown.
          duration_ms = (select case when d <= 604800000 then greatest(0, d)::int end
                         from (select round(extract(epoch from (${endedAt}::timestamptz
                                 - coalesce(caller_joined_at, ${joinedAt}::timestamptz))) * 1000) as d) as span),
          disconnect_reason = ${end.disconnectReason},
          status = case when answered_at is not null then 'completed' else ${end.unansweredStatus} end,
          updated_at = now()
      where ${which} and ended_at is null
      returning id, lead_id, status, ended_at
    ), lead_moved as (
      update leads
      set status = case when ended.status = 'completed' then 'contacted' else 'missed' end,
          last_call_at = greatest(leads.last_call_at, ended.ended_at),
          updated_at = now()
      from ended
      where leads.id = ended.lead_id
      returning leads.id
    )
    select id, status from ended`);
}

/** A status's place in the only order calls move through, as SQL over the status column. */
const statusRank = sql.raw(
  `case status ${Object.entries(CALL_STATUS_RANK)
    .map(([status, rank]) => `when '${status}' then ${rank}`)
    .join(" ")} end`,
);

/**
 * A person's correction of a call's status, held to the webhooks' rule: forward only (a final
 * status is final). Returns false when the call is already at or past that point.
 */
export async function correctCallStatus(
  database: Database,
  fix: { id: string; status: CallStatus; /** Only a call of this tenant. */ tenantId?: string },
): Promise<boolean> {
  const rank = CALL_STATUS_RANK[fix.status];
  const final = rank === CALL_STATUS_RANK.completed;
  const rows = await database.rows(sql`
    update call_logs
    set status = ${fix.status},
        answered_at = case when ${fix.status} = 'in_progress' then coalesce(answered_at, now()) else answered_at end,
        ended_at = case when ${final} then coalesce(ended_at, now()) else ended_at end,
        updated_at = now()
    where id = ${fix.id} and ${statusRank} < ${rank}
      and (${fix.tenantId ?? null}::uuid is null or tenant_id = ${fix.tenantId ?? null}::uuid)
    returning id`);
  return rows.length > 0;
}
