// Text as PostgreSQL stores it. A text column cannot hold NUL, and an unpaired UTF-16 surrogate
// survives JSON but is stored as U+FFFD: a different string, so two distinct ids could meet as
// one key. Input is refused at the door (StorableText); values LiveKit signed are cleaned instead
// (toStorableText), since refusing them would fail the same way on every redelivery.
import { t } from "elysia";

export const STORABLE_TEXT_PATTERN = "^(?:[^\\u0000\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$";

/** What is wrong with a string that does not match STORABLE_TEXT_PATTERN, in words. */
export const NOT_STORABLE = "contains a NUL or an unpaired surrogate";

export const isStorableText = (text: string) => !text.includes("\u0000") && text.isWellFormed();

/** A string field of a request model that PostgreSQL stores exactly as sent. */
export const StorableText = (options: { minLength?: number; maxLength: number; description?: string }) =>
  t.String({ pattern: STORABLE_TEXT_PATTERN, ...options });

/** The storable part of a value: NUL dropped, at most `max` characters, lone surrogates replaced. */
export function toStorableText(value: string, max: number): string {
  return value.replaceAll("\u0000", "").slice(0, max).toWellFormed();
}
