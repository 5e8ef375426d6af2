// The delivery worker every process runs: it claims due deliveries from the outbox, sends each
// (several at once, one subject's events in order), and records what happened. Between processes
// the claim (SKIP LOCKED, then a lease) shares the work; a process that dies mid-attempt leaves
// its deliveries to be taken over when their lease lapses: at least once, same webhook-id.
import type { Database } from "../db/client";
import type { Logger } from "../logger";
import { claimDue, type ClaimedDelivery, forgetOld, recordAttempt, releaseClaim } from "./outbox";
import { eventBody } from "./payload";
import { type AttemptResult, sendWebhook } from "./sender";

export interface WebhookSettings {
  /** Waits between attempts after a failure; when spent, the delivery has failed. */
  retryScheduleMs: number[];
  disableAfterMs: number;
  timeoutMs: number;
  allowPrivateTargets: boolean;
  pollIntervalMs: number;
}

export interface WorkerDeps {
  database: Database;
  logger: Logger;
  settings: WebhookSettings;
  /** Told of every attempt (metrics). */
  onAttempt?: (outcome: DeliveryOutcome, result: AttemptResult) => void;
  /** Whether the database takes statements (and the schema is there): no claim before. */
  available: () => boolean;
}

export type DeliveryOutcome = "delivered" | "retrying" | "failed" | "disabled";

/** Attempts one process has going at once. */
const IN_FLIGHT = 16;
/** Delivery attempts and their events are kept this long. */
export const RETENTION_MS = 30 * 24 * 3600 * 1000;
const CLEANUP_EVERY_MS = 3600 * 1000;

/** When to try again after `attempts` failed tries, or null when the schedule is spent; ±10% jitter. */
export function nextAttemptAt(attempts: number, scheduleMs: number[], now: Date, random = Math.random): Date | null {
  const wait = scheduleMs[attempts - 1];
  if (wait === undefined) return null;
  return new Date(now.getTime() + wait * (0.9 + 0.2 * random()));
}

/**
 * Keeps up to IN_FLIGHT attempts going: it claims as many as there are free places, and claims
 * again as soon as one finishes (a call's next event becomes due then), so one slow receiver holds
 * one place, not the others' deliveries. Idle, it looks every WEBHOOK_POLL_INTERVAL.
 */
export function startWebhookWorker(deps: WorkerDeps): { stop(): Promise<void> } {
  const aborter = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const waker = createWaker();
  let lastCleanup = 0;
  const start = (delivery: ClaimedDelivery) => {
    const task = deliver(deps, delivery, aborter.signal)
      .catch((error: unknown) => deps.logger.warn({ err: error, delivery_id: delivery.id }, "webhook attempt not recorded"))
      .finally(() => {
        inFlight.delete(task);
        waker.wake();
      });
    inFlight.add(task);
  };
  const loop = async () => {
    while (!aborter.signal.aborted) {
      waker.reset();
      let claimed: ClaimedDelivery[] = [];
      try {
        if (deps.available() && inFlight.size < IN_FLIGHT) {
          if (Date.now() - lastCleanup > CLEANUP_EVERY_MS) {
            lastCleanup = Date.now();
            await forgetOld(deps.database, RETENTION_MS);
          }
          claimed = await claimDue(deps.database, IN_FLIGHT - inFlight.size, leaseMs(deps.settings));
          claimed.forEach(start);
        }
      } catch (error) {
        deps.logger.warn({ err: error }, "webhook delivery round failed");
      }
      if (claimed.length === 0 && !aborter.signal.aborted) await waker.idle(deps.settings.pollIntervalMs);
    }
    await Promise.all(inFlight);
  };
  const running = loop();
  return {
    async stop() {
      aborter.abort();
      waker.wake();
      await running;
    },
  };
}

/**
 * A wait that a wake ends early; a wake that comes while the loop is busy (claiming) is kept, so
 * the next wait returns at once instead of sleeping past a finished attempt.
 */
function createWaker() {
  let woken = false;
  let endWait = () => {};
  return {
    reset: () => {
      woken = false;
    },
    wake: () => {
      woken = true;
      endWait();
    },
    idle: (ms: number) =>
      new Promise<void>((resolve) => {
        if (woken) return resolve();
        // Unreferenced: an idle worker does not keep the process alive.
        const timer = setTimeout(resolve, ms);
        timer.unref?.();
        endWait = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

/** Longer than an attempt can take (its timeout) and the record after it. */
const leaseMs = (settings: WebhookSettings) => settings.timeoutMs * 2 + 1_000;

/** One attempt and its record; cut short by a stop, the delivery is given back untried. */
async function deliver(deps: WorkerDeps, delivery: ClaimedDelivery, signal: AbortSignal) {
  const result = await attempt(delivery, deps.settings, signal);
  if (signal.aborted) await releaseClaim(deps.database, delivery);
  else await settle(deps, delivery, result);
}

function attempt(delivery: ClaimedDelivery, settings: WebhookSettings, signal: AbortSignal) {
  const secrets = [delivery.secret, ...(delivery.previous_secret ? [delivery.previous_secret] : [])];
  const message = { id: `msg_${delivery.id}`, body: eventBody({ type: delivery.type, occurredAt: delivery.occurred_at, data: delivery.data }), secrets };
  return sendWebhook(delivery.url, message, { timeoutMs: settings.timeoutMs, allowPrivateTargets: settings.allowPrivateTargets, signal });
}

async function settle(deps: WorkerDeps, delivery: ClaimedDelivery, result: AttemptResult) {
  const { settings } = deps;
  const delivered = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
  const gone = result.statusCode === 410;
  const next = delivered || gone ? null : nextAttemptAt(delivery.attempts + 1, settings.retryScheduleMs, new Date());
  const health = await recordAttempt(deps.database, {
    deliveryId: delivery.id,
    lease: delivery.lease,
    ...result,
    nextAttemptAt: next,
    delivered,
    gone,
    disableAfterMs: settings.disableAfterMs,
  });
  const fields = { delivery_id: delivery.id, event: delivery.type, attempt: delivery.attempts + 1, status_code: result.statusCode, latency_ms: result.latencyMs };
  if (!health) {
    // Its lease lapsed and another worker took it over (or a person retried it, or it was deleted).
    deps.logger.warn(fields, "webhook attempt not recorded: the delivery is no longer this worker's");
    return;
  }
  const outcome: DeliveryOutcome = health.disabledReason ? "disabled" : delivered ? "delivered" : next ? "retrying" : "failed";
  deps.onAttempt?.(outcome, result);
  if (delivered) deps.logger.debug(fields, "webhook delivered");
  else deps.logger.info({ ...fields, error: result.error, next_attempt_at: next?.toISOString() ?? null, disabled: health.disabledReason }, "webhook attempt failed");
}
