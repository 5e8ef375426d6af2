// The pieces the admin API's models are built of (model.ts, policy-model.ts): ids, times, one-of
// and nullable values, paging, and the text fields every resource takes in.
import type { TUnsafe } from "@sinclair/typebox";
import { type TSchema, t } from "elysia";
import { StorableText } from "../text";

// Every string the admin API takes in is StorableText: text PostgreSQL stores exactly as sent.
export const name = StorableText({ minLength: 1, maxLength: 200 });
export const PhoneInput = StorableText({ minLength: 1, maxLength: 64, description: "Any common shape; stored as E.164" });

export const Uuid = t.String({ format: "uuid" });
export const Timestamp = t.String({ format: "date-time" });
/** One of the values. Not t.UnionEnum: Elysia fills a missing UnionEnum with its first value. */
export const OneOf = <T extends string>(values: readonly T[]) =>
  t.Union(values.map((v) => t.Literal(v))) as unknown as TUnsafe<T>;
export const Nullable = <T extends TSchema>(schema: T, options: { description?: string } = {}) =>
  t.Union([schema, t.Null()], options);
export const strict = { additionalProperties: false } as const;

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;
export const paging = {
  // The range is checked by the service: Elysia's coerced query numbers report range errors without the field's name.
  limit: t.Optional(t.Integer({ description: `Page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})` })),
  cursor: t.Optional(StorableText({ maxLength: 200, description: "next_cursor of the previous page" })),
};
export const tenantFilter = { tenant_id: t.Optional(Uuid) };
