// What the command line prints when a command fails: one line saying what to fix. Operating
// errors (a port in use, a database that is down or missing, a directory without permission)
// are named by their codes; anything else is shown by its message, its stack only at debug level.

type SystemError = Error & { code?: string; address?: string; hostname?: string; port?: number; path?: string; syscall?: string };

/** The line for an operating error, or undefined when the error is not one. */
export function operatingErrorLine(error: unknown, context: { port: number; databaseUrl?: string; liveKitUrl?: string }): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const e = error as SystemError;
  const database = context.databaseUrl ? databaseLocation(context.databaseUrl) : undefined;
  switch (e.code) {
    case "EADDRINUSE":
      return `port ${context.port} is in use by another process: stop it, or set PORT to a free port`;
    case "EACCES":
      if (e.syscall === "listen") return `not allowed to listen on port ${context.port}: set PORT to 1024 or higher`;
      return `permission denied on ${e.path ?? "a file"}: give the user running switchboard write access, or set DATA_DIR`;
    case "ECONNREFUSED":
    case "ETIMEDOUT":
    case "ENOTFOUND":
    case "EAI_AGAIN": {
      // The same codes come from LiveKit's API (fetch, which names no address): only a failure at
      // DATABASE_URL's port is the database's.
      const where = e.address && e.port ? `${e.address}:${e.port}` : (e.hostname ?? "a server");
      if (database && e.port !== undefined && database.split("/")[0]!.endsWith(`:${e.port}`)) {
        return `cannot reach the database at ${database} (${e.code}): start PostgreSQL or fix DATABASE_URL`;
      }
      if (context.liveKitUrl) return `cannot reach LiveKit at ${new URL(context.liveKitUrl).host} (${e.code}): check LIVEKIT_URL and that the server is up`;
      return `cannot reach ${where} (${e.code}): check that it is up and that the URL naming it is right`;
    }
    case "3D000":
      return `${e.message} on ${database}: create it (createdb) or fix DATABASE_URL`;
    case "28P01":
    case "28000":
      return `the database refused the login in DATABASE_URL (${e.message}): fix the user or password`;
    default:
      return undefined;
  }
}

/** The message's first line: frames and dumps follow it on later lines. */
export const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]!;

/** host:port/database, without the credentials DATABASE_URL may carry. */
export function databaseLocation(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || "the local socket"}:${parsed.port || "5432"}${parsed.pathname}`;
  } catch {
    return "DATABASE_URL";
  }
}
