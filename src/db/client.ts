// Opens the database: real PostgreSQL through postgres.js when DATABASE_URL is set,
// otherwise an embedded PostgreSQL (PGlite) persisted in DATA_DIR. Both speak the same
// SQL and get the same schema and migrations.
import type { Tracer } from "@opentelemetry/api";
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { inClientSpan } from "../tracing/spans";
import type { Database } from "./database";
import { openPglite, openPgliteInBackground } from "./pglite";
import { openPostgres } from "./postgres";

export { DatabaseClosedError, DatabaseDownError } from "./availability";
export { type Database, type Drizzle, rowsOf } from "./database";
export { databaseStateFile } from "./pglite";

export interface DatabaseOptions {
  databaseUrl?: string;
  /** PGlite data directory; "memory://" keeps it in memory. */
  dataDir: string;
  poolMax: number;
  statementTimeoutMs: number;
  /** Traces each statement when given (OTEL_EXPORTER_OTLP_ENDPOINT set). */
  tracer?: Tracer;
  /** The embedded database's template cache (see pglite.ts); the default suits every checkout. */
  templateCache?: string;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const database = options.databaseUrl ? openPostgres(options.databaseUrl, options) : await openPglite(options);
  return options.tracer ? traceStatements(database, options.tracer) : database;
}

/**
 * The embedded database opened in the background (see openPgliteInBackground): answered at once,
 * refusing statements as a database that is down does until `ready`, once `prepare` has run on it.
 */
export function openDatabaseInBackground(
  options: DatabaseOptions,
  prepare: (database: Database) => Promise<void>,
): { database: Database; ready: Promise<boolean> } {
  const { database, ready } = openPgliteInBackground(options, prepare);
  return { database: options.tracer ? traceStatements(database, options.tracer) : database, ready };
}

/**
 * A client span per statement run through rows() (every statement on the call and webhook paths),
 * as OpenTelemetry's database conventions describe it: the query text has placeholders, never values.
 */
function traceStatements(database: Database, tracer: Tracer): Database {
  const dialect = new PgDialect();
  const untraced = database.rows;
  database.rows = <T extends Record<string, unknown>>(query: SQL) => {
    const text = dialect.sqlToQuery(query).sql;
    const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? "QUERY";
    const attributes = { "db.system.name": "postgresql", "db.operation.name": operation, "db.query.text": text };
    return inClientSpan(tracer, operation, attributes, () => untraced<T>(query));
  };
  return database;
}

