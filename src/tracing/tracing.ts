// OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT (or its traces variant) is set:
// one server span per HTTP request (http.ts), with a child span for each database statement
// (db/client.ts) and each LiveKit API call (livekit/clients.ts). Spans are batched and exported
// as OTLP/HTTP JSON; a backend that is down costs dropped spans, never a caller's wait.
import { context, type DiagLogger, DiagLogLevel, diag, type Tracer } from "@opentelemetry/api";
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
import { withDeadline } from "../errors";
import type { Logger } from "../logger";
import { VERSION } from "../version";

export interface Tracing {
  tracer: Tracer;
  /** Exports what is still buffered, then stops; for the end of a graceful shutdown. */
  shutdown(): Promise<void>;
}

/** How long one export may take while running. */
const EXPORT_TIMEOUT_MS = 5_000;
/** How long the last export may take at shutdown: within systemd's stop timeout, after the requests' drain. */
const LAST_EXPORT_MS = 2_000;
/** A backend that is down fails every export (one a second): say so once a minute, not each time. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

export function startTracing(settings: TracingConfig, logger: Logger): Tracing {
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
  // Failed exports reach OpenTelemetry's diagnostic logger: without one, a wrong endpoint or API
  // key would lose every span without a word.
  diag.setLogger(exportFailureLog(logger), DiagLogLevel.WARN);
  return {
    tracer: provider.getTracer("switchboard", VERSION),
    shutdown: async () => {
      await withDeadline(provider.shutdown(), LAST_EXPORT_MS, "last trace export").finally(() => {
        context.disable();
        diag.disable();
      });
    },
  };
}

/** OpenTelemetry's warnings and errors as the service's own log lines, at most one a minute. */
function exportFailureLog(logger: Logger): DiagLogger {
  let lastLogged = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  const warn = (message: string, ...args: unknown[]) => {
    const now = performance.now();
    if (now - lastLogged < FAILURE_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastLogged = now;
    const err = args.find((arg) => arg instanceof Error);
    logger.warn({ err, suppressed_since_last: suppressed }, `tracing: ${message}`);
    suppressed = 0;
  };
  const ignore = () => {};
  return { error: warn, warn, info: ignore, debug: ignore, verbose: ignore };
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
