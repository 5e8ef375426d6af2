// Blocklist patterns: a whole number, or the start of one followed by "*" (+1900* is every number
// beginning +1 900). Stored and matched in E.164, whatever shape they were written in.
import { normalizePhoneNumber } from "./phone";

export type BlockPattern = { pattern: string } | { problem: string };

/** Characters people put between digits: spaces, dashes, dots and parentheses. */
const SEPARATORS = /[\s\-.()/]/g;

/**
 * The stored form of a pattern: a number in any shape `normalizePhoneNumber` reads (national
 * numbers in `region`), or a prefix written with its country code ("+1 (900) *", "001900*").
 * A prefix cannot be national: "0800*" means different numbers in different countries.
 */
export function normalizeBlockPattern(input: string, region: string): BlockPattern {
  const text = input.trim();
  if (!text.endsWith("*")) {
    const number = normalizePhoneNumber(text, region);
    return number ? { pattern: number } : { problem: `"${input}" is not a phone number; a prefix ends with * (e.g. +1900*)` };
  }
  const digits = text.slice(0, -1).replace(SEPARATORS, "").replace(/^00/, "+");
  if (!/^\+[1-9]\d{0,14}$/.test(digits)) {
    return { problem: `"${input}" is not a prefix of international numbers: start it with + and the country code (e.g. +1900*)` };
  }
  return { pattern: `${digits}*` };
}

/** A set of stored patterns, asked about one caller at a time. */
export class Blocklist {
  readonly #numbers = new Set<string>();
  readonly #prefixes = new Set<string>();

  constructor(patterns: Iterable<string>) {
    for (const pattern of patterns) {
      if (pattern.endsWith("*")) this.#prefixes.add(pattern.slice(0, -1));
      else this.#numbers.add(pattern);
    }
  }

  /** Whether the caller (E.164) is blocked; a withheld number (null) never matches a pattern. */
  matches(caller: string | null): boolean {
    if (!caller) return false;
    if (this.#numbers.has(caller)) return true;
    // Every prefix length of the number: at most 15 lookups, however long the list.
    for (let end = 2; end <= caller.length; end++) if (this.#prefixes.has(caller.slice(0, end))) return true;
    return false;
  }
}
