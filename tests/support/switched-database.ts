// One real database behind a switch, for outage tests that need the database back afterwards:
// `down` fails every statement like a refused connection; `failNext` fails only the next
// statement whose SQL matches (a blip in the middle of a delivery).
import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Database } from "../../src/db/client";
import { openTestDatabase } from "./context";

export interface SwitchedDatabase {
  /** Hand this to the apps under test; closing it does nothing, so several contexts may share it. */
  database: Database;
  state: { down: boolean; failNext: RegExp[] };
  /** Gives the real database underneath back (see openTestDatabase). */
  close(): Promise<void>;
}

const dialect = new PgDialect();
const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

export async function openSwitchedDatabase(): Promise<SwitchedDatabase> {
  const underneath = await openTestDatabase();
  const real = underneath.database;
  const state = { down: false, failNext: [] as RegExp[] };
  const database: Database = {
    ...real,
    rows: <T extends Record<string, unknown>>(query: SQL) => {
      if (state.down) return Promise.reject(refused());
      const text = dialect.sqlToQuery(query).sql;
      const index = state.failNext.findIndex((pattern) => pattern.test(text));
      if (index >= 0) {
        state.failNext.splice(index, 1);
        return Promise.reject(refused());
      }
      return real.rows<T>(query);
    },
    ping: () => (state.down ? Promise.reject(refused()) : real.ping()),
    // Down is known at once here, as the real client knows it after the first refused connection.
    get available() {
      return !state.down && real.available;
    },
    get downSince() {
      return state.down ? new Date() : real.downSince;
    },
    close: async () => {},
  };
  return { database, state, close: () => underneath.close() };
}
