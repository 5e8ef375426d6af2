// A caller the policies do not give an agent: rejected (removed from the room, so LiveKit hangs
// up and the caller hears the call end rather than ringing on) or transferred to a phone number.
// Neither starts an agent.
//
// A transfer cannot be a SIP REFER at this point: LiveKit answers an inbound call only once
// someone in the room subscribes to the caller's audio, and refuses to transfer a call it has not
// answered (livekit/sip pkg/sip/inbound.go newReferReq: "can't transfer non established call").
// So with an outbound trunk (LIVEKIT_TRANSFER_TRUNK_ID) the destination is dialed into the
// caller's room instead: when it picks up, it subscribes to the caller, LiveKit answers the
// caller, and the two talk through the room. Without one, the REFER is tried (it works for a call
// already answered) and a refusal ends the call.
import { sql } from "drizzle-orm";
import type { CallRouting } from "../calls/service";
import type { Database } from "../db/client";
import { UnavailableError, withDeadline } from "../errors";
import type { Logger } from "../logger";

/** The parts of livekit-server-sdk's RoomServiceClient and SipClient a hand-off uses. */
export interface CallHandoff {
  removeParticipant(room: string, identity: string): Promise<void>;
  transferSipParticipant(room: string, identity: string, transferTo: string): Promise<void>;
  /** Dials `number` into the room through the transfer trunk; absent without LIVEKIT_TRANSFER_TRUNK_ID. */
  dialIntoRoom?(room: string, number: string, identity: string): Promise<{ sipCallId: string }>;
}

export interface HandoffDeps {
  handoff: CallHandoff;
  database: Database;
  logger: Logger;
  /** How long a removal or a dial may take within the webhook's answer. */
  budgetMs: number;
}

type Undispatched = Exclude<CallRouting, { outcome: "dispatched" }>;
type Transferred = Extract<CallRouting, { outcome: "transferred" }>;

/** Twirp's not_found: the participant (or its room) is gone already, which is what a removal wants. */
export const isGone = (error: unknown) => (error as { status?: unknown })?.status === 404;

const TRANSFER_PREFIX = "transfer-";
/** The identity of the participant a transfer dials into the caller's room. */
export const transferIdentity = (callId: string) => `${TRANSFER_PREFIX}${callId}`;
/** The call a transfer's participant was dialed for, or null for any other participant. */
export const transferredCallOf = (identity: string) => (identity.startsWith(TRANSFER_PREFIX) ? identity.slice(TRANSFER_PREFIX.length) : null);

/** Hands the caller off as routing decided; answers what was done, for the webhook's answer. */
export async function handOff(deps: HandoffDeps, routing: Undispatched, room: string, caller: string): Promise<string> {
  if (routing.outcome === "transferred") return transfer(deps, routing, room, caller);
  await removeCaller(deps, routing, room, caller);
  return `caller rejected (${routing.outcomeReason})`;
}

/**
 * Removes the caller. A removal that fails is answered 503, so LiveKit delivers the join again
 * and the removal is tried again (the call's stored decision stands).
 */
async function removeCaller(deps: HandoffDeps, routing: CallRouting, room: string, caller: string) {
  const fields = { call_id: routing.callId, room, reason: routing.outcomeReason, call_log_id: routing.callLogId };
  try {
    await withDeadline(deps.handoff.removeParticipant(room, caller), deps.budgetMs, "caller removal");
  } catch (error) {
    if (!isGone(error)) {
      deps.logger.warn({ ...fields, err: error }, "caller not removed; LiveKit will deliver the join again");
      throw new UnavailableError(`caller not removed: ${(error as Error).message}`);
    }
  }
  deps.logger.info(fields, "caller removed");
}

