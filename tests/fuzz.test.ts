// Fuzzing: thousands of random, hostile and mutated requests to every route the app serves. The
// routes are read from app.routes (method, path, TypeBox schemas of body, query and path
// parameters), so a route added later is fuzzed too. Every answer must be a 4xx with the one error
// body ({ error: { code, message } }) or a 2xx, never a 5xx, never no answer; and afterwards the
// database holds nothing a valid request could not have written.
//
// Every random choice comes from one seeded PRNG (mulberry32). The seed is printed with every
// failure; replay a run with FUZZ_SEED=<seed> bun test tests/fuzz.test.ts (decimal, 0x hex, or any
// text, which is hashed). Without FUZZ_SEED, the embedded database and PostgreSQL each have a
// seed of their own. FUZZ_REQUESTS sets the size of the random pass (default 4000).
//
// The contract written down here (some of it is being built while this test is written):
// - JSON nesting depth and element counts are bounded before schema validation: a body nested
//   DEEP levels or holding a container of WIDE elements gets a 400 naming "body" (details.field).
// - sip-inbound checks the signature before it validates the body: an unsigned (or badly signed)
//   request with a readable JSON body is answered 401, not a 400 about a field; the admin API
//   resolves the bearer key before it validates anything, so it answers such requests 401 too.
// - a body over MAX_BODY_BYTES is answered 413 with the JSON error body (code payload_too_large),
//   through app.handle and over a real socket, with or without a Content-Length.
// Speed is measured in benchmarks, not asserted here: a request counts as stalled only when it gets
// no answer at all (STALL_MS), also for the valid sip-inbound calls sent alongside hostile bodies;
// their latencies are printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { createApiKey } from "../src/admin/keys";
import * as appModule from "../src/app";
import { METADATA_MAX_DEPTH } from "../src/admin/model";
import { rowsOf } from "../src/db/client";
import { openTestContext, type TestContext } from "./support/context";
import { EVENTS_PATH, SIP_INBOUND_PATH, TEST_KEYS, wholeSecondsNow } from "./support/livekit-app";
import {
  agentJoined,
  goProtoJson,
  roomFinished,
  roomStarted,
  signBody,
  sipParticipantJoined,
  sipParticipantLeft,
  trackPublished,
} from "./support/livekit-events";

// ---------------------------------------------------------------------------------------------
// Settings

// CI runs the suite on both databases; each pass explores inputs of its own, the same every run.
const DEFAULT_SEED = process.env.DATABASE_URL ? 0x5eedf023 : 0x5eedf022;
const SEED = parseSeed(process.env.FUZZ_SEED);
const RANDOM_REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 4000);
/** A request not answered in this long is reported as a stall (a hang, not slowness). */
const STALL_MS = 15_000;
/** Nesting depth and container size the hardening must refuse before schema validation. */
const DEEP = 1_000;
const WIDE = 10_000;
/**
 * The deepest and biggest body a valid request sends (metadata nests 16 levels inside the body).
 * A body past these may be refused as unreadable ("body") before credentials are looked at.
 */
const PLAUSIBLE_DEPTH = METADATA_MAX_DEPTH + 2;
const PLAUSIBLE_ELEMENTS = 1_000;
const E164 = /^\+[1-9]\d{6,14}$/;
const REPLAY = `FUZZ_SEED=${SEED} bun test tests/fuzz.test.ts`;

