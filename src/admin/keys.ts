// API keys: made here, shown once, kept only as a SHA-256 hash. A key is 256 random bits, so
// hashing it once is enough (nothing to brute-force). Its first characters are kept in clear:
// they tell keys apart in lists and find a presented key's row.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Database, Drizzle } from "../db/client";
import { apiKeys, tenants } from "../db/schema";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "../errors";
import { ApiKey } from "./model";
import { viewOf } from "./rows";
import { visible } from "./scope";

const KEY_PREFIX = "sb_";
/** How much of a key is kept in clear to tell keys apart: "sb_" and 8 characters (48 bits). */
const SHOWN_LENGTH = 11;
/** last_used_at is a hint, not an audit log: refreshed at most this often, so reads stay reads. */
const LAST_USED_RESOLUTION_S = 60;

/** Who is calling: an admin key sees every tenant, a tenant key only its own. */
export type Principal = { kind: "admin"; keyId: string } | { kind: "tenant"; keyId: string; tenantId: string };

export type ApiKeyView = typeof ApiKey.static;

/** A key's row as the API and the CLI describe it: never its hash. */
export const apiKeyView = viewOf(ApiKey);

const hashKey = (key: string) => createHash("sha256").update(key).digest("hex");

/** Makes a key for a tenant (or an admin key when tenantId is null); the only time it is readable. */
export async function createApiKey(
  db: Drizzle,
  options: { tenantId: string | null; label?: string | null },
): Promise<{ key: string; apiKey: ApiKeyView }> {
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const [row] = await db
    .insert(apiKeys)
    .values({
      tenantId: options.tenantId,
      label: options.label ?? null,
      prefix: key.slice(0, SHOWN_LENGTH),
      keyHash: hashKey(key),
    })
    .returning();
  return { key, apiKey: apiKeyView(row!) };
}

/** The `keys create --tenant NAME` path: the tenant by name, or a NotFoundError naming it. */
export async function tenantIdByName(db: Drizzle, name: string): Promise<string> {
  const [row] = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.name, name));
  if (!row) throw new NotFoundError(`tenant "${name}" does not exist`);
  return row.id;
}

/**
 * Resolves an Authorization header to its principal. The key's public prefix finds the
 * candidates and their hashes are compared in constant time, in one statement that also
 * refreshes last_used_at (at most once a minute). Throws 401 for anything but a live key,
 * 403 for a key of a deactivated tenant.
 */
export async function authenticate(database: Database, header: string | null): Promise<Principal> {
  const match = /^Bearer +(\S+)\s*$/i.exec(header ?? "");
  if (!match) throw new UnauthorizedError("authorization: expected \"Bearer <api key>\"");
  const key = match[1]!;
  const presented = Buffer.from(hashKey(key));
  const candidates = await database.rows<{ id: string; tenant_id: string | null; key_hash: string; tenant_active: boolean | null }>(sql`
    with candidate as (
      select k.id, k.tenant_id, k.key_hash, t.active as tenant_active
      from api_keys k left join tenants t on t.id = k.tenant_id
      where k.prefix = ${key.slice(0, SHOWN_LENGTH)} and k.revoked_at is null
    ), touched as (
      update api_keys set last_used_at = now()
      where id in (select id from candidate where key_hash = ${presented.toString()})
        and (last_used_at is null or last_used_at < now() - make_interval(secs => ${LAST_USED_RESOLUTION_S}))
    )
    select * from candidate`);
  const row = candidates.find((c) => timingSafeEqual(Buffer.from(c.key_hash), presented));
  if (!row) throw new UnauthorizedError("authorization: unknown or revoked api key");
  if (row.tenant_id === null) return { kind: "admin", keyId: row.id };
  if (!row.tenant_active) throw new ForbiddenError("this key's tenant is deactivated");
  return { kind: "tenant", keyId: row.id, tenantId: row.tenant_id };
}

/**
 * Revokes a key the principal may see; a key it may not see is reported as missing. Revoking a
 * revoked key changes nothing (its revocation time stays) and says so.
 */
export async function revokeApiKey(db: Drizzle, principal: Principal, id: string): Promise<"revoked" | "already revoked"> {
  const target = and(eq(apiKeys.id, id), visible(principal, apiKeys.tenantId));
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(target, isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  if (revoked.length > 0) return "revoked";
  const [existing] = await db.select({ id: apiKeys.id }).from(apiKeys).where(target);
  if (!existing) throw new NotFoundError(`api key ${id} not found`);
  return "already revoked";
}
