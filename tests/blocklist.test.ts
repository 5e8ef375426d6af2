// Blocklist patterns as a tenant writes them (any common shape of a number, or a prefix with "*")
// and as routing uses them: a blocked caller is recognised, a neighbour of one is not.
import { describe, expect, test } from "bun:test";
import { Blocklist, normalizeBlockPattern } from "../src/calls/blocklist";

const stored = (input: string, region = "US") => normalizeBlockPattern(input, region);

describe("patterns are stored in E.164, whatever shape they come in", () => {
  test.each([
    ["+14155550100", "+14155550100"],
    ["(415) 555-0100", "+14155550100"],
    ["415.555.0100", "+14155550100"],
    ["tel:+1-415-555-0100", "+14155550100"],
    ["+1 900*", "+1900*"],
    ["+1 (900) *", "+1900*"],
    ["001 900 *", "+1900*"],
    ["+44 20 7946*", "+44207946*"],
  ])("%s -> %s", (input, pattern) => {
    expect(stored(input)).toEqual({ pattern });
  });

  test("a national number is read in the region given", () => {
    expect(stored("020 7946 0958", "GB")).toEqual({ pattern: "+442079460958" });
  });

  test.each([["not a number"], ["12"], ["900*"], ["0800*"], ["+0900*"], ["*"], ["+*"], ["+1900**"], [`+${"1".repeat(16)}*`]])(
    "%s is refused, saying how to write it",
    (input) => {
      const result = stored(input);
      expect(result).toEqual({ problem: expect.stringContaining(JSON.stringify(input)) });
      expect((result as { problem: string }).problem).toMatch(/e\.g\. \+1900\*/);
    },
  );
});

describe("matching callers", () => {
  const list = new Blocklist(["+14155550100", "+1900*", "+44207946*"]);

  test("a listed number and every number under a listed prefix are blocked", () => {
    expect(list.matches("+14155550100")).toBe(true);
    expect(list.matches("+19005550123")).toBe(true);
    expect(list.matches("+442079460958")).toBe(true);
  });

  test("neighbours are not: one digit off, a longer number, a prefix that only looks alike", () => {
    expect(list.matches("+14155550101")).toBe(false);
    expect(list.matches("+141555501001")).toBe(false);
    expect(list.matches("+19015550123")).toBe(false); // +1901, not +1900
    expect(list.matches("+4420794")).toBe(false); // shorter than the prefix
  });

  test("a withheld number matches no pattern (numbers that block anonymous callers say so themselves)", () => {
    expect(list.matches(null)).toBe(false);
    expect(new Blocklist(["+1*"]).matches(null)).toBe(false);
  });

  test("an empty list blocks no one", () => {
    expect(new Blocklist([]).matches("+14155550100")).toBe(false);
  });
});
