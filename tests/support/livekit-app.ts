// What the tests of the LiveKit path share: the API keys the stand-in LiveKit and the app agree on,
// the webhook paths, the "Acme" directory most of them route against, the bun:test hooks that
// start the stand-in LiveKit and open an app wired to it, and the helpers that post signed events
// and read what the app recorded.
import { afterAll, beforeAll, beforeEach, expect } from "bun:test";
import { eq } from "drizzle-orm";
import { loadConfig } from "../../src/config";
import { callLogs, leads, webhookEvents } from "../../src/db/schema";
import { openTestContext, type TestContext } from "./context";
import { type FakeLiveKit, type RoomAgent, startFakeLiveKit } from "./fake-livekit";
import {
  type DeliveryOptions,
  randomId,
  type SipJoinedOptions,
  signDelivery,
  sipParticipantJoined,
  type WebhookDelivery,
  type WebhookEvent,
} from "./livekit-events";

/** A response body as JSON; each test checks the fields it cares about. */
export type Json = Record<string, any>;

export const EVENTS_PATH = "/api/v1/webhooks/livekit/events";
export const SIP_INBOUND_PATH = "/api/v1/webhooks/livekit/sip-inbound";

/** The API key and secret of the stand-in LiveKit; LiveKit signs its webhooks with the same pair. */
export const TEST_KEYS = {
  apiKey: "APItestkey",
  apiSecret: "test-secret-that-is-long-enough-for-hs256-0123456789",
} as const;

// ---------------------------------------------------------------------------------------------
// The "Acme" directory: one tenant, one campaign on one number.

/** The number of the "Live" campaign. */
export const CAMPAIGN_NUMBER = "+14155550100";
/** The caller in most tests. */
export const CALLER = "+12125550142";
/** The "Live" campaign's agent. */
export const CAMPAIGN_AGENT = "acme-sales";
/** Acme's default agent, for Acme numbers without a campaign. */
export const TENANT_DEFAULT_AGENT = "acme-default";
/** The agent for callers the directory does not place: the app's own default SYSTEM_DEFAULT_AGENT. */
export const SYSTEM_DEFAULT_AGENT = loadConfig({}).systemDefaultAgent;

interface DirectoryAgent {
  name: string;
  default?: boolean;
}
interface DirectoryCampaign {
  name: string;
  agent: string;
  status?: string;
}
interface DirectoryNumber {
  number: string;
  campaign?: string;
}

/** Freezes `value` and everything in it: a fixture shared by many test files cannot be changed by one of them. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Acme, with its default agent, the "Live" campaign (answered by CAMPAIGN_AGENT) on CAMPAIGN_NUMBER.
 * Frozen: a test that needs a variant builds one (spread, or structuredClone and change).
 */
export const acmeDirectory = deepFreeze({
  tenants: [
    {
      name: "Acme",
      agents: [{ name: TENANT_DEFAULT_AGENT, default: true }, { name: CAMPAIGN_AGENT }] as DirectoryAgent[],
      campaigns: [{ name: "Live", agent: CAMPAIGN_AGENT }] as DirectoryCampaign[],
      phone_numbers: [{ number: CAMPAIGN_NUMBER, campaign: "Live" }] as DirectoryNumber[],
    },
  ],
});

// ---------------------------------------------------------------------------------------------
// The stand-in LiveKit and an app wired to it

/** The environment of an app that dispatches through `fake`, with fast dispatch retries, plus `extra`. */
export function liveKitEnv(fake: FakeLiveKit, extra: Record<string, string> = {}): Record<string, string> {
  return {
    LIVEKIT_URL: fake.url,
    LIVEKIT_API_KEY: TEST_KEYS.apiKey,
    LIVEKIT_API_SECRET: TEST_KEYS.apiSecret,
    LIVEKIT_DISPATCH_RETRY_BASE_MS: "5",
    ...extra,
  };
}