async function transfer(deps: HandoffDeps, routing: Transferred, room: string, caller: string): Promise<string> {
  const { dialIntoRoom } = deps.handoff;
  if (!dialIntoRoom) {
    // Rings the destination for up to the SDK's ringing timeout, far longer than a webhook may wait.
    deps.handoff.transferSipParticipant(room, caller, `tel:${routing.transferTo}`).then(
      () => deps.logger.info({ call_id: routing.callId, transfer_to: routing.transferTo }, "caller transferred"),
      (error) => transferFailed(deps, routing, room, caller, error),
    );
    return `caller transfer (REFER) to ${routing.transferTo} started (${routing.outcomeReason})`;
  }
  // One dial per call: the join's claim on the call log (as for an agent) says whether this delivery may.
  const claim = routing.dispatchClaim?.outcome ?? "claimed";
  if (claim === "in_progress") throw new UnavailableError("another delivery is transferring this call; retry later");
  if (claim !== "claimed") return `caller transfer already under way (${claim})`;
  try {
    const dialed = await withDeadline(dialIntoRoom(room, routing.transferTo, transferIdentity(routing.callId)), deps.budgetMs, "transfer dial");
    await recordDial(deps, routing, dialed.sipCallId);
    deps.logger.info({ call_id: routing.callId, transfer_to: routing.transferTo, sip_call_id: dialed.sipCallId }, "transfer destination dialed");
    return `transfer destination ${routing.transferTo} dialed into the room (${routing.outcomeReason})`;
  } catch (error) {
    await transferFailed(deps, routing, room, caller, error);
    return `caller transfer to ${routing.transferTo} failed; caller removed`;
  }
}

/** The dial is the call's hand-off: kept where an agent's dispatch would be, so no redelivery dials again. */
async function recordDial(deps: HandoffDeps, routing: Transferred, sipCallId: string) {
  if (!routing.callLogId) return;
  await deps.database
    .rows(sql`update call_logs set dispatch_id = ${`transfer:${sipCallId}`}, updated_at = now() where id = ${routing.callLogId} returning id`)
    .catch((error) => deps.logger.warn({ call_id: routing.callId, err: error }, "transfer dial not recorded"));
}

/**
 * A transfer that failed ends the call: the caller is removed (and a dial that may land late with
 * them), the record says why.
 */
async function transferFailed(deps: HandoffDeps, routing: Transferred, room: string, caller: string, error: unknown) {
  deps.logger.error({ call_id: routing.callId, transfer_to: routing.transferTo, err: error }, "caller transfer failed; removing the caller");
  await Promise.all([removeQuietly(deps, room, caller, routing.callId), removeQuietly(deps, room, transferIdentity(routing.callId), routing.callId)]);
  await recordTransferFailure(deps, routing.callId, error instanceof Error ? error.message : String(error));
}

/**
 * The destination dialed into the room left: it never answered (busy, no answer, rejected), or it
 * hung up. Either way the caller has no one left to talk to and is removed; a destination that
 * never answered makes the call a failed transfer.
 */
export async function transferDestinationLeft(
  deps: HandoffDeps,
  room: string,
  destination: { callId: string; answered: boolean; reason: string },
): Promise<string> {
  const rows = await deps.database.rows<{ identity: string | null }>(sql`
    select metadata->'participant'->>'identity' as identity from call_logs where provider_call_id = ${destination.callId}`);
  const caller = rows[0]?.identity;
  if (!destination.answered) await recordTransferFailure(deps, destination.callId, `the destination did not answer (${destination.reason})`);
  if (caller) await removeQuietly(deps, room, caller, destination.callId);
  return destination.answered ? "transfer destination hung up; caller removed" : `transfer destination did not answer (${destination.reason}); caller removed`;
}

async function removeQuietly(deps: HandoffDeps, room: string, identity: string, callId: string) {
  await deps.handoff.removeParticipant(room, identity).catch((failure) => {
    if (!isGone(failure)) deps.logger.warn({ call_id: callId, identity, err: failure }, "participant not removed");
  });
}

/** Ends a transferred call as failed, unless it has ended already (an end is final). */
async function recordTransferFailure(deps: HandoffDeps, callId: string, message: string) {
  await deps.database
    .rows(sql`update call_logs
              set status = 'failed', disconnect_reason = 'TRANSFER_FAILED', ended_at = now(), updated_at = now(),
                  metadata = metadata || jsonb_build_object('transfer_error', ${message.slice(0, 1000)}::text)
              where provider_call_id = ${callId} and outcome = 'transferred' and ended_at is null returning id`)
    .catch((failure) => deps.logger.warn({ call_id: callId, err: failure }, "transfer failure not recorded"));
}
