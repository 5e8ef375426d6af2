// Child spans around work a request waits on (a database statement, a LiveKit API call).
import { type Attributes, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";

/**
 * Runs `work` in a client span named `name`, a child of the request's span; a failure is recorded
 * on the span and thrown on. Without a tracer (tracing off) or a request's span, just runs `work`.
 */
export function inClientSpan<T>(tracer: Tracer | undefined, name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
  // Outside a request (directory reloads, journal replay) a statement would be a trace of its own: noise.
  if (!tracer || !trace.getActiveSpan()) return work();
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    try {
      return await work();
    } catch (error) {
      markFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** error.type is the error's class (TimeoutError, PostgresError...), as the semantic conventions ask. */
export function markFailed(span: ReturnType<typeof trace.getActiveSpan> & object, error: unknown) {
  const failure = error instanceof Error ? error : new Error(String(error));
  span.recordException(failure);
  span.setAttribute("error.type", failure.name || "Error");
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
}

/** Adds what Switchboard decided (the event's outcome, the agent's source) to the request's span, when it is traced. */
export function annotateRequestSpan(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}
