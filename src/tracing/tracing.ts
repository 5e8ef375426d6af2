// OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT (or its traces variant) is set:
// one server span per HTTP request (http.ts), with a child span for each database statement
// (db/client.ts) and each LiveKit API call (livekit/clients.ts). Spans are batched and exported
// as OTLP/HTTP JSON; a backend that is down costs dropped spans, never a caller's wait.
import { context, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { TracingConfig } from "../config";
import { VERSION } from "../version";

export interface Tracing {
  tracer: Tracer;
  /** Exports what is still buffered, then stops; for the end of a graceful shutdown. */
  shutdown(): Promise<void>;
}

/** How long the last export may take at shutdown: systemd's stop timeout leaves room for it. */
const EXPORT_TIMEOUT_MS = 5_000;

export function startTracing(settings: TracingConfig): Tracing {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName, [ATTR_SERVICE_VERSION]: VERSION }),
    sampler: sampler(settings),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: settings.url, headers: settings.headers, timeoutMillis: EXPORT_TIMEOUT_MS }),
        // A full queue drops new spans rather than holding requests.
        maxQueueSize: 8192,
        maxExportBatchSize: 512,
        scheduledDelayMillis: 1_000,
        exportTimeoutMillis: EXPORT_TIMEOUT_MS,
      }),
    ],
  });
  // Parent and child spans find each other through the async context of the request that runs
  // them. OpenTelemetry keeps the context manager process-wide; it is set only when tracing is on.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return {
    tracer: provider.getTracer("switchboard", VERSION),
    shutdown: async () => {
      await provider.shutdown();
      context.disable();
    },
  };
}

/** OTEL_TRACES_SAMPLER as the SDK specifies it; the parent-based ones follow an incoming traceparent's decision. */
function sampler({ sampler, ratio }: TracingConfig): Sampler {
  const root = sampler.endsWith("always_off")
    ? new AlwaysOffSampler()
    : sampler.endsWith("traceidratio")
      ? new TraceIdRatioBasedSampler(ratio)
      : new AlwaysOnSampler();
  return sampler.startsWith("parentbased_") ? new ParentBasedSampler({ root }) : root;
}
