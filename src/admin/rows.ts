// From rows to answers: the row a request named (or a 404), a PATCH's write (or a read when it
// sets nothing), and a row as the admin API answers it.
import type { SQL } from "drizzle-orm";
import type { PgTable, PgUpdateSetSource } from "drizzle-orm/pg-core";
import type { Static, TObject } from "@sinclair/typebox";
import type { Drizzle } from "../db/client";
import { NotFoundError } from "../errors";

/** The one row found, or a 404 naming what was asked for. */
export function found<T>(rows: T[], what: string, id: string): T {
  if (rows.length === 0) throw new NotFoundError(`${what} ${id} not found`);
  return rows[0]!;
}

/**
 * Sets the values given (undefined: left alone) on the rows matching `where`, and returns them.
 * Drizzle refuses an UPDATE with nothing to set: an empty PATCH just reads the rows. `touch` is
 * set too (e.g. updated_at), only when something is.
 */
export async function updateOrRead<T extends PgTable>(
  db: Drizzle,
  table: T,
  set: PgUpdateSetSource<T>,
  where: SQL | undefined,
  touch: PgUpdateSetSource<T> = {},
): Promise<T["$inferSelect"][]> {
  if (!Object.values(set).some((value) => value !== undefined)) {
    return (await db.select().from(table as PgTable).where(where)) as T["$inferSelect"][];
  }
  return (await db.update(table).set({ ...set, ...touch }).where(where).returning()) as T["$inferSelect"][];
}

type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;
type Renames<M extends TObject> = { [Field in keyof M["properties"]]?: string };
/** The columns a row needs to make an answer of model M. */
type RowOf<M extends TObject, R extends Renames<M>> = {
  [Field in keyof M["properties"] & string as Field extends keyof R ? R[Field] & string : CamelCase<Field>]: unknown;
};

const camelCase = (field: string) => field.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());

/**
 * A row as the admin API answers it, in the shape of the answer's model: each field is the
 * column of the same name in camelCase (`tenant_id` from `tenantId`) or the one `renames` names
 * (`is_active` from `active`), a time as ISO 8601 text. Columns the model leaves out (a key's
 * hash) are never answered.
 */
export function viewOf<M extends TObject, const R extends Renames<M> = {}>(model: M, renames?: R) {
  const columns = Object.keys(model.properties).map(
    (field) => [field, (renames as Record<string, string> | undefined)?.[field] ?? camelCase(field)] as const,
  );
  return (row: RowOf<M, R>): Static<M> => {
    const values = row as Record<string, unknown>;
    return Object.fromEntries(
      columns.map(([field, column]) => {
        const value = values[column];
        return [field, value instanceof Date ? value.toISOString() : value];
      }),
    ) as Static<M>;
  };
}
