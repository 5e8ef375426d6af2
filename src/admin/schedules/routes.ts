// Schedules: a tenant's business hours, and what happens to calls while closed.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { IdParams, Page } from "../model";
import { Schedule, ScheduleCreate, ScheduleQuery, ScheduleUpdate } from "../policy-model";
import { createSchedule, deleteSchedule, getSchedule, listSchedules, updateSchedule } from "./service";

export function scheduleRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("schedules"))
    .get("/schedules", ({ principal, query }) => listSchedules(db, principal, query), {
      query: ScheduleQuery,
      response: { 200: Page(Schedule) },
      detail: { summary: "List schedules" },
    })
    .post(
      "/schedules",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createSchedule(deps, principal, body);
      },
      { parse: "json", body: ScheduleCreate, response: { 201: Schedule }, detail: { summary: "Create a schedule" } },
    )
    .get("/schedules/:id", ({ principal, params }) => getSchedule(db, principal, params.id), {
      params: IdParams,
      response: { 200: Schedule },
      detail: { summary: "Get a schedule" },
    })
    .patch("/schedules/:id", ({ principal, params, body }) => updateSchedule(deps, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: ScheduleUpdate,
      response: { 200: Schedule },
      detail: { summary: "Update a schedule" },
    })
    .delete(
      "/schedules/:id",
      async ({ principal, params, set }) => {
        await deleteSchedule(db, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Delete a schedule (409 while a campaign or phone number uses it)") },
    );
}
