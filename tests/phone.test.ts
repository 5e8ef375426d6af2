// Phone numbers arrive from SIP trunks in many shapes; routing and leads only work if every
// shape of the same number comes out as the same E.164 string.
import { describe, expect, test } from "bun:test";
import { normalizePhoneNumber, numberTypeOf, phoneNumberReader } from "../src/calls/phone";

describe("normalizePhoneNumber", () => {
  const sameNumber = [
    "+14155550100",
    "(415) 555-0100",
    "415-555-0100",
    "4155550100",
    "14155550100",
    "+1 (415) 555-0100",
    "+1-415-555-0100",
    "  +1 415 555 0100  ",
    "tel:+14155550100",
    "tel:+1-415-555-0100",
    "tel:+14155550100;ext=1",
    "TEL:+14155550100",
    "sip:+14155550100@host",
    "sip:+14155550100@sip.example.com;user=phone",
    "sip:+14155550100@host:5060",
    "sips:+14155550100@host",
    "SIP:+14155550100@host",
    "sip:14155550100@host",
    "sip:4155550100@host",
  ];
  test.each(sameNumber)("%p is +14155550100 in the US", (raw) => {
    expect(normalizePhoneNumber(raw, "US")).toBe("+14155550100");
  });

  const withheld = [
    "anonymous",
    "Anonymous",
    "ANONYMOUS",
    "unknown",
    "restricted",
    "private",
    "unavailable",
    "withheld",
    "",
    "   ",
    "sip:anonymous@anonymous.invalid",
    "sip:unknown@host",
  ];
  test.each(withheld)("withheld caller %p has no number", (raw) => {
    expect(normalizePhoneNumber(raw, "US")).toBeNull();
  });

  test("null and undefined have no number", () => {
    expect(normalizePhoneNumber(null, "US")).toBeNull();
    expect(normalizePhoneNumber(undefined, "US")).toBeNull();
  });

  test.each(["garbage", "12", "not-a-number", "sip:garbage@host", "+1"])("unparsable %p has no number", (raw) => {
    expect(normalizePhoneNumber(raw, "US")).toBeNull();
  });

  test("national numbers are read in the given region", () => {
    expect(normalizePhoneNumber("020 7183 8750", "GB")).toBe("+442071838750");
    expect(normalizePhoneNumber("07911 123456", "GB")).toBe("+447911123456");
    expect(normalizePhoneNumber("030 123456", "DE")).toBe("+4930123456");
    // International prefixes are the region's own: 00 in the UK, 011 from the US.
    expect(normalizePhoneNumber("00442071838750", "GB")).toBe("+442071838750");
    expect(normalizePhoneNumber("011442071838750", "US")).toBe("+442071838750");
  });

  test("a UK national number is not a US number", () => {
    expect(normalizePhoneNumber("020 7183 8750", "US")).toBeNull();
  });

  test("E.164 input does not depend on the region", () => {
    for (const region of ["US", "GB", "DE", "FR"]) {
      expect(normalizePhoneNumber("+14155550100", region)).toBe("+14155550100");
      expect(normalizePhoneNumber("+44 20 7183 8750", region)).toBe("+442071838750");
      expect(normalizePhoneNumber("sip:+442071838750@host", region)).toBe("+442071838750");
    }
  });
});

describe("phoneNumberReader (what routing reads a call's numbers with)", () => {
  const inputs = ["+14155550100", "sip:4155550100@host", "020 7183 8750", "anonymous", "", "12345", "+44 20 7183 8750", "tel:+14155550100;ext=1"];

  test("reads every shape as normalizePhoneNumber does, in its own region, on first and repeated reads", () => {
    const inGB = phoneNumberReader("GB");
    for (const round of [1, 2, 3]) {
      for (const raw of inputs) expect([round, raw, inGB(raw)]).toEqual([round, raw, normalizePhoneNumber(raw, "GB")]);
    }
    expect(inGB(null)).toBeNull();
    expect(inGB(undefined)).toBeNull();
    // The same text in another region is another number.
    expect(phoneNumberReader("US")("020 7183 8750")).toBe(normalizePhoneNumber("020 7183 8750", "US"));
  });

  test("stays right while it forgets: more distinct numbers than it remembers, some read again soon, some late", () => {
    const read = phoneNumberReader("US", 3);
    const callers = ["(212) 555-0100", "(212) 555-0101", "anonymous", "(212) 555-0103", "+44 20 7183 8750"];
    // Hits (a number read again while remembered), misses, and numbers forgotten and read again.
    const order = [0, 1, 0, 2, 1, 3, 0, 3, 4, 4, 2, 0, 1, 1, 3, 4, 0, 2, 2, 1];
    for (const i of order) expect([i, read(callers[i])]).toEqual([i, normalizePhoneNumber(callers[i], "US")]);
  });
});

describe("numberTypeOf", () => {
  test("toll-free numbers", () => {
    expect(numberTypeOf("+18005550199")).toBe("TOLL_FREE");
    expect(numberTypeOf("+18885550100")).toBe("TOLL_FREE");
    expect(numberTypeOf("+448001234567")).toBe("TOLL_FREE");
  });

  test("mobile numbers", () => {
    expect(numberTypeOf("+447911123456")).toBe("MOBILE");
  });

  test("geographic numbers are local", () => {
    expect(numberTypeOf("+442071838750")).toBe("LOCAL");
    expect(numberTypeOf("+14155550100")).toBe("LOCAL");
    // US numbers cannot be told apart from mobiles; they count as local.
    expect(numberTypeOf("+12125550142")).toBe("LOCAL");
  });

  test("anything unrecognisable is local", () => {
    expect(numberTypeOf("garbage")).toBe("LOCAL");
  });
});