function parseSeed(text: string | undefined): number {
  const value = text?.trim();
  if (!value) return DEFAULT_SEED;
  const n = Number(value);
  if (Number.isSafeInteger(n)) return n >>> 0;
  let h = 2166136261;
  for (const c of value) h = Math.imul(h ^ c.codePointAt(0)!, 16777619);
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness: mulberry32, one independent stream per phase (a phase replays the same way
// whatever the other phases did).

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  static forPhase(label: string): Rng {
    let h = SEED ^ 0x9e3779b9;
    for (const c of label) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
    return new Rng(h >>> 0);
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  digits(n: number): string {
    let out = "";
    for (let i = 0; i < n; i++) out += String(this.int(10));
    return out;
  }
  uuid(): string {
    const hex = () => this.int(16).toString(16);
    let out = "";
    for (const size of [8, 4, 4, 4, 12]) out += `${out ? "-" : ""}${Array.from({ length: size }, hex).join("")}`;
    return `${out.slice(0, 14)}4${out.slice(15, 19)}${"89ab"[this.int(4)]}${out.slice(20)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON text that JSON.stringify cannot write: raw fragments (1e309, -0, 400 digits, deep nesting)
// and objects with duplicate or magic keys (__proto__ as an own key).

class Raw {
  constructor(readonly text: string) {}
}
class Pairs {
  constructor(readonly entries: [string, unknown][]) {}
}
type Json = unknown;

function toJson(value: Json): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof Pairs) return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : toJson(v))).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;
  }
  if (typeof value === "number" && Object.is(value, -0)) return "-0";
  return JSON.stringify(value) ?? "null";
}

/** Deepest nesting, largest container and all values of a JSON text, strings skipped; no parsing, no recursion. */
function measureJson(text: string): { depth: number; width: number; elements: number } {
  let elements = 0;
  let depth = 0;
  let maxDepth = 0;
  let maxWidth = 0;
  const counts: number[] = [];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      depth++;
      if (depth > maxDepth) maxDepth = depth;
      counts.push(1);
    } else if (c === 93 || c === 125) {
      depth--;
      const n = counts.pop() ?? 0;
      if (n > maxWidth) maxWidth = n;
    } else if (c === 44 && counts.length) {
      counts[counts.length - 1]!++;
      elements++;
    }
  }
  for (const n of counts) if (n > maxWidth) maxWidth = n;
  return { depth: maxDepth, width: maxWidth, elements };
}

const deepArrays = (levels: number) => "[".repeat(levels) + "]".repeat(levels);
const deepObjects = (levels: number) => '{"a":'.repeat(levels) + "1" + "}".repeat(levels);
const wideArray = (count: number, item = "0") => `[${Array.from({ length: count }, () => item).join(",")}]`;

/** encodeURIComponent, but a lone surrogate becomes its WTF-8 bytes instead of a URIError. */
function encodeText(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    let out = "";
    for (const ch of text) {
      const code = ch.codePointAt(0)!;
      if (code >= 0xd800 && code <= 0xdfff) {
        out += `%${(0xe0 | (code >> 12)).toString(16)}%${(0x80 | ((code >> 6) & 0x3f)).toString(16)}%${(0x80 | (code & 0x3f)).toString(16)}`.toUpperCase();
      } else out += encodeURIComponent(ch);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile values: wrong types, odd numbers, strings PostgreSQL cannot store, magic keys, nesting.

interface Labelled<T> {
  label: string;
  value: T;
}

const WRONG_TYPES: Labelled<Json>[] = [
  { label: "number", value: 42 },
  { label: "float", value: 1.5 },
  { label: "string", value: "fuzz" },
  { label: "boolean", value: true },
  { label: "null", value: null },
  { label: "empty-array", value: [] },
  { label: "array", value: [1, "a", null] },
  { label: "empty-object", value: {} },
  { label: "object", value: { a: 1 } },
];

const NUMBERS: Labelled<Json>[] = [
  { label: "1e309", value: new Raw("1e309") },
  { label: "-1e309", value: new Raw("-1e309") },
  { label: "-0", value: new Raw("-0") },
  { label: "1e-400", value: new Raw("1e-400") },
  { label: "2^53+1", value: new Raw("9007199254740993") },
  { label: "400-digits", value: new Raw(`1${"0".repeat(400)}`) },
  { label: "5000-digits", value: new Raw(`-${"9".repeat(5000)}`) },
  { label: "long-fraction", value: new Raw(`0.${"1".repeat(2000)}`) },
  { label: "exponent", value: new Raw("1E+2") },
  { label: "negative", value: -1 },
  { label: "zero", value: 0 },
];

function hostileStrings(rng: Rng): Labelled<string>[] {
  const uuid = rng.uuid();
  return [
    { label: "empty", value: "" },
    { label: "spaces", value: "   " },
    { label: "nul", value: "\u0000" },
    { label: "nul-inside", value: "a\u0000b" },
    { label: "nul-trailing", value: "+14155550100\u0000" },
    { label: "lone-high-surrogate", value: "\ud800" },
    { label: "lone-low-surrogate", value: "x\udc00" },
    { label: "reversed-surrogates", value: "\ude00\ud83d" },
    { label: "noncharacter", value: "\uffff\ufffe" },
    { label: "zero-width", value: "\u200b\u200d" },
    { label: "rtl-override", value: "\u202eevil" },
    { label: "emoji", value: "📞☎️👩‍👩‍👧" },
    { label: "combining", value: "e\u0301\u0301\u0301\u0301" },
    { label: "cjk", value: "東京都港区" },
    { label: "controls", value: "\u0001\u001f\u007f\u0085" },
    { label: "crlf", value: "a\r\nb\tc" },
    { label: "json-words", value: "null" },
    { label: "nan-word", value: "NaN" },
    { label: "number-text", value: "1e309" },
    { label: "sql", value: "'; drop table tenants; --" },
    { label: "html", value: "<script>alert(1)</script>" },
    { label: "template", value: "${7*7}{{7*7}}%s%n" },
    { label: "percent", value: "%00%ZZ%" },
    { label: "backslashes", value: "\\\\\\\"" },
    { label: "proto-word", value: "__proto__" },
    { label: "phone-extension", value: "+1 (415) 555-0100 ext. 99999999" },
    { label: "tel-uri", value: "tel:+14155550100;ext=1" },
    { label: "sip-uri", value: "sip:+14155550100@trunk.example;user=phone" },
    { label: "anonymous", value: "anonymous" },
    { label: "phone-500-digits", value: `+1${"0".repeat(500)}` },
    { label: "plus-only", value: "+" },
    { label: "vanity", value: "+1-800-FLOWERS" },
    { label: "nil-uuid", value: "00000000-0000-0000-0000-000000000000" },
    { label: "uuid-upper", value: uuid.toUpperCase() },
    { label: "uuid-no-dashes", value: uuid.replaceAll("-", "") },
    { label: "uuid-newline", value: `${uuid}\n` },
    { label: "uuid-braces", value: `{${uuid}}` },
    { label: "date-impossible", value: "2024-02-30T00:00:00Z" },
    { label: "date-year-0", value: "0000-01-01T00:00:00Z" },
    { label: "date-far", value: "+275760-09-13T00:00:00Z" },
    { label: "email-ish", value: "a@b" },
    { label: "long-201", value: "x".repeat(201) },
    { label: "long-513", value: "y".repeat(513) },
    { label: "long-2001", value: "z".repeat(2001) },
    { label: "long-10k", value: "w".repeat(10_000) },
    { label: "surrogates-5k", value: "\ud800".repeat(5000) },
    { label: "nul-5k", value: "\u0000".repeat(5000) },
    { label: "emoji-3k", value: "😀".repeat(3000) },
    { label: "digits-5k", value: "9".repeat(5000) },
  ];
}

const protoPolluter = () => ({ polluted: "yes" });
const MAGIC_OBJECTS: Labelled<Json>[] = [
  { label: "__proto__-object", value: new Pairs([["__proto__", protoPolluter()]]) },
  { label: "constructor.prototype", value: { constructor: { prototype: protoPolluter() } } },
  { label: "prototype-key", value: new Pairs([["prototype", protoPolluter()]]) },
  { label: "builtin-names", value: { toString: 1, valueOf: "x", hasOwnProperty: null } },
];

const NESTED: Labelled<Json>[] = [
  { label: "nested-17-objects", value: new Raw(deepObjects(17)) },
  { label: "nested-50-arrays", value: new Raw(deepArrays(50)) },
  { label: "nested-500-arrays", value: new Raw(deepArrays(500)) },
  { label: "nested-2000-objects", value: new Raw(deepObjects(2000)) },
  { label: "array-1000", value: new Raw(wideArray(1000)) },
  { label: "object-1000-keys", value: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i])) },
];

function hostileValue(rng: Rng): Labelled<Json> {
  const group = rng.int(10);
  if (group < 2) return rng.pick(WRONG_TYPES);
  if (group < 3) return rng.pick(NUMBERS);
  if (group < 8) return rng.pick(hostileStrings(rng));
  if (group < 9) return rng.pick(MAGIC_OBJECTS);
  return rng.pick(NESTED);
}

// ---------------------------------------------------------------------------------------------
// The routes, as the app reports them

type Schema = Record<string, any>;
type Family = "admin" | "sip" | "events" | "open-webhook" | "inputless";

interface RouteInfo {
  method: string;
  path: string;
  key: string;
  family: Family;
  body?: Schema;
  query?: Schema;
  params: string[];
  /** Takes a request body (a body schema, or a documented request body such as LiveKit's events). */
  takesBody: boolean;
}

function describeRoutes(app: TestContext["app"]): RouteInfo[] {
  const routes: RouteInfo[] = [];
  for (const route of app.routes) {
    const hooks = ((route as { hooks?: Schema }).hooks ?? {}) as Schema;
    const method = route.method.toUpperCase();
    if (!["GET", "POST", "PUT", "PATCH", "DELETE"].includes(method)) continue;
    const params = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    const body = hooks.body?.type || hooks.body?.anyOf ? (hooks.body as Schema) : undefined;
    const query = hooks.query?.properties ? (hooks.query as Schema) : undefined;
    const inputless = method === "GET" && params.length === 0 && !query;
    // The docs routes (the OpenAPI page and document) and /metrics (Prometheus text, tests/metrics.test.ts) take no input: not fuzzed.
    if (inputless && (hooks.detail?.hide || /\/(docs|openapi|metrics$)/.test(route.path))) continue;
    const family: Family =
      route.path === EVENTS_PATH
        ? "events"
        : route.path === SIP_INBOUND_PATH
          ? "sip"
          : inputless
            ? "inputless"
            : route.path.startsWith("/api/v1/webhooks/")
              ? "open-webhook"
              : "admin";
    const takesBody = method !== "GET" && Boolean(body || hooks.detail?.requestBody);
    routes.push({ method, path: route.path, key: `${method} ${route.path}`, family, body, query, params, takesBody });
  }
  return routes;
}

/** How a 2xx answer may change the row counts: [min, max] per table, every other table unchanged. */
const TABLES = ["tenants", "agents", "campaigns", "phone_numbers", "leads", "call_logs", "api_keys", "webhook_events"] as const;
type Table = (typeof TABLES)[number];
type Counts = Record<Table, number>;
type Effect = Partial<Record<Table, [number, number]>>;
const CALL_EFFECT: Effect = { call_logs: [0, 1], leads: [0, 1] };
const ROW_EFFECTS: Record<string, Effect> = {
  "POST /api/v1/tenants": { tenants: [1, 1] },
  "POST /api/v1/tenants/:id/deactivate": {},
  "POST /api/v1/agents": { agents: [1, 1] },
  "DELETE /api/v1/agents/:id": { agents: [-1, -1] },
  "POST /api/v1/campaigns": { campaigns: [1, 1] },
  "DELETE /api/v1/campaigns/:id": { campaigns: [-1, 0] },
  "POST /api/v1/phone-numbers": { phone_numbers: [1, 1] },
  "DELETE /api/v1/phone-numbers/:id": { phone_numbers: [-1, -1] },
  "DELETE /api/v1/leads/:id": { leads: [-1, -1] },
  "POST /api/v1/api-keys": { api_keys: [1, 1] },
  "DELETE /api/v1/api-keys/:id": {},
  [`POST ${SIP_INBOUND_PATH}`]: CALL_EFFECT,
  "POST /api/v1/webhooks/test": CALL_EFFECT,
  [`POST ${EVENTS_PATH}`]: { ...CALL_EFFECT, webhook_events: [0, 1] },
};
/** Tables a call's record may reach late (journaled while the database was slow): counted per phase. */
const LATE_TABLES: readonly Table[] = ["call_logs", "leads"];

/** The effect a request's answer allows; undefined when unknown (a 2xx of a route added later). */
function allowedEffect(req: FuzzRequest, status: number): Effect | undefined {
  if (status < 200 || status >= 300) return {};
  if (!req.route) return {};
  if (req.route.method === "GET" || req.route.method === "PATCH") return {};
  return ROW_EFFECTS[req.route.key];
}

// ---------------------------------------------------------------------------------------------
// The world the fuzzer aims at

const directory = JSON.parse(readFileSync(new URL("../examples/directory.json", import.meta.url), "utf8"));
/** Numbers of the example directory, as callers dial them, and a few unknown ones. */
const DIALED = ["+14155550100", "+1 (415) 555-0100", "(415) 555-0100", "tel:+14155550101", "+14155550102", "(212) 555-0142", "+18005550199", "+12025550123"];
const CALLERS = ["+12125550142", "+16505550111", "(646) 555-0199", "anonymous", "", "+447700900123"];
const SAFE_WORDS = ["café", "東京", "Ωmega", "📞", "e\u0301", "עברית", "mañana", "Zoë", "straße", "Ⅻ", "x"];

let ctx: TestContext;
let limit: number;
let routes: RouteInfo[];
let bodyRoutes: RouteInfo[];
let adminKey: string;
let tenantKey: string;
let protectedIds = new Set<string>();
let counter = 0;
const uniq = () => (++counter).toString(36);

const pools: Record<string, string[]> = {};
/** For each row id a 2xx answer named: the request that wrote it, to explain an invalid row. */
const writers = new Map<string, string[]>();
const cursors: string[] = [];
const joinedCalls: { callId: string; room: string }[] = [];

async function rows<T>(query: ReturnType<typeof sql>): Promise<T[]> {
  return rowsOf<T>(await ctx.database.db.execute(query));
}

/** A fresh database with the example directory, an admin key and a key of Bright Plumbing. */
async function setUpWorld(): Promise<void> {
  await ctx.reset();
  await ctx.seed(directory);
  const admin = await createApiKey(ctx.database.db, { tenantId: null, label: "fuzz admin" });
  const [bright] = await rows<{ id: string }>(sql`select id from tenants where name = 'Bright Plumbing'`);
  const tenant = await createApiKey(ctx.database.db, { tenantId: bright!.id, label: "fuzz tenant" });
  adminKey = admin.key;
  tenantKey = tenant.key;
  // The fuzzer must not revoke its own keys or deactivate the tenant of its tenant key.
  protectedIds = new Set([admin.apiKey.id, tenant.apiKey.id, bright!.id]);
  joinedCalls.length = 0;
  cursors.length = 0;
  await refreshPools();
}

async function refreshPools(): Promise<void> {
  const ids = async (table: string) =>
    (await rows<{ id: string }>(sql.raw(`select id from ${table} order by created_at desc limit 40`)))
      .map((r) => r.id)
      .filter((id) => !protectedIds.has(id));
  pools.tenants = await ids("tenants");
  pools.agents = await ids("agents");
  pools.campaigns = await ids("campaigns");
  pools["phone-numbers"] = await ids("phone_numbers");
  pools.leads = await ids("leads");
  pools["call-logs"] = await ids("call_logs");
  pools["api-keys"] = await ids("api_keys");
  pools.provider_call_id = (await rows<{ id: string }>(sql`select provider_call_id as id from call_logs order by created_at desc limit 40`)).map(
    (r) => r.id,
  );
}

async function counts(): Promise<Counts> {
  const [row] = await rows<Record<string, string | number>>(
    sql.raw(`select ${TABLES.map((t) => `(select count(*) from ${t})::int as ${t}`).join(", ")}`),
  );
  return Object.fromEntries(TABLES.map((t) => [t, Number(row![t])])) as Counts;
}

const ID_FIELDS: Record<string, string> = {
  tenant_id: "tenants",
  agent_id: "agents",
  campaign_id: "campaigns",
  lead_id: "leads",
  id: "tenants",
};

function realId(pool: string | undefined, rng: Rng): string {
  const ids = pool ? pools[pool] : undefined;
  return ids?.length && rng.chance(0.85) ? rng.pick(ids) : rng.uuid();
}

function phoneFor(field: string, rng: Rng): string {
  if (field === "number") {
    if (rng.chance(0.3)) return rng.pick(DIALED);
    return rng.pick([
      () => `+1 (415) 555-${rng.digits(4)}`,
      () => `+1628555${rng.digits(4)}`,
      () => `(212) 555-${rng.digits(4)}`,
      () => `+44 20 7946 ${rng.digits(4)}`,
      () => `tel:+1646555${rng.digits(4)}`,
      () => `+49 30 ${rng.digits(8)}`,
    ])();
  }
  if (field === "to_number" || field === "trunk_phone_number") return rng.pick(DIALED);
  return rng.pick(CALLERS.filter(Boolean));
}

const PHONE_FIELDS = new Set(["number", "to_number", "from_number", "trunk_phone_number", "phone_number"]);

function validString(schema: Schema, field: string, rng: Rng): string {
  if (schema.format === "uuid") return realId(ID_FIELDS[field], rng);
  if (schema.format === "date-time") {
    return new Date(Date.UTC(2020 + rng.int(7), rng.int(12), 1 + rng.int(28), rng.int(24))).toISOString();
  }
  if (schema.format === "email") return `fz${uniq()}@example.com`;
  if (schema.format === "integer") return String(rng.between(1, 500));
  if (PHONE_FIELDS.has(field)) return phoneFor(field, rng);
  if (field === "call_id") return `fz-call-${uniq()}`;
  if (field === "cursor") return cursors.length ? rng.pick(cursors) : "";
  const max = schema.maxLength ?? 200;
  let text = field === "name" || field === "label" ? `fz ${uniq()} ${rng.pick(SAFE_WORDS)}` : `${field}-${uniq()}`;
  if (field === "room_name") text = `call-fz-${uniq()}`;
  if (field === "trunk_id") text = "ST_fuzz";
  if (field === "status") text = rng.pick(["new", "contacted", "qualified", "do-not-call"]);
  if (text.length > max) text = text.slice(text.length - max);
  while (text.length < (schema.minLength ?? 0)) text += "x";
  return text;
}

function smallObject(rng: Rng, depth = 0): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (let i = rng.int(4); i > 0; i--) {
    const k = rng.pick(["source", "notes", "priority", "tags", "nested", rng.pick(SAFE_WORDS)]);
    out[k] = depth < 2 && rng.chance(0.3) ? smallObject(rng, depth + 1) : rng.pick([1, "two", true, null, [1, 2], 3.5]);
  }
  return out;
}

/** A value the schema accepts, with real ids and plausible phone numbers and names. */
function validFor(schema: Schema, field: string, rng: Rng): Json {
  if (schema.anyOf) {
    const branches = (schema.anyOf as Schema[]).filter((b) => b.type !== "null");
    if (branches.length < schema.anyOf.length && rng.chance(0.15)) return null;
    return validFor(rng.pick(branches.length ? branches : schema.anyOf), field, rng);
  }
  if ("const" in schema) return schema.const;
  if (schema.enum) return rng.pick(schema.enum);
  switch (schema.type) {
    case "string":
      return validString(schema, field, rng);
    case "integer":
    case "number":
      return rng.between(schema.minimum ?? (field === "limit" ? 1 : 0), schema.maximum ?? (field === "limit" ? 500 : 1000));
    case "boolean":
      return rng.chance(0.5);
    case "null":
      return null;
    case "array":
      return Array.from({ length: rng.int(3) }, () => validFor(schema.items ?? {}, field, rng));
    case "object": {
      if (!schema.properties) return smallObject(rng);
      const required = new Set<string>(schema.required ?? []);
      const out: Record<string, Json> = {};
      for (const [name, inner] of Object.entries(schema.properties as Record<string, Schema>)) {
        const p = name === "to_number" ? 0.9 : name === "admin" || name === "is_default" ? 0.15 : 0.5;
        if (required.has(name) || rng.chance(p)) out[name] = validFor(inner, name, rng);
      }
      return out;
    }
    default:
      return rng.chance(0.5) ? smallObject(rng) : "x";
  }
}

/** Fields of a schema whose values are strings (in any branch), with their length bounds. */
function stringFields(schema: Schema | undefined): { name: string; maxLength?: number; minLength?: number }[] {
  const out: { name: string; maxLength?: number; minLength?: number }[] = [];
  for (const [name, inner] of Object.entries((schema?.properties ?? {}) as Record<string, Schema>)) {
    const s = inner.type === "string" ? inner : (inner.anyOf as Schema[] | undefined)?.find((b) => b.type === "string");
    if (s && !("const" in s)) out.push({ name, maxLength: s.maxLength, minLength: s.minLength });
  }
  return out;
}

// ---- LiveKit events

function validEventText(rng: Rng): string {
  const at = wholeSecondsNow();
  const n = uniq();
  const form = rng.chance(0.5) ? "compact" : "spaced";
  const kind = rng.int(10);
  if (kind < 5 || joinedCalls.length === 0) {
    const call = { callId: `SCL_fz${n}`, room: `call-_fz_${n}` };
    joinedCalls.push(call);
    const event = sipParticipantJoined({ ...call, from: rng.pick(CALLERS.filter(Boolean)), to: rng.pick(DIALED), trunkId: "ST_fuzz", at });
    return goProtoJson(event, form);
  }
  const call = rng.pick(joinedCalls);
  switch (kind) {
    case 5:
      return goProtoJson(sipParticipantLeft({ ...call, at }), form);
    case 6:
      return goProtoJson(agentJoined({ room: call.room, agentName: rng.pick(["acme-sales", "acme-receptionist", "telephony-agent"]), at }), form);
    case 7:
      return goProtoJson(roomFinished({ room: call.room, at }), form);
    case 8:
      return goProtoJson(trackPublished({ room: call.room, callId: call.callId, at }), form);
    default:
      return goProtoJson(roomStarted({ room: `room-${n}`, at }), form);
  }
}

/** Every path into a JSON value (objects and arrays), to pick one to change. */
function jsonPaths(value: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (prefix.length > 6) return out;
  if (Array.isArray(value)) value.forEach((v, i) => (out.push([...prefix, i]), jsonPaths(v, [...prefix, i], out)));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push([...prefix, k]);
      jsonPaths(v, [...prefix, k], out);
    }
  }
  return out;
}

function mutateEvent(text: string, rng: Rng): Labelled<string> {
  const event = JSON.parse(text) as Record<string, Json>;
  const paths = jsonPaths(event);
  const path = rng.pick(paths);
  const parent = path.slice(0, -1).reduce<any>((v, k) => v[k], event);
  const last = path[path.length - 1]!;
  const op = rng.int(6);
  if (op === 0) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
    return { label: `event: drop ${path.join(".")}`, value: toJson(event) };
  }
  if (op === 1 && !Array.isArray(parent)) {
    parent[`x_${uniq()}`] = hostileValue(rng).value;
    return { label: `event: extra field beside ${path.join(".")}`, value: toJson(event) };
  }
  const hostile = op === 2 ? rng.pick(WRONG_TYPES) : hostileValue(rng);
  parent[last] = hostile.value;
  return { label: `event: ${path.join(".")}=${hostile.label}`, value: toJson(event) };
}

// ---------------------------------------------------------------------------------------------
// Requests

type AuthKind = "admin" | "tenant" | "none" | "garbage" | "signed" | "unsigned" | "bad-signature" | "open";

/** A body sent as a stream: no Content-Length, read to its end by the server. */
class Streamed {
  constructor(readonly bytes: Uint8Array) {}
}
type Body = string | Uint8Array | Streamed;

interface BodySpec {
  label: string;
  body: Body;
  /** undefined: the route's usual content type; null: no Content-Type header. */
  contentType?: string | null;
}

interface FuzzRequest {
  route?: RouteInfo;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Body;
  label: string;
  auth: AuthKind;
}

const bodyBytes = (body: Body): Uint8Array =>
  typeof body === "string" ? new TextEncoder().encode(body) : body instanceof Streamed ? body.bytes : body;
/** The body as the app reads it (request.text(): invalid UTF-8 becomes U+FFFD). */
const bodyText = (body: Body): string => (typeof body === "string" ? body : new TextDecoder().decode(bodyBytes(body)));

const GARBAGE_BEARERS = () => [
  "Bearer",
  "Bearer ",
  "Bearer sb_",
  `Bearer sb_${"x".repeat(43)}`,
  `bearer ${adminKey.toUpperCase()}`,
  "Basic YWRtaW46YWRtaW4=",
  `Bearer ${adminKey}x`,
  `Bearer ${adminKey.slice(0, -1)}`,
  adminKey,
  `Bearer ${"a".repeat(8000)}`,
  "Bearer null",
  `Bearer ${adminKey} ${adminKey}`,
  "Token sb_abc",
];

const b64url = (text: string) => Buffer.from(text).toString("base64url");
/** A LiveKit-style token whose sha256 claim covers the raw bytes (signBody covers UTF-8 text). */
function signBytes(bytes: Uint8Array): string {
  const now = Math.floor(Date.now() / 1000);
  const sha = createHash("sha256").update(bytes).digest("base64");
  const input = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(`{"iss":"${TEST_KEYS.apiKey}","exp":${now + 300},"nbf":${now},"iat":${now},"sha256":"${sha}"}`)}`;
  return `${input}.${createHmac("sha256", TEST_KEYS.apiSecret).update(input).digest("base64url")}`;
}

async function signatureFor(body: Body | undefined, auth: AuthKind, rng: Rng): Promise<string | undefined> {
  const text = body === undefined ? "" : typeof body === "string" ? body : undefined;
  switch (auth) {
    case "signed":
      return text !== undefined ? signBody(text, TEST_KEYS) : signBytes(bodyBytes(body!));
    case "unsigned":
      return undefined;
    case "bad-signature":
      return rng.pick([
        async () => signBody(`${text ?? ""} `, TEST_KEYS),
        async () => signBody(text ?? "", { ...TEST_KEYS, expiredAt: new Date(Date.now() - 60_000) }),
        async () => signBody(text ?? "", { apiKey: TEST_KEYS.apiKey, apiSecret: "another-secret-that-is-long-enough-0123456789" }),
        async () => rng.pick(["x", "a.b.c", "Bearer ", `eyJhbGciOiJub25lIn0.${b64url('{"sha256":"x"}')}.`, "x".repeat(5000)]),
      ])();
    default:
      return undefined;
  }
}

function pickAuth(route: RouteInfo | undefined, rng: Rng): AuthKind {
  const family = route?.family ?? "admin";
  const r = rng.next();
  if (family === "admin") return r < 0.74 ? "admin" : r < 0.88 ? "tenant" : r < 0.93 ? "none" : "garbage";
  if (family === "sip" || family === "events") return r < 0.72 ? "signed" : r < 0.84 ? "unsigned" : "bad-signature";
  return "open";
}

async function buildRequest(
  rng: Rng,
  route: RouteInfo | undefined,
  method: string,
  path: string,
  spec: BodySpec | undefined,
  auth: AuthKind,
  label: string,
): Promise<FuzzRequest> {
  const headers: Record<string, string> = {};
  if (spec) {
    const contentType =
      spec.contentType === undefined
        ? route?.family === "events" && rng.chance(0.85)
          ? "application/webhook+json"
          : "application/json"
        : spec.contentType;
    if (contentType !== null) headers["content-type"] = contentType;
  }
  if (auth === "admin") headers.authorization = `Bearer ${adminKey}`;
  else if (auth === "tenant") headers.authorization = `Bearer ${tenantKey}`;
  else if (auth === "garbage") headers.authorization = rng.pick(GARBAGE_BEARERS());
  else {
    const token = await signatureFor(spec?.body, auth, rng);
    if (token !== undefined) headers.authorization = token;
  }
  // A path the URL parser rewrites ("..", an empty id) no longer reaches the route: judged as unrouted.
  const reaches = route ? reachesRoute(route.path, path) : false;
  const fullLabel = `${spec ? `${label}; body: ${spec.label}` : label}${route && !reaches ? " (path does not reach the route)" : ""}`;
  return { route: reaches ? route : undefined, method, path, headers, body: spec?.body, label: fullLabel, auth };
}

function reachesRoute(template: string, path: string): boolean {
  const pathname = new URL(path, "http://localhost").pathname;
  const pattern = new RegExp(`^${template.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:\w+/g, "[^/]+")}$`);
  return pattern.test(pathname);
}

// ---- Paths and query strings

function hostileIds(rng: Rng): Labelled<string>[] {
  const uuid = rng.uuid();
  return [
    { label: "random-uuid", value: uuid },
    { label: "nil-uuid", value: "00000000-0000-0000-0000-000000000000" },
    { label: "uuid-upper", value: uuid.toUpperCase() },
    { label: "uuid-no-dashes", value: uuid.replaceAll("-", "") },
    { label: "uuid-plus-x", value: `${uuid}x` },
    { label: "uuid-pct-nul", value: `${uuid}%00` },
    { label: "uuid-pct-newline", value: `${uuid}%0A` },
    { label: "uuid-semicolon", value: `${uuid};x=1` },
    { label: "not-uuid", value: "not-a-uuid" },
    { label: "number", value: "1" },
    { label: "negative", value: "-1" },
    { label: "long-5000", value: "a".repeat(5000) },
    { label: "uuid-repeated", value: uuid.repeat(40) },
    { label: "pct-nul", value: "%00" },
    { label: "pct-truncated-utf8", value: "%E0%A4%A" },
    { label: "pct-bare", value: "%" },
    { label: "pct-zz", value: "%zz" },
    { label: "pct-lone-surrogate", value: "%ED%A0%80" },
    { label: "pct-overlong", value: "%C0%AF" },
    { label: "pct-invalid-byte", value: "%FF%FE" },
    { label: "encoded-slash", value: "%2F..%2F" },
    { label: "dot-dot", value: ".." },
    { label: "space", value: "%20" },
    { label: "unicode", value: "%C3%A9t%C3%A9" },
    { label: "emoji", value: "%F0%9F%93%9E" },
    { label: "proto", value: "__proto__" },
    { label: "constructor", value: "constructor" },
    { label: "empty", value: "" },
  ];
}

function fillPath(route: RouteInfo, rng: Rng, forced?: Labelled<string>): { path: string; label: string } {
  const labels: string[] = [];
  const path = route.path.replace(/:(\w+)/g, (_, name: string, offset: number) => {
    if (forced) {
      labels.push(`${name}=${forced.label}`);
      return forced.value;
    }
    if (rng.chance(0.6)) {
      const segment = route.path.slice(0, offset).split("/").filter(Boolean).pop() ?? "";
      const pool = name === "id" ? segment : name;
      const ids = pools[pool];
      if (ids?.length) {
        labels.push(`${name}=real`);
        return encodeText(rng.pick(ids));
      }
    }
    const hostile = rng.pick(hostileIds(rng));
    labels.push(`${name}=${hostile.label}`);
    return hostile.value;
  });
  return { path, label: labels.join(",") };
}

const HOSTILE_QUERY_VALUES = (rng: Rng): Labelled<string>[] => [
  { label: "empty", value: "" },
  { label: "pct-nul", value: "a%00b" },
  { label: "pct-truncated-utf8", value: "%E0%A4%A" },
  { label: "pct-bare", value: "%" },
  { label: "pct-lone-surrogate", value: "%ED%A0%80" },
  { label: "pct-invalid-byte", value: "%FF" },
  { label: "1e309", value: "1e309" },
  { label: "-0", value: "-0" },
  { label: "hex", value: "0x10" },
  { label: "huge-int", value: "99999999999999999999999" },
  { label: "negative", value: "-1" },
  { label: "zero", value: "0" },
  { label: "float", value: "1.5" },
  { label: "NaN", value: "NaN" },
  { label: "yes", value: "yes" },
  { label: "null", value: "null" },
  { label: "json-array", value: "%5B%5D" },
  { label: "json-object", value: "%7B%7D" },
  { label: "long-3000", value: "x".repeat(3000) },
  { label: "plus", value: "+" },
  { label: "encoded-plus-phone", value: "%2B14155550100" },
  { label: "impossible-date", value: "2024-02-30T00:00:00Z" },
  { label: "year-0", value: "0000-01-01" },
  { label: "uuid-upper", value: rng.uuid().toUpperCase() },
  { label: "forged-cursor", value: b64url(JSON.stringify({ id: rng.uuid(), created_at: "x" })) },
  { label: "forged-cursor-2", value: b64url("\u0000\ud800") },
  { label: "mutated-cursor", value: cursors.length ? encodeText(rng.pick(cursors).split("").reverse().join("")) : "abc" },
  { label: "hostile-string", value: encodeText(rng.pick(hostileStrings(rng)).value.slice(0, 2000)) },
];

function queryFor(route: RouteInfo, rng: Rng, forced?: { name: string; value: Labelled<string> }): { query: string; label: string } {
  const parts: string[] = [];
  const labels: string[] = [];
  const props = Object.entries((route.query?.properties ?? {}) as Record<string, Schema>);
  if (forced) {
    parts.push(`${forced.name}=${forced.value.value}`);
    labels.push(`${forced.name}=${forced.value.label}`);
  } else {
    for (const [name, schema] of props) {
      if (!rng.chance(0.35)) continue;
      if (rng.chance(0.7)) {
        const value = validFor(schema, name, rng);
        parts.push(`${name}=${encodeText(typeof value === "string" ? value : JSON.stringify(value))}`);
        labels.push(`${name}=valid`);
      } else {
        const hostile = rng.pick(HOSTILE_QUERY_VALUES(rng));
        parts.push(`${name}=${hostile.value}`);
        labels.push(`${name}=${hostile.label}`);
      }
    }
  }
  if (rng.chance(0.15)) {
    const extra = rng.pick([
      { label: "unknown-key", value: `unknown_${uniq()}=1` },
      { label: "duplicate-limit", value: "limit=1&limit=2" },
      { label: "proto-bracket", value: "__proto__[polluted]=yes" },
      { label: "proto-key", value: "__proto__=x" },
      { label: "constructor-prototype", value: "constructor[prototype][polluted]=yes" },
      { label: "bare-key", value: "limit" },
      { label: "bare-equals", value: "=x" },
      { label: "ampersands", value: "&&&" },
      { label: "array-brackets", value: "status[]=active&status[]=paused" },
      { label: "dotted", value: "tenant_id.x=1" },
    ]);
    parts.push(extra.value);
    labels.push(extra.label);
  }
  return { query: parts.length ? `?${parts.join("&")}` : "", label: labels.join(",") };
}

// ---- Bodies

function validBody(route: RouteInfo, rng: Rng): { value: Json; text: string } {
  if (route.family === "events") {
    const text = validEventText(rng);
    return { value: JSON.parse(text), text };
  }
  const value = route.body ? validFor(route.body, "body", rng) : {};
  return { value, text: toJson(value) };
}

function validSpec(route: RouteInfo, rng: Rng): BodySpec {
  return { label: "valid", body: validBody(route, rng).text };
}

/** A valid body with one thing changed. */
function mutationSpec(route: RouteInfo, rng: Rng): BodySpec {
  const { value, text } = validBody(route, rng);
  if (route.family === "events") {
    const mutated = mutateEvent(text, rng);
    return { label: mutated.label, body: mutated.value };
  }
  const body = (value && typeof value === "object" && !Array.isArray(value) ? { ...(value as object) } : {}) as Record<string, Json>;
  const fields = Object.keys(route.body?.properties ?? body);
  const field = fields.length ? rng.pick(fields) : "x";
  const op = rng.int(10);
  if (op <= 4) {
    const hostile = hostileValue(rng);
    body[field] = hostile.value;
    return { label: `${field}=${hostile.label}`, body: toJson(body) };
  }
  if (op === 5) {
    delete body[field];
    return { label: `without ${field}`, body: toJson(body) };
  }
  if (op === 6) {
    const hostile = hostileValue(rng);
    const name = rng.pick(["extra", "__proto__", "constructor", "prototype", "", "\u0000", "\ud800", `${field} `]);
    return { label: `extra key ${JSON.stringify(name)}=${hostile.label}`, body: toJson(new Pairs([...Object.entries(body), [name, hostile.value]])) };
  }
  if (op === 7) {
    const strings = stringFields(route.body);
    const s = strings.length ? rng.pick(strings) : { name: field, maxLength: 200, minLength: 0 };
    const max = s.maxLength ?? 200;
    const choice = rng.pick([
      { label: `at-maxLength(${max})`, value: "m".repeat(max) },
      { label: `maxLength+1`, value: "m".repeat(max + 1) },
      { label: `emoji-to-maxLength`, value: "😀".repeat(Math.ceil(max / 2)) },
      { label: `emoji-past-maxLength`, value: "😀".repeat(Math.ceil(max / 2) + 1) },
      { label: "below-minLength", value: "m".repeat(Math.max(0, (s.minLength ?? 0) - 1)) },
      { label: "whitespace", value: " \t " },
      { label: "padded", value: ` ${String(body[s.name] ?? "x")} ` },
    ]);
    body[s.name] = choice.value;
    return { label: `${s.name} ${choice.label}`, body: toJson(body) };
  }
  if (op === 8) {
    const other = rng.pick(fields.length ? fields : [field]);
    body[field] = body[other] ?? validFor({ type: "string" }, other, rng);
    return { label: `${field}=value of ${other}`, body: toJson(body) };
  }
  const whole = rng.pick<Labelled<Json>>([
    { label: "wrapped in an array", value: [body] },
    { label: "a string", value: "body" },
    { label: "a number", value: 1 },
    { label: "null", value: null },
    { label: "true", value: true },
  ]);
  return { label: `whole body: ${whole.label}`, body: toJson(whole.value) };
}

/** Every field of the body schema given every wrong type, once each. */
function wrongTypeSpecs(route: RouteInfo, rng: Rng): BodySpec[] {
  const specs: BodySpec[] = [];
  for (const field of Object.keys(route.body?.properties ?? {})) {
    for (const wrong of WRONG_TYPES) {
      const body = { ...((validBody(route, rng).value as Record<string, Json>) ?? {}) };
      body[field] = wrong.value;
      specs.push({ label: `${field}=${wrong.label}`, body: toJson(body) });
    }
  }
  return specs;
}

function fillString(value: Record<string, Json>, field: string, bytes: number, unit: string, escapedUnitBytes: number): string {
  const base = toJson({ ...value, [field]: "" });
  const count = Math.max(0, Math.floor((bytes - Buffer.byteLength(base)) / escapedUnitBytes));
  return toJson({ ...value, [field]: unit.repeat(count) });
}

/** Bodies broken at the text level, and the huge ones; all built around a valid body. */
function structuralSpecs(route: RouteInfo, rng: Rng): BodySpec[] {
  const { value, text } = validBody(route, rng);
  const object = (value && typeof value === "object" && !Array.isArray(value) ? value : {}) as Record<string, Json>;
  const firstKey = Object.keys(object)[0] ?? "a";
  const stringField = stringFields(route.body)[0]?.name ?? (route.family === "events" ? "event" : "x");
  const room = limit - 200;
  const withField = (name: string, raw: string) => `${text.replace(/\}\s*$/, "")}${text.trim() === "{}" ? "" : ","}${JSON.stringify(name)}:${raw}}`;
  // Bytes that are not UTF-8, inside the value of a field that is stored (sip.callID for events).
  const bytesWith = (inner: number[]) => {
    const anchor = route.family === "events" && text.includes('"sip.callID":"') ? '"sip.callID":"' : text.includes('":"') ? '":"' : undefined;
    const at = anchor ? text.indexOf(anchor) + anchor.length : -1;
    if (at < 0) return new Uint8Array([...new TextEncoder().encode('{"x":"a'), ...inner, 0x22, 0x7d]);
    const encode = (t: string) => new TextEncoder().encode(t);
    return new Uint8Array([...encode(text.slice(0, at)), 0x61, ...inner, 0x62, ...encode(text.slice(at))]);
  };
  const specs: BodySpec[] = [
    { label: "empty", body: "" },
    { label: "whitespace", body: "  \n\t " },
    { label: "json null", body: "null" },
    { label: "json true", body: "true" },
    { label: "json 0", body: "0" },
    { label: "json string", body: '"x"' },
    { label: "json []", body: "[]" },
    { label: "json {}", body: "{}" },
    { label: "valid body in an array", body: `[${text}]` },
    { label: "truncated at half", body: text.slice(0, Math.ceil(text.length / 2)) },
    { label: "truncated by one", body: text.slice(0, -1) },
    { label: "first byte only", body: text.slice(0, 1) },
    { label: "trailing garbage", body: `${text}x` },
    { label: "trailing brace", body: `${text}}` },
    { label: "two bodies", body: `${text}${text}` },
    { label: "trailing NUL", body: `${text}\u0000` },
    { label: "raw NUL inside a string", body: text.replace('":"', '":"\u0000') },
    { label: "BOM", body: `\ufeff${text}` },
    { label: "comment", body: `/* c */${text}` },
    { label: "single quotes", body: text.replaceAll('"', "'") },
    { label: "trailing comma", body: text.replace(/\}\s*$/, ",}") },
    { label: "NaN literal", body: withField("x", "NaN") },
    { label: "leading zero", body: withField("x", "01") },
    { label: "duplicate key, hostile last", body: withField(firstKey, toJson(rng.pick(hostileStrings(rng)).value)) },
    { label: "duplicate key, hostile first", body: `{${JSON.stringify(firstKey)}:${toJson(rng.pick(WRONG_TYPES).value)},${text.trim().slice(1)}` },
    { label: "__proto__ key", body: withField("__proto__", '{"polluted":"yes"}') },
    { label: "constructor.prototype key", body: withField("constructor", '{"prototype":{"polluted":"yes"}}') },
    { label: "only __proto__", body: '{"__proto__":{"polluted":"yes","call_id":"x","name":"x"}}' },
    { label: `deep arrays ${Math.floor(room / 2)} levels`, body: deepArrays(Math.floor(room / 2)) },
    { label: `deep objects ${Math.floor(room / 6)} levels`, body: deepObjects(Math.floor(room / 6)) },
    { label: "deep arrays 1000 levels", body: deepArrays(1000) },
    { label: "deep arrays 5000 levels", body: deepArrays(5000) },
    { label: "unclosed deep arrays", body: "[".repeat(room) },
    { label: "deep arrays in a field", body: withField("x", deepArrays(Math.floor((room - text.length) / 2))) },
    { label: "deep objects in a field", body: withField(stringField, deepObjects(Math.floor((room - text.length) / 6))) },
    { label: "wide array of numbers", body: wideArray(Math.floor(room / 2)) },
    { label: "wide array of objects", body: wideArray(Math.floor(room / 3), "{}") },
    { label: "wide array in a field", body: withField("x", wideArray(Math.floor((room - text.length) / 2))) },
    { label: "wide object", body: `{${Array.from({ length: Math.floor(room / 10) }, (_, i) => `"k${i.toString(36)}":0`).join(",")}}` },
    { label: "string just under the limit", body: fillString(object, stringField, limit - 1, "s", 1) },
    { label: "string exactly at the limit", body: fillString(object, stringField, limit, "s", 1) },
    { label: "one byte over the limit", body: fillString(object, stringField, limit + 1, "s", 1) },
    { label: "twice the limit", body: fillString(object, stringField, limit * 2, "s", 1) },
    { label: "lone surrogate escapes to the limit", body: fillString(object, stringField, limit - 10, "\ud800", 6) },
    { label: "NUL escapes to the limit", body: fillString(object, stringField, limit - 10, "\u0000", 6) },
    { label: "emoji to the limit", body: fillString(object, stringField, limit - 10, "😀", 4) },
    { label: "over the limit, streamed", body: new Streamed(new TextEncoder().encode(fillString(object, stringField, limit * 3, "s", 1))) },
    { label: "invalid UTF-8 byte 0xff", body: bytesWith([0xff]) },
    { label: "UTF-8 encoded lone surrogate", body: bytesWith([0xed, 0xa0, 0x80]) },
    { label: "overlong UTF-8", body: bytesWith([0xc0, 0xaf]) },
    { label: "truncated UTF-8", body: bytesWith([0xf0, 0x9f]) },
    { label: "content-type text/plain", body: text, contentType: "text/plain" },
    { label: "no content-type", body: text, contentType: null },
    { label: "content-type form", body: "a=b&c=d", contentType: "application/x-www-form-urlencoded" },
    {
      label: "content-type multipart",
      body: `--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n`,
      contentType: "multipart/form-data; boundary=b",
    },
    { label: "content-type xml", body: "<a/>", contentType: "application/xml" },
    { label: "content-type utf-16", body: text, contentType: "application/json; charset=utf-16" },
    { label: "content-type upper case", body: text, contentType: "APPLICATION/JSON" },
    { label: "content-type +json", body: text, contentType: "application/vnd.api+json" },
    { label: "content-type webhook+json", body: text, contentType: "application/webhook+json" },
    { label: "content-type json for events", body: text, contentType: "application/json" },
    { label: "content-type garbage", body: text, contentType: ";;;/json" },
    { label: "content-type long", body: text, contentType: `application/json; x=${"y".repeat(4000)}` },
  ];
  return specs;
}

/** The hostile bodies of the no-stall check: the biggest nesting and width a body can hold. */
function heavySpecs(route: RouteInfo, rng: Rng): BodySpec[] {
  const heavy = new Set([
    "deep arrays",
    "deep objects",
    "unclosed deep arrays",
    "deep arrays in a field",
    "deep objects in a field",
    "wide array of numbers",
    "wide array of objects",
    "wide array in a field",
    "wide object",
    "string just under the limit",
    "lone surrogate escapes to the limit",
    "twice the limit",
  ]);
  return structuralSpecs(route, rng).filter((s) => [...heavy].some((h) => s.label.startsWith(h)));
}

// ---------------------------------------------------------------------------------------------
// Sending and judging

interface Outcome {
  status: number;
  contentType: string;
  text: string;
  ms: number;
  /** The request got no HTTP answer (connection reset, handler threw out of app.handle). */
  error?: string;
  stalled?: boolean;
}

interface Failure {
  phase: string;
  index: number;
  req: FuzzRequest;
  outcome: Outcome;
  problem: string;
  logs: string[];
}

/** The first 200 characters, escaped (a lone surrogate shows as \ud800); raw bytes with the non-ASCII ones as \xNN. */
function preview(body: Body | undefined): string {
  if (body === undefined) return "(none)";
  const bytes = bodyBytes(body);
  const text = bodyText(body);
  const shown =
    typeof body === "string"
      ? JSON.stringify(text.slice(0, 200)) + (text.length > 200 ? "..." : "")
      : `"${Array.from(bytes.slice(0, 200), (b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`)).join("")}"${bytes.length > 200 ? "..." : ""}`;
  const kind = body instanceof Streamed ? ", streamed, no Content-Length" : typeof body === "string" ? "" : ", raw bytes";
  return `${shown} (${bytes.length} bytes${kind})`;
}

