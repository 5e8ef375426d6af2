// Builds the HTTP application from its dependencies without listening: tests drive it with
// app.handle(request), and only the CLI (main.ts) opens a port.
import { Elysia, type ValidationError } from "elysia";
import { callRoutes } from "./calls/routes";
import type { Config } from "./config";
import type { Database } from "./db/client";
import { AppError, BadRequestError, PayloadTooLargeError } from "./errors";
import { healthRoutes } from "./health/routes";
import type { Logger } from "./logger";

export interface AppDeps {
  database: Database;
  config: Config;
  logger: Logger;
  /** Injectable so tests can control time-dependent behaviour. */
  clock?: () => Date;
}

export type App = ReturnType<typeof createApp>;

export function createApp(deps: AppDeps) {
  const { database, config, logger } = deps;
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
  const app = new Elysia()
    .onParse(async ({ request, contentType }) => readBody(request, contentType, config.maxBodyBytes))
    .onError(({ code, error, set, request }) => {
      // Elysia wraps whatever a parser throws in a ParseError; ours carry the real answer.
      const cause = code === "PARSE" ? (error as Error).cause : undefined;
      if (cause instanceof AppError) error = cause;
      if (error instanceof AppError) {
        set.status = error.status;
        return { error: error.code, message: error.message, ...(error.field ? { field: error.field } : {}) };
      }
      if (code === "VALIDATION") {
        set.status = 400;
        return validationProblem(error as ValidationError);
      }
      if (code === "PARSE") {
        set.status = 400;
        return { error: "invalid_request", message: "body: could not be parsed", field: "body" };
      }
      if (code === "NOT_FOUND") {
        set.status = 404;
        return { error: "not_found", message: `no route for ${request.method} ${new URL(request.url).pathname}` };
      }
      logger.error({ err: error, path: new URL(request.url).pathname }, "unhandled error");
      set.status = 500;
      return { error: "internal", message: "internal error" };
    })
    .use(
      healthRoutes({
        database,
        timeoutMs: config.statementTimeoutMs,
        endpoints: () => routes.map((r) => `${r.method} ${r.path}`),
      }),
    )
    .use(callRoutes(routing, { testEndpointEnabled: config.testEndpointEnabled }));
  routes = app.routes;
  return app;
}

/**
 * Reads every request body ourselves: bounded in size, JSON errors reported as 400, and
 * LiveKit's application/webhook+json kept as the exact text its signature covers.
 */
async function readBody(request: Request, contentType: string, limit: number): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit);
  const text = await request.text();
  if (Buffer.byteLength(text) > limit) throw new PayloadTooLargeError(limit);
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
  return text;
}

function validationProblem(error: ValidationError) {
  const first = error.all[0] as { path?: string; message?: string; summary?: string } | undefined;
  const field = first?.path ? first.path.replace(/^\//, "").replaceAll("/", ".") : "body";
  return { error: "invalid_request", message: `${field}: ${first?.message ?? "invalid"}`, field };
}
