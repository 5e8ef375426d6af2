// Business hours: whether a number's schedule is open at a given instant. Hours are wall-clock
// times in the schedule's IANA time zone, so daylight-saving changes need no special case: on
// the day clocks jump forward the skipped hour never comes, on the day they fall back the
// repeated hour is open (or closed) both times, as anyone reading the opening hours expects.
import type { BusinessHours, Weekday } from "./model";

/** What a schedule says of an instant: open, or closed (on a holiday, or outside the weekly hours). */
export type ScheduleState = "open" | "after_hours" | "holiday";

export interface ScheduleProblem {
  /** The field at fault, as the API names it (e.g. "weekly_hours.mon[1].close"). */
  field: string;
  message: string;
}

const MINUTES_PER_DAY = 24 * 60;

/** "09:30" -> 570; "24:00" -> 1440. The shape is checked by the model (ClockTime). */
function minutesOf(clock: string): number {
  const [hours, minutes] = clock.split(":").map(Number);
  return hours! * 60 + minutes!;
}

/** Whether `zone` is a time zone this runtime knows (an IANA name such as America/New_York). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether "YYYY-MM-DD" names a day of the calendar (not 2026-02-30). */
function isCalendarDate(date: string): boolean {
  const parsed = new Date(`${date}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === date;
}

/**
 * What the model's shape cannot say about a schedule: an unknown time zone, an interval that does
 * not open before it closes, "24:00" as an opening, overlapping intervals on one day, a holiday
 * that is not a date. Empty when the schedule is sound.
 */
export function scheduleProblems(hours: BusinessHours): ScheduleProblem[] {
  const problems: ScheduleProblem[] = [];
  if (!isTimeZone(hours.time_zone)) {
    problems.push({ field: "time_zone", message: `"${hours.time_zone}" is not an IANA time zone (e.g. America/New_York)` });
  }
  for (const [day, intervals] of Object.entries(hours.weekly_hours) as [Weekday, BusinessHours["weekly_hours"]["mon"]][]) {
    const sorted = (intervals ?? []).map((interval, index) => ({ ...interval, index })).sort((a, b) => minutesOf(a.open) - minutesOf(b.open));
    sorted.forEach((interval, position) => {
      const field = `weekly_hours.${day}[${interval.index}]`;
      if (interval.open === "24:00") problems.push({ field: `${field}.open`, message: "24:00 may only close a day; open at 00:00" });
      else if (minutesOf(interval.open) >= minutesOf(interval.close)) {
        problems.push({ field: `${field}.close`, message: `closes at ${interval.close}, not after it opens at ${interval.open}; past midnight is two intervals, one on each day` });
      }
      const next = sorted[position + 1];
      if (next && minutesOf(next.open) < minutesOf(interval.close)) {
        problems.push({ field: `weekly_hours.${day}[${next.index}].open`, message: `overlaps the interval ${interval.open}-${interval.close}` });
      }
    });
  }
  hours.holidays.forEach((date, index) => {
    if (!isCalendarDate(date)) problems.push({ field: `holidays[${index}]`, message: `"${date}" is not a calendar date (YYYY-MM-DD)` });
  });
  return problems;
}

/** A schedule made ready to answer often: its time zone's formatter is built once. */
export interface CompiledSchedule {
  stateAt(at: Date): ScheduleState;
}

/** Prepares a sound schedule (see scheduleProblems) for routing; throws a RangeError on an unknown zone. */
export function compileSchedule(hours: BusinessHours): CompiledSchedule {
  const localTime = new Intl.DateTimeFormat("en-US", {
    timeZone: hours.time_zone,
    hourCycle: "h23",
    weekday: "short",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
  const holidays = new Set(hours.holidays);
  const weekly = new Map(
    Object.entries(hours.weekly_hours).map(([day, intervals]) => [day, (intervals ?? []).map((i) => [minutesOf(i.open), minutesOf(i.close)] as const)]),
  );
  return {
    stateAt(at) {
      const parts = Object.fromEntries(localTime.formatToParts(at).map((part) => [part.type, part.value]));
      if (holidays.has(`${parts.year}-${parts.month}-${parts.day}`)) return "holiday";
      const minute = (Number(parts.hour) * 60 + Number(parts.minute)) % MINUTES_PER_DAY;
      const today = weekly.get(parts.weekday!.toLowerCase()) ?? [];
      return today.some(([open, close]) => open <= minute && minute < close) ? "open" : "after_hours";
    },
  };
}
