// Every value a webhook event carries is checked here before it reaches the database. A signed
// event whose values PostgreSQL cannot store (NUL, unpaired surrogates, keys too long for an
// index entry) would fail the same way on every redelivery: instead, keys that are not storable
// as they are become a digest (the same value always gives the same key, so deduplication and
// matching still hold) and free text is cleaned.
import type { ParticipantInfo, WebhookEvent } from "@livekit/protocol";
import type { RoomRef } from "../calls/lifecycle";
import type { InboundCall } from "../calls/service";
import { BadRequestError } from "../errors";
import { isStorableText, toStorableText } from "../text";

/** Longest key kept as it is: LiveKit's ids are ~15 characters, its names at most a few hundred. */
export const KEY_MAX_CHARS = 256;
const TEXT_MAX_CHARS = 1024;

const storableText = (value: string, max = TEXT_MAX_CHARS) => toStorableText(value, max);

/**
 * An id or name the database indexes and matches on: the value itself when it is storable and
 * short enough, else `sha256:` and the digest of its UTF-8 bytes.
 */
export function storableKey(value: string): string {
  if (value.length <= KEY_MAX_CHARS && isStorableText(value)) return value;
  return `sha256:${new Bun.CryptoHasher("sha256").update(value.toWellFormed()).digest("base64url")}`;
}

const optionalKey = (value: string | undefined) => (value ? storableKey(value) : null);

/** The event's room as the database keys it. */
export function eventRoom(event: WebhookEvent): RoomRef {
  return { name: storableKey(event.room?.name ?? ""), sid: optionalKey(event.room?.sid) };
}

/** The event id as the database keys it; null when the event has none. */
export const eventKey = (event: WebhookEvent) => optionalKey(event.id);

/** The participant's identity, storable (it is kept as facts, never matched on). */
export const participantIdentity = (participant: ParticipantInfo | undefined) =>
  participant?.identity ? storableText(participant.identity, KEY_MAX_CHARS) : undefined;

/**
 * The SIP facts LiveKit puts on an inbound caller's participant, as a call to route. The call's
 * identity is sip.callID; without one (LiveKit's SIP service always sets it, a forged or broken
 * event may not), the participant sid, which is as stable for the call. With neither there is
 * nothing to tell this call from any other: refused, as no redelivery can mend it.
 */
export function sipCall(participant: ParticipantInfo, room: RoomRef): InboundCall {
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(participant.attributes)) {
    attributes[storableText(key, KEY_MAX_CHARS)] = storableText(value);
  }
  const callId = participant.attributes["sip.callID"] || participant.sid;
  if (!callId) {
    throw new BadRequestError(
      "participant.attributes.sip.callID: empty, and participant.sid is empty too; the call cannot be identified",
      "participant.attributes.sip.callID",
    );
  }
  const sip = Object.fromEntries(Object.entries(attributes).filter(([key]) => key.startsWith("sip.")));
  return {
    callId: storableKey(callId),
    from: attributes["sip.phoneNumber"],
    to: attributes["sip.trunkPhoneNumber"],
    trunkId: attributes["sip.trunkID"] ? storableText(attributes["sip.trunkID"], KEY_MAX_CHARS) : undefined,
    roomName: room.name,
    roomSid: room.sid,
    source: "livekit",
    // The trunk's X- headers (include_headers), for the agent; they stay in the call's details too.
    sipHeaders: sipHeadersOf(attributes),
    details: {
      participant: { sid: optionalKey(participant.sid), identity: participantIdentity(participant) ?? null },
      sip,
    },
  };
}

/** The SIP X- headers among a SIP participant's attributes (LiveKit's sip.h.<header>), by header name. */
function sipHeadersOf(attributes: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("sip.h.")) headers[key.slice("sip.h.".length)] = value;
  }
  return headers;
}
