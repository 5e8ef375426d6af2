// One server span per HTTP request, named and annotated as OpenTelemetry's HTTP semantic
// conventions say (opentelemetry.io/docs/specs/semconv/http/http-spans/): "POST /api/v1/...".
// The request's handler runs inside it, so database and LiveKit spans become its children.
import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from "@opentelemetry/semantic-conventions";
import { Elysia } from "elysia";
import { markFailed } from "./spans";

/** A caller that traces its own requests (traceparent header) gets Switchboard's span in its trace. */
const propagator = new W3CTraceContextPropagator();
const headerGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
};

export function traceRequests(tracer: Tracer) {
  return (
    new Elysia({ name: "tracing" })
      // Around the whole handling of a request, errors mapped to their answer included.
      .wrap(((handle: (request: Request) => Response | Promise<Response>, request: Request) => (...args: [Request]) => {
        const parent = propagator.extract(ROOT_CONTEXT, request.headers, headerGetter);
        return tracer.startActiveSpan(request.method, { kind: SpanKind.SERVER, attributes: requestAttributes(request) }, parent, (span) =>
          answered(span, () => handle(...args)),
        );
      }) as never)
      // The route is known once the router found it: the span is named after it, not the raw path.
      .onTransform({ as: "global" }, ({ request, route }) => nameAfterRoute(request.method, route))
      .onError({ as: "global" }, ({ request, route }) => nameAfterRoute(request.method, route))
  );
}

async function answered(span: Span, handle: () => Response | Promise<Response>): Promise<Response> {
  try {
    const response = await handle();
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, response.status);
    // For a server span only a 5xx is an error: a 4xx is the client's.
    if (response.status >= 500) {
      span.setAttribute("error.type", String(response.status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    return response;
  } catch (error) {
    markFailed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

function requestAttributes(request: Request) {
  const url = new URL(request.url);
  return {
    [ATTR_HTTP_REQUEST_METHOD]: request.method,
    [ATTR_URL_PATH]: url.pathname,
    [ATTR_URL_SCHEME]: url.protocol.replace(":", ""),
    [ATTR_SERVER_ADDRESS]: url.hostname,
    [ATTR_SERVER_PORT]: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
    ...(request.headers.has("user-agent") ? { [ATTR_USER_AGENT_ORIGINAL]: request.headers.get("user-agent")! } : {}),
  };
}

function nameAfterRoute(method: string, route: string | undefined) {
  const span = trace.getActiveSpan();
  if (!span || !route) return;
  span.setAttribute(ATTR_HTTP_ROUTE, route);
  span.updateName(`${method} ${route}`);
}
