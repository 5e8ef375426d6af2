// A policy's action as the admin API takes it in (a schedule's after_hours, a tenant's or a
// number's overflow) and stores it: PolicyAction in db/schema.ts, holding only the field its
// action uses. jsonb has no foreign key, so the agent a dispatch names is checked here.
import { Value } from "@sinclair/typebox/value";
import { and, eq, isNull, or } from "drizzle-orm";
import type { Drizzle } from "../db/client";
import { agents, type PolicyAction } from "../db/schema";
import { BadRequestError, UnprocessableError } from "../errors";
import { describeValueError } from "../validation";
import { e164Of } from "./input";
import { PolicyActionInput } from "./policy-model";

type ActionName = PolicyAction["action"];

/** The one optional field each action takes. */
const FIELD_OF: Record<ActionName, "agent_id" | "transfer_to" | null> = {
  dispatch: "agent_id",
  transfer: "transfer_to",
  reject: null,
};

export interface PolicyPlace {
  /** The tenant whose calls the policy applies to: a new tenant (null) has only system-wide agents. */
  tenantId: string | null;
  /** The request field holding the action, e.g. "after_hours" or "overflow". */
  field: string;
  /** Region for transfer_to written without a country code. */
  region: string;
}

/**
 * A nullable action's (overflow's) own problems, named by their field: validating "an action or
 * null" would only say the value is neither. A route's transform, so it runs before validation;
 * a value that is no object at all is left to the model's message.
 */
export function assertActionShape(body: unknown, field: string): void {
  const value = body !== null && typeof body === "object" ? (body as Record<string, unknown>)[field] : undefined;
  if (value === null || typeof value !== "object") return;
  const [problem] = Value.Errors(PolicyActionInput, value);
  if (!problem) return;
  const at = `${field}${problem.path.replaceAll("/", ".")}`;
  throw new BadRequestError(`${at}: ${describeValueError(problem)}`, at);
}

/** The transform of routes taking an overflow. */
export const overflowShape = ({ body }: { body: unknown }) => assertActionShape(body, "overflow");

/**
 * The action as stored. A field of another action is refused rather than dropped: it says the
 * caller meant something else. Run inside the write's transaction (see assertUsableAgent).
 */
export async function policyActionOf(
  tx: Drizzle,
  input: typeof PolicyActionInput.static,
  place: PolicyPlace,
): Promise<PolicyAction> {
  const wanted = FIELD_OF[input.action];
  for (const key of ["agent_id", "transfer_to"] as const) {
    if (input[key] !== undefined && key !== wanted) {
      const takers = Object.entries(FIELD_OF).find(([, field]) => field === key)![0];
      throw new BadRequestError(`${place.field}.${key}: only a "${takers}" action takes ${key}, not "${input.action}"`, `${place.field}.${key}`);
    }
  }
  if (wanted && input[wanted] === undefined) {
    throw new BadRequestError(`${place.field}.${wanted}: required when action is "${input.action}"`, `${place.field}.${wanted}`);
  }
  if (input.action === "dispatch") {
    await assertUsableAgent(tx, input.agent_id!, place.tenantId, `${place.field}.agent_id`);
    return { action: "dispatch", agent_id: input.agent_id! };
  }
  if (input.action === "transfer") {
    return { action: "transfer", transfer_to: e164Of(input.transfer_to!, place.region, `${place.field}.transfer_to`) };
  }
  return { action: "reject" };
}

/**
 * The agent exists and is the tenant's own or system-wide; another tenant's agent is answered
 * like a missing one, as campaigns' agent_id is. FOR KEY SHARE waits for an agent moving tenant
 * at this moment, so the check sees where it ends up. A later move is routing's to catch: the
 * directory uses a policy's agent only while it is the tenant's own or system-wide (calls/directory-data.ts).
 */
async function assertUsableAgent(tx: Drizzle, agentId: string, tenantId: string | null, field: string) {
  const usable = tenantId === null ? isNull(agents.tenantId) : or(isNull(agents.tenantId), eq(agents.tenantId, tenantId));
  const [agent] = await tx
    .select({ id: agents.id })
    .from(agents)
    .where(and(eq(agents.id, agentId), usable))
    .for("key share");
  if (!agent) {
    throw new UnprocessableError(
      `${field}: refers to an agent that does not exist or that this tenant may not use (its own agents and system-wide ones)`,
      field,
    );
  }
}
