// Every error becomes one JSON answer here: the app's own errors say what they are, a validation
// failure names its field, a database outage is a 503, a constraint the database enforced is a
// 409 or 422, and anything else is a logged 500 that tells the client nothing more.
import { Elysia, type ValidationError } from "elysia";
import { constraintViolation, isDatabaseUnavailable } from "../db/errors";
import { AppError, BadRequestError, ConflictError, NotFoundError, UnavailableError, UnprocessableError } from "../errors";
import type { Logger } from "../logger";
import { describeValueError } from "../validation";

/** Called with every answer that is not a success: what the client gets and what caused it. */
export type ProblemObserver = (answer: AppError, cause: unknown, path: string) => void;

export function errorAnswers(logger: Logger, observe: ProblemObserver) {
  return new Elysia().onError({ as: "global" }, ({ code, error, set, request }) => {
    const problem = toAppError(code, error, request, logger);
    const path = new URL(request.url).pathname;
    if (!problem) logger.error({ err: error, path }, "unhandled error");
    else if (problem.status === 503 && !(error instanceof AppError)) logger.warn({ err: error, path }, "database unavailable");
    const answer = problem ?? new AppError(500, "internal", "internal error");
    observe(answer, error, path);
    set.status = answer.status;
    return answer.toBody();
  });
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
  return constraintProblem(error, request, logger);
}

/** A constraint the database enforced, as the client's mistake; undefined for any other error. */
function constraintProblem(error: unknown, request: Request, logger: Logger): AppError | undefined {
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
  const firstProblem = error.all[0] as (Parameters<typeof describeValueError>[0] & { summary?: string }) | undefined;
  const field = firstProblem?.path ? firstProblem.path.replace(/^\//, "").replaceAll("/", ".") : "body";
  let message = firstProblem?.schema ? describeValueError(firstProblem) : (firstProblem?.message ?? "invalid");
  // A value of none of a union's types (a number for a nullable string): the summary lists them.
  const expected = /should be one of: (.*)$/.exec(firstProblem?.summary ?? "")?.[1];
  if (message === "Expected union value" && expected) {
    message = `expected ${[...new Set(expected.split(", ").map((k) => k.replaceAll("'", "")))].join(" or ")}`;
  }
  return new BadRequestError(`${field}: ${message}`, field);
}
