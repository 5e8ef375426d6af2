// Lists: one page at a time, newest first, filtered by the query.
import { and, desc, eq, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Drizzle } from "../db/client";
import { BadRequestError } from "../errors";
import { storableTime } from "./input";
import { DEFAULT_PAGE, MAX_PAGE } from "./model";

export interface Paging {
  limit?: number;
  cursor?: string;
}

/**
 * A list's filter: the rows whose column equals the query's value; none when the query leaves it
 * out. (An admin key may narrow a list to one tenant; a tenant key's lists are its tenant's anyway.)
 */
export const filter = <T>(column: PgColumn, value: T | undefined) => (value === undefined ? undefined : eq(column, value));

/**
 * Newest first, by (created_at, id). The cursor is the last row's key, so rows inserted while
 * someone pages sort before it and never shift what comes after. The timestamp keeps its
 * microseconds: rounding to JavaScript's milliseconds would skip rows within one millisecond.
 */
export async function listPage<T extends PgTable & { createdAt: PgColumn; id: PgColumn }, V>(
  db: Drizzle,
  table: T,
  conditions: (SQL | undefined)[],
  paging: Paging,
  view: (row: T["$inferSelect"]) => V,
): Promise<{ data: V[]; next_cursor: string | null }> {
  const limit = paging.limit ?? DEFAULT_PAGE;
  if (limit < 1 || limit > MAX_PAGE) throw new BadRequestError(`limit: must be 1 to ${MAX_PAGE}`, "limit");
  const after = paging.cursor === undefined ? undefined : decodeCursor(paging.cursor);
  const rows = await db
    .select({
      row: table as PgTable,
      key: sql<string>`to_char(${table.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    })
    .from(table as PgTable)
    .where(
      and(
        ...conditions,
        after ? sql`(${table.createdAt}, ${table.id}) < (${after.createdAt}::timestamptz, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(table.createdAt), desc(table.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = rows.length > limit ? page[page.length - 1] : undefined;
  return {
    data: page.map((r) => view(r.row as T["$inferSelect"])),
    next_cursor: last ? encodeCursor(last.key, (last.row as { id: string }).id) : null,
  };
}

const encodeCursor = (createdAt: string, id: string) => Buffer.from(`${createdAt}|${id}`).toString("base64url");

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const [createdAt = "", id = ""] = Buffer.from(cursor, "base64url").toString().split("|");
  const wellFormed =
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(createdAt) &&
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
  const notOurs = new BadRequestError("cursor: not a cursor this API gave out", "cursor");
  if (!wellFormed) throw notOurs;
  // The shape can be right and the time impossible (month 13, year 0): that too is not one of ours.
  if (!storableTime(createdAt)) throw notOurs;
  return { createdAt, id };
}
