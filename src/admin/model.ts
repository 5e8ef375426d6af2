// The directory file `switchboard seed FILE` loads: tenants with their agents, campaigns and numbers.
import { type Static, t } from "elysia";
import { CAMPAIGN_STATUSES, NUMBER_TYPES } from "../db/schema";

const name = t.String({ minLength: 1, maxLength: 200 });

export const DirectoryAgent = t.Object(
  {
    name,
    default: t.Optional(t.Boolean({ description: "The tenant's default agent (at most one per tenant)" })),
    active: t.Optional(t.Boolean()),
  },
  { additionalProperties: false },
);

export const DirectoryCampaign = t.Object(
  {
    name,
    agent: t.Optional(name),
    status: t.Optional(t.UnionEnum(CAMPAIGN_STATUSES)),
  },
  { additionalProperties: false },
);

export const DirectoryPhoneNumber = t.Object(
  {
    number: t.String({ minLength: 1, maxLength: 64 }),
    campaign: t.Optional(name),
    type: t.Optional(t.UnionEnum(NUMBER_TYPES)),
    active: t.Optional(t.Boolean()),
  },
  { additionalProperties: false },
);

export const DirectoryTenant = t.Object(
  {
    name,
    active: t.Optional(t.Boolean()),
    agents: t.Optional(t.Array(DirectoryAgent)),
    campaigns: t.Optional(t.Array(DirectoryCampaign)),
    phone_numbers: t.Optional(t.Array(DirectoryPhoneNumber)),
  },
  { additionalProperties: false },
);

export const DirectoryFile = t.Object(
  {
    /** System-wide agents any tenant's campaign may name. */
    agents: t.Optional(t.Array(t.Omit(DirectoryAgent, ["default"]))),
    tenants: t.Array(DirectoryTenant),
  },
  { additionalProperties: false },
);
export type DirectoryFile = Static<typeof DirectoryFile>;
