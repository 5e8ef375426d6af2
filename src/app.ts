// Builds the HTTP application from its dependencies without listening: tests drive it with
// app.handle(request), and only the CLI (main.ts) opens a port.
import { Elysia, type ValidationError } from "elysia";
import { adminRoutes } from "./admin/routes";
import { callRoutes } from "./calls/routes";
import type { Config } from "./config";
import type { Database } from "./db/client";
import { constraintViolation, isDatabaseUnavailable } from "./db/errors";
import {
  AppError,
  BadRequestError,
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} from "./errors";
import { healthRoutes } from "./health/routes";
import { apiDocs } from "./openapi";
import { createLiveKitClients, type LiveKitClients } from "./livekit/clients";
import { liveKitRoutes } from "./livekit/routes";
import { createWebhookAuth } from "./livekit/webhook";
import type { Logger } from "./logger";

export interface AppDeps {
  database: Database;
  config: Config;
  logger: Logger;
  /** Injectable so tests can control time-dependent behaviour. */
  clock?: () => Date;
  /** LiveKit's server API clients; built from config when not given, absent when LiveKit is not configured. */
  livekit?: LiveKitClients;
}

export type App = ReturnType<typeof createApp>;

export function createApp(deps: AppDeps) {
  const { database, config, logger } = deps;
  const livekit = "livekit" in deps ? deps.livekit : createLiveKitClients(config.livekit);
  const webhookAuth = createWebhookAuth(config.livekit);
  // Signatures cover the exact bytes received, so the parser keeps them for the verifiers.
  const rawBodies = new WeakMap<Request, string>();
  const rawBody = (request: Request) => rawBodies.get(request) ?? "";
  const routing = {
    database,
    logger,
    settings: {
      systemDefaultAgent: config.systemDefaultAgent,
      defaultRegion: config.defaultRegion,
      statementTimeoutMs: config.statementTimeoutMs,
    },
  };
  let routes: { method: string; path: string }[] = [];
  const app = new Elysia({ normalize: false })
    .onParse(async ({ request, contentType }) => {
      const text = await readBody(request, config.maxBodyBytes);
      rawBodies.set(request, text);
      return parseBody(text, contentType);
    })
    .onError(({ code, error, set, request }) => {
      const problem = toAppError(code, error, request, logger);
      const path = new URL(request.url).pathname;
      if (!problem) logger.error({ err: error, path }, "unhandled error");
      else if (problem.status === 503 && !(error instanceof AppError)) logger.warn({ err: error, path }, "database unavailable");
      const answer = problem ?? new AppError(500, "internal", "internal error");
      set.status = answer.status;
      return answer.toBody();
    })
    .use(
      healthRoutes({
        database,
        timeoutMs: config.statementTimeoutMs,
        endpoints: () => routes.map((r) => `${r.method} ${r.path}`),
      }),
    )
    .use(
      callRoutes(routing, {
        testEndpointEnabled: config.testEndpointEnabled,
        // With LiveKit keys configured, sip-inbound must be signed like LiveKit's webhooks.
        authorize: (request) => webhookAuth.verifyBody(rawBody(request), request.headers.get("authorization")),
      }),
    )
    .use(adminRoutes({ database, logger, region: config.defaultRegion, systemDefaultAgent: config.systemDefaultAgent }))
    .use(
      liveKitRoutes({
        auth: webhookAuth,
        rawBody,
        events: {
          ...routing,
          dispatch:
            config.livekit.dispatch && livekit
              ? {
                  dispatcher: livekit.dispatch,
                  retries: config.livekit.dispatchRetries,
                  retryBaseMs: config.livekit.dispatchRetryBaseMs,
                  budgetMs: config.livekit.dispatchBudgetMs,
                }
              : undefined,
          deliveryBudgetMs: config.livekit.webhookBudgetMs,
          clock: deps.clock ?? (() => new Date()),
        },
      }),
    )
    .use(apiDocs());
  routes = app.routes;
  return app;
}

/** Every request body is read here, bounded in size whether or not Content-Length is honest. */
async function readBody(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit);
  const text = await request.text();
  if (Buffer.byteLength(text) > limit) throw new PayloadTooLargeError(limit);
  return text;
}

/** JSON errors become a 400 naming the body; LiveKit's application/webhook+json stays text. */
function parseBody(text: string, contentType: string): unknown {
  const type = contentType.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  if (type === "application/webhook+json") return text;
  if (type === "application/json" || type.endsWith("+json")) {
    if (text.trim() === "") throw new BadRequestError("body: empty, expected a JSON object", "body");
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BadRequestError(`body: malformed JSON (${(error as Error).message})`, "body");
    }
  }
  // Every endpoint takes JSON; `curl -d` without a content type deserves a clear answer.
  if (text.trim() !== "") throw new UnsupportedMediaTypeError(contentType);
  // null, not undefined: "handled, no body", so a route's own JSON parser does not re-read the stream.
  return null;
}

/** What an error means to the client; undefined for a real failure (logged, answered 500). */
function toAppError(code: string | number, error: unknown, request: Request, logger: Logger): AppError | undefined {
  // Elysia wraps whatever a parser throws in a ParseError; ours carry the real answer.
  const cause = code === "PARSE" ? (error as Error).cause : undefined;
  if (cause instanceof AppError) return cause;
  if (error instanceof AppError) return error;
  if (code === "VALIDATION") return validationProblem(error as ValidationError);
  if (code === "PARSE") return new BadRequestError("body: could not be parsed", "body");
  if (code === "NOT_FOUND") {
    return new NotFoundError(`no route for ${request.method} ${new URL(request.url).pathname}`);
  }
  if (isDatabaseUnavailable(error)) return new UnavailableError("database unavailable; retry later");
  const violation = constraintViolation(error);
  if (!violation) return undefined;
  const field = violation.field;
  const about = field ? `${field}: ` : "";
  switch (violation.kind) {
    case "unique":
      return new ConflictError(`${about}already taken`, field);
    case "reference":
      return new UnprocessableError(`${about}refers to something that does not exist or is not yours`, field);
    case "check":
      return new UnprocessableError(`${about}not allowed (${violation.constraint ?? "check"})`, field);
    case "invalid_value":
      // The models should have refused this value before the database saw it: worth a look.
      logger.warn({ sqlstate: violation.code, path: new URL(request.url).pathname }, "value refused by the database");
      return new BadRequestError(`${about}not a valid value`, field);
  }
}

function validationProblem(error: ValidationError): BadRequestError {
  const first = error.all[0] as { path?: string; message?: string; summary?: string } | undefined;
  const field = first?.path ? first.path.replace(/^\//, "").replaceAll("/", ".") : "body";
  let message = first?.message ?? "invalid";
  // TypeBox says only "Expected union value" for a nullable or coerced field; the summary lists what was expected.
  const expected = /should be one of: (.*)$/.exec(first?.summary ?? "")?.[1];
  if (message === "Expected union value" && expected) {
    message = `expected ${[...new Set(expected.split(", ").map((k) => k.replaceAll("'", "")))].join(" or ")}`;
  }
  return new BadRequestError(`${field}: ${message}`, field);
}
