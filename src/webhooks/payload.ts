// The body a receiver gets: { type, timestamp, data }, data being the call log or lead as the admin
// API answers it. It is made from the row as it was when the event happened (the outbox keeps
// to_jsonb of it), the same bytes on every attempt.
import type { TObject } from "@sinclair/typebox";
import { CallLog, Lead } from "../admin/model";

/** The fields of a model, each marked when it is a time (PostgreSQL's JSON times become ISO 8601 in UTC). */
const fieldsOf = (model: TObject) =>
  Object.entries(model.properties).map(([field, schema]) => [field, JSON.stringify(schema).includes('"date-time"')] as const);

const CALL_FIELDS = fieldsOf(CallLog);
const LEAD_FIELDS = fieldsOf(Lead);

const isoTime = (value: unknown) => (typeof value === "string" ? new Date(value).toISOString() : value);

export interface OutboxEvent {
  type: string;
  occurredAt: Date | string;
  data: Record<string, unknown>;
}

export function eventBody(event: OutboxEvent): string {
  const fields = event.type.startsWith("lead.") ? LEAD_FIELDS : CALL_FIELDS;
  const data = Object.fromEntries(fields.map(([field, isTime]) => [field, isTime ? isoTime(event.data[field] ?? null) : (event.data[field] ?? null)]));
  return JSON.stringify({ type: event.type, timestamp: new Date(event.occurredAt).toISOString(), data });
}
