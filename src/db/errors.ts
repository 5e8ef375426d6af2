// What a refused write means, read off the database's error: the schema's constraints are the
// rules, so a request that breaks one is answered from here rather than checked beforehand.

export interface ConstraintViolation {
  kind: "unique" | "reference" | "check" | "invalid_value";
  /** The SQLSTATE. */
  code: string;
  /** The API field the constraint is about, when one can be named. */
  field?: string;
  constraint?: string;
  message: string;
}

/** Constraint (or trigger message) to the API field it guards. */
const FIELDS: [RegExp, string][] = [
  [/^tenants_name_unique$/, "name"],
  [/^agents_name_key$/, "name"],
  [/^agents_one_default_per_tenant$/, "is_default"],
  [/^agents_default_has_tenant$/, "is_default"],
  [/^agents_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^campaigns_tenant_name_key$/, "name"],
  [/^campaigns_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^campaigns_agent_id_agents_id_fk$/, "agent_id"],
  [/may only use agents/, "agent_id"],
  [/is used by campaigns of another tenant/, "tenant_id"],
  [/^phone_numbers_e164_unique$/, "number"],
  [/^phone_numbers_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^phone_numbers_campaign_same_tenant_fk$/, "campaign_id"],
  [/may not use deleted campaign/, "campaign_id"],
  [/^api_keys_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^blocklist_entries_tenant_pattern_key$/, "pattern"],
  [/^blocklist_entries_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^schedules_tenant_name_key$/, "name"],
  [/^schedules_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^webhook_endpoints_tenant_id_tenants_id_fk$/, "tenant_id"],
  [/^webhook_endpoints_url_http$/, "url"],
  [/^(campaigns|phone_numbers)_schedule_same_tenant_fk$/, "schedule_id"],
];

const KINDS: Record<string, ConstraintViolation["kind"]> = {
  "23505": "unique",
  "23503": "reference",
  "23514": "check",
};

/**
 * Values a client can send that the database cannot take: bad text for a type (22P02), bad
 * dates and offsets (22007, 22008, 22009), NUL in text or jsonb (22021, 22P05), nesting too deep (54001). Models and
 * services refuse these first; this is the backstop. Other data errors are our bugs: 500s.
 */
const INPUT_ERRORS = new Set(["22P02", "22007", "22008", "22009", "22021", "22P05", "54001"]);
const kindOf = (code: string): ConstraintViolation["kind"] | undefined =>
  KINDS[code] ?? (INPUT_ERRORS.has(code) ? "invalid_value" : undefined);

/** The violation behind an error from postgres.js or PGlite (through Drizzle's wrapper), if it is one. */
export function constraintViolation(error: unknown): ConstraintViolation | null {
  for (let e = error as Record<string, unknown> | undefined, depth = 0; e && depth < 5; depth++) {
    const kind = typeof e.code === "string" ? kindOf(e.code) : undefined;
    if (kind) {
      // postgres.js names it constraint_name, PGlite constraint.
      const constraint = (e.constraint_name ?? e.constraint) as string | undefined;
      const message = String(e.message ?? "");
      const field = FIELDS.find(([pattern]) => pattern.test(constraint ?? message))?.[1];
      return { kind, code: e.code as string, field, constraint, message };
    }
    e = e.cause as Record<string, unknown> | undefined;
  }
  return null;
}

/** The error or one of its causes (Drizzle wraps the driver's error) carries a code matching `codes`, or is our deadline. */
function causedBy(error: unknown, codes: RegExp): boolean {
  for (let e = error as Record<string, unknown> | undefined, depth = 0; e && depth < 5; depth++) {
    if (e.name === "TimeoutError") return true;
    if (typeof e.code === "string" && codes.test(e.code)) return true;
    e = e.cause as Record<string, unknown> | undefined;
  }
  return false;
}

/**
 * No connection to be had: refused, reset, unreachable, a name that does not resolve, the
 * driver's own codes, SQLSTATE 08xxx, 57P01-03 (shutting down) and 28xxx (credentials refused,
 * e.g. a password rotated under the running service).
 */
const CONNECTION_LOST =
  "ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|CONNECT_TIMEOUT|CONNECTION_(?:CLOSED|DESTROYED)|08\\w{3}|57P0[123]|28\\w{3}";

/**
 * The database could not be reached or gave up (refused, reset, shutting down, too many
 * connections, a statement or lock timeout, a deadlock, our own deadline): worth a retry, so a
 * 503 rather than a 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return causedBy(error, UNAVAILABLE);
}
// Also a read-only server (25006: a failover pointed us at a replica) and a missing database (3D000).
const UNAVAILABLE = new RegExp(`^(?:${CONNECTION_LOST}|CONNECTION_\\w+|57P\\w{2}|57014|55P03|40001|40P01|53\\w{3}|25006|3D000)$`);

/**
 * The connection itself is gone or silent (refused, reset, the server shutting down, our own
 * deadline on a server that stopped answering), as opposed to one statement failing on a
 * live server (a statement or lock timeout, a deadlock): only these mean "stop asking for now".
 */
export function isConnectionLost(error: unknown): boolean {
  return causedBy(error, LOST);
}
const LOST = new RegExp(`^(?:${CONNECTION_LOST})$`);
