// Phone numbers: a tenant's, stored as E.164 whatever shape they were written in.
import { and, eq, sql } from "drizzle-orm";
import { numberTypeOf } from "../../calls/phone";
import type { Drizzle } from "../../db/client";
import { phoneNumbers } from "../../db/schema";
import type { AdminDeps } from "../context";
import { e164Of, phoneFilter } from "../input";
import type { Principal } from "../keys";
import { PhoneNumber, type PhoneNumberCreate, type PhoneNumberQuery, type PhoneNumberUpdate } from "../model";
import { filter, listPage } from "../pages";
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

export async function createPhoneNumber(deps: AdminDeps, principal: Principal, body: typeof PhoneNumberCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  const e164 = e164Of(body.number, deps.region);
  const [row] = await deps.database.db
    .insert(phoneNumbers)
    .values({
      e164,
      tenantId,
      campaignId: body.campaign_id ?? null,
      numberType: body.type ?? numberTypeOf(e164),
      active: body.is_active ?? true,
    })
    .returning();
  return numberView(row!);
}

export async function updatePhoneNumber(
  deps: AdminDeps,
  principal: Principal,
  id: string,
  body: typeof PhoneNumberUpdate.static,
) {
  assertMayMoveTo(principal, body.tenant_id);
  const set = {
    e164: body.number === undefined ? undefined : e164Of(body.number, deps.region),
    tenantId: body.tenant_id,
    // A number moving tenant cannot keep a campaign of the tenant it leaves.
    campaignId:
      body.campaign_id !== undefined
        ? body.campaign_id
        : body.tenant_id !== undefined
          ? sql`case when ${phoneNumbers.tenantId} = ${body.tenant_id}::uuid then ${phoneNumbers.campaignId} end`
          : undefined,
    numberType: body.type,
    active: body.is_active,
  };
  const rows = await updateOrRead(deps.database.db, phoneNumbers, set, numberTarget(principal, id));
  return numberView(found(rows, "phone number", id));
}

/** Past calls keep the number they dialed (to_number); their link to the row is cleared by the database. */
export async function deletePhoneNumber(db: Drizzle, principal: Principal, id: string) {
  const rows = await db.delete(phoneNumbers).where(numberTarget(principal, id)).returning({ id: phoneNumbers.id });
  found(rows, "phone number", id);
}
