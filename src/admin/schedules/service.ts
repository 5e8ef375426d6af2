// Schedules: a tenant's business hours, named by its campaigns and numbers (the number's wins).
// What the model's shape cannot check (the zone, the order of the hours, the holidays' dates) is
// checked here with the rules routing reads them by (calls/schedule.ts).
import { and, eq } from "drizzle-orm";
import { scheduleProblems } from "../../calls/schedule";
import type { Drizzle } from "../../db/client";
import { constraintViolation } from "../../db/errors";
import { campaigns, phoneNumbers, schedules } from "../../db/schema";
import { AppError, ConflictError } from "../../errors";
import type { AdminDeps } from "../context";
import type { Principal } from "../keys";
import { filter, listPage } from "../pages";
import { policyActionOf } from "../policies";
import { Schedule, type ScheduleCreate, type ScheduleQuery, type ScheduleUpdate } from "../policy-model";
import { found, updateOrRead, viewOf } from "../rows";
import { tenantForCreate, visible } from "../scope";

const scheduleView = viewOf(Schedule);

const scheduleTarget = (principal: Principal, id: string) => and(eq(schedules.id, id), visible(principal, schedules.tenantId));

/**
 * Each problem concerns one field alone, so the fields a PATCH leaves out are stood in for by
 * sound values (UTC, no hours, no holidays). Every problem is in details; the first is the message.
 */
function assertSoundHours(body: typeof ScheduleUpdate.static) {
  const problems = scheduleProblems({
    time_zone: body.time_zone ?? "UTC",
    weekly_hours: body.weekly_hours ?? {},
    holidays: body.holidays ?? [],
  });
  const [first] = problems;
  if (!first) return;
  throw new AppError(400, "invalid_request", `${first.field}: ${first.message}`, first.field, {
    problems: problems.map((p) => ({ field: p.field, message: p.message })),
  });
}

export const listSchedules = (db: Drizzle, principal: Principal, query: typeof ScheduleQuery.static) =>
  listPage(
    db,
    schedules,
    [visible(principal, schedules.tenantId), filter(schedules.tenantId, query.tenant_id), filter(schedules.name, query.name)],
    query,
    scheduleView,
  );

export async function getSchedule(db: Drizzle, principal: Principal, id: string) {
  return scheduleView(found(await db.select().from(schedules).where(scheduleTarget(principal, id)), "schedule", id));
}

export async function createSchedule(deps: AdminDeps, principal: Principal, body: typeof ScheduleCreate.static) {
  const tenantId = tenantForCreate(principal, body.tenant_id)!;
  assertSoundHours(body);
  return deps.database.db
    .transaction(async (tx) => {
      const afterHours = await policyActionOf(tx, body.after_hours, { tenantId, field: "after_hours", region: deps.region });
      const [row] = await tx
        .insert(schedules)
        .values({
          tenantId,
          name: body.name,
          timeZone: body.time_zone,
          weeklyHours: body.weekly_hours,
          holidays: body.holidays ?? [],
          afterHours,
        })
        .returning();
      return scheduleView(row!);
    });
}

export async function updateSchedule(deps: AdminDeps, principal: Principal, id: string, body: typeof ScheduleUpdate.static) {
  assertSoundHours(body);
  return deps.database.db
    .transaction(async (tx) => {
      const target = scheduleTarget(principal, id);
      let afterHours;
      if (body.after_hours !== undefined) {
        // The agent is checked against the schedule's tenant (schedules never move tenant).
        const [schedule] = await tx.select({ tenantId: schedules.tenantId }).from(schedules).where(target);
        const { tenantId } = found(schedule ? [schedule] : [], "schedule", id);
        afterHours = await policyActionOf(tx, body.after_hours, { tenantId, field: "after_hours", region: deps.region });
      }
      const set = {
        name: body.name,
        timeZone: body.time_zone,
        weeklyHours: body.weekly_hours,
        holidays: body.holidays,
        afterHours,
      };
      return scheduleView(found(await updateOrRead(tx, schedules, set, target), "schedule", id));
    });
}

/**
 * Refused (409) while a campaign or a number names the schedule, listing them in details:
 * deleting it would silently change when their calls are answered. (A deleted campaign has let
 * go of its schedule: see deleteCampaign.)
 */
export async function deleteSchedule(db: Drizzle, principal: Principal, id: string) {
  try {
    await db.transaction(async (tx) => {
      const target = scheduleTarget(principal, id);
      // Locked: a campaign or number taking the schedule up now waits, then fails its foreign key.
      found(await tx.select({ id: schedules.id }).from(schedules).where(target).for("update"), "schedule", id);
      await assertUnused(tx, id);
      await tx.delete(schedules).where(target);
    });
  } catch (error) {
    // Backstop for a row that took the schedule up before the lock and is seen only by the delete.
    const violation = constraintViolation(error);
    if (violation?.kind !== "reference") throw error;
    const user = violation.constraint?.startsWith("campaigns_") ? "a campaign" : "a phone number";
    throw new ConflictError(`schedule ${id} is in use by ${user}; set its schedule_id to another schedule or null first`);
  }
}

async function assertUnused(tx: Drizzle, id: string) {
  const usingCampaigns = await tx.select({ id: campaigns.id }).from(campaigns).where(eq(campaigns.scheduleId, id));
  const usingNumbers = await tx.select({ id: phoneNumbers.id }).from(phoneNumbers).where(eq(phoneNumbers.scheduleId, id));
  if (usingCampaigns.length === 0 && usingNumbers.length === 0) return;
  const users = [
    usingCampaigns.length ? `${usingCampaigns.length} campaign(s)` : undefined,
    usingNumbers.length ? `${usingNumbers.length} phone number(s)` : undefined,
  ].filter(Boolean);
  throw new ConflictError(
    `schedule ${id} is used by ${users.join(" and ")}; set their schedule_id to another schedule or null first`,
    undefined,
    { campaign_ids: usingCampaigns.map((c) => c.id), phone_number_ids: usingNumbers.map((n) => n.id) },
  );
}
