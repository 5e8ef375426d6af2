// Configuration is the environment, checked once at start: a mistake must stop the process with
// a message naming the variable, never start it with a value the operator did not mean.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../src/config";
import { VERSION } from "../src/version";
import { startServer } from "./support/server-process";

/** The ConfigError loadConfig throws for `env`, or a failed expectation when it does not throw. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/**
 * The defaults the README's configuration table documents, `Variable` -> `Default`, for the rows
 * whose default is one literal value: an operator who sets nothing gets what that table says.
 */
function documentedDefaults(): Map<string, string> {
  const readme = readFileSync(join(import.meta.dir, "..", "README.md"), "utf8");
  const table = readme.slice(readme.indexOf("## Configuration"));
  const defaults = new Map<string, string>();
  for (const [, variable, value] of table.matchAll(/^\| `([A-Z0-9_]+)` \| `([^`]*)` \|/gm)) defaults.set(variable!, value!);
  return defaults;
}

/** Milliseconds written the way the README writes durations: in the largest unit, up to hours, that divides them. */
function asDuration(ms: number): string {
  const units = [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const;
  const [unit, size] = units.find(([, size]) => ms % size === 0) ?? ["ms", 1];
  return `${ms / size}${unit}`;
}

describe("defaults", () => {
  /** Where each documented variable's value ends up in the configuration. */
  const read: Record<string, (config: ReturnType<typeof loadConfig>) => unknown> = {
    PORT: (c) => c.port,
    HOST: (c) => c.host,
    NODE_ENV: (c) => (c.production ? "production" : "development"),
    DATA_DIR: (c) => c.dataDir,
    DB_POOL_MAX: (c) => c.dbPoolMax,
    DB_STATEMENT_TIMEOUT_MS: (c) => c.statementTimeoutMs,
    CALL_RECORD_WAIT_MS: (c) => c.callRecordWaitMs,
    MAX_CALL_DURATION_S: (c) => c.maxCallDurationS,
    MIGRATE_ON_START: (c) => c.migrateOnStart,
    SYSTEM_DEFAULT_AGENT: (c) => c.systemDefaultAgent,
    DEFAULT_REGION: (c) => c.defaultRegion,
    LOG_LEVEL: (c) => c.logLevel,
    MAX_BODY_BYTES: (c) => c.maxBodyBytes,
    SHUTDOWN_TIMEOUT_MS: (c) => c.shutdownTimeoutMs,
    LIVEKIT_WEBHOOK_VERIFY: (c) => c.livekit.verifyWebhooks,
    LIVEKIT_WEBHOOK_CLOCK_TOLERANCE_S: (c) => c.livekit.clockToleranceSeconds,
    LIVEKIT_DISPATCH: (c) => c.livekit.dispatch,
    LIVEKIT_DISPATCH_RETRIES: (c) => c.livekit.dispatchRetries,
    LIVEKIT_DISPATCH_RETRY_BASE_MS: (c) => c.livekit.dispatchRetryBaseMs,
    LIVEKIT_WEBHOOK_BUDGET_MS: (c) => c.livekit.webhookBudgetMs,
    LIVEKIT_DISPATCH_BUDGET_MS: (c) => c.livekit.dispatchBudgetMs,
    LIVEKIT_ROOM_PREFIX: (c) => c.livekit.roomPrefix,
    LIVEKIT_TRUNK_NAME: (c) => c.livekit.trunkName,
    LIVEKIT_DISPATCH_RULE_NAME: (c) => c.livekit.dispatchRuleName,
    WEBHOOK_DELIVERY: (c) => c.webhooks.deliver,
    WEBHOOK_RETRY_SCHEDULE: (c) => c.webhooks.retryScheduleMs.map(asDuration).join(","),
    WEBHOOK_DISABLE_AFTER: (c) => asDuration(c.webhooks.disableAfterMs),
    WEBHOOK_TIMEOUT: (c) => asDuration(c.webhooks.timeoutMs),
    WEBHOOK_POLL_INTERVAL: (c) => asDuration(c.webhooks.pollIntervalMs),
    WEBHOOK_ALLOW_PRIVATE_TARGETS: (c) => c.webhooks.allowPrivateTargets,
  };

  test("an empty environment gives what the README documents: a development server on the embedded database", () => {
    const config = loadConfig({});
    const documented = documentedDefaults();
    // The table is read, not skipped: a change to its layout must not turn this test into nothing.
    expect([...documented.keys()]).toEqual(expect.arrayContaining(["PORT", "DATA_DIR", "SYSTEM_DEFAULT_AGENT", "LIVEKIT_DISPATCH"]));
    for (const [variable, value] of documented) {
      if (variable.startsWith("OTEL_")) continue; // tracing is off without an endpoint (below)
      expect({ variable, value: String(read[variable]?.(config)) }).toEqual({ variable, value });
    }
    expect(config.databaseUrl).toBeUndefined();
    expect(config.testEndpointEnabled).toBe(true);
  });

  test("an empty string counts as unset", () => {
    const defaults = loadConfig({});
    const blank = loadConfig({ PORT: "", LOG_LEVEL: "", SYSTEM_DEFAULT_AGENT: "" });
    expect([blank.port, blank.logLevel, blank.systemDefaultAgent]).toEqual([defaults.port, defaults.logLevel, defaults.systemDefaultAgent]);
  });

  test("values given are used, converted to their types", () => {
    const config = loadConfig({
      PORT: "8080",
      DATABASE_URL: "postgresql://user@db.internal:5432/switchboard",
      DB_STATEMENT_TIMEOUT_MS: "250",
      LOG_LEVEL: "warn",
      DEFAULT_REGION: "GB",
      SYSTEM_DEFAULT_AGENT: "front-desk",
      MIGRATE_ON_START: "false",
      MAX_BODY_BYTES: "2048",
    });
    expect(config.port).toBe(8080);
    expect(config.databaseUrl).toBe("postgresql://user@db.internal:5432/switchboard");
    expect(config.statementTimeoutMs).toBe(250);
    expect(config.logLevel).toBe("warn");
    expect(config.defaultRegion).toBe("GB");
    expect(config.systemDefaultAgent).toBe("front-desk");
    expect(config.migrateOnStart).toBe(false);
    expect(config.maxBodyBytes).toBe(2048);
  });

  test("the test endpoint is off in production unless ENABLE_TEST_ENDPOINT turns it on", () => {
    expect(loadConfig({ NODE_ENV: "production" }).testEndpointEnabled).toBe(false);
    expect(loadConfig({ NODE_ENV: "production", ENABLE_TEST_ENDPOINT: "true" }).testEndpointEnabled).toBe(true);
    expect(loadConfig({ ENABLE_TEST_ENDPOINT: "false" }).testEndpointEnabled).toBe(false);
  });
});

describe("bad values name the variable", () => {
  const bad: [string, string][] = [
    ["PORT", "abc"],
    ["PORT", "3000abc"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["DB_STATEMENT_TIMEOUT_MS", "abc"],
    ["DB_STATEMENT_TIMEOUT_MS", "1000ms"],
    ["DB_STATEMENT_TIMEOUT_MS", "5"],
    ["LOG_LEVEL", "verbose"],
    ["LOG_LEVEL", "INFO"],
    ["DEFAULT_REGION", "us"],
    ["DEFAULT_REGION", "USA"],
    ["DEFAULT_REGION", "XX"],
    ["DATABASE_URL", "mysql://root@localhost/db"],
    ["DATABASE_URL", "localhost:5432"],
    ["MAX_BODY_BYTES", "10"],
    ["ENABLE_TEST_ENDPOINT", "yes"],
    ["MIGRATE_ON_START", "nope"],
  ];
  test.each(bad)("%s=%p", (variable, value) => {
    const error = configError({ [variable]: value });
    expect(error.variable).toBe(variable);
    expect(error.message).toStartWith(`${variable}:`);
  });

  test("LOG_LEVEL names the allowed values", () => {
    expect(configError({ LOG_LEVEL: "verbose" }).message).toBe(
      'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent (got "verbose")',
    );
  });

  // Not integers: these must be refused, not silently turned into a different port.
  test.each(["3000.5", "1e3", "true", "false"])("PORT=%p is refused", (value) => {
    const error = configError({ PORT: value });
    expect(error.variable).toBe("PORT");
  });

  test("a LiveKit key without its secret names the secret", () => {
    expect(configError({ LIVEKIT_API_KEY: "key" }).message).toContain("LIVEKIT_API_SECRET");
  });
});

describe("tracing (OpenTelemetry's variables)", () => {
  test("off unless an OTLP endpoint is set, and off again with OTEL_SDK_DISABLED", () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }).tracing).toBeUndefined();
  });

  test("the endpoint gets /v1/traces; a traces endpoint is used as given", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).tracing?.url).toBe("http://collector:4318/v1/traces");
    const both = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://b/otlp/traces" };
    expect(loadConfig(both).tracing?.url).toBe("https://b/otlp/traces");
  });

  test("headers are name=value pairs, values percent-decoded", () => {
    const tracing = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=abc%3D%3D, x-team = sales",
    }).tracing;
    expect(tracing?.headers).toEqual({ "x-api-key": "abc==", "x-team": "sales" });
  });

  test("malformed headers are refused without echoing them (they carry API keys)", () => {
    const error = configError({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_HEADERS: "s3cr3t-token" });
    expect(error.variable).toBe("OTEL_EXPORTER_OTLP_HEADERS");
    expect(error.message).not.toContain("s3cr3t-token");
  });

  test("a protocol other than http/json is refused, naming the one spoken", () => {
    const error = configError({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(error.variable).toBe("OTEL_EXPORTER_OTLP_PROTOCOL");
    expect(error.message).toContain("http/json");
  });

  test("the sampler and its ratio are OpenTelemetry's names and range", () => {
    const tracing = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    }).tracing;
    expect(tracing).toMatchObject({ sampler: "parentbased_traceidratio", ratio: 0.25 });
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" };
    expect(configError({ ...on, OTEL_TRACES_SAMPLER_ARG: "2" }).variable).toBe("OTEL_TRACES_SAMPLER_ARG");
    expect(configError({ ...on, OTEL_TRACES_SAMPLER: "sometimes" }).message).toContain("parentbased_always_on");
  });

  test("with no endpoint, OpenTelemetry variables a platform sets for every service do not stop the start", () => {
    const platformWide = { OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_TRACES_SAMPLER: "xray", OTEL_TRACES_SAMPLER_ARG: "2" };
    expect(loadConfig(platformWide).tracing).toBeUndefined();
    const disabled = { ...platformWide, OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" };
    expect(loadConfig(disabled).tracing).toBeUndefined();
  });
});

// Each test starts processes of its own, independent of the others': they run at once.
describe.concurrent("the switchboard command", () => {
  const bun = process.execPath;
  // Each test starts a process: allow for a slow machine.
  const CLI_TIMEOUT = 30_000;

  /** Runs `bun src/main.ts ...args` with a clean environment plus `env`. */
  async function run(args: string[], env: Record<string, string> = {}) {
    const child = Bun.spawn([bun, "src/main.ts", ...args], {
      cwd: `${import.meta.dir}/..`,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { code, stdout, stderr };
  }

  test("a bad PORT stops it with one line naming PORT", async () => {
    const { code, stdout, stderr } = await run([], { PORT: "abc" });
    expect(code).not.toBe(0);
    const lines = stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("PORT");
    expect(lines[0]).toContain("abc");
    expect(stdout).toBe("");
  }, CLI_TIMEOUT);

  test("--version prints the version", async () => {
    const { code, stdout } = await run(["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`${VERSION} (commit source)`);
  }, CLI_TIMEOUT);

  test("--help prints usage with every command", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("Usage:");
    for (const command of ["serve", "migrate", "seed FILE"]) expect(stdout).toContain(command);
  }, CLI_TIMEOUT);

  test("in production, serve refuses to start without webhook keys, naming LIVEKIT_API_KEY", async () => {
    const { code, stderr } = await run(["serve"], { NODE_ENV: "production", DATA_DIR: "memory://" });
    expect(code).not.toBe(0);
    expect(stderr).toContain("LIVEKIT_API_KEY");
    expect(stderr).toContain("LIVEKIT_WEBHOOK_VERIFY=false");
  }, CLI_TIMEOUT);

  test("in production, serve refuses to start with dispatch on but no LiveKit URL, naming LIVEKIT_URL", async () => {
    const { code, stderr } = await run(["serve"], {
      NODE_ENV: "production",
      LIVEKIT_API_KEY: "key",
      LIVEKIT_API_SECRET: "secret",
      DATA_DIR: "memory://",
    });
    expect(code).not.toBe(0);
    expect(stderr).toContain("LIVEKIT_URL");
    expect(stderr).toContain("LIVEKIT_DISPATCH=false");
  }, CLI_TIMEOUT);

  test("a bad DATABASE_URL is named without echoing its credentials", async () => {
    const { code, stderr } = await run(["migrate"], { DATABASE_URL: "postgress://app:S3cretPassw0rd@db/x" });
    expect(code).not.toBe(0);
    expect(stderr).toContain("DATABASE_URL");
    expect(stderr).not.toContain("S3cretPassw0rd");
  }, CLI_TIMEOUT);

  test("in production, serve starts without keys when verification and dispatch are switched off explicitly", async () => {
    // startServer fails, with the server's output, unless GET /healthz answers 200.
    const server = await startServer({ NODE_ENV: "production", LIVEKIT_WEBHOOK_VERIFY: "false", LIVEKIT_DISPATCH: "false", DATA_DIR: "memory://" });
    try {
      expect((await server.get("/healthz")).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, CLI_TIMEOUT);

  test("an unknown command fails and says so", async () => {
    const { code, stderr } = await run(["frobnicate"], { DATA_DIR: "memory://" });
    expect(code).not.toBe(0);
    expect(stderr).toContain("frobnicate");
  }, CLI_TIMEOUT);
});

describe("outbound webhook durations", () => {
  test("are read in any unit, the schedule as a list", () => {
    const { webhooks } = loadConfig({ WEBHOOK_RETRY_SCHEDULE: "250ms, 2s,1m", WEBHOOK_TIMEOUT: "3s", WEBHOOK_DISABLE_AFTER: "2d" });
    expect(webhooks).toMatchObject({ retryScheduleMs: [250, 2000, 60_000], timeoutMs: 3000, disableAfterMs: 172_800_000 });
  });

  test.each([
    ["WEBHOOK_RETRY_SCHEDULE", "5 seconds", "WEBHOOK_RETRY_SCHEDULE: expected durations separated by commas, like 5s,5m,2h (units ms, s, m, h, d; got \"5 seconds\")"],
    ["WEBHOOK_RETRY_SCHEDULE", "5s,,1m", "WEBHOOK_RETRY_SCHEDULE: expected durations separated by commas, like 5s,5m,2h (units ms, s, m, h, d; got \"5s,,1m\")"],
    ["WEBHOOK_TIMEOUT", "10", "WEBHOOK_TIMEOUT: expected a duration like 10s (units ms, s, m, h, d; got \"10\")"],
    ["WEBHOOK_TIMEOUT", "0s", "WEBHOOK_TIMEOUT: must be longer than 0 (got \"0s\")"],
    ["WEBHOOK_POLL_INTERVAL", "0ms", "WEBHOOK_POLL_INTERVAL: must be longer than 0 (got \"0ms\")"],
    // Longer than a timer can wait (24.8 days): it would fire at once, every attempt a "timeout".
    ["WEBHOOK_TIMEOUT", "25d", "WEBHOOK_TIMEOUT: must be at most 10m (got \"25d\")"],
    ["WEBHOOK_POLL_INTERVAL", "2h", "WEBHOOK_POLL_INTERVAL: must be at most 1h (got \"2h\")"],
    ["WEBHOOK_RETRY_SCHEDULE", "5s,100000000d", "WEBHOOK_RETRY_SCHEDULE: must be at most 30d each (got \"5s,100000000d\")"],
    ["WEBHOOK_DISABLE_AFTER", "999999999d", "WEBHOOK_DISABLE_AFTER: must be at most 365d (got \"999999999d\")"],
  ])("%s=%s is refused, saying what a duration looks like", (variable, value, message) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(message);
  });
});
