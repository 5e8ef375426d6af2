// Real PostgreSQL through postgres.js (DATABASE_URL): a pool whose every statement, and every
// transaction's start and end, is bounded and refused at once while the database is down.
import { type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { withDeadline } from "../errors";
import { type Availability, trackAvailability } from "./availability";
import { asDatabase, clientDeadline, type Database, type Drizzle, type Subscribe } from "./database";
import * as schema from "./schema";

export interface PostgresOptions {
  poolMax: number;
  statementTimeoutMs: number;
}

export function openPostgres(url: string, options: PostgresOptions): Database {
  const timeoutMs = options.statementTimeoutMs;
  const client = postgres(url, {
    max: options.poolMax,
    // A sick database must not hold a caller: statements and connects are bounded.
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    // Calls come and go; a warm connection saves the handshake on the next caller's path.
    idle_timeout: 600,
    // Switchboard reads no array or custom types: skip the type lookup on every new connection.
    fetch_types: false,
    connection: { statement_timeout: timeoutMs, application_name: "switchboard" },
    // postgres.js waits up to 20 s (growing with every failed attempt) before reconnecting; after
    // an outage that kept the database "down" for seconds after it was back. Here at most 250 ms,
    // the pace of the availability probe (a zero wait would spin the LISTEN connection's retries).
    backoff: (attempts: number) => Math.min(attempts * 0.05, 0.25),
    onnotice: () => {},
  });
  const gate = trackAvailability(() => withDeadline(Promise.resolve(client.unsafe("select 1")), timeoutMs, "database probe"));
  const deadline = clientDeadline(timeoutMs);
  // The call path's statements run as named prepared statements: one round trip each, where
  // an unprepared statement with parameters costs two (describe, then execute).
  const dialect = new PgDialect();
  const execute = (query: SQL) => {
    const { sql: text, params } = dialect.sqlToQuery(query);
    return Promise.resolve(client.unsafe(text, params as never[], { prepare: true }));
  };
  // postgres.js listens on a connection of its own and listens again after reconnecting.
  const subscribe: Subscribe = (channel, onNotify, onListening) => client.listen(channel, onNotify, onListening);
  const driver = {
    kind: "postgres" as const,
    db: drizzlePostgres(boundedClient(client, gate, deadline), { schema }) as unknown as Drizzle,
    maintenanceDb: drizzlePostgres(client, { schema }) as unknown as Drizzle,
    connections: options.poolMax,
    execute,
    subscribe,
    close: () => client.end({ timeout: 5 }),
  };
  return asDatabase(driver, gate, timeoutMs);
}

/**
 * The postgres.js client as Drizzle sees it, under the rules of Database.rows: each statement
 * bounded by the statement timeout and refused at once while the database is known to be down.
 * A transaction's BEGIN and its COMMIT or ROLLBACK are statements too, bounded the same way, so
 * a server that stops answering mid-transaction fails the request instead of holding it.
 */
function boundedClient(client: postgres.Sql, gate: Availability, timeoutMs: number): postgres.Sql {
  const bounded = (query: postgres.PendingQuery<postgres.Row[]>) => ({
    // Drizzle awaits a query, or calls values() and awaits that.
    values: () => gate.run(() => query.values(), timeoutMs, "database query"),
    then: <A, B>(resolve: (rows: postgres.Row[]) => A, reject: (error: unknown) => B) =>
      gate.run(() => query, timeoutMs, "database query").then(resolve, reject),
  });
  const transaction =
    (begin: (...args: unknown[]) => Promise<unknown>) =>
    (...args: unknown[]) => {
      const work = args.pop() as (tx: postgres.Sql) => Promise<unknown>;
      const started = Promise.withResolvers<void>();
      const finished = Promise.withResolvers<void>();
      // Set when the caller has been told this transaction failed: its work must not run after all.
      let abandoned = false;
      let running: Promise<unknown> | undefined;
      const start = () => {
        running = begin(...args, async (tx: postgres.Sql) => {
          if (abandoned) throw new Error("transaction abandoned: its start timed out");
          started.resolve();
          try {
            return await work(boundedClient(tx, gate, timeoutMs));
          } finally {
            finished.resolve();
          }
        });
        running.catch(() => {}); // its failure reaches the caller through the races below
        return Promise.race([started.promise, running]);
      };
      // BEGIN is sent only if the gate lets it, inside its deadline; COMMIT/ROLLBACK has its own.
      return gate.run(start, timeoutMs, "database transaction start").then(
        () => Promise.race([running!, finished.promise.then(() => withDeadline(running!, timeoutMs, "database transaction end"))]),
        (error: unknown) => {
          abandoned = true;
          throw error;
        },
      );
    };
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key === "unsafe") return (...args: Parameters<typeof target.unsafe>) => bounded(target.unsafe(...args));
      if (key === "begin" || key === "savepoint") return transaction(value.bind(target));
      return value;
    },
  });
}

