// Which rows a principal reaches. A tenant key's scope is in the WHERE of every statement that
// finds rows by what the caller sent; rows reached from those (a campaign's numbers, an agent's
// campaigns) belong to the same tenant by foreign keys and triggers. So another tenant's row is
// never read, changed or told apart from a missing one.
import { eq, isNull, or, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { BadRequestError, ForbiddenError } from "../errors";
import type { Principal } from "./keys";

/** Rows a principal may read: a tenant key its tenant's (and, where shared, system-wide rows). */
export function visible(principal: Principal, column: PgColumn, shared = false): SQL | undefined {
  if (principal.kind === "admin") return undefined;
  return shared ? or(eq(column, principal.tenantId), isNull(column)) : eq(column, principal.tenantId);
}

/** Rows a principal may change: never a shared (system-wide) row with a tenant key. */
export const writable = (principal: Principal, column: PgColumn) => visible(principal, column, false);

/** The tenant a new row goes to. A tenant key writes to its own tenant only. */
export function tenantForCreate(principal: Principal, requested: string | null | undefined): string | null {
  if (principal.kind === "tenant") {
    if (requested === undefined || requested === principal.tenantId) return principal.tenantId;
    if (requested === null) throw new ForbiddenError("tenant_id: system-wide resources need an admin key", "tenant_id");
    throw new ForbiddenError("tenant_id: a tenant key can only act on its own tenant", "tenant_id");
  }
  if (requested === undefined) throw new BadRequestError("tenant_id: required with an admin key", "tenant_id");
  return requested;
}

/** A PATCH may move a row to another tenant only with an admin key. */
export function assertMayMoveTo(principal: Principal, tenantId: string | null | undefined) {
  if (tenantId === undefined || principal.kind === "admin") return;
  if (tenantId !== principal.tenantId) {
    throw new ForbiddenError("tenant_id: a tenant key can only act on its own tenant", "tenant_id");
  }
}

/** Admin keys only; no principal at all is refused too. */
export function assertAdmin(principal: Principal | undefined) {
  if (principal?.kind !== "admin") throw new ForbiddenError("this needs an admin key");
}
