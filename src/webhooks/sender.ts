// One attempt to deliver one webhook: a signed POST (Standard Webhooks), bounded in time and in
// what is read back, to a target checked where it is connected to. The address is checked in the
// connection's own DNS lookup, so a name cannot pass the check and then resolve elsewhere
// (DNS rebinding); redirects are answers like any other non-2xx, never followed.
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import ipaddr from "ipaddr.js";
import { Webhook } from "standardwebhooks";

/** Response bodies are read up to this much (the rest is dropped with the connection). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface SendOptions {
  timeoutMs: number;
  /** Loopback, private, link-local and multicast targets too (tests, private deployments). */
  allowPrivateTargets: boolean;
  /** Aborts the attempt (the process is stopping). */
  signal?: AbortSignal;
}

export interface AttemptResult {
  /** The receiver's status; null when it never answered. */
  statusCode: number | null;
  latencyMs: number;
  /** What went wrong, for people reading the delivery log; null on a 2xx. */
  error: string | null;
}

export interface SignedMessage {
  /** The webhook-id: the same on every attempt, the receiver's deduplication key. */
  id: string;
  body: string;
  /** The endpoint's secrets (whsec_...): each signs, so a receiver with either verifies. */
  secrets: string[];
}

/** The Standard Webhooks headers for a message sent now. */
export function signedHeaders(message: SignedMessage, now: Date): Record<string, string> {
  const signatures = message.secrets.map((secret) => new Webhook(secret).sign(message.id, now, message.body));
  return {
    "webhook-id": message.id,
    "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    "webhook-signature": signatures.join(" "),
  };
}

/** Why an address may not be a target (its range: loopback, private, ...), or null when it may. */
export function forbiddenRange(address: string): string | null {
  if (!ipaddr.isValid(address)) return "unparsable";
  const range = ipaddr.process(address).range();
  return range === "unicast" ? null : range;
}

class RefusedTarget extends Error {}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/** dns.lookup, refusing a name any of whose addresses is not a public unicast one. */
function guardedLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback) {
  dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const refused = addresses.find((a) => forbiddenRange(a.address));
    if (refused) {
      const range = forbiddenRange(refused.address);
      return callback(new RefusedTarget(`refused target: ${hostname} resolves to ${refused.address}, a ${range} address`), []);
    }
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}

export async function sendWebhook(url: string, message: SignedMessage, options: SendOptions): Promise<AttemptResult> {
  const started = performance.now();
  const done = (statusCode: number | null, error: string | null): AttemptResult => ({
    statusCode,
    latencyMs: Math.round(performance.now() - started),
    error,
  });
  const target = new URL(url);
  const literal = target.hostname.replace(/^\[|\]$/g, "");
  const literalRange = net.isIP(literal) && !options.allowPrivateTargets ? forbiddenRange(literal) : null;
  if (literalRange) return done(null, `refused target: ${literal} is a ${literalRange} address`);
  try {
    const answer = await post(target, message, options);
    const ok = answer.status >= 200 && answer.status < 300;
    return done(answer.status, ok ? null : `HTTP ${answer.status}${answer.excerpt ? `: ${answer.excerpt}` : ""}`);
  } catch (error) {
    return done(null, describeFailure(error, options.timeoutMs));
  }
}

function post(target: URL, message: SignedMessage, options: SendOptions): Promise<{ status: number; excerpt: string }> {
  const client = target.protocol === "https:" ? https : http;
  const headers = {
    ...signedHeaders(message, new Date()),
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(message.body)),
    "user-agent": "Switchboard-Webhooks/1",
  };
  return new Promise((resolve, reject) => {
    const request = client.request(target, {
      method: "POST",
      headers,
      agent: false,
      lookup: options.allowPrivateTargets ? undefined : (guardedLookup as never),
      signal: options.signal,
    });
    const timer = setTimeout(() => request.destroy(new TimedOut()), options.timeoutMs);
    request.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        clearTimeout(timer);
        response.destroy();
        resolve({ status: response.statusCode ?? 0, excerpt: Buffer.concat(chunks).toString("utf8", 0, 200).trim() });
      };
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
        else finish();
      });
      response.on("end", finish);
      response.on("error", finish);
    });
    request.end(message.body);
  });
}

class TimedOut extends Error {}

function describeFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof TimedOut) return `timed out after ${timeoutMs} ms`;
  if (error instanceof RefusedTarget) return error.message;
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}
