// Checks on what a caller sends that the models cannot express: phone numbers in any common
// shape, times PostgreSQL reads as meant, JSON it can store (and variables' size). Each failure
// is a 400 naming the field.
import { eq } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { normalizePhoneNumber } from "../calls/phone";
import { BadRequestError } from "../errors";
import { isStorableText, NOT_STORABLE } from "../text";
import { METADATA_MAX_DEPTH } from "./model";
import { VARIABLES_MAX_BYTES } from "./policy-model";

/** The number as E.164, read in `region` when it has no country code. */
export function e164Of(value: string, region: string, field = "number"): string {
  const e164 = normalizePhoneNumber(value, region);
  if (!e164) throw new BadRequestError(`${field}: "${value}" is not a phone number`, field);
  return e164;
}

/** A list's filter on a phone number column, given in any shape the column's numbers were. */
export const phoneFilter = (column: PgColumn, value: string | undefined, field: string, region: string) =>
  value === undefined ? undefined : eq(column, e164Of(value, region, field));

/**
 * A time PostgreSQL will read as the client meant it, or null: checked here so an impossible
 * date (February 30th, year 0) is a 400 naming the field rather than a database error. The
 * text itself is passed on, keeping its offset and any microseconds.
 */
export function storableTime(value: string): string | null {
  const time = new Date(value);
  // PostgreSQL takes offsets up to 15:59 and, in this format, years 1 to 9999.
  const offsetHours = Number(/([+-])(\d\d):?\d\d$/.exec(value)?.[2] ?? 0);
  const valid =
    !Number.isNaN(time.getTime()) &&
    time.getUTCFullYear() <= 9999 &&
    offsetHours <= 15 &&
    !value.startsWith("0000") &&
    isCalendarDate(value.slice(0, 10));
  if (!valid) return null;
  // A bare date is midnight UTC, as JavaScript reads it, not midnight wherever the database is.
  return value.length === 10 ? `${value}T00:00:00Z` : value;
}

export function timeParam(value: string, field: string): string {
  const time = storableTime(value);
  if (!time) throw new BadRequestError(`${field}: "${value}" is not a valid date-time`, field);
  return time;
}

/** JavaScript rolls February 30th over to March 1st; PostgreSQL refuses it, and so do we. */
function isCalendarDate(ymd: string): boolean {
  const [y, m, d] = ymd.split("-").map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * Metadata is stored as jsonb: PostgreSQL refuses NUL characters in it, and very deep nesting
 * costs the database a recursion per level. Both are refused here, naming the field.
 */
export function assertStorableJson(value: unknown, field: string, depth = 0): void {
  if (depth > METADATA_MAX_DEPTH) {
    throw new BadRequestError(`${field}: nested deeper than ${METADATA_MAX_DEPTH} levels`, field);
  }
  if (typeof value === "string") {
    if (!isStorableText(value)) throw new BadRequestError(`${field}: ${NOT_STORABLE}`, field);
    return;
  }
  if (value === null || typeof value !== "object") return;
  for (const [key, inner] of Object.entries(value)) {
    if (!isStorableText(key)) throw new BadRequestError(`${field}: a key ${NOT_STORABLE}`, field);
    assertStorableJson(inner, field, depth + 1);
  }
}

/**
 * Variables travel with every call to the agent (its job metadata), so they are kept small: at
 * most VARIABLES_MAX_BYTES of compact JSON text, and storable as jsonb like metadata.
 */
export function assertVariables(value: Record<string, unknown>, field = "variables"): void {
  assertStorableJson(value, field);
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > VARIABLES_MAX_BYTES) {
    throw new BadRequestError(`${field}: ${bytes} bytes as JSON text; at most ${VARIABLES_MAX_BYTES} are allowed`, field);
  }
}