/**
 * Stands for an object the hooks create later: each property read goes to the current one. Test
 * files can then name `ctx` and `fake` at their top level although both only exist once beforeAll ran.
 */
function lateBound<T extends object>(what: string, current: () => T | undefined): T {
  const target = () => {
    const value = current();
    if (value === undefined) throw new Error(`${what} is not there yet: use it in a test or a hook, not while the file loads`);
    return value;
  };
  return new Proxy({} as T, {
    get(_, key) {
      const object = target();
      const value = Reflect.get(object, key, object);
      return typeof value === "function" ? value.bind(object) : value;
    },
    set(_, key, value) {
      return Reflect.set(target(), key, value);
    },
    has(_, key) {
      return Reflect.has(target(), key);
    },
  });
}

/**
 * Starts the stand-in LiveKit (TEST_KEYS) before the enclosing file or describe, closes it after,
 * and before each test brings it back up if a test took it down and forgets its state and calls.
 */
export function useFakeLiveKit(): FakeLiveKit {
  let fake: FakeLiveKit | undefined;
  beforeAll(async () => {
    fake = await startFakeLiveKit(TEST_KEYS);
  });
  afterAll(async () => {
    await fake?.close();
  });
  beforeEach(async () => {
    if (fake!.down) await fake!.setDown(false);
    fake!.reset();
  });
  return lateBound("the stand-in LiveKit", () => fake);
}

export interface LiveKitAppOptions {
  /** The stand-in LiveKit to use; one is started for this app (useFakeLiveKit) when not given. */
  fake?: FakeLiveKit;
  /** Environment on top of liveKitEnv(fake). */
  env?: Record<string, string>;
  /** Seeded before each test, after the data is wiped. */
  seed?: unknown;
}

/**
 * An app wired to the stand-in LiveKit for the enclosing file or describe: opened before its tests,
 * closed after, and before each test its data wiped (then `seed` seeded) and its log lines cleared.
 */
export function useLiveKitApp(options: LiveKitAppOptions = {}): { ctx: TestContext; fake: FakeLiveKit } {
  const fake = options.fake ?? useFakeLiveKit();
  let ctx: TestContext | undefined;
  beforeAll(async () => {
    ctx = await openTestContext(liveKitEnv(fake, options.env));
  });
  afterAll(async () => {
    await ctx?.close();
  });
  beforeEach(async () => {
    await ctx!.reset();
    if (options.seed !== undefined) await ctx!.seed(options.seed);
    ctx!.logs.length = 0;
  });
  return { ctx: lateBound("the app", () => ctx), fake };
}

// ---------------------------------------------------------------------------------------------
// Calls and deliveries

/** Whole seconds near now: LiveKit's createdAt has second precision, so event times are exact. */
export const wholeSecondsNow = () => new Date(Math.floor(Date.now() / 1000) * 1000);
export const plus = (t: Date, ms: number) => new Date(t.getTime() + ms);

export interface CallOptions {
  from?: string;
  to?: string;
  room?: string;
  trunkId?: string;
  at?: Date;
}

/**
 * A fresh SIP call (by default CALLER dialing CAMPAIGN_NUMBER at whole seconds near now): its own
 * call id and room, so the event builders' per-call memory never leaks between tests.
 */
export function newCall(options: CallOptions = {}) {
  const from = options.from ?? CALLER;
  return {
    callId: randomId("SCL_"),
    room: options.room ?? `call-_${from}_${randomId("")}`,
    from,
    to: options.to ?? CAMPAIGN_NUMBER,
    trunkId: options.trunkId ?? "ST_trunk",
    at: options.at ?? wholeSecondsNow(),
  };
}

export type Call = ReturnType<typeof newCall>;

export interface CallerJoinOptions extends Partial<Omit<SipJoinedOptions, "room" | "roomInfo">> {
  /**
   * The dispatch rule's room_config.agents: the room LiveKit creates for the caller gets these
   * dispatches instead of the implicit empty-name one. They apply only when the join creates the
   * room; a room that is already live keeps its dispatches.
   */
  agents?: RoomAgent[];
}

