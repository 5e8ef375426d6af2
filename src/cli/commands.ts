// The commands that do one thing and exit: seed, livekit, keys, healthcheck.
import { get as httpGet } from "node:http";
import { parseArgs } from "node:util";
import { applyDirectory } from "../admin/directory";
import { apiKeyView, createApiKey, revokeApiKey, tenantIdByName } from "../admin/keys";
import type { Config } from "../config";
import type { Database } from "../db/client";
import { apiKeys } from "../db/schema";
import { createLiveKitClients } from "../livekit/clients";
import { applyProvisioning, describePlan, liveKitStatus, planProvisioning } from "../livekit/provision";
import { migrateDatabase, UsageError, withDatabase } from "./database";

export async function seedCommand(config: Config, file: string | undefined): Promise<number> {
  if (!file) throw new UsageError("seed needs a FILE: switchboard seed examples/directory.json");
  // Read first: a file that is missing or not JSON fails at once, before any database is opened.
  const directory = await readJson(file);
  return withDatabase(config, async (database) => {
    if (config.migrateOnStart) await migrateDatabase(database);
    const summary = await applyDirectory(database.db, directory, config.defaultRegion, config.systemDefaultAgent);
    console.log(
      `seeded ${file}: ${summary.tenants} tenants, ${summary.agents} agents, ` +
        `${summary.campaigns} campaigns, ${summary.phoneNumbers} phone numbers`,
    );
    return 0;
  });
}

export async function liveKitCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...flags] = args;
  if (sub !== "provision" && sub !== "status") throw new UsageError("usage: switchboard livekit provision [--dry-run] | status");
  const clients = createLiveKitClients(config.livekit);
  if (!clients) throw new UsageError("LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set");
  const settings = {
    trunkName: config.livekit.trunkName,
    dispatchRuleName: config.livekit.dispatchRuleName,
    roomPrefix: config.livekit.roomPrefix,
  };
  return withDatabase(config, async (database) => {
    if (config.migrateOnStart) await migrateDatabase(database);
    if (sub === "status") {
      for (const line of await liveKitStatus(database, clients.sip)) console.log(line);
      return 0;
    }
    const plan = await planProvisioning(database, clients.sip, settings);
    for (const line of describePlan(plan, settings)) console.log(line);
    if (flags.includes("--dry-run")) {
      console.log("dry run: nothing changed");
      return 0;
    }
    const { trunkId, ruleId } = await applyProvisioning(clients.sip, plan, settings);
    console.log(`provisioned: trunk ${trunkId}, dispatch rule ${ruleId}`);
    return 0;
  });
}

const KEYS_USAGE = "usage: switchboard keys create --admin | --tenant NAME [--label L] | list | revoke ID";

export async function keysCommand(config: Config, args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseKeyArgs>;
  try {
    parsed = parseKeyArgs(args);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${KEYS_USAGE}`);
  }
  const { positionals, values } = parsed;
  const [sub, id] = positionals;
  return withDatabase(config, async (database) => {
    if (config.migrateOnStart) await migrateDatabase(database);
    if (sub === "create") return createKey(database, values);
    if (sub === "list") return listKeys(database);
    if (sub === "revoke" && id) return revokeKey(database, id);
    throw new UsageError(KEYS_USAGE);
  });
}

function parseKeyArgs(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { admin: { type: "boolean" }, tenant: { type: "string" }, label: { type: "string" } },
  });
}

type KeyOptions = ReturnType<typeof parseKeyArgs>["values"];

async function createKey(database: Database, values: KeyOptions): Promise<number> {
  if (Boolean(values.admin) === Boolean(values.tenant)) throw new UsageError(`give --admin or --tenant NAME\n${KEYS_USAGE}`);
  const tenantId = values.tenant ? await tenantIdByName(database.db, values.tenant) : null;
  const { key, apiKey } = await createApiKey(database.db, { tenantId, label: values.label });
  console.log(key);
  console.error(
    `created ${tenantId ? `a key for tenant "${values.tenant}"` : "an admin key"} (id ${apiKey.id}); ` +
      "it is shown only now: store it as a secret",
  );
  return 0;
}

async function listKeys(database: Database): Promise<number> {
  console.log(["id", "prefix", "tenant", "label", "created", "last used", "status"].join("\t"));
  for (const row of await database.db.select().from(apiKeys).orderBy(apiKeys.createdAt)) {
    const key = apiKeyView(row);
    const status = key.revoked_at ? `revoked ${key.revoked_at}` : "active";
    const columns = [key.id, key.prefix, key.tenant_id ?? "admin", key.label ?? "-", key.created_at, key.last_used_at ?? "never", status];
    console.log(columns.join("\t"));
  }
  return 0;
}

async function revokeKey(database: Database, id: string): Promise<number> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new UsageError(`"${id}" is not a key id (the first column of switchboard keys list)`);
  }
  const outcome = await revokeApiKey(database.db, { kind: "admin", keyId: "cli" }, id);
  console.log(`${outcome} ${id}`);
  return 0;
}

/**
 * For a container's HEALTHCHECK (no shell, no curl in the image): 0 when the server on this
 * machine's PORT answers /healthz within 3 s. Liveness, not readiness: while the database is
 * down the server still routes calls, and a restart would not bring the database back.
 */
export async function healthcheck(config: Config): Promise<number> {
  // A server on any address (0.0.0.0, ::) takes IPv4 loopback too, and ::1 may not exist in a container.
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${config.port}/healthz`;
  // node:http, not fetch: fetch would send it through HTTP_PROXY, set in many containers.
  const status = await new Promise<number | Error>((done) => {
    const request = httpGet(url, { timeout: 3_000 }, (answer) => {
      answer.resume();
      done(answer.statusCode ?? 0);
    });
    request.on("timeout", () => request.destroy(new Error("no answer within 3 s")));
    request.on("error", done);
  });
  if (status === 200) return 0;
  console.error(`switchboard: unhealthy: ${url} ${typeof status === "number" ? `answered ${status}` : `did not answer (${status.message})`}`);
  return 1;
}

async function readJson(path: string): Promise<unknown> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new UsageError(`${path}: no such file`);
  try {
    return JSON.parse(await file.text());
  } catch (error) {
    throw new UsageError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}
