// A database still starting (the embedded one opening in the background at a restart): until it
// is open, every statement is refused as while a database is down, so the call path does what it
// does in an outage (routes from memory, journals the records) instead of waiting; once open,
// everything goes to the database, and whoever waits for its recovery is told.
import { DatabaseClosedError, DatabaseDownError } from "./availability";
import type { Database, Drizzle } from "./database";

/**
 * `opening` resolves with the database once it can be used. `drizzleWhileStarting` makes the
 * Drizzle handle over it, which calls `refuse` for a statement asked for before then. `ready`
 * resolves true once it is open, false when closed before that; it rejects with what kept it shut
 * (unless closed before).
 */
export function startingDatabase(
  kind: Database["kind"],
  opening: Promise<Database>,
  drizzleWhileStarting: (refuse: () => never) => Drizzle,
): { database: Database; ready: Promise<boolean> } {
  const since = new Date();
  const waiting: (() => void)[] = [];
  let open: Database | undefined;
  let closed = false;
  const refuse = (): never => {
    if (closed) throw new DatabaseClosedError();
    throw new DatabaseDownError(since, new Error(`the ${kind} database is still starting`));
  };
  const ready = opening.then(
    (database) => {
      // Closed meanwhile (a stop during the start): the database is only closed, nobody is told.
      if (closed) return false;
      open = database;
      for (const listener of waiting) database.onRecovered(listener);
      for (const listener of waiting) listener();
      return true;
    },
    (error: unknown) => {
      // A stop during the start owes nobody an answer for a start that failed meanwhile.
      if (closed) return false;
      throw error;
    },
  );
  const db = drizzleWhileStarting(refuse);
  const database: Database = {
    db,
    maintenanceDb: db,
    kind,
    rows: async (query) => (open ?? refuse()).rows(query),
    ping: async () => (open ?? refuse()).ping(),
    get available() {
      return open?.available ?? false;
    },
    get downSince() {
      return open ? open.downSince : since;
    },
    get statementsInFlight() {
      return open?.statementsInFlight ?? 0;
    },
    connections: 1,
    onRecovered: (listener) => (open ? open.onRecovered(listener) : void waiting.push(listener)),
    listen: (channel, onNotify, onListening) =>
      void ready.then((isOpen) => isOpen && open!.listen(channel, onNotify, onListening), () => {}),
    close: async () => {
      closed = true;
      await opening.then((database) => database.close(), () => {});
    },
  };
  return { database, ready };
}
