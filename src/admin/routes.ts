// The admin API over HTTP: one plugin per resource, each in its folder with the service it
// calls, all under /api/v1. What they share (the principal from the bearer key, the audit log,
// `adminOnly`, the docs and error answers) is in context.ts.
import { Elysia } from "elysia";
import { agentRoutes } from "./agents/routes";
import { apiKeyRoutes } from "./api-keys/routes";
import { blocklistRoutes } from "./blocklist-entries/routes";
import { callLogRoutes } from "./call-logs/routes";
import { campaignRoutes } from "./campaigns/routes";
import type { AdminDeps } from "./context";
import { leadRoutes } from "./leads/routes";
import { phoneNumberRoutes } from "./phone-numbers/routes";
import { scheduleRoutes } from "./schedules/routes";
import { tenantRoutes } from "./tenants/routes";
import { webhookEndpointRoutes } from "./webhook-endpoints/routes";

export type { AdminDeps } from "./context";

export const adminRoutes = (deps: AdminDeps) =>
  new Elysia({ name: "admin", prefix: "/api/v1" })
    .use(tenantRoutes(deps))
    .use(agentRoutes(deps))
    .use(campaignRoutes(deps))
    .use(phoneNumberRoutes(deps))
    .use(scheduleRoutes(deps))
    .use(blocklistRoutes(deps))
    .use(leadRoutes(deps))
    .use(callLogRoutes(deps))
    .use(apiKeyRoutes(deps))
    .use(webhookEndpointRoutes(deps));
