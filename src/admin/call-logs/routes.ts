// Call logs: read-only but for a forward-only status fix.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, resource } from "../context";
import { CallIdParams, CallLog, CallLogQuery, CallLogUpdate, IdParams, Page } from "../model";
import { getCallLog, listCallLogs, updateCallLogStatus } from "./service";

export function callLogRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("call-logs"))
    .get("/call-logs", ({ principal, query }) => listCallLogs(deps, principal, query), {
      query: CallLogQuery,
      response: { 200: Page(CallLog) },
      detail: { summary: "List call logs" },
    })
    .get(
      "/call-logs/by-call-id/:provider_call_id",
      ({ principal, params }) => getCallLog(db, principal, { providerCallId: params.provider_call_id }),
      {
        params: CallIdParams,
        response: { 200: CallLog },
        detail: { summary: "Get a call log by the SIP provider's call id" },
      },
    )
    .get("/call-logs/:id", ({ principal, params }) => getCallLog(db, principal, { id: params.id }), {
      params: IdParams,
      response: { 200: CallLog },
      detail: { summary: "Get a call log" },
    })
    .patch("/call-logs/:id", ({ principal, params, body }) => updateCallLogStatus(deps, principal, params.id, body.status), {
      params: IdParams,
      parse: "json",
      body: CallLogUpdate,
      response: { 200: CallLog },
      detail: { summary: "Fix a call's status (forward only: ringing, in_progress, then a final status)" },
    });
}
