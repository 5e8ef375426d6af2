// Request and response shapes of the call-routing endpoints, shared by routes, tests and OpenAPI.
import { type Static, t } from "elysia";
import { OUTCOME_REASONS } from "../db/schema";
import { StorableText } from "../text";

const text = (description: string) => t.Optional(t.Nullable(StorableText({ maxLength: 512, description })));

export const SipInboundRequest = t.Object(
  {
    call_id: StorableText({ minLength: 1, maxLength: 256, description: "The SIP provider's call id (idempotency key)" }),
    trunk_id: text("SIP trunk id"),
    trunk_phone_number: text("Number dialed, as the trunk saw it; used when to_number is absent"),
    from_number: text("Caller; empty, 'anonymous' or absent when withheld"),
    to_number: text("Number dialed"),
    room_name: text("Room the call is bridged into"),
    sip_headers: t.Optional(
      t.Record(t.String({ maxLength: 256 }), StorableText({ maxLength: 1024 }), {
        description: "SIP X- headers of the call (name -> value), passed to the agent in metadata.sip_headers",
      }),
    ),
  },
  // Glue code in front of LiveKit may pass along more SIP facts; they are not a reason to drop a call.
  { additionalProperties: true },
);
export type SipInboundRequest = Static<typeof SipInboundRequest>;

export const SipInboundResponse = t.Object({
  action: t.UnionEnum(["dispatch", "reject", "transfer"], {
    description:
      "dispatch: start agent_name in the call's room. reject: end the call (remove the caller; start no agent). " +
      "transfer: pass the call to transfer_to (e.g. SIP REFER to tel:<transfer_to>); start no agent.",
  }),
  agent_name: t.Nullable(t.String(), { description: "The agent to start; null unless action is dispatch" }),
  transfer_to: t.Nullable(t.String({ description: "E.164" }), { description: "Where to transfer the call; set only when action is transfer" }),
  reason: t.Nullable(t.UnionEnum(OUTCOME_REASONS), {
    description: "The policy behind the action: set on every reject and transfer, and on a dispatch to an after-hours or overflow agent; null when routed as usual",
  }),
  /** JSON string of callMetadata(): what the agent reads as its job metadata. */
  metadata: t.String(),
  attributes: t.Object(
    {
      inbound: t.Literal("true"),
      phone_number: t.String(),
      caller: t.String(),
      caller_name: t.Optional(t.String({ description: "The caller's lead name, when there is a lead" })),
      tenant_id: t.Optional(t.String({ description: "When the number belongs to a tenant" })),
      campaign_id: t.Optional(t.String({ description: "When the number has a campaign" })),
    },
    { description: "Participant attributes for the caller; LiveKit drops empty values, so unknown ones are left out" },
  ),
  record: t.Union([t.Literal("recorded"), t.Literal("pending"), t.Literal("unrecorded")], {
    description:
      "recorded: the call log is in the database (metadata.call_log_id names it). pending: the database was unavailable; " +
      "the record is on disk in the journal and is written, exactly once, when the database answers (call_log_id is null " +
      "in this answer). unrecorded: neither could take it (logged); retrying with the same call_id is safe.",
  }),
});
export type SipInboundResponse = Static<typeof SipInboundResponse>;

export const TestCallRequest = t.Object({
  to_number: StorableText({ minLength: 1, maxLength: 512 }),
  from_number: t.Optional(StorableText({ maxLength: 512 })),
});

export const TestCallResponse = t.Object({
  success: t.Boolean(),
  test_data: t.Object({
    call_id: t.String(),
    room_name: t.String(),
    from_number: t.String(),
    to_number: t.String(),
  }),
  response: SipInboundResponse,
});

// ---- Business hours (a schedule's rules; the admin API stores them, routing reads them)

/** A wall-clock time, HH:MM on the 24-hour clock; 24:00 is the end of the day (a close only). */
const ClockTime = t.String({ pattern: "^(?:(?:[01]\\d|2[0-3]):[0-5]\\d|24:00)$", description: "HH:MM, 00:00 to 24:00" });

export const OpeningInterval = t.Object(
  { open: ClockTime, close: ClockTime },
  { additionalProperties: false, description: "Open from `open` until just before `close`; past midnight is two intervals" },
);

const day = (name: string) => t.Optional(t.Array(OpeningInterval, { maxItems: 12, description: `Opening intervals on ${name}` }));

export const WeeklyHours = t.Object(
  { mon: day("Monday"), tue: day("Tuesday"), wed: day("Wednesday"), thu: day("Thursday"), fri: day("Friday"), sat: day("Saturday"), sun: day("Sunday") },
  { additionalProperties: false, description: "Days left out are closed all day" },
);
export type Weekday = keyof typeof WeeklyHours.static;

export const BusinessHours = t.Object({
  time_zone: t.String({ minLength: 1, maxLength: 64, description: "IANA time zone the hours and holidays are in, e.g. America/New_York" }),
  weekly_hours: WeeklyHours,
  holidays: t.Array(t.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}$", description: "YYYY-MM-DD" }), {
    maxItems: 400,
    description: "Dates closed all day, in the schedule's time zone",
  }),
});
export type BusinessHours = typeof BusinessHours.static;
