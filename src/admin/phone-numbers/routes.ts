// Phone numbers: a tenant's, written in any common shape, answered as E.164.
import { Elysia } from "elysia";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { IdParams, Page, PhoneNumber, PhoneNumberCreate, PhoneNumberQuery, PhoneNumberUpdate } from "../model";
import { overflowShape } from "../policies";
import { createPhoneNumber, deletePhoneNumber, getPhoneNumber, listPhoneNumbers, updatePhoneNumber } from "./service";

export function phoneNumberRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("phone-numbers"))
    .get("/phone-numbers", ({ principal, query }) => listPhoneNumbers(deps, principal, query), {
      query: PhoneNumberQuery,
      response: { 200: Page(PhoneNumber) },
      detail: { summary: "List phone numbers" },
    })
    .post(
      "/phone-numbers",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createPhoneNumber(deps, principal, body);
      },
      {
        parse: "json",
        transform: overflowShape,
        body: PhoneNumberCreate,
        response: { 201: PhoneNumber },
        detail: { summary: "Add a phone number (any common shape; stored as E.164)" },
      },
    )
    .get("/phone-numbers/:id", ({ principal, params }) => getPhoneNumber(db, principal, params.id), {
      params: IdParams,
      response: { 200: PhoneNumber },
      detail: { summary: "Get a phone number" },
    })
    .patch("/phone-numbers/:id", ({ principal, params, body }) => updatePhoneNumber(deps, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      transform: overflowShape,
      body: PhoneNumberUpdate,
      response: { 200: PhoneNumber },
      detail: { summary: "Update a phone number" },
    })
    .delete(
      "/phone-numbers/:id",
      async ({ principal, params, set }) => {
        await deletePhoneNumber(db, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Delete a phone number (past calls keep the number they dialed)") },
    );
}