function describeFailure(f: Failure): string {
  const { req, outcome } = f;
  const answer = outcome.error
    ? `no HTTP answer: ${outcome.error}`
    : outcome.stalled
      ? `no answer within ${STALL_MS} ms`
      : `${outcome.status} ${outcome.contentType} ${JSON.stringify(outcome.text.slice(0, 300))}`;
  return [
    `  [${f.phase} #${f.index}, seed ${SEED}] ${req.method} ${req.path.length > 200 ? `${req.path.slice(0, 200)}...` : req.path}`,
    `    input: ${req.label}; auth ${req.auth}; content-type ${req.headers["content-type"] ?? "(none)"}`,
    `    body: ${preview(req.body)}`,
    `    answer: ${answer} (${outcome.ms.toFixed(1)} ms)`,
    `    problem: ${f.problem}`,
    ...(f.logs.length ? [`    logged: ${f.logs.slice(0, 3).join(" | ")}`] : []),
  ].join("\n");
}

/** Groups the failures by route and problem: each group once, with its first examples. */
function report(title: string, failures: Failure[]): string {
  const groups = new Map<string, Failure[]>();
  for (const f of failures) {
    const key = `${f.req.route?.key ?? `${f.req.method} (no route)`} | ${f.problem.replace(/\d+(\.\d+)?/g, "#")}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const parts = [`${title}: ${failures.length} failing requests in ${groups.size} groups. Seed ${SEED}; replay: ${REPLAY}`];
  for (const [key, list] of groups) {
    parts.push(`- ${list[0]!.req.route?.key ?? `${list[0]!.req.method} (no route)`}: ${list[0]!.problem} (${list.length}x)`);
    for (const f of list.slice(0, 2)) parts.push(describeFailure(f));
  }
  return parts.join("\n");
}

function errorShape(text: string): string | undefined {
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return "4xx body is not JSON";
  }
  const error = body?.error;
  if (!error || typeof error !== "object") return "4xx body has no error object";
  if (typeof error.code !== "string" || !error.code) return "4xx error.code is not a non-empty string";
  if (typeof error.message !== "string" || !error.message) return "4xx error.message is not a non-empty string";
  return undefined;
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** What the answer breaks: the general rules, then the contract's rules for this input. */
function judge(req: FuzzRequest, out: Outcome): string[] {
  if (out.error) return [`no HTTP answer (${out.error.slice(0, 200)})`];
  if (out.stalled) return [`no answer within ${STALL_MS} ms (stall)`];
  const problems: string[] = [];
  const { status } = out;
  if (status >= 500) problems.push(`${status} answer`);
  let field: string | undefined;
  let code: string | undefined;
  if (status >= 400 && status < 600 && req.method !== "HEAD") {
    if (!out.contentType.includes("application/json")) problems.push(`${status} answered with content-type "${out.contentType}"`);
    const shape = errorShape(out.text);
    if (shape) problems.push(`${status}: ${shape}`);
    else {
      const error = JSON.parse(out.text).error;
      field = error.details?.field;
      code = error.code;
    }
  }
  if (status >= 200 && status < 300 && status !== 204 && out.text && !parsesAsJson(out.text)) {
    problems.push(`${status} body is not JSON`);
  }
  const route = req.route;
  if (!route || status >= 500) return problems;

  // The contract for bodies.
  const hasBody = req.body !== undefined;
  const bytes = hasBody ? bodyBytes(req.body!).length : 0;
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  const jsonType = contentType === "application/json" || contentType.endsWith("+json");
  const text = hasBody ? bodyText(req.body!) : "";
  const shape = jsonType && hasBody ? measureJson(text) : { depth: 0, width: 0, elements: 0 };
  const plausible = shape.depth <= PLAUSIBLE_DEPTH && shape.elements < PLAUSIBLE_ELEMENTS;
  const oversized = hasBody && bytes > limit;
  const bounded = !oversized && (shape.depth >= DEEP || shape.width >= WIDE);
  const webhookText = contentType === "application/webhook+json";
  // Bytes that are not UTF-8 are no text at all: refused as a body, like malformed JSON, before credentials.
  const readable = !hasBody || (!oversized && jsonType && plausible && isUtf8(bodyBytes(req.body!)) && parsesAsJson(text));
  const bodyRefusal = status === 400 && field === "body";
  const unauthenticated = req.auth === "none" || req.auth === "garbage" || req.auth === "unsigned" || req.auth === "bad-signature";

  if (oversized && route.takesBody) {
    if (status !== 413 || code !== "payload_too_large") problems.push(`body over MAX_BODY_BYTES (${bytes} bytes): expected 413 payload_too_large, got ${status} ${code ?? ""}`);
  } else if (bounded && route.body && jsonType && !webhookText) {
    const allowed = bodyRefusal || (unauthenticated && status === 401);
    if (!allowed) {
      problems.push(`body nested ${shape.depth} deep / ${shape.width} wide: expected a 400 naming "body", got ${status} ${field ? `naming "${field}"` : code ?? ""}`);
    }
  }
  // Credentials are checked before anything about the input is validated.
  const checksCredentials = route.family === "admin" || route.family === "sip" || route.family === "events";
  if (checksCredentials && unauthenticated && readable && !oversized) {
    if (status !== 401) {
      problems.push(`${req.auth} credentials with a readable body: expected 401 before any validation, got ${status}${field ? ` naming "${field}"` : ""}`);
    }
  }
  return problems;
}

class Runner {
  readonly failures: Failure[] = [];
  readonly notes = new Map<string, number>();
  readonly timings: { req: FuzzRequest; ms: number; status: number }[] = [];
  sent = 0;
  /** Late tables: increases seen, and the 2xx answers allowed to make them. */
  private late = {
    increase: { call_logs: 0, leads: 0 } as Record<string, number>,
    allowance: { call_logs: 0, leads: 0 } as Record<string, number>,
    suspects: [] as { req: FuzzRequest; status: number; index: number }[],
  };
  /** Sum of what the answers allow, per table: for phases whose requests overlap (no per-request counts). */
  private readonly allowed = Object.fromEntries(TABLES.map((t) => [t, [0, 0]])) as Record<Table, [number, number]>;
  private unknownEffects = false;
  private port?: number;
  constructor(readonly phase: string) {}

  useSocket(port: number) {
    this.port = port;
    return this;
  }

  private async send(req: FuzzRequest): Promise<Outcome> {
    const init: RequestInit & { duplex?: string } = { method: req.method, headers: req.headers };
    if (req.body instanceof Streamed) {
      const bytes = req.body.bytes;
      init.body = new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 16 * 1024) controller.enqueue(bytes.slice(i, i + 16 * 1024));
          controller.close();
        },
      });
      init.duplex = "half";
    } else if (req.body !== undefined) init.body = req.body;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stall = new Promise<"stall">((resolve) => {
      timer = setTimeout(() => resolve("stall"), STALL_MS);
    });
    const exchange = (async () => {
      const res = this.port
        ? await fetch(`http://127.0.0.1:${this.port}${req.path}`, init as RequestInit)
        : await ctx.app.handle(new Request(`http://localhost${req.path}`, init as RequestInit));
      const text = await res.text();
      return { status: res.status, contentType: res.headers.get("content-type") ?? "", text };
    })();
    try {
      const result = await Promise.race([exchange, stall]);
      const ms = performance.now() - started;
      if (result === "stall") {
        exchange.catch(() => {});
        return { status: 0, contentType: "", text: "", ms, stalled: true };
      }
      return { ...result, ms };
    } catch (error) {
      return { status: 0, contentType: "", text: "", ms: performance.now() - started, error: String(error) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one request, judges its answer and (when `before` is given) its effect on the row counts. */
  async run(req: FuzzRequest, before?: Counts): Promise<{ outcome: Outcome; after?: Counts }> {
    const index = this.sent++;
    const logStart = ctx.logs.length;
    const outcome = await this.send(req);
    this.timings.push({ req, ms: outcome.ms, status: outcome.status });
    const problems = judge(req, outcome);
    const effect = allowedEffect(req, outcome.status);
    if (!effect) this.unknownEffects = true;
    else for (const table of TABLES) (this.allowed[table][0] += effect[table]?.[0] ?? 0), (this.allowed[table][1] += effect[table]?.[1] ?? 0);
    let after: Counts | undefined;
    if (before) {
      after = await counts();
      problems.push(...this.effectProblems(req, outcome.status, before, after, index));
    }
    const lines = ctx.logs.slice(logStart).filter((l) => l.level === "error" || l.level === "fatal" || l.level === "warn");
    for (const line of lines) {
      if (line.msg === "value refused by the database") this.notes.set(`${req.route?.key}: ${line.msg}`, (this.notes.get(`${req.route?.key}: ${line.msg}`) ?? 0) + 1);
    }
    const logs = lines.map((l) => `${l.level}: ${l.msg}${(l.err as { message?: string } | undefined)?.message ? ` (${(l.err as { message: string }).message.slice(0, 200)})` : ""}`);
    for (const problem of problems) this.failures.push({ phase: this.phase, index, req, outcome, problem, logs });
    if (ctx.logs.length > 10_000) ctx.logs.length = 0;
    if (outcome.status >= 200 && outcome.status < 300 && req.method !== "GET" && outcome.text.startsWith("{")) {
      const id = (JSON.parse(outcome.text) as { id?: unknown }).id;
      if (typeof id === "string") {
        const write = `${this.phase} #${index} ${req.method} ${req.path.slice(0, 100)} -> ${outcome.status}, ${req.label.slice(0, 120)}, body ${preview(req.body)}`;
        writers.set(id, [...(writers.get(id) ?? []), write]);
      }
    }
    // What valid answers give the fuzzer to aim at next.
    if (outcome.status === 200 && outcome.text.includes("next_cursor")) {
      const cursor = (JSON.parse(outcome.text) as { next_cursor?: string | null }).next_cursor;
      if (cursor && cursors.length < 50) cursors.push(cursor);
    }
    return { outcome, after };
  }

  private effectProblems(req: FuzzRequest, status: number, before: Counts, after: Counts, index: number): string[] {
    const effect = allowedEffect(req, status);
    const problems: string[] = [];
    for (const table of TABLES) {
      const delta = after[table] - before[table];
      const late = LATE_TABLES.includes(table);
      if (late && delta > 0) {
        this.late.increase[table]! += delta;
        if (status >= 400) this.late.suspects.push({ req, status, index });
        continue;
      }
      if (effect === undefined) continue;
      const [min, max] = effect[table] ?? [0, 0];
      if (late && delta === 0) continue;
      if (delta < min || delta > max) problems.push(`${status} answer changed ${table} by ${delta} (allowed ${min}..${max})`);
    }
    if (effect && status >= 200 && status < 300) for (const table of LATE_TABLES) this.late.allowance[table]! += effect[table]?.[1] ?? 0;
    return problems;
  }

  /** For overlapping requests: the change of each table's count between `before` and `after` is one the answers allow. */
  aggregateProblems(before: Counts, after: Counts, extra: Effect = {}): string[] {
    if (this.unknownEffects) return [];
    const problems: string[] = [];
    for (const table of TABLES) {
      const delta = after[table] - before[table];
      const min = this.allowed[table][0] + (extra[table]?.[0] ?? 0);
      const max = this.allowed[table][1] + (extra[table]?.[1] ?? 0);
      if (delta < min || delta > max) problems.push(`${table}: changed by ${delta} during ${this.phase}, the answers allow ${min}..${max}`);
    }
    return problems;
  }

  /** Late tables: no more rows than the 2xx answers that may create them. */
  lateProblems(): string[] {
    const problems: string[] = [];
    for (const table of LATE_TABLES) {
      if (this.late.increase[table]! > this.late.allowance[table]!) {
        const suspects = this.late.suspects
          .slice(0, 5)
          .map((s) => `#${s.index} ${s.req.method} ${s.req.path.slice(0, 80)} -> ${s.status} (${s.req.label.slice(0, 120)})`);
        problems.push(`${table}: ${this.late.increase[table]} rows created but only ${this.late.allowance[table]} answers may create them; 4xx answers seen with new rows: ${suspects.join("; ") || "none"}`);
      }
    }
    return problems;
  }

  summary(): string {
    const sorted = [...this.timings].sort((a, b) => a.ms - b.ms);
    const p99 = sorted[Math.floor(sorted.length * 0.99)]?.ms ?? 0;
    const max = sorted[sorted.length - 1];
    const classes = new Map<string, number>();
    for (const t of this.timings) {
      const c = t.status ? `${Math.floor(t.status / 100)}xx` : "none";
      classes.set(c, (classes.get(c) ?? 0) + 1);
    }
    const byClass = [...classes].sort().map(([c, n]) => `${c} ${n}`).join(", ");
    return `${this.phase}: ${this.sent} requests (${byClass}), p99 ${p99.toFixed(1)} ms, max ${max?.ms.toFixed(1)} ms (${max?.req.method} ${max?.req.route?.path ?? max?.req.path}; ${max?.req.label.slice(0, 100)})`;
  }
}

/** Sends every request in order, each judged with its effect on the row counts. */
async function runSequential(runner: Runner, requests: AsyncIterable<FuzzRequest> | Iterable<Promise<FuzzRequest>>, poolEvery = 60): Promise<void> {
  let before = await counts();
  let n = 0;
  for await (const req of requests as AsyncIterable<FuzzRequest>) {
    const { outcome, after } = await runner.run(req, before);
    // A stall is a failure already; the rest of the phase is not waited out behind it.
    if (outcome.stalled) break;
    before = after!;
    if (++n % poolEvery === 0) await refreshPools();
  }
}

// ---------------------------------------------------------------------------------------------
// What the database may hold after any sequence of requests

const hasBadText = (value: string) => value.includes("\u0000") || value.includes("\ufffd") || !value.isWellFormed();

function jsonProblems(value: unknown, depth = 0): string | undefined {
  if (depth > METADATA_MAX_DEPTH + 1) return `nested deeper than ${METADATA_MAX_DEPTH}`;
  if (typeof value === "string") return hasBadText(value) ? "holds NUL, U+FFFD or a lone surrogate" : undefined;
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (!Array.isArray(value) && hasBadText(k)) return `key ${JSON.stringify(k)} holds NUL, U+FFFD or a lone surrogate`;
      const inner = jsonProblems(v, depth + 1);
      if (inner) return inner;
    }
  }
  return undefined;
}

