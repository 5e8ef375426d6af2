import { Elysia, t } from "elysia";
import { LIVEKIT_SIGNATURE } from "../openapi";
import { type LiveKitEventDeps, handleLiveKitEvent } from "./service";
import type { WebhookAuth } from "./webhook";

export interface LiveKitRoutesDeps {
  events: LiveKitEventDeps;
  auth: WebhookAuth;
  /** The request body exactly as received; signatures cover these bytes. */
  rawBody: (request: Request) => string;
  /** Told of each verified event's outcome: handled, duplicate, ignored, journaled or failed (metrics). */
  observe?: (event: string, outcome: string) => void;
}

export function liveKitRoutes(deps: LiveKitRoutesDeps) {
  return new Elysia({ name: "livekit", prefix: "/api/v1/webhooks/livekit" }).post(
    "/events",
    async ({ request }) => {
      const event = await deps.auth.receiveEvent(deps.rawBody(request), request.headers.get("authorization"));
      const outcome = await handleLiveKitEvent(deps.events, event).catch((error: unknown) => {
        deps.observe?.(event.event, "failed");
        throw error;
      });
      deps.observe?.(event.event, outcome.result);
      return { ok: true, event: event.event, id: event.id, ...outcome };
    },
    {
      response: t.Object(
        { ok: t.Boolean(), event: t.String(), id: t.String(), result: t.String() },
        { additionalProperties: true },
      ),
      detail: {
        summary: "LiveKit's signed webhooks",
        tags: ["webhooks"],
        security: LIVEKIT_SIGNATURE,
        requestBody: {
          required: true,
          description: "A LiveKit WebhookEvent in protobuf JSON, exactly as LiveKit sends it",
          content: { "application/webhook+json": { schema: { type: "object" } } },
        },
      },
    },
  );
}
