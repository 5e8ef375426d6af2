// Business hours as a caller meets them: a schedule is open or closed by the wall clock of its
// own time zone, across daylight-saving changes (America/New_York: clocks go from 02:00 to 03:00
// on 2026-03-08 and from 02:00 back to 01:00 on 2026-11-01), on holidays, and at midnight.
import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { BusinessHours } from "../src/calls/model";
import { compileSchedule, scheduleProblems } from "../src/calls/schedule";

const weekdays = (open: string, close: string) =>
  Object.fromEntries(["mon", "tue", "wed", "thu", "fri"].map((d) => [d, [{ open, close }]])) as BusinessHours["weekly_hours"];

const newYork = (weekly: BusinessHours["weekly_hours"], holidays: string[] = []): BusinessHours => ({
  time_zone: "America/New_York",
  weekly_hours: weekly,
  holidays,
});

const stateAt = (hours: BusinessHours, iso: string) => compileSchedule(hours).stateAt(new Date(iso));

describe("a dental office open 09:00-17:00 on weekdays in New York", () => {
  const office = newYork(weekdays("09:00", "17:00"), ["2026-12-25"]);

  test("in winter (UTC-5) it opens at 14:00 UTC and closes at 22:00 UTC", () => {
    expect(stateAt(office, "2026-03-06T13:59:00Z")).toBe("after_hours"); // Friday 08:59 EST
    expect(stateAt(office, "2026-03-06T14:00:00Z")).toBe("open"); // Friday 09:00 EST
    expect(stateAt(office, "2026-03-06T21:59:00Z")).toBe("open"); // 16:59
    expect(stateAt(office, "2026-03-06T22:00:00Z")).toBe("after_hours"); // 17:00: closed
  });

  test("after the spring change (UTC-4) the same hours are an hour earlier in UTC", () => {
    expect(stateAt(office, "2026-03-09T12:59:00Z")).toBe("after_hours"); // Monday 08:59 EDT
    expect(stateAt(office, "2026-03-09T13:00:00Z")).toBe("open"); // Monday 09:00 EDT
    expect(stateAt(office, "2026-03-09T21:00:00Z")).toBe("after_hours"); // 17:00 EDT
  });

  test("closed all weekend, and all of a holiday by New York's calendar, not UTC's", () => {
    expect(stateAt(office, "2026-03-07T15:00:00Z")).toBe("after_hours"); // Saturday 10:00
    expect(stateAt(office, "2026-03-08T15:00:00Z")).toBe("after_hours"); // Sunday 11:00
    // 2026-12-25 is a Friday. 04:59 UTC is still Thursday the 24th (23:59 EST).
    expect(stateAt(office, "2026-12-25T04:59:00Z")).toBe("after_hours");
    expect(stateAt(office, "2026-12-25T05:00:00Z")).toBe("holiday"); // 00:00 EST on the 25th
    expect(stateAt(office, "2026-12-25T15:00:00Z")).toBe("holiday"); // 10:00, would be open
    expect(stateAt(office, "2026-12-26T04:59:00Z")).toBe("holiday"); // 23:59 on the 25th
    expect(stateAt(office, "2026-12-28T15:00:00Z")).toBe("open"); // Monday after
  });
});

describe("the nights daylight saving changes (America/New_York)", () => {
  test("2026-03-08: 02:00-03:00 never happens; an interval 01:00-03:00 ends at 02:00 EST, which is 03:00 EDT", () => {
    const night = newYork({ sun: [{ open: "01:00", close: "03:00" }] });
    expect(stateAt(night, "2026-03-08T05:59:00Z")).toBe("after_hours"); // 00:59 EST
    expect(stateAt(night, "2026-03-08T06:00:00Z")).toBe("open"); // 01:00 EST
    expect(stateAt(night, "2026-03-08T06:59:00Z")).toBe("open"); // 01:59 EST
    expect(stateAt(night, "2026-03-08T07:00:00Z")).toBe("after_hours"); // 03:00 EDT: closed
  });

  test("2026-11-01: 01:00-02:00 happens twice, and an interval 01:00-02:00 is open both times", () => {
    const night = newYork({ sun: [{ open: "01:00", close: "02:00" }] });
    expect(stateAt(night, "2026-11-01T04:59:00Z")).toBe("after_hours"); // 00:59 EDT
    expect(stateAt(night, "2026-11-01T05:30:00Z")).toBe("open"); // 01:30 EDT
    expect(stateAt(night, "2026-11-01T06:30:00Z")).toBe("open"); // 01:30 EST, the second time
    expect(stateAt(night, "2026-11-01T07:00:00Z")).toBe("after_hours"); // 02:00 EST
  });

  test("a 09:00-17:00 Sunday opens at 09:00 local time on both change days", () => {
    const sunday = newYork({ sun: [{ open: "09:00", close: "17:00" }] });
    expect(stateAt(sunday, "2026-03-08T12:59:00Z")).toBe("after_hours"); // 08:59 EDT
    expect(stateAt(sunday, "2026-03-08T13:00:00Z")).toBe("open"); // 09:00 EDT
    expect(stateAt(sunday, "2026-11-01T13:59:00Z")).toBe("after_hours"); // 08:59 EST
    expect(stateAt(sunday, "2026-11-01T14:00:00Z")).toBe("open"); // 09:00 EST
  });
});

