// A stand-in for livekit-server's webhook sender, over real HTTP, behaving as the real one does.
// Sources (livekit/protocol at d74e7cdb, the version livekit-server uses; go-retryablehttp v0.7.8 = e1f5485f):
// - webhook/notifier.go EventKey: the queue key is EgressInfo.EgressId, else IngressInfo.IngressId,
//   else Room.Name, else Participant.Identity, else Track.Sid, else "default": one queue per room.
// - webhook/resource_url_notifier.go: DefaultResourceURLNotifierConfig = {MaxAge: 30 * time.Second,
//   MaxDepth: 200}. QueueNotify makes one resourceQueue per key; Process drops an event when
//   `time.Since(queuedAt) > params.Config.MaxAge` ("dropped webhook", reason "age") before sending;
//   once a send starts, its retries are not bounded by MaxAge. send() marshals the body and signs
//   it once (auth.NewAccessToken(...).SetValidFor(5 * time.Minute).SetSha256(b64)), so every retry
//   carries the same bytes and token. retryablehttp.NewClient() is used with its defaults and no
//   HTTP timeout (ClientTimeout is never set; cleanhttp's client has Timeout 0).
// - webhook/resource_queue.go: one worker goroutine per queue pops items FIFO and calls Process
//   synchronously; EnqueueAt refuses with errQueueFull ("queue is full") when
//   `r.items.Len() >= r.params.MaxDepth` (the item being sent is already popped and does not count).
// - go-retryablehttp client.go: defaultRetryWaitMin 1 s, defaultRetryWaitMax 30 s, defaultRetryMax 4;
//   Do loops `for i := 0; ; i++` and stops when `c.RetryMax - i <= 0`: at most 5 attempts.
//   baseRetryPolicy retries transport errors, 429, and `StatusCode == 0 || (>= 500 && != 501)`;
//   any other status is final, and the notifier logs it as "sent webhook" (a 4xx too).
//   DefaultBackoff: for 429 and 503 a Retry-After header (whole seconds, or an RFC 1123 date) is
//   the wait, uncapped; otherwise 2^i * 1 s capped at 30 s: 1, 2, 4, 8 s, no jitter.
// Left out: the 5-minute sweeper of idle queues, the processed hook and metrics, and the transport
// errors retryablehttp does not retry (too many redirects, bad scheme or header, certificates).
//
// `timeScale` scales every duration (MaxAge, the waits, Retry-After) so tests run fast; each event's
// record keeps its attempts (status, times) and how it ended: delivered, dropped or gave up.
import { signDelivery, type WebhookEvent } from "./livekit-events";

export const LIVEKIT_NOTIFIER = { maxAgeMs: 30_000, maxDepth: 200, retryMax: 4, waitMinMs: 1000, waitMaxMs: 30_000 } as const;

export interface NotifierOptions {
  /** Where events are POSTed (a real socket). */
  url: string;
  apiKey: string;
  apiSecret: string;
  /** Multiplies every duration: 0.1 makes MaxAge 3 s and the waits 0.1/0.2/0.4/0.8 s. Default 1. */
  timeScale?: number;
  /** Called after every attempt, e.g. to change the world between two deliveries. */
  onAttempt?: (delivery: NotifiedEvent, attempt: Attempt) => void;
}

export interface Attempt {
  /** HTTP status; 0 for a transport error (connection refused, reset). */
  status: number;
  error?: string;
  /** Date.now() when the request was sent and when its answer (or error) came. */
  sentAt: number;
  answeredAt: number;
}

export type Outcome = "queued" | "sending" | "delivered" | "dropped" | "gave_up";

export interface NotifiedEvent {
  event: WebhookEvent;
  /** The queue it went to (the room name). */
  key: string;
  enqueuedAt: number;
  attempts: Attempt[];
  outcome: Outcome;
  /** Why it was dropped: "age" (waited longer than MaxAge) or "queue is full". */
  dropReason?: "age" | "queue is full";
  /** Resolves once the event is delivered, dropped or given up. */
  settled: Promise<NotifiedEvent>;
}

interface Queue {
  items: Array<{ record: NotifiedEvent; settle: () => void }>;
  working: boolean;
}

/** notifier.go EventKey. */
export function notifierKey(event: WebhookEvent): string {
  if (event.egressInfo) return event.egressInfo.egressId;
  if (event.ingressInfo) return event.ingressInfo.ingressId;
  if (event.room) return event.room.name;
  if (event.participant) return event.participant.identity;
  if (event.track) return event.track.sid;
  return "default";
}

export class WebhookNotifier {
  readonly records: NotifiedEvent[] = [];
  private readonly queues = new Map<string, Queue>();
  private readonly scale: number;

