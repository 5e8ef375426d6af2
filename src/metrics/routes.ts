import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { UnauthorizedError } from "../errors";
import type { Metrics } from "./metrics";

/** GET /metrics in Prometheus' text format; behind a bearer token when METRICS_TOKEN is set. */
export function metricsRoutes(metrics: Metrics, token: string | undefined) {
  return new Elysia({ name: "metrics" }).get(
    "/metrics",
    async ({ request, set }) => {
      if (token && !bearerMatches(request.headers.get("authorization"), token)) {
        throw new UnauthorizedError("authorization: a bearer METRICS_TOKEN is required");
      }
      set.headers["content-type"] = metrics.registry.contentType;
      return metrics.registry.metrics();
    },
    { detail: { summary: "Prometheus metrics", tags: ["health"] } },
  );
}

/** Compared as digests: equal lengths for timingSafeEqual, and nothing learnt about the token's length. */
function bearerMatches(header: string | null, token: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(/^Bearer (.+)$/i.exec(header ?? "")?.[1] ?? ""), digest(token));
}
