// A database still starting (the embedded one opening in the background at a restart): until it
// is ready, every statement is refused as while a database is down, so the call path does what it
// does in an outage (routes from memory, journals the records) instead of waiting; once ready,
// everything goes to the database, and whoever waits for its recovery is told.
import { DatabaseClosedError, DatabaseDownError } from "./availability";
import type { Database, Drizzle } from "./database";

/**
 * `opening` resolves with the database once it is ready. `drizzleWhileStarting` makes the Drizzle
 * handle over it, which calls `refuse` for a statement asked for before then.
 */
export function startingDatabase(
  kind: Database["kind"],
  opening: Promise<Database>,
  drizzleWhileStarting: (refuse: () => never) => Drizzle,
): { database: Database; ready: Promise<void> } {
  const since = new Date();
  const waiting: (() => void)[] = [];
  let ready: Database | undefined;
  let closed = false;
  const refuse = (): never => {
    if (closed) throw new DatabaseClosedError();
    throw new DatabaseDownError(since, new Error(`the ${kind} database is still starting`));
  };
  const current = () => ready ?? refuse();
  const opened = opening.then((database) => {
    // Closed meanwhile (a stop during the start): the database is only closed, nobody is told.
    if (closed) return;
    ready = database;
    for (const listener of waiting) database.onRecovered(listener);
    for (const listener of waiting) listener();
  });
  const db = drizzleWhileStarting(refuse);
  const database: Database = {
    db,
    maintenanceDb: db,
    kind,
    rows: async (query) => current().rows(query),
    ping: async () => current().ping(),
    get available() {
      return ready?.available ?? false;
    },
    get downSince() {
      return ready ? ready.downSince : since;
    },
    get statementsInFlight() {
      return ready?.statementsInFlight ?? 0;
    },
    connections: 1,
    onRecovered: (listener) => (ready ? ready.onRecovered(listener) : void waiting.push(listener)),
    listen: (channel, onNotify, onListening) => void opened.then(() => current().listen(channel, onNotify, onListening), () => {}),
    close: async () => {
      closed = true;
      await opening.then((database) => database.close(), () => {});
    },
  };
  return { database, ready: opened };
}
