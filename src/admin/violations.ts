// The constraints of the policy tables and columns, as answers naming the field they guard. A
// write catches its error with explainViolation; a violation not listed here goes on to the
// generic answer (http/errors.ts), which names fields from db/errors.ts.
import { constraintViolation } from "../db/errors";
import { type AppError, ConflictError, UnprocessableError } from "../errors";

const sameTenantSchedule = () =>
  new UnprocessableError("schedule_id: refers to a schedule that does not exist or belongs to another tenant", "schedule_id");
const noSuchTenant = () => new UnprocessableError("tenant_id: refers to a tenant that does not exist", "tenant_id");

const EXPLAINED: Record<string, () => AppError> = {
  blocklist_entries_tenant_pattern_key: () =>
    new ConflictError("pattern: already taken; this blocklist (the tenant's, or the global one) has the entry", "pattern"),
  blocklist_entries_tenant_id_tenants_id_fk: noSuchTenant,
  schedules_tenant_name_key: () => new ConflictError("name: already taken; the tenant has a schedule of this name", "name"),
  schedules_tenant_id_tenants_id_fk: noSuchTenant,
  campaigns_schedule_same_tenant_fk: sameTenantSchedule,
  phone_numbers_schedule_same_tenant_fk: sameTenantSchedule,
};

/** Rethrows a listed violation as its answer, anything else as it came. */
export function explainViolation(error: unknown): never {
  const constraint = constraintViolation(error)?.constraint;
  const explain = constraint === undefined ? undefined : EXPLAINED[constraint];
  throw explain ? explain() : error;
}
