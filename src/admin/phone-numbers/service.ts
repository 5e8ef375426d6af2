// Phone numbers: a tenant's, stored as E.164 whatever shape they were written in.
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { numberTypeOf } from "../../calls/phone";
import type { Drizzle } from "../../db/client";
import { type PolicyAction, phoneNumbers } from "../../db/schema";
import type { AdminDeps } from "../context";
import { e164Of, phoneFilter } from "../input";
import type { Principal } from "../keys";
import { PhoneNumber, type PhoneNumberCreate, type PhoneNumberQuery, type PhoneNumberUpdate } from "../model";
import { filter, listPage } from "../pages";
import { policyActionOf } from "../policies";
import { found, updateOrRead, viewOf } from "../rows";
import { assertMayMoveTo, tenantForCreate, visible } from "../scope";

const numberView = viewOf(PhoneNumber, { number: "e164", type: "numberType", is_active: "active" });

const numberTarget = (principal: Principal, id: string) =>
  and(eq(phoneNumbers.id, id), visible(principal, phoneNumbers.tenantId));

export const listPhoneNumbers = (deps: AdminDeps, principal: Principal, query: typeof PhoneNumberQuery.static) =>
  listPage(
    deps.database.db,
    phoneNumbers,
    [
      visible(principal, phoneNumbers.tenantId),
      filter(phoneNumbers.tenantId, query.tenant_id),
      filter(phoneNumbers.campaignId, query.campaign_id),
      filter(phoneNumbers.active, query.is_active),
      phoneFilter(phoneNumbers.e164, query.number, "number", deps.region),
    ],
    query,
    numberView,
  );

export async function getPhoneNumber(db: Drizzle, principal: Principal, id: string) {
  return numberView(found(await db.select().from(phoneNumbers).where(numberTarget(principal, id)), "phone number", id));
}

/**
 * The overflow as stored: null clears it, undefined leaves it, an action is checked against the
 * agents of the number's tenant (asked for only then).
 */
async function overflowOf(
  tx: Drizzle,
  deps: AdminDeps,
  tenantOf: () => Promise<string>,
  overflow: typeof PhoneNumberUpdate.static.overflow,
) {
  if (!overflow) return overflow;
  return policyActionOf(tx, overflow, { tenantId: await tenantOf(), field: "overflow", region: deps.region });
}

export async function createPhoneNumber(deps: AdminDeps, principal: Principal, body: typeof PhoneNumberCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const e164 = e164Of(body.number, deps.region);
  return deps.database.db
    .transaction(async (tx) => {
      const [row] = await tx
        .insert(phoneNumbers)
        .values({
          e164,
          tenantId,
          campaignId: body.campaign_id ?? null,
          numberType: body.type ?? numberTypeOf(e164),
          active: body.is_active ?? true,
          blockAnonymous: body.block_anonymous ?? false,
          scheduleId: body.schedule_id ?? null,
          maxConcurrentCalls: body.max_concurrent_calls ?? null,
          overflow: (await overflowOf(tx, deps, async () => tenantId, body.overflow)) ?? null,
        })
        .returning();
      return numberView(row!);
    });
}

export async function updatePhoneNumber(
  deps: AdminDeps,
  principal: Principal,
  id: string,
  body: typeof PhoneNumberUpdate.static,
) {
  assertMayMoveTo(principal, body.tenant_id);
  const number = body.number === undefined ? undefined : e164Of(body.number, deps.region);
  return deps.database.db
    .transaction(async (tx) => {
      const target = numberTarget(principal, id);
      const tenantOf = async () => body.tenant_id ?? (await currentTenant(tx, target, id));
      const set = {
        e164: number,
        tenantId: body.tenant_id,
        campaignId: keptOnMove(phoneNumbers.campaignId, body.tenant_id, body.campaign_id),
        scheduleId: keptOnMove(phoneNumbers.scheduleId, body.tenant_id, body.schedule_id),
        numberType: body.type,
        active: body.is_active,
        blockAnonymous: body.block_anonymous,
        maxConcurrentCalls: body.max_concurrent_calls,
        overflow: body.overflow !== undefined ? await overflowOf(tx, deps, tenantOf, body.overflow) : overflowOnMove(body.tenant_id),
      };
      return numberView(found(await updateOrRead(tx, phoneNumbers, set, target), "phone number", id));
    });
}

/**
 * The tenant of the number the request names (a 404 when the caller's scope does not reach it),
 * locked so that it cannot move before the write its agent check is for.
 */
async function currentTenant(tx: Drizzle, target: SQL | undefined, id: string): Promise<string> {
  const rows = await tx.select({ tenantId: phoneNumbers.tenantId }).from(phoneNumbers).where(target).for("update");
  return found(rows, "phone number", id).tenantId;
}

/**
 * A number moving tenant cannot keep a campaign or a schedule of the tenant it leaves: unless the
 * body sets one, it is kept only when the "move" is to the tenant the number already has.
 */
function keptOnMove(column: PgColumn, tenantId: string | undefined, given: string | null | undefined) {
  if (given !== undefined || tenantId === undefined) return given;
  return sql`case when ${phoneNumbers.tenantId} = ${tenantId}::uuid then ${column} end`;
}

/**
 * A number moving tenant keeps its overflow unless it dispatches to an agent the new tenant may
 * not use (one of the tenant it leaves): that would send the new tenant's callers to it.
 */
function overflowOnMove(tenantId: string | undefined): SQL<PolicyAction | null> | undefined {
  if (tenantId === undefined) return undefined;
  return sql`case
    when ${phoneNumbers.tenantId} = ${tenantId}::uuid or ${phoneNumbers.overflow}->>'action' is distinct from 'dispatch'
      or exists (select 1 from agents a where a.id::text = ${phoneNumbers.overflow}->>'agent_id'
        and (a.tenant_id is null or a.tenant_id = ${tenantId}::uuid))
    then ${phoneNumbers.overflow} end`;
}

/** Past calls keep the number they dialed (to_number); their link to the row is cleared by the database. */
export async function deletePhoneNumber(db: Drizzle, principal: Principal, id: string) {
  const rows = await db.delete(phoneNumbers).where(numberTarget(principal, id)).returning({ id: phoneNumbers.id });
  found(rows, "phone number", id);
}
