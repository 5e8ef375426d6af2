// A caller the policies do not give an agent: rejected (removed from the room, so LiveKit hangs
// up and the caller hears the call end rather than ringing on) or transferred to a phone number
// (SIP REFER through LiveKit's SIP service). Neither starts an agent.
import { sql } from "drizzle-orm";
import type { CallRouting } from "../calls/service";
import type { Database } from "../db/client";
import { UnavailableError, withDeadline } from "../errors";
import type { Logger } from "../logger";

/** The parts of livekit-server-sdk's RoomServiceClient and SipClient a hand-off uses. */
export interface CallHandoff {
  removeParticipant(room: string, identity: string): Promise<void>;
  transferSipParticipant(room: string, identity: string, transferTo: string): Promise<void>;
}

export interface HandoffDeps {
  handoff: CallHandoff;
  database: Database;
  logger: Logger;
  /** How long a removal may take within the webhook's answer. */
  budgetMs: number;
}

type Undispatched = Exclude<CallRouting, { outcome: "dispatched" }>;

/** Twirp's not_found: the participant (or its room) is gone already, which is what a removal wants. */
const isGone = (error: unknown) => (error as { status?: unknown })?.status === 404;

/**
 * Hands the caller off as routing decided. A removal that fails is answered 503, so LiveKit
 * delivers the join again and the removal is tried again (the call's stored decision stands).
 * A transfer rings the destination for up to the SDK's ringing timeout, far longer than a
 * webhook may wait: it is started here and finishes in the background; a failure is logged and
 * kept on the call log (metadata.transfer_error).
 */
export async function handOff(deps: HandoffDeps, routing: Undispatched, room: string, identity: string): Promise<string> {
  const fields = { call_id: routing.callId, room, reason: routing.outcomeReason, call_log_id: routing.callLogId };
  if (routing.outcome === "rejected") {
    try {
      await withDeadline(deps.handoff.removeParticipant(room, identity), deps.budgetMs, "caller removal");
    } catch (error) {
      if (!isGone(error)) {
        deps.logger.warn({ ...fields, err: error }, "rejected caller not removed; LiveKit will deliver the join again");
        throw new UnavailableError(`rejected caller not removed: ${(error as Error).message}`);
      }
    }
    deps.logger.info(fields, "caller rejected");
    return `caller rejected (${routing.outcomeReason})`;
  }
  const target = `tel:${routing.transferTo}`;
  deps.handoff.transferSipParticipant(room, identity, target).then(
    () => deps.logger.info({ ...fields, transfer_to: routing.transferTo }, "caller transferred"),
    (error) => transferFailed(deps, routing, error),
  );
  return `caller transfer to ${routing.transferTo} started (${routing.outcomeReason})`;
}

async function transferFailed(deps: HandoffDeps, routing: Undispatched, error: unknown) {
  deps.logger.error({ call_id: routing.callId, transfer_to: routing.transferTo, err: error }, "caller transfer failed");
  if (!routing.callLogId) return;
  const message = (error instanceof Error ? error.message : String(error)).slice(0, 1000);
  await deps.database
    .rows(sql`update call_logs set metadata = metadata || jsonb_build_object('transfer_error', ${message}::text), updated_at = now()
              where id = ${routing.callLogId} returning id`)
    .catch((failure) => deps.logger.warn({ call_id: routing.callId, err: failure }, "transfer failure not recorded"));
}