async function invalidRows(): Promise<string[]> {
  const found: string[] = [];
  const problems = {
    push(problem: string) {
      const id = /^\w+ ([0-9a-f-]{36})/.exec(problem)?.[1];
      const writes = id ? (writers.get(id) ?? []) : [];
      const shown = writes.length > 2 ? [writes[0]!, `(${writes.length - 2} more)`, writes[writes.length - 1]!] : writes;
      found.push([problem, ...shown.map((w) => `      written by ${w}`)].join("\n"));
    },
  };
  const show = (v: unknown) => JSON.stringify(typeof v === "string" ? v.slice(0, 80) : v);
  const names = async (table: string) => {
    for (const row of await rows<{ id: string; name: string }>(sql.raw(`select id, name from ${table}`))) {
      if (row.name === "" || hasBadText(row.name) || row.name.length > 200) problems.push(`${table} ${row.id}: name ${show(row.name)}`);
    }
  };
  await names("tenants");
  await names("agents");
  await names("campaigns");
  for (const row of await rows<{ id: string; description: string | null; metadata: unknown }>(sql`select id, description, metadata from agents`)) {
    if (row.description !== null && hasBadText(row.description)) problems.push(`agents ${row.id}: description ${show(row.description)}`);
    const bad = jsonProblems(row.metadata);
    if (bad) problems.push(`agents ${row.id}: metadata ${bad}`);
  }
  for (const row of await rows<{ id: string; e164: string }>(sql`select id, e164 from phone_numbers`)) {
    if (!E164.test(row.e164)) problems.push(`phone_numbers ${row.id}: e164 ${show(row.e164)}`);
  }
  for (const row of await rows<{ id: string; provider_call_id: string; from_number: string | null; to_number: string | null; agent_name: string }>(
    sql`select id, provider_call_id, from_number, to_number, agent_name from call_logs`,
  )) {
    if (row.provider_call_id === "" || hasBadText(row.provider_call_id)) problems.push(`call_logs ${row.id}: provider_call_id ${show(row.provider_call_id)}`);
    for (const key of ["from_number", "to_number"] as const) {
      if (row[key] !== null && !E164.test(row[key]!)) problems.push(`call_logs ${row.id}: ${key} ${show(row[key])} is not E.164`);
    }
    if (!row.agent_name) problems.push(`call_logs ${row.id}: empty agent_name`);
  }
  for (const row of await rows<{ id: string; name: string; status: string; email: string | null; phone_number: string; metadata: unknown }>(
    sql`select id, name, status, email, phone_number, metadata from leads`,
  )) {
    if (hasBadText(row.name) || row.status === "" || hasBadText(row.status)) problems.push(`leads ${row.id}: name ${show(row.name)} status ${show(row.status)}`);
    if (row.email !== null && (hasBadText(row.email) || !row.email.includes("@"))) problems.push(`leads ${row.id}: email ${show(row.email)}`);
    if (!E164.test(row.phone_number)) problems.push(`leads ${row.id}: phone_number ${show(row.phone_number)} is not E.164`);
    const bad = jsonProblems(row.metadata);
    if (bad) problems.push(`leads ${row.id}: metadata ${bad}`);
  }
  for (const row of await rows<{ id: string; label: string | null }>(sql`select id, label from api_keys`)) {
    if (row.label !== null && hasBadText(row.label)) problems.push(`api_keys ${row.id}: label ${show(row.label)}`);
  }
  for (const row of await rows<{ id: string }>(sql`select id from webhook_events where id = ''`)) problems.push(`webhook_events: empty id`);
  // A campaign dispatches only its own tenant's agents or system-wide ones.
  for (const row of await rows<{ id: string }>(sql`
    select c.id from campaigns c join agents a on a.id = c.agent_id
    where a.tenant_id is not null and a.tenant_id <> c.tenant_id`)) {
    problems.push(`campaigns ${row.id}: dispatches another tenant's agent`);
  }
  if (Object.keys(Object.prototype).length || ({} as Record<string, unknown>).polluted !== undefined) {
    problems.push(`Object.prototype polluted: ${Object.keys(Object.prototype).join(",")}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Request streams

function pickRoute(rng: Rng): RouteInfo {
  const weighted = routes.flatMap((r) => {
    const weight = r.family === "inputless" ? 1 : r.takesBody ? 8 : r.params.length ? 4 : 3;
    return Array.from({ length: weight }, () => r);
  });
  return rng.pick(weighted);
}

async function randomRequest(rng: Rng): Promise<FuzzRequest> {
  if (rng.chance(0.03)) {
    // A method the path does not serve, or a path nothing serves.
    const route = rng.pick(routes);
    const method = rng.pick(["PUT", "PATCH", "DELETE", "POST", "OPTIONS"].filter((m) => m !== route.method));
    const path = rng.chance(0.5) ? fillPath(route, rng).path : `/api/v1/${rng.pick(["nothing", "tenants/x/y/z", "../etc/passwd", "%00", "webhooks/livekit"])}`;
    const spec = method === "OPTIONS" ? undefined : { label: "valid-ish", body: "{}" };
    // Another route may serve that method on that path (GET and DELETE /leads/:id): then it is judged as that route.
    const served = routes.find((r) => r.method === method && reachesRoute(r.path, path));
    return buildRequest(rng, served, method, path, spec, pickAuth(served ?? route, rng), served ? "another method of the path" : "wrong method/path");
  }
  const route = pickRoute(rng);
  const filled = fillPath(route, rng);
  const query = route.query ? queryFor(route, rng) : rng.chance(0.1) ? { query: `?${rng.pick(HOSTILE_QUERY_VALUES(rng)).value}=1`, label: "stray query" } : { query: "", label: "" };
  let spec: BodySpec | undefined;
  let kind = "no body";
  if (route.takesBody) {
    const c = rng.next();
    if (c < 0.18) [spec, kind] = [validSpec(route, rng), "valid"];
    else if (c < 0.68) [spec, kind] = [mutationSpec(route, rng), "mutation"];
    else if (c < 0.82 && route.body) [spec, kind] = [rng.pick(wrongTypeSpecs(route, rng)), "wrong type"];
    else [spec, kind] = [rng.pick(structuralSpecs(route, rng)), "structural"];
  } else if (route.method !== "GET" && rng.chance(0.08)) [spec, kind] = [rng.pick(structuralSpecs(route, rng)), "unexpected body"];
  const label = [kind, filled.label, query.label].filter(Boolean).join("; ");
  return buildRequest(rng, route, route.method, filled.path + query.query, spec, pickAuth(route, rng), label);
}

/** The systematic passes: every field with every wrong type, every structural body, every hostile id and query value. */
function* systematicRequests(rng: Rng): Generator<Promise<FuzzRequest>> {
  const authFor = (route: RouteInfo): AuthKind => (route.family === "admin" ? "admin" : route.family === "open-webhook" ? "open" : "signed");
  for (const route of bodyRoutes) {
    const path = (r: RouteInfo) => fillPath(r, rng).path;
    for (const spec of route.body ? wrongTypeSpecs(route, rng) : []) {
      yield buildRequest(rng, route, route.method, path(route), spec, authFor(route), "wrong type");
    }
    for (const spec of structuralSpecs(route, rng)) yield buildRequest(rng, route, route.method, path(route), spec, authFor(route), "structural");
    for (let i = 0; i < (route.family === "events" ? 120 : 12); i++) {
      yield buildRequest(rng, route, route.method, path(route), mutationSpec(route, rng), authFor(route), "mutation");
    }
    // Without credentials: refused before anything is validated.
    if (route.family !== "open-webhook") {
      for (const spec of [mutationSpec(route, rng), rng.pick(wrongTypeSpecs(route, rng).concat(structuralSpecs(route, rng).slice(0, 9)))]) {
        yield buildRequest(rng, route, route.method, path(route), spec, route.family === "admin" ? "none" : "unsigned", "no credentials");
      }
    }
  }
  for (const route of routes.filter((r) => r.params.length)) {
    for (const id of hostileIds(rng)) {
      const filled = fillPath(route, rng, id);
      const spec = route.takesBody ? validSpec(route, rng) : undefined;
      yield buildRequest(rng, route, route.method, filled.path, spec, route.family === "admin" ? "admin" : "open", `hostile id ${filled.label}`);
    }
    yield buildRequest(rng, route, route.method, fillPath(route, rng, { label: "not-uuid", value: "not-a-uuid" }).path, undefined, "none", "no credentials, bad id");
  }
  for (const route of routes.filter((r) => r.query)) {
    for (const name of Object.keys(route.query!.properties)) {
      for (const value of HOSTILE_QUERY_VALUES(rng).filter(() => rng.chance(0.35))) {
        const q = queryFor(route, rng, { name, value });
        yield buildRequest(rng, route, route.method, route.path + q.query, undefined, rng.chance(0.9) ? "admin" : "tenant", `query ${q.label}`);
      }
    }
    const q = queryFor(route, rng, { name: "limit", value: { label: "0x10", value: "0x10" } });
    yield buildRequest(rng, route, route.method, route.path + q.query, undefined, "none", "no credentials, bad query");
  }
}

async function* randomRequests(rng: Rng, count: number): AsyncGenerator<FuzzRequest> {
  for (let i = 0; i < count; i++) yield randomRequest(rng);
}

// ---------------------------------------------------------------------------------------------
// The tests

const summaries: string[] = [];

beforeAll(async () => {
  ctx = await openTestContext({ LIVEKIT_API_KEY: TEST_KEYS.apiKey, LIVEKIT_API_SECRET: TEST_KEYS.apiSecret, LOG_LEVEL: "warn" });
  limit = ctx.config.maxBodyBytes;
  routes = describeRoutes(ctx.app);
  bodyRoutes = routes.filter((r) => r.takesBody);
}, 60_000);

afterAll(async () => {
  if (ctx?.app.server) await ctx.app.stop(true);
  await ctx?.close();
  for (const line of summaries) console.log(line);
});

/** A few valid calls and events, so leads, call logs and call ids exist to aim at. */
async function warmUp(runner: Runner, rng: Rng): Promise<void> {
  const sip = routes.find((r) => r.family === "sip");
  const events = routes.find((r) => r.family === "events");
  const requests: Promise<FuzzRequest>[] = [];
  for (let i = 0; i < 12 && sip; i++) requests.push(buildRequest(rng, sip, "POST", sip.path, validSpec(sip, rng), "signed", "warm-up"));
  for (let i = 0; i < 6 && events; i++) requests.push(buildRequest(rng, events, "POST", events.path, validSpec(events, rng), "signed", "warm-up"));
  await runSequential(runner, requests);
  await refreshPools();
}

describe("fuzz", () => {
  test("the routes to fuzz are read from the app", () => {
    const keys = routes.map((r) => r.key);
    // A sample the rest relies on; any route added later is in `routes` without being named here.
    expect(keys).toContain(`POST ${SIP_INBOUND_PATH}`);
    expect(keys).toContain(`POST ${EVENTS_PATH}`);
    expect(keys).toContain("PATCH /api/v1/agents/:id");
    expect(keys).toContain("GET /api/v1/call-logs");
    expect(routes.filter((r) => r.family === "admin").length).toBeGreaterThan(20);
  });

  test(
    "through app.handle: systematic and random requests to every route, never a 5xx, nothing invalid stored",
    async () => {
      const rng = Rng.forPhase("handle");
      await setUpWorld();
      const runner = new Runner("handle");
      await warmUp(runner, rng);
      await runSequential(runner, systematicRequests(rng));
      await runSequential(runner, randomRequests(rng, RANDOM_REQUESTS));
      summaries.push(runner.summary());
      for (const [note, n] of runner.notes) summaries.push(`note (${n}x): ${note} - the model let a value through that the database refused`);
      const problems = [...runner.lateProblems(), ...(await invalidRows())];
      if (runner.failures.length || problems.length) {
        throw new Error(`${report("app.handle", runner.failures)}\n${problems.length ? `Database after the run:\n  ${problems.slice(0, 40).join("\n  ")}` : ""}`);
      }
    },
    180_000,
  );

  test(
    "no stall: hostile bodies sent alongside valid sip-inbound calls; every call gets its agent",
    async () => {
      const rng = Rng.forPhase("no-stall");
      await setUpWorld();
      const sip = routes.find((r) => r.family === "sip")!;
      const runner = new Runner("no-stall");
      const before = await counts();
      // The hostile bodies, on every route taking a body, in a loop per worker until the calls are done.
      const hostile: Promise<FuzzRequest>[] = [];
      for (const route of bodyRoutes) {
        for (const spec of heavySpecs(route, rng)) {
          hostile.push(buildRequest(rng, route, route.method, fillPath(route, rng).path, spec, route.family === "admin" ? "admin" : route.family === "open-webhook" ? "open" : "signed", "hostile"));
        }
      }
      const hostileRequests = await Promise.all(hostile);
      let callsDone = false;
      let hostileMax = { ms: 0, label: "" };
      const worker = async (offset: number) => {
        for (let i = offset; !callsDone || i < offset + hostileRequests.length / 3; i++) {
          const req = hostileRequests[i % hostileRequests.length]!;
          const { outcome } = await runner.run(req);
          if (outcome.ms > hostileMax.ms) hostileMax = { ms: outcome.ms, label: `${req.method} ${req.route?.path}: ${req.label}` };
          if (i > offset + 3 * hostileRequests.length) break;
        }
      };
      const workers = [0, 1, 2].map((w) => worker(Math.floor((w * hostileRequests.length) / 3)));

      const latencies: number[] = [];
      const wrong: string[] = [];
      for (let i = 0; i < 80; i++) {
        const body = JSON.stringify({
          call_id: `stall-${i}-${uniq()}`,
          to_number: rng.pick(["+1 (415) 555-0100", "+14155550100", "(415) 555-0100", "tel:+14155550100"]),
          from_number: rng.pick(CALLERS.filter(Boolean)),
          trunk_id: "ST_fuzz",
          room_name: `call-stall-${i}`,
        });
        const started = performance.now();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const answer = await Promise.race([
          (async () => {
            const res = await ctx.post(sip.path, body, { authorization: await signBody(body, TEST_KEYS) });
            const text = await res.text();
            return { status: res.status, text, agent: parsesAsJson(text) ? (JSON.parse(text) as { agent_name?: unknown }).agent_name : undefined };
          })(),
          new Promise<undefined>((resolve) => {
            timer = setTimeout(() => resolve(undefined), STALL_MS);
          }),
        ]);
        clearTimeout(timer);
        const ms = performance.now() - started;
        latencies.push(ms);
        if (!answer) {
          // One stall fails the test: it is reported now rather than waited out 80 times.
          wrong.push(`call ${i}: no answer within ${STALL_MS} ms, a stall (body ${body})`);
          break;
        }
        else if (answer.status !== 200 || answer.agent !== "acme-sales") {
          wrong.push(`call ${i}: expected 200 with agent acme-sales, got ${answer.status} ${JSON.stringify(answer.text.slice(0, 200))} (body ${body})`);
        }
      }
      callsDone = true;
      await Promise.all(workers);
      const sorted = [...latencies].sort((a, b) => a - b);
      summaries.push(
        `no-stall: ${latencies.length} valid calls under ${runner.sent} hostile bodies: p99 ${sorted[Math.floor(sorted.length * 0.99)]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms; slowest hostile body (queueing included) ${hostileMax.ms.toFixed(1)} ms (${hostileMax.label.slice(0, 140)})`,
      );
      // Row counts: what the hostile bodies' answers allow, plus at most a call log and a lead per valid call.
      const after = await counts();
      const calls: Effect = { call_logs: [0, latencies.length], leads: [0, latencies.length] };
      const problems = [
        ...wrong,
        ...runner.aggregateProblems(before, after, calls),
        ...(await invalidRows()),
      ];
      if (runner.failures.length || problems.length) {
        throw new Error(`${problems.length ? `No-stall check (seed ${SEED}):\n  ${problems.slice(0, 30).join("\n  ")}\n` : ""}${report("no-stall hostile bodies", runner.failures)}`);
      }
    },
    120_000,
  );

  test(
    "over a real socket: a sample with the deep, wide and oversized bodies, 413 as JSON",
    async () => {
      const rng = Rng.forPhase("socket");
      await setUpWorld();
      // The options the CLI serves with (Bun's own body limit lifted so the app's JSON 413 answers), on a free loopback port.
      const served = (appModule as { listenOptions?: (c: { host: string; port: number }) => object }).listenOptions;
      ctx.app.listen({ ...(served?.({ host: "127.0.0.1", port: 0 }) ?? {}), hostname: "127.0.0.1", port: 0 });
      const port = ctx.app.server!.port!;
      const runner = new Runner("socket").useSocket(port);
      await warmUp(runner, rng);
      const requests: Promise<FuzzRequest>[] = [];
      const sample = ["sip", "events", "admin"] as const;
      for (const family of sample) {
        const candidates = bodyRoutes.filter((r) => r.family === family);
        for (const spec of structuralSpecs(rng.pick(candidates), rng)) {
          const route = rng.pick(candidates);
          requests.push(buildRequest(rng, route, route.method, fillPath(route, rng).path, spec, family === "admin" ? "admin" : "signed", "structural"));
        }
      }
      // Bodies far over the limit, with a Content-Length and streamed without one.
      for (const route of bodyRoutes) {
        for (const size of [limit + 1, limit * 4, 1024 * 1024, 8 * 1024 * 1024]) {
          const text = JSON.stringify({ pad: "p".repeat(size) });
          const auth: AuthKind = route.family === "admin" ? rng.pick<AuthKind>(["admin", "none"]) : route.family === "open-webhook" ? "open" : "unsigned";
          requests.push(buildRequest(rng, route, route.method, fillPath(route, rng).path, { label: `${size} bytes`, body: rng.chance(0.5) ? text : new Streamed(new TextEncoder().encode(text)) }, auth, "oversized"));
        }
      }
      await runSequential(runner, requests);
      await runSequential(runner, randomRequests(rng, 150));

      // Raw HTTP: a Content-Length over the limit (and over Bun's own limit) with the body never sent.
      const raw: string[] = [];
      for (const declared of [limit + 1, 999_999_999]) {
        const head = `POST /api/v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n{"name":`;
        const answer = await rawExchange(port, head, STALL_MS);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
        const body = answer.split("\r\n\r\n").slice(1).join("\r\n\r\n");
        const code = (() => {
          try {
            return JSON.parse(body.slice(body.indexOf("{"))).error?.code;
          } catch {
            return undefined;
          }
        })();
        if (status !== 413 || code !== "payload_too_large") {
          raw.push(`POST /api/v1/tenants with Content-Length ${declared}, body not sent: expected 413 payload_too_large JSON, got ${JSON.stringify(answer.slice(0, 300)) || "nothing"}`);
        }
      }
      summaries.push(runner.summary());
      const problems = [...raw, ...runner.lateProblems(), ...(await invalidRows())];
      if (runner.failures.length || problems.length) {
        throw new Error(`${report("socket", runner.failures)}\n${problems.length ? `Also (seed ${SEED}):\n  ${problems.slice(0, 30).join("\n  ")}` : ""}`);
      }
    },
    120_000,
  );
});

/** Writes `request` on a fresh connection and collects what comes back until it is complete, closed or `waitMs` passed. */
function rawExchange(port: number, request: string, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(data);
    };
    const complete = () => {
      const split = data.indexOf("\r\n\r\n");
      if (split < 0) return false;
      const length = /content-length:\s*(\d+)/i.exec(data.slice(0, split))?.[1];
      return length !== undefined ? Buffer.byteLength(data.slice(split + 4)) >= Number(length) : /\r\n0\r\n\r\n$/.test(data);
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          timer = setTimeout(() => {
            socket.end();
            finish();
          }, waitMs);
          socket.write(request);
        },
        data(socket, chunk) {
          data += chunk.toString();
          if (complete()) {
            socket.end();
            finish();
          }
        },
        close: finish,
        error: finish,
        connectError: finish,
      },
    }).catch(finish);
  });
}
