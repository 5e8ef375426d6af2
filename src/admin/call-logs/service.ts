// Call logs: written by calls and LiveKit's events; here they are read, and a status fixed.
import { and, eq, gte, lt, sql } from "drizzle-orm";
import { correctCallStatus } from "../../calls/lifecycle";
import type { Drizzle } from "../../db/client";
import { type CallStatus, callLogs } from "../../db/schema";
import { ConflictError } from "../../errors";
import type { AdminDeps } from "../context";
import { phoneFilter, timeParam } from "../input";
import type { Principal } from "../keys";
import { CallLog, type CallLogQuery } from "../model";
import { filter, listPage } from "../pages";
import { found, viewOf } from "../rows";
import { visible } from "../scope";

const callLogView = viewOf(CallLog);

export const listCallLogs = (deps: AdminDeps, principal: Principal, query: typeof CallLogQuery.static) =>
  listPage(
    deps.database.db,
    callLogs,
    [
      visible(principal, callLogs.tenantId),
      filter(callLogs.tenantId, query.tenant_id),
      filter(callLogs.campaignId, query.campaign_id),
      filter(callLogs.leadId, query.lead_id),
      filter(callLogs.status, query.status),
      filter(callLogs.outcome, query.outcome),
      filter(callLogs.outcomeReason, query.outcome_reason),
      phoneFilter(callLogs.fromNumber, query.from_number, "from_number", deps.region),
      phoneFilter(callLogs.toNumber, query.to_number, "to_number", deps.region),
      query.since ? gte(callLogs.createdAt, sql`${timeParam(query.since, "since")}::timestamptz`) : undefined,
      query.until ? lt(callLogs.createdAt, sql`${timeParam(query.until, "until")}::timestamptz`) : undefined,
    ],
    query,
    callLogView,
  );

export async function getCallLog(db: Drizzle, principal: Principal, by: { id: string } | { providerCallId: string }) {
  const key = "id" in by ? eq(callLogs.id, by.id) : eq(callLogs.providerCallId, by.providerCallId);
  const rows = await db
    .select()
    .from(callLogs)
    .where(and(key, visible(principal, callLogs.tenantId)));
  return callLogView(found(rows, "call log", "id" in by ? by.id : by.providerCallId));
}

/** A person fixing a call's status follows the rule webhooks follow: forward only. */
export async function updateCallLogStatus(deps: AdminDeps, principal: Principal, id: string, status: CallStatus) {
  const tenantId = principal.kind === "tenant" ? principal.tenantId : undefined;
  const moved = await correctCallStatus(deps.database, { id, status, tenantId });
  const call = await getCallLog(deps.database.db, principal, { id });
  if (!moved && call.status !== status) {
    throw new ConflictError(`status: a call cannot move from ${call.status} to ${status}`, "status");
  }
  return call;
}