  constructor(private readonly options: NotifierOptions) {
    this.scale = options.timeScale ?? 1;
  }

  /** The scaled MaxAge. */
  get maxAgeMs(): number {
    return LIVEKIT_NOTIFIER.maxAgeMs * this.scale;
  }

  /** QueueNotify: into the key's queue, or refused (dropped) when it already holds MaxDepth events. */
  notify(event: WebhookEvent): NotifiedEvent {
    const key = notifierKey(event);
    let settle!: () => void;
    const record: NotifiedEvent = { event, key, enqueuedAt: Date.now(), attempts: [], outcome: "queued", settled: undefined! };
    record.settled = new Promise<void>((resolve) => (settle = resolve)).then(() => record);
    this.records.push(record);
    const queue = this.queues.get(key) ?? { items: [], working: false };
    this.queues.set(key, queue);
    if (queue.items.length >= LIVEKIT_NOTIFIER.maxDepth) {
      record.outcome = "dropped";
      record.dropReason = "queue is full";
      settle();
      return record;
    }
    queue.items.push({ record, settle });
    if (!queue.working) void this.work(queue);
    return record;
  }

  /** Resolves once every event notified so far is settled. */
  async idle(): Promise<NotifiedEvent[]> {
    return Promise.all(this.records.map((r) => r.settled));
  }

  /** The record of an event, by its id. */
  record(eventId: string): NotifiedEvent {
    const found = this.records.find((r) => r.event.id === eventId);
    if (!found) throw new Error(`no event ${eventId} was notified`);
    return found;
  }

  /** resource_queue.go worker: one event at a time, in order. */
  private async work(queue: Queue): Promise<void> {
    queue.working = true;
    for (let item = queue.items.shift(); item; item = queue.items.shift()) {
      try {
        await this.process(item.record);
      } finally {
        item.settle();
      }
    }
    queue.working = false;
  }

  /** resource_url_notifier.go Process + send, with retryablehttp's Do. */
  private async process(record: NotifiedEvent): Promise<void> {
    if (Date.now() - record.enqueuedAt > this.maxAgeMs) {
      record.outcome = "dropped";
      record.dropReason = "age";
      return;
    }
    record.outcome = "sending";
    // Serialised and signed once: every retry sends the same bytes and token.
    const delivery = await signDelivery(record.event, { apiKey: this.options.apiKey, apiSecret: this.options.apiSecret });
    for (let i = 0; ; i++) {
      const attempt: Attempt = { status: 0, sentAt: Date.now(), answeredAt: 0 };
      let retryAfter: string | null = null;
      try {
        const res = await fetch(this.options.url, {
          method: "POST",
          headers: delivery.headers,
          body: delivery.body,
          timeout: false, // no HTTP timeout, as cleanhttp's client
          maxRedirects: 10, // Go's http.Client default
        });
        await res.arrayBuffer(); // the body is read and closed, never looked at
        attempt.status = res.status;
        retryAfter = res.headers.get("retry-after");
      } catch (error) {
        attempt.error = error instanceof Error ? error.message : String(error);
      }
      attempt.answeredAt = Date.now();
      record.attempts.push(attempt);
      this.options.onAttempt?.(record, attempt);
      if (!shouldRetry(attempt.status)) {
        record.outcome = "delivered";
        return;
      }
      if (LIVEKIT_NOTIFIER.retryMax - i <= 0) {
        record.outcome = "gave_up";
        return;
      }
      await Bun.sleep(this.backoffMs(i, attempt.status, retryAfter));
    }
  }

  /** DefaultBackoff, scaled. */
  private backoffMs(attemptNum: number, status: number, retryAfter: string | null): number {
    if ((status === 429 || status === 503) && retryAfter) {
      // parseRetryAfterHeader: whole seconds (a negative number is ignored), or a date (past: no wait).
      if (/^[+-]?\d+$/.test(retryAfter)) {
        if (Number(retryAfter) >= 0) return Number(retryAfter) * 1000 * this.scale;
      } else if (!Number.isNaN(Date.parse(retryAfter))) {
        return Math.max(0, Date.parse(retryAfter) - Date.now()) * this.scale;
      }
    }
    return Math.min(2 ** attemptNum * LIVEKIT_NOTIFIER.waitMinMs, LIVEKIT_NOTIFIER.waitMaxMs) * this.scale;
  }
}

/** baseRetryPolicy: transport errors (status 0), 429, and 5xx except 501. */
export function shouldRetry(status: number): boolean {
  return status === 0 || status === 429 || (status >= 500 && status !== 501);
}
