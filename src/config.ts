// Configuration comes from environment variables, validated once at start.
// This is the only module that reads process.env; everything else receives a Config.
import { type Static, type TObject, Type as t } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { isSupportedCountry } from "libphonenumber-js";
import { MAX_DELIVERY_BUDGET_MS } from "./livekit/delivery";
import { describeValueError } from "./validation";

const bool = (d: boolean) => t.Boolean({ default: d });
const int = (d: number, minimum: number, maximum: number) => t.Integer({ default: d, minimum, maximum });
/** A duration: a whole number and its unit (250ms, 5s, 30m, 2h, 1d). */
const DURATION = /^([0-9]{1,9})(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const durationMs = (text: string) => {
  const [, digits, unit] = DURATION.exec(text.trim())!;
  return Number(digits) * UNIT_MS[unit as keyof typeof UNIT_MS];
};

/** Every variable Switchboard understands, with its default. The README's table mirrors this. */
export const EnvSchema = t.Object({
  NODE_ENV: t.String({ default: "development" }),
  HOST: t.String({ default: "0.0.0.0", minLength: 1 }),
  PORT: int(3000, 0, 65535),
  DATABASE_URL: t.Optional(t.String({ pattern: "^postgres(ql)?://" })),
  DATA_DIR: t.String({ default: "./data", minLength: 1 }),
  DB_POOL_MAX: int(10, 1, 200),
  DB_STATEMENT_TIMEOUT_MS: int(1000, 10, 600_000),
  // How long a caller waits for its call's record before it goes to the journal (DATA_DIR/journal).
  CALL_RECORD_WAIT_MS: int(30, 1, 600_000),
  // A call whose end never arrives stops holding a concurrency slot after this long (4 hours).
  MAX_CALL_DURATION_S: int(14_400, 60, 7 * 24 * 3600),
  MIGRATE_ON_START: bool(true),
  SYSTEM_DEFAULT_AGENT: t.String({ default: "telephony-agent", minLength: 1 }),
  DEFAULT_REGION: t.String({ default: "US", pattern: "^[A-Z]{2}$" }),
  LOG_LEVEL: t.Union(
    ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((l) => t.Literal(l)),
    { default: "info" },
  ),
  ENABLE_TEST_ENDPOINT: t.Optional(t.Boolean()),
  MAX_BODY_BYTES: int(64 * 1024, 1024, 16 * 1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: int(10_000, 0, 600_000),
  // GET /metrics wants "Authorization: Bearer <METRICS_TOKEN>" when set; open otherwise.
  METRICS_TOKEN: t.Optional(t.String({ minLength: 16 })),
  LIVEKIT_URL: t.Optional(t.String({ pattern: "^(https?|wss?)://" })),
  LIVEKIT_API_KEY: t.Optional(t.String({ minLength: 1 })),
  LIVEKIT_API_SECRET: t.Optional(t.String({ minLength: 1 })),
  LIVEKIT_WEBHOOK_VERIFY: bool(true),
  LIVEKIT_WEBHOOK_CLOCK_TOLERANCE_S: int(10, 0, 300),
  LIVEKIT_DISPATCH: bool(true),
  LIVEKIT_DISPATCH_RETRIES: int(3, 0, 10),
  LIVEKIT_DISPATCH_RETRY_BASE_MS: int(250, 1, 60_000),
  // LiveKit drops a room's queued events once they waited 30 s, and tries a delivery 5 times with
  // 1+2+4+8 s between: 5 answers of at most 2.9 s and the back-off stay inside those 30 s.
  LIVEKIT_WEBHOOK_BUDGET_MS: int(2500, 200, MAX_DELIVERY_BUDGET_MS),
  LIVEKIT_DISPATCH_BUDGET_MS: int(1500, 100, 2800),
  LIVEKIT_ROOM_PREFIX: t.String({ default: "call-", minLength: 1 }),
  LIVEKIT_TRUNK_NAME: t.String({ default: "switchboard-inbound", minLength: 1 }),
  LIVEKIT_DISPATCH_RULE_NAME: t.String({ default: "switchboard-inbound", minLength: 1 }),
  // The outbound SIP trunk (ST_...) a policy's transfer dials its destination through.
  LIVEKIT_TRANSFER_TRUNK_ID: t.Optional(t.String({ pattern: "^ST_\\w+$" })),
  // Outbound webhooks to the tenants' endpoints (webhooks/): whether this process delivers them,
  // the waits between tries after a failure, how long an endpoint may fail before it is disabled.
  WEBHOOK_DELIVERY: bool(true),
  // Durations are checked in assertConsistent, which says what one looks like.
  WEBHOOK_RETRY_SCHEDULE: t.String({ default: "5s,5m,30m,2h,5h,10h" }),
  WEBHOOK_DISABLE_AFTER: t.String({ default: "24h" }),
  WEBHOOK_TIMEOUT: t.String({ default: "10s" }),
  WEBHOOK_POLL_INTERVAL: t.String({ default: "1s" }),
  // Loopback, private, link-local and multicast targets are refused unless this is set.
  WEBHOOK_ALLOW_PRIVATE_TARGETS: bool(false),
});
type Env = Static<typeof EnvSchema>;

/**
 * OpenTelemetry's own variables (opentelemetry.io/docs/specs/otel/protocol/exporter/): tracing is
 * on when an endpoint is set, and only then are the others read. A platform may set them for every
 * service (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf is the spec's default), so with no endpoint
 * they are none of Switchboard's business. Spans go as OTLP over HTTP, JSON-encoded.
 */
export const TracingEnvSchema = t.Object({
  OTEL_EXPORTER_OTLP_ENDPOINT: t.Optional(t.String({ pattern: "^https?://" })),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: t.Optional(t.String({ pattern: "^https?://" })),
  OTEL_EXPORTER_OTLP_HEADERS: t.Optional(t.String()),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: t.Optional(t.String()),
  OTEL_EXPORTER_OTLP_PROTOCOL: t.Optional(t.Literal("http/json")),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: t.Optional(t.Literal("http/json")),
  OTEL_SERVICE_NAME: t.String({ default: "switchboard", minLength: 1 }),
  OTEL_SDK_DISABLED: bool(false),
  OTEL_TRACES_SAMPLER: t.Union(
    ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"].map(
      (s) => t.Literal(s),
    ),
    { default: "parentbased_always_on" },
  ),
  OTEL_TRACES_SAMPLER_ARG: t.Number({ default: 1, minimum: 0, maximum: 1 }),
});
type TracingEnv = Static<typeof TracingEnvSchema>;

/** Never echoed back in an error message: they hold credentials. */
const SECRET_VARIABLES = new Set([
  "DATABASE_URL",
  "LIVEKIT_API_KEY",
  "LIVEKIT_API_SECRET",
  "METRICS_TOKEN",
  // A hosted tracing backend's API key rides in a header.
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
]);

/** Where spans go and which are kept; absent when tracing is off. */
export interface TracingConfig {
  /** The OTLP/HTTP traces URL (.../v1/traces). */
  url: string;
  /** Sent with every export (a backend's API key): never logged. */
  headers: Record<string, string>;
  serviceName: string;
  sampler: TracingEnv["OTEL_TRACES_SAMPLER"];
  /** The kept fraction for the traceidratio samplers. */
  ratio: number;
}

export interface Config {
  production: boolean;
  host: string;
  port: number;
  /** Unset: the embedded PGlite database in dataDir. */
  databaseUrl?: string;
  dataDir: string;
  dbPoolMax: number;
  /** Upper bound on any database work done while a caller waits. */
  statementTimeoutMs: number;
  /** How long a caller waits for the record before it is journaled (when there is a journal). */
  callRecordWaitMs: number;
  /** After this long a call no longer counts against a concurrency cap, ended or not. */
  maxCallDurationS: number;
  migrateOnStart: boolean;
  systemDefaultAgent: string;
  defaultRegion: string;
  logLevel: string;
  testEndpointEnabled: boolean;
  maxBodyBytes: number;
  shutdownTimeoutMs: number;
  /** GET /metrics needs this bearer token when set. */
  metricsToken?: string;
  tracing?: TracingConfig;
  webhooks: {
    /** Whether this process runs a delivery worker. */
    deliver: boolean;
    retryScheduleMs: number[];
    disableAfterMs: number;
    timeoutMs: number;
    pollIntervalMs: number;
    allowPrivateTargets: boolean;
    /** Endpoints must be https:// (in production). */
    requireHttps: boolean;
  };
  livekit: {
    url?: string;
    apiKey?: string;
    apiSecret?: string;
    verifyWebhooks: boolean;
    clockToleranceSeconds: number;
    dispatch: boolean;
    dispatchRetries: number;
    dispatchRetryBaseMs: number;
    /** Bound on all dispatch attempts for one webhook delivery. */
    dispatchBudgetMs: number;
    /** Bound on the time to answer one webhook delivery, dispatch included. */
    webhookBudgetMs: number;
    roomPrefix: string;
    trunkName: string;
    dispatchRuleName: string;
    /** Outbound trunk for policy transfers; without one a transfer is a SIP REFER (see livekit/handoff.ts). */
    transferTrunkId?: string;
  };
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

/** Reads and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const env = readEnv(EnvSchema, source);
  assertConsistent(env);
  const production = env.NODE_ENV === "production";
  return {
    production,
    host: env.HOST,
    port: env.PORT,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    dbPoolMax: env.DB_POOL_MAX,
    statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
    callRecordWaitMs: env.CALL_RECORD_WAIT_MS,
    maxCallDurationS: env.MAX_CALL_DURATION_S,
    migrateOnStart: env.MIGRATE_ON_START,
    systemDefaultAgent: env.SYSTEM_DEFAULT_AGENT,
    defaultRegion: env.DEFAULT_REGION,
    logLevel: env.LOG_LEVEL,
    testEndpointEnabled: env.ENABLE_TEST_ENDPOINT ?? !production,
    maxBodyBytes: env.MAX_BODY_BYTES,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    metricsToken: env.METRICS_TOKEN,
    tracing: tracingConfig(source),
    webhooks: {
      deliver: env.WEBHOOK_DELIVERY,
      retryScheduleMs: env.WEBHOOK_RETRY_SCHEDULE.split(",").map(durationMs),
      disableAfterMs: durationMs(env.WEBHOOK_DISABLE_AFTER),
      timeoutMs: durationMs(env.WEBHOOK_TIMEOUT),
      pollIntervalMs: durationMs(env.WEBHOOK_POLL_INTERVAL),
      allowPrivateTargets: env.WEBHOOK_ALLOW_PRIVATE_TARGETS,
      requireHttps: production,
    },
    livekit: liveKitConfig(env),
  };
}

/** What each variable allows, the others may still rule out together. */
function assertConsistent(env: Env) {
  if (!isSupportedCountry(env.DEFAULT_REGION)) {
    throw new ConfigError("DEFAULT_REGION", `unknown region "${env.DEFAULT_REGION}"`);
  }
  if (Boolean(env.LIVEKIT_API_KEY) !== Boolean(env.LIVEKIT_API_SECRET)) {
    throw new ConfigError("LIVEKIT_API_SECRET", "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together");
  }
  assertDurations(env);
  if (env.LIVEKIT_DISPATCH_BUDGET_MS >= env.LIVEKIT_WEBHOOK_BUDGET_MS) {
    throw new ConfigError(
      "LIVEKIT_DISPATCH_BUDGET_MS",
      `must be less than LIVEKIT_WEBHOOK_BUDGET_MS (${env.LIVEKIT_WEBHOOK_BUDGET_MS}): the dispatch happens inside the delivery`,
    );
  }
}

/**
 * The longest each webhook duration may be (each step, for the schedule): a timer longer than
 * about 24.8 days fires at once, and a retry after the 30 days attempts are kept makes no sense.
 */
const DURATION_LIMITS = {
  WEBHOOK_RETRY_SCHEDULE: ["30d", 30 * 86_400_000],
  WEBHOOK_DISABLE_AFTER: ["365d", 365 * 86_400_000],
  WEBHOOK_TIMEOUT: ["10m", 600_000],
  WEBHOOK_POLL_INTERVAL: ["1h", 3_600_000],
} as const;

function assertDurations(env: Env) {
  for (const variable of Object.keys(DURATION_LIMITS) as (keyof typeof DURATION_LIMITS)[]) {
    const [limit, limitMs] = DURATION_LIMITS[variable];
    const given = env[variable];
    const parts = variable === "WEBHOOK_RETRY_SCHEDULE" ? given.split(",") : [given];
    if (!parts.every((part) => DURATION.test(part.trim()))) {
      const shape = parts.length > 1 || variable === "WEBHOOK_RETRY_SCHEDULE" ? "durations separated by commas, like 5s,5m,2h" : "a duration like 10s";
      throw new ConfigError(variable, `expected ${shape} (units ms, s, m, h, d; got "${given}")`);
    }
    if (variable !== "WEBHOOK_RETRY_SCHEDULE" && durationMs(given) === 0) throw new ConfigError(variable, `must be longer than 0 (got "${given}")`);
    if (parts.some((part) => durationMs(part.trim()) > limitMs)) throw new ConfigError(variable, `must be at most ${limit}${variable === "WEBHOOK_RETRY_SCHEDULE" ? " each" : ""} (got "${given}")`);
  }
}

function liveKitConfig(env: Env): Config["livekit"] {
  return {
    url: env.LIVEKIT_URL,
    apiKey: env.LIVEKIT_API_KEY,
    apiSecret: env.LIVEKIT_API_SECRET,
    verifyWebhooks: env.LIVEKIT_WEBHOOK_VERIFY,
    clockToleranceSeconds: env.LIVEKIT_WEBHOOK_CLOCK_TOLERANCE_S,
    dispatch: env.LIVEKIT_DISPATCH,
    dispatchRetries: env.LIVEKIT_DISPATCH_RETRIES,
    dispatchRetryBaseMs: env.LIVEKIT_DISPATCH_RETRY_BASE_MS,
    dispatchBudgetMs: env.LIVEKIT_DISPATCH_BUDGET_MS,
    webhookBudgetMs: env.LIVEKIT_WEBHOOK_BUDGET_MS,
    roomPrefix: env.LIVEKIT_ROOM_PREFIX,
    trunkName: env.LIVEKIT_TRUNK_NAME,
    dispatchRuleName: env.LIVEKIT_DISPATCH_RULE_NAME,
    transferTrunkId: env.LIVEKIT_TRANSFER_TRUNK_ID,
  };
}

/** The variables a schema names, with their defaults, converted and checked. */
function readEnv<S extends TObject>(schema: S, source: Record<string, string | undefined>): Static<S> {
  const raw: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(schema.properties)) {
    const value = source[key]?.trim();
    if (value === undefined || value === "") continue;
    // TypeBox's conversion is lenient ("3000.5" -> 3000, "true" -> 1); a port or a timeout is digits only.
    if (property.type === "integer" && !/^-?\d+$/.test(value)) {
      throw new ConfigError(key, `expected a whole number (got "${value}")`);
    }
    raw[key] = value;
  }
  const env = Value.Convert(schema, Value.Default(schema, raw)) as Static<S>;
  const error = Value.Errors(schema, env).First();
  if (error) {
    const variable = error.path.replace(/^\//, "") || "environment";
    const given = SECRET_VARIABLES.has(variable) ? undefined : source[variable];
    throw new ConfigError(variable, `${describeValueError(error)}${given === undefined ? "" : ` (got "${given}")`}`);
  }
  return env;
}

/** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT's /v1/traces, as the OTLP exporter spec says. */
function tracingConfig(source: Record<string, string | undefined>): TracingConfig | undefined {
  const endpoints = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];
  if (!endpoints.some((variable) => source[variable]?.trim())) return undefined;
  // Checked first: a service switched off is not refused for how the others are set.
  if (source.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  const env = readEnv(TracingEnvSchema, source);
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base && `${base.replace(/\/+$/, "")}/v1/traces`);
  if (!url || env.OTEL_SDK_DISABLED) return undefined;
  const headersVariable = env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ? "OTEL_EXPORTER_OTLP_TRACES_HEADERS" : "OTEL_EXPORTER_OTLP_HEADERS";
  return {
    url,
    headers: parseOtlpHeaders(headersVariable, env[headersVariable]),
    serviceName: env.OTEL_SERVICE_NAME,
    sampler: env.OTEL_TRACES_SAMPLER,
    ratio: env.OTEL_TRACES_SAMPLER_ARG,
  };
}

/** "key1=value1,key2=value2", values percent-encoded (W3C baggage format, as OTel specifies). */
function parseOtlpHeaders(variable: string, text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of (text ?? "").split(",")) {
    if (!pair.trim()) continue;
    const at = pair.indexOf("=");
    const name = at > 0 ? pair.slice(0, at).trim() : "";
    let value: string | undefined;
    try {
      value = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      value = undefined;
    }
    // Never echoed: the value is usually an API key.
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || value === undefined) {
      throw new ConfigError(variable, "expected name=value pairs separated by commas, values percent-encoded");
    }
    headers[name] = value;
  }
  return headers;
}

/** Checks that only make sense for the long-running server, not for migrate or seed. */
export function assertServable(config: Config): void {
  if (!config.production) return;
  const { url, apiKey, verifyWebhooks, dispatch } = config.livekit;
  if (verifyWebhooks && !apiKey) {
    throw new ConfigError(
      "LIVEKIT_API_KEY",
      "required in production to verify webhook signatures (set LIVEKIT_WEBHOOK_VERIFY=false to accept unsigned webhooks)",
    );
  }
  // Otherwise every LiveKit caller would wait for an agent that is never sent.
  if (dispatch && !(url && apiKey)) {
    throw new ConfigError(
      url ? "LIVEKIT_API_KEY" : "LIVEKIT_URL",
      "required in production to dispatch agents (set LIVEKIT_DISPATCH=false if LiveKit's own dispatch rules place agents)",
    );
  }
}
