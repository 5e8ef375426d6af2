// Times an event reports, checked before they reach a record. LiveKit's int64 times arrive as
// bigint (zero means unset), and a nonsense value must become neither a 500 nor a record.
import type { ParticipantInfo, WebhookEvent } from "@livekit/protocol";

const DAY_MS = 24 * 60 * 60 * 1000;
const WEEK_MS = 7 * DAY_MS;
const YEAR_2000_MS = Date.UTC(2000, 0, 1);

/** When the event happened: its createdAt, or `now` when that is unset, nonsense or within the same second. */
export function eventTime(event: WebhookEvent, now: Date): Date {
  const created = validDate(Number(event.createdAt) * 1000, now);
  if (!created) return now;
  // createdAt has whole seconds only; a delivery received within that second is timed to the millisecond.
  const lag = now.getTime() - created.getTime();
  return lag >= 0 && lag < 1000 ? now : created;
}

/** When the participant joined: close to the event that reports it (no call lasts a week). */
export function joinedAt(participant: ParticipantInfo, eventAt: Date): Date | null {
  return (
    validDate(Number(participant.joinedAtMs), eventAt, WEEK_MS) ?? validDate(Number(participant.joinedAt) * 1000, eventAt, WEEK_MS)
  );
}

/**
 * A time must lie after 2000 and within a day ahead of `reference` (clocks disagree a little),
 * and no more than `maxBehindMs` before it.
 */
function validDate(ms: number, reference: Date, maxBehindMs = Number.POSITIVE_INFINITY): Date | null {
  const ref = reference.getTime();
  if (!(ms > YEAR_2000_MS && ms < ref + DAY_MS && ms > ref - maxBehindMs)) return null;
  return new Date(ms);
}