/**
 * A SIP caller's participant_joined as LiveKit produces it: the caller's join first creates the
 * room in LiveKit (livekit/sip joins with the dispatch rule's room_config; the server creates the
 * room and its dispatches, the implicit empty-name one when the rule has no agents), and the
 * webhook then carries that room, with its real sid. A room of that name still live is reused.
 * The caller is then in the fake's room too, as the webhook's participant (same sid, identity,
 * kind SIP, attributes with sip.callID), so RemoveParticipant / TransferSIPParticipant find it;
 * building the join again for the same call updates that participant in place.
 * `options` may also set any sipParticipantJoined field (hidePhoneNumber, attributes, roomSid, ...).
 */
export function sipCallerJoinedEvent(fake: FakeLiveKit, call: Call | SipJoinedOptions, options: CallerJoinOptions = {}): WebhookEvent {
  const { agents, ...fields } = options;
  const join = { ...call, ...fields } as SipJoinedOptions;
  const roomInfo = fake.createRoom(join.room, { agents, createdAt: join.roomCreatedAt ?? join.at, sid: join.roomSid });
  const event = sipParticipantJoined({ ...join, roomSid: roomInfo.sid, roomInfo });
  if (event.participant) fake.addParticipant(join.room, event.participant);
  return event;
}

/** sipCallerJoinedEvent, signed as LiveKit signs it (TEST_KEYS unless `signing` says otherwise). */
export async function sipCallerJoins(
  fake: FakeLiveKit,
  call: Call | SipJoinedOptions,
  options: CallerJoinOptions = {},
  signing: Partial<DeliveryOptions> = {},
): Promise<WebhookDelivery> {
  return signDelivery(sipCallerJoinedEvent(fake, call, options), { ...TEST_KEYS, ...signing });
}

/** POSTs a delivery (signed, or taken apart by the test) to the LiveKit events endpoint. */
export function postEvent(ctx: TestContext, delivery: { body: string; headers: Record<string, string> }): Promise<Response> {
  return ctx.post(EVENTS_PATH, delivery.body, delivery.headers);
}

export async function answer(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}

/** POSTs a signed delivery and reads the answer: its status and JSON body. */
export async function postEventReply(ctx: TestContext, delivery: WebhookDelivery): Promise<{ status: number; body: Json }> {
  const res = await postEvent(ctx, delivery);
  return { status: res.status, body: await answer(res) };
}

// ---------------------------------------------------------------------------------------------
// What the app recorded

/** The call logs: all of them, or those of one SIP call id. */
export async function callLogRows(ctx: TestContext, callId?: string) {
  const query = ctx.database.db.select().from(callLogs);
  return callId === undefined ? query : query.where(eq(callLogs.providerCallId, callId));
}

/** The one call log of a SIP call id (expects exactly one). */
export async function callLog(ctx: TestContext, callId: string) {
  const rows = await callLogRows(ctx, callId);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

export async function leadRows(ctx: TestContext) {
  return ctx.database.db.select().from(leads);
}

/** The webhook events the app took. */
export async function eventRows(ctx: TestContext) {
  return ctx.database.db.select().from(webhookEvents);
}

export async function eventRow(ctx: TestContext, id: string) {
  const rows = await ctx.database.db.select().from(webhookEvents).where(eq(webhookEvents.id, id));
  return rows[0];
}

// ---------------------------------------------------------------------------------------------

/**
 * A PostgreSQL address that accepts connections and never answers (a hung database), on a loopback
 * port. `stop` drops the connections and the listener.
 */
export function startHungPostgres() {
  const connections = new Set<{ terminate(): void }>();
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (socket) => void connections.add(socket),
      close: (socket) => void connections.delete(socket),
      data() {},
    },
  });
  return {
    url: `postgresql://root@127.0.0.1:${server.port}/hung`,
    stop() {
      for (const socket of connections) socket.terminate();
      server.stop(true);
    },
  };
}
