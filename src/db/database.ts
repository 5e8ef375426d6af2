// What every part of Switchboard sees of the database, whichever driver is underneath: Drizzle
// handles, raw statements bounded by the statement timeout, and whether the database is up.
import { type SQL, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { Availability } from "./availability";
import type * as schema from "./schema";

/** The Drizzle query builder over the schema: what the admin API and the directory file write with. */
export type Drizzle = PgDatabase<PgQueryResultHKT, typeof schema>;


export interface Database {
  /** Every statement bounded by the statement timeout and refused at once while the database is down. */
  db: Drizzle;
  /** No client-side deadline: for migrations, which may rightly run long. */
  maintenanceDb: Drizzle;
  kind: "postgres" | "pglite";
  /**
   * Runs raw SQL and returns its rows, whichever driver is underneath, within the statement
   * timeout. While the database is known to be down it fails at once with DatabaseDownError.
   */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  ping(): Promise<void>;
  /** Whether statements are worth trying: false from a lost connection until a probe gets an answer. */
  readonly available: boolean;
  /** Since when the database has been down, or null while it is up. */
  readonly downSince: Date | null;
  /** Bounded statements sent and not yet answered; more than `connections` means some wait for one. */
  readonly statementsInFlight: number;
  /** How many statements can run at once: DB_POOL_MAX connections, or PGlite's one. */
  readonly connections: number;
  /** Called each time the database answers again after being down. */
  onRecovered(listener: () => void): void;
  /**
   * Calls onNotify for each NOTIFY on `channel`, and onListening each time the subscription is
   * (re)established, when notifications may have been missed. Keeps retrying while the database is down.
   */
  listen(channel: string, onNotify: () => void, onListening: () => void): void;
  close(): Promise<void>;
}


/** The rows of a `db.execute` result: postgres.js answers an array, PGlite an object holding one. */
export function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/**
 * The client's deadline on a statement: a little past the server's statement_timeout, so that a
 * statement that is merely slow is cancelled by a live server (57014, "this statement failed")
 * before this deadline can take the silence for a server that stopped answering (the database down).
 */
export const clientDeadline = (statementTimeoutMs: number) => statementTimeoutMs + 250;

export type Subscribe = (channel: string, onNotify: () => void, onListening: () => void) => Promise<unknown>;

/** What a driver brings; asDatabase puts the rules of Database around it. */
export interface Driver {
  kind: Database["kind"];
  db: Drizzle;
  maintenanceDb: Drizzle;
  connections: number;
  /** Runs one statement, unbounded: asDatabase bounds it. */
  execute: (query: SQL) => Promise<unknown>;
  subscribe: Subscribe;
  close: () => Promise<void>;
}

export function asDatabase(driver: Driver, gate: Availability, timeoutMs: number): Database {
  const { kind, db, maintenanceDb, connections, execute, subscribe, close } = driver;
  const rows = async <T extends Record<string, unknown>>(query: SQL) =>
    rowsOf<T>(await gate.run(() => execute(query), clientDeadline(timeoutMs), "database query"));
  const listen = (channel: string, onNotify: () => void, onListening: () => void) => {
    // Once asked, postgres.js keeps the subscription, re-subscribing after every reconnection
    // (asking again would add a second listener); PGlite's cannot fail.
    subscribe(channel, onNotify, onListening).catch(() => {});
  };
  return {
    db,
    maintenanceDb,
    kind,
    rows,
    ping: async () => {
      await rows(sql`select 1`);
    },
    get available() {
      return gate.available;
    },
    get downSince() {
      return gate.downSince;
    },
    get statementsInFlight() {
      return gate.inFlight;
    },
    connections,
    onRecovered: gate.onRecovered,
    listen,
    close: async () => {
      gate.close();
      await close();
    },
  };
}

