import pino, { type Logger } from "pino";

export type { Logger };

/** One JSON object per line on stdout; journald and log shippers take it as is. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "switchboard" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: describeError },
      // Never let a credential reach the log even if someone logs a whole object.
      redact: ["authorization", "*.authorization", "apiSecret", "*.apiSecret", "databaseUrl", "*.databaseUrl"],
    },
    destination,
  );
}

export interface ErrorDescription {
  type: string;
  message: string;
  code?: string;
  cause?: ErrorDescription;
}

/**
 * How errors appear in the log (`logger.error({ err })`): type, message, driver code and the
 * cause chain, which is where "connection refused" hides under a query wrapper. No stack: these
 * are operational errors, and one line per event stays one readable line.
 */
export function describeError(error: unknown): ErrorDescription {
  if (!(error instanceof Error)) return { type: typeof error, message: String(error) };
  const code = (error as { code?: unknown }).code;
  // A failed query's message lists its parameters: callers' numbers, secrets, key hashes. Not logged.
  const message = error.message.replace(/\nparams: [\s\S]*$/, "\nparams: (not logged)");
  return {
    type: error.name,
    message: message.length > 500 ? `${message.slice(0, 500)}...` : message,
    ...(code ? { code: String(code) } : {}),
    ...(error.cause !== undefined ? { cause: describeError(error.cause) } : {}),
  };
}