describe("midnight", () => {
  test("a night shift past midnight is two intervals; 24:00 closes a day at its very end", () => {
    const night = newYork({ fri: [{ open: "22:00", close: "24:00" }], sat: [{ open: "00:00", close: "02:00" }] });
    expect(stateAt(night, "2026-03-07T02:59:00Z")).toBe("after_hours"); // Friday 21:59 EST
    expect(stateAt(night, "2026-03-07T03:00:00Z")).toBe("open"); // Friday 22:00
    expect(stateAt(night, "2026-03-07T04:59:00Z")).toBe("open"); // Friday 23:59
    expect(stateAt(night, "2026-03-07T05:00:00Z")).toBe("open"); // Saturday 00:00
    expect(stateAt(night, "2026-03-07T07:00:00Z")).toBe("after_hours"); // Saturday 02:00
  });

  test("a zone half an hour off UTC (Asia/Kolkata, UTC+5:30) is read in its own wall clock", () => {
    const india: BusinessHours = { time_zone: "Asia/Kolkata", weekly_hours: weekdays("09:00", "18:00"), holidays: [] };
    expect(stateAt(india, "2026-03-09T03:29:00Z")).toBe("after_hours"); // Monday 08:59 IST
    expect(stateAt(india, "2026-03-09T03:30:00Z")).toBe("open"); // Monday 09:00 IST
  });
});

describe("schedules that cannot mean what they say are refused, naming the field", () => {
  const fields = (hours: BusinessHours) => scheduleProblems(hours).map((p) => p.field);

  test("a sound schedule has no problems", () => {
    expect(scheduleProblems(newYork(weekdays("09:00", "17:00"), ["2026-12-25"]))).toEqual([]);
  });

  test("an unknown time zone", () => {
    const [problem] = scheduleProblems({ ...newYork({}), time_zone: "America/Gotham" });
    expect(problem).toEqual({ field: "time_zone", message: expect.stringContaining("America/Gotham") });
  });

  test("an interval that closes before it opens, or opens at 24:00; overlapping intervals", () => {
    expect(fields(newYork({ mon: [{ open: "22:00", close: "02:00" }] }))).toEqual(["weekly_hours.mon[0].close"]);
    expect(fields(newYork({ tue: [{ open: "09:00", close: "09:00" }] }))).toEqual(["weekly_hours.tue[0].close"]);
    expect(fields(newYork({ wed: [{ open: "24:00", close: "24:00" }] }))).toEqual(["weekly_hours.wed[0].open"]);
    const overlapping = newYork({ thu: [{ open: "12:00", close: "18:00" }, { open: "09:00", close: "12:30" }] });
    expect(fields(overlapping)).toEqual(["weekly_hours.thu[0].open"]);
    // Back to back is fine: 09:00-12:00 then 12:00-17:00.
    expect(fields(newYork({ fri: [{ open: "09:00", close: "12:00" }, { open: "12:00", close: "17:00" }] }))).toEqual([]);
  });

  test("a holiday that is not a calendar date", () => {
    expect(fields(newYork({}, ["2026-12-25", "2026-02-30", "2026-13-01"]))).toEqual(["holidays[1]", "holidays[2]"]);
  });

  test("the model refuses malformed clock times, unknown days and extra fields before any of that", () => {
    const valid = newYork(weekdays("09:00", "17:00"));
    expect(Value.Check(BusinessHours, valid)).toBe(true);
    for (const clock of ["9:00", "09:60", "25:00", "24:01", "09:00:00", ""]) {
      expect({ clock, ok: Value.Check(BusinessHours, newYork({ mon: [{ open: clock, close: "17:00" }] })) }).toEqual({ clock, ok: false });
    }
    expect(Value.Check(BusinessHours, { ...valid, weekly_hours: { monday: [] } })).toBe(false);
    expect(Value.Check(BusinessHours, newYork({ mon: [{ open: "09:00", close: "17:00", note: "x" } as never] }))).toBe(false);
  });
});
