import { Elysia } from "elysia";
import { BadRequestError } from "../errors";
import { LIVEKIT_SIGNATURE } from "../openapi";
import {
  SipInboundRequest,
  SipInboundResponse,
  type SipInboundResponse as SipInboundResponseBody,
  TestCallRequest,
  TestCallResponse,
} from "./model";
import { ACTION_OF } from "./policy";
import { callMetadata } from "./context";
import { type CallRouting, type RoutingDeps, routeInboundCall } from "./service";

export interface CallRoutesOptions {
  testEndpointEnabled: boolean;
  /** Checks the caller of the decision endpoint (throws to refuse); see app.ts. */
  authorize?: (request: Request) => Promise<void>;
}

/** The decision endpoint answers in the shape LiveKit-side glue expects: action, agent, metadata, attributes. */
export function toSipInboundResponse(routing: CallRouting): SipInboundResponseBody {
  return {
    action: ACTION_OF[routing.outcome],
    agent_name: routing.agentName,
    transfer_to: routing.transferTo,
    reason: routing.outcomeReason,
    metadata: JSON.stringify(callMetadata(routing)),
    attributes: {
      inbound: "true",
      phone_number: routing.toNumber ?? "",
      caller: routing.fromNumber ?? "",
      ...known({ caller_name: routing.caller?.name, tenant_id: routing.tenantId, campaign_id: routing.campaignId }),
    },
    record: routing.record,
  };
}

/** The attributes whose value is known; LiveKit treats an empty attribute as one to delete. */
const known = (values: Record<string, string | null | undefined>) =>
  Object.fromEntries(Object.entries(values).filter((entry): entry is [string, string] => Boolean(entry[1])));

export function callRoutes(deps: RoutingDeps, options: CallRoutesOptions) {
  const app = new Elysia({ name: "calls", prefix: "/api/v1/webhooks" }).post(
    "/livekit/sip-inbound",
    async ({ body }) => toSipInboundResponse(await routeSipInbound(deps, body)),
    {
      // The signature is checked before the body is validated: an unsigned request learns nothing of the schema.
      transform: async ({ request }) => {
        await options.authorize?.(request);
      },
      // Route-level JSON parsing is what the OpenAPI plugin reads the body's content type from;
      // app.ts's parser still reads the body first (signatures need the raw text).
      parse: "json",
      body: SipInboundRequest,
      response: SipInboundResponse,
      detail: { summary: "Decide the agent for an inbound call", tags: ["webhooks"], security: LIVEKIT_SIGNATURE },
    },
  );
  if (!options.testEndpointEnabled) return app;
  return app.post("/test", async ({ body }) => routeTestCall(deps, body), {
    parse: "json",
    body: TestCallRequest,
    response: TestCallResponse,
    detail: { summary: "Route a made-up call through the same flow", tags: ["webhooks"], security: [] },
  });
}

function routeSipInbound(deps: RoutingDeps, body: SipInboundRequest): Promise<CallRouting> {
  const to = body.to_number || body.trunk_phone_number;
  if (!to) throw new BadRequestError("to_number: required (or trunk_phone_number)", "to_number");
  return routeInboundCall(deps, {
    callId: body.call_id,
    from: body.from_number,
    to,
    trunkId: body.trunk_id,
    roomName: body.room_name,
    sipHeaders: body.sip_headers,
    source: "sip-inbound",
  });
}

/** A made-up call through the same decision, recorded like a real one (its ids say it is a test). */
async function routeTestCall(deps: RoutingDeps, body: typeof TestCallRequest.static): Promise<typeof TestCallResponse.static> {
  const suffix = crypto.randomUUID();
  const testData = {
    call_id: `test-${suffix}`,
    room_name: `test-room-${suffix}`,
    from_number: body.from_number ?? "+15555550123",
    to_number: body.to_number,
  };
  const routing = await routeInboundCall(deps, {
    callId: testData.call_id,
    from: testData.from_number,
    to: testData.to_number,
    roomName: testData.room_name,
    source: "test",
  });
  return { success: routing.record !== "unrecorded", test_data: testData, response: toSipInboundResponse(routing) };
}
