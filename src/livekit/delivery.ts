// How livekit-server delivers webhooks (livekit/protocol webhook/resource_url_notifier.go and
// resource_queue.go, with go-retryablehttp's defaults): one queue and one worker per room, an
// event dropped once it waited maxAgeMs in the queue, each delivery tried `attempts` times with
// the back-off between tries, on connection errors, 429 and 5xx (but 501); other answers are final.
export const LIVEKIT_DELIVERY = {
  attempts: 5,
  backoffMs: [1000, 2000, 4000, 8000],
  maxAgeMs: 30_000,
} as const;

const totalBackoffMs = LIVEKIT_DELIVERY.backoffMs.reduce((sum, ms) => sum + ms, 0);

/**
 * The longest one delivery may take to answer so that all of an event's tries and the back-off
 * between them fit in the time the room's next event may wait behind it: (30 s - 15 s) / 5,
 * less a margin for the network.
 */
export const MAX_DELIVERY_BUDGET_MS = Math.floor((LIVEKIT_DELIVERY.maxAgeMs - totalBackoffMs) / LIVEKIT_DELIVERY.attempts) - 100;

/**
 * Whether LiveKit may still deliver this event again if this delivery fails. Its last try comes
 * once all the back-off has passed since the event's createdAt; createdAt has whole seconds, so a
 * second more is waited for. `deliveries` counts the deliveries that tried to dispatch this call,
 * this one included. With answers near the budget the 4th try may already count as the last (the
 * call then ends one try early); a clock far off LiveKit's shifts the age the same way.
 */
export function isLastDelivery(createdAtSeconds: bigint, now: Date, deliveries: number): boolean {
  const created = Number(createdAtSeconds) * 1000;
  return deliveries >= LIVEKIT_DELIVERY.attempts || (created > 0 && now.getTime() - created >= totalBackoffMs + 1000);
}
