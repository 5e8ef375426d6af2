// Calls the admin API of a test app with a bearer key, the way curl would.
import type { TestContext } from "./context";

export interface ApiAnswer<T = any> {
  status: number;
  body: T;
}

export interface AdminClient {
  get<T = any>(path: string): Promise<ApiAnswer<T>>;
  post<T = any>(path: string, body?: unknown): Promise<ApiAnswer<T>>;
  patch<T = any>(path: string, body: unknown): Promise<ApiAnswer<T>>;
  delete<T = any>(path: string): Promise<ApiAnswer<T>>;
}

/** One request under /api/v1 with exactly the Authorization header given (none when undefined). */
export async function apiRequest(
  ctx: Pick<TestContext, "app">,
  method: string,
  path: string,
  authorization: string | undefined,
  body?: unknown,
): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await ctx.app.handle(
    new Request(`http://localhost/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A client sending `Authorization: Bearer <key>` (no header at all when key is null). */
export function adminClient(ctx: Pick<TestContext, "app">, key: string | null): AdminClient {
  const call = (method: string, path: string, body?: unknown) =>
    apiRequest(ctx, method, path, key === null ? undefined : `Bearer ${key}`, body);
  return {
    get: (path) => call("GET", path),
    post: (path, body) => call("POST", path, body ?? {}),
    patch: (path, body) => call("PATCH", path, body),
    delete: (path) => call("DELETE", path),
  };
}
