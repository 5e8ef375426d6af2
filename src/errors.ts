// Typed errors every feature throws; app.ts maps them to HTTP in one place.

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The request field the problem is about, when there is one. */
    readonly field?: string,
    /** More machine-readable facts (e.g. the campaigns still using an agent). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** The one error shape every endpoint answers with. */
  toBody() {
    const details = { ...(this.field ? { field: this.field } : {}), ...this.details };
    return {
      error: { code: this.code, message: this.message, ...(Object.keys(details).length ? { details } : {}) },
    };
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, field?: string) {
    super(400, "invalid_request", message, field);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(limit: number) {
    super(413, "payload_too_large", `body: larger than ${limit} bytes`, "body");
  }
}

export class HeadersTooLargeError extends AppError {
  constructor(limit: number) {
    super(431, "headers_too_large", `headers: larger than ${limit} bytes`, "headers");
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(contentType: string) {
    super(415, "unsupported_media_type", `content-type: expected application/json, got "${contentType || "none"}"`, "content-type");
  }
}

export class UnauthorizedError extends AppError {
  constructor(message: string) {
    super(401, "unauthorized", message, "authorization");
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string, field?: string) {
    super(403, "forbidden", message, field);
  }
}

export class ConflictError extends AppError {
  constructor(message: string, field?: string, details?: Record<string, unknown>) {
    super(409, "conflict", message, field, details);
  }
}

/** Well-formed, but naming something that does not exist or may not be used here. */
export class UnprocessableError extends AppError {
  constructor(message: string, field?: string) {
    super(422, "unprocessable", message, field);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super(404, "not_found", message);
  }
}

/** Something a retry may fix (the database is down): LiveKit retries 5xx deliveries. */
export class UnavailableError extends AppError {
  constructor(message: string) {
    super(503, "unavailable", message);
  }
}

export class TimeoutError extends Error {
  constructor(
    /** What ran out of time, e.g. "database query" or "webhook delivery". */
    readonly what: string,
    ms: number,
  ) {
    super(`${what} timed out after ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** Resolves or rejects with the promise, or rejects with TimeoutError after `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
