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
      // Never let a credential reach the log even if someone logs a whole object.
      redact: ["authorization", "*.authorization", "apiSecret", "*.apiSecret", "databaseUrl", "*.databaseUrl"],
    },
    destination,
  );
}
