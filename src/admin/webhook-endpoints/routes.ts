// Webhook endpoints: a tenant's receivers of call and lead events, their secrets and deliveries.
import { Elysia } from "elysia";
import { WebhookDelivery, WebhookDeliveryQuery, WebhookEndpoint, WebhookEndpointCreate, WebhookEndpointQuery, WebhookEndpointUpdate, WebhookEndpointWithSecret } from "../../webhooks/model";
import { type AdminDeps, adminContext, deleted, resource } from "../context";
import { IdParams, Page } from "../model";
import { listDeliveries, retryDelivery } from "./deliveries";
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookEndpoints,
  rotateWebhookSecret,
  updateWebhookEndpoint,
} from "./service";

export function webhookEndpointRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("webhook-endpoints"))
    .get("/webhook-endpoints", ({ principal, query }) => listWebhookEndpoints(db, principal, query), {
      query: WebhookEndpointQuery,
      response: { 200: Page(WebhookEndpoint) },
      detail: { summary: "List webhook endpoints (secrets are never shown again)" },
    })
    .post(
      "/webhook-endpoints",
      async ({ principal, body, set }) => {
        set.status = 201;
        return createWebhookEndpoint(deps, principal, body);
      },
      {
        parse: "json",
        body: WebhookEndpointCreate,
        response: { 201: WebhookEndpointWithSecret },
        detail: { summary: "Create a webhook endpoint; its secret is answered this once" },
      },
    )
    .get("/webhook-endpoints/:id", ({ principal, params }) => getWebhookEndpoint(db, principal, params.id), {
      params: IdParams,
      response: { 200: WebhookEndpoint },
      detail: { summary: "Get a webhook endpoint" },
    })
    .patch("/webhook-endpoints/:id", ({ principal, params, body }) => updateWebhookEndpoint(deps, principal, params.id, body), {
      params: IdParams,
      parse: "json",
      body: WebhookEndpointUpdate,
      response: { 200: WebhookEndpoint },
      detail: { summary: "Update a webhook endpoint (enabled: true also clears why it was disabled)" },
    })
    .delete(
      "/webhook-endpoints/:id",
      async ({ principal, params, set }) => {
        await deleteWebhookEndpoint(db, principal, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: deleted("Delete a webhook endpoint with its deliveries") },
    )
    .post("/webhook-endpoints/:id/rotate-secret", ({ principal, params }) => rotateWebhookSecret(db, principal, params.id), {
      params: IdParams,
      response: { 200: WebhookEndpointWithSecret },
      detail: { summary: "Answer a new secret; the old one keeps signing beside it for 24 hours" },
    })
    .use(deliveryRoutes(deps));
}

/** What was sent to an endpoint, and a person's retry of one delivery. */
function deliveryRoutes(deps: AdminDeps) {
  const { db } = deps.database;
  return new Elysia()
    .use(adminContext(deps))
    .guard(resource("webhook-endpoints"))
    .get("/webhook-endpoints/:id/deliveries", ({ principal, params, query }) => listDeliveries(db, principal, params.id, query), {
      params: IdParams,
      query: WebhookDeliveryQuery,
      response: { 200: Page(WebhookDelivery) },
      detail: { summary: "List an endpoint's deliveries and their attempts (kept 30 days)" },
    })
    .post("/webhook-deliveries/:id/retry", ({ principal, params }) => retryDelivery(db, principal, params.id), {
      params: IdParams,
      response: { 200: WebhookDelivery },
      detail: {
        summary: "Try a delivery again now, with the same webhook-id",
        description: "409 while its endpoint is disabled (enable it first) or while an attempt of it is in flight.",
      },
    });
}
