// A tenant's webhook receiver on a loopback port: it keeps every request it gets, checks each
// signature with the `standardwebhooks` package (what receivers use), and answers as the test says.
import { Webhook } from "standardwebhooks";

export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** The parsed payload: { type, timestamp, data }. */
  payload: { type: string; timestamp: string; data: Record<string, any> };
  receivedAt: number;
}

/** How to answer one request: a status, optionally after a delay. */
export type Answer = number | { status: number; delayMs?: number; body?: string; headers?: Record<string, string> };

export interface WebhookReceiver {
  url: string;
  port: number;
  received: ReceivedWebhook[];
  /** Answers for the next requests, in order; after them, `fallback` (200 unless set). */
  answers: Answer[];
  fallback: Answer;
  /** The received webhooks of one type, or all. */
  ofType(type?: string): ReceivedWebhook[];
  /** Resolves once `predicate` holds for what was received (checked as requests arrive), or fails after `ms`. */
  waitFor(predicate: (received: ReceivedWebhook[]) => boolean, ms?: number): Promise<ReceivedWebhook[]>;
  /** True when every received request verifies with `secret` (whsec_...). */
  verifies(secret: string, webhook?: ReceivedWebhook): boolean;
  reset(): void;
  close(): Promise<void>;
}

/** A certificate and its key (PEM) for a receiver served over https, at https://localhost. */
export interface ReceiverTls {
  cert: string;
  key: string;
}

export function startWebhookReceiver(path = "/hooks", tls?: ReceiverTls): WebhookReceiver {
  const received: ReceivedWebhook[] = [];
  const waiters = new Set<() => void>();
  const state = { answers: [] as Answer[], fallback: 200 as Answer };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    async fetch(request) {
      const body = await request.text();
      const header = (name: string) => request.headers.get(name) ?? "";
      received.push({
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        payload: JSON.parse(body),
        receivedAt: Date.now(),
      });
      for (const wake of waiters) wake();
      const answer = state.answers.shift() ?? state.fallback;
      const { status, delayMs = 0, body: answerBody = "", headers } = typeof answer === "number" ? { status: answer } : answer;
      if (delayMs > 0) await Bun.sleep(delayMs);
      return new Response(answerBody || null, { status, headers });
    },
  });
  const receiver: WebhookReceiver = {
    url: tls ? `https://localhost:${server.port}${path}` : `http://127.0.0.1:${server.port}${path}`,
    port: server.port!,
    received,
    get answers() {
      return state.answers;
    },
    set answers(value) {
      state.answers = value;
    },
    get fallback() {
      return state.fallback;
    },
    set fallback(value) {
      state.fallback = value;
    },
    ofType: (type) => (type ? received.filter((r) => r.payload.type === type) : received),
    waitFor(predicate, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(received)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(received);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the receiver did not get what was awaited within ${ms} ms; it got: ${received.map((r) => r.payload.type).join(", ") || "nothing"}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    verifies(secret, webhook) {
      const wh = new Webhook(secret);
      return (webhook ? [webhook] : received).every((r) => {
        try {
          wh.verify(r.body, { "webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature });
          return true;
        } catch {
          return false;
        }
      });
    },
    reset() {
      received.length = 0;
      state.answers = [];
      state.fallback = 200;
    },
    close: async () => {
      await server.stop(true);
    },
  };
  return receiver;
}
