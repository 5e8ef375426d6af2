#!/usr/bin/env -S bun --max-http-header-size=65536
// The switchboard command: serve (default), migrate, seed FILE, livekit, keys, healthcheck, doctor.
// Each command's work is in src/cli/; here, which one runs and how its failure ends the process.
import { DirectoryError } from "./admin/directory";
import { healthcheck, keysCommand, liveKitCommand, seedCommand } from "./cli/commands";
import {
  EXIT_CONFIGURATION,
  EXIT_MIGRATION_REFUSED,
  MigrationRefusedError,
  migrateDatabase,
  UsageError,
  withDatabase,
} from "./cli/database";
import { firstLine, operatingErrorLine } from "./cli/errors";
import { assertServable, ConfigError, loadConfig } from "./config";
import { AppError } from "./errors";
import { createLogger } from "./logger";
import { VERSION, VERSION_LINE } from "./version";

const HELP = `switchboard ${VERSION}: inbound call router for AI voice agents on LiveKit

Usage:
  switchboard [serve]            start the HTTP server (migrates first unless MIGRATE_ON_START=false)
  switchboard migrate            apply database migrations and exit
  switchboard seed FILE          load tenants, agents, campaigns and numbers from a JSON directory file
  switchboard livekit provision [--dry-run]
                                 create or update the LiveKit SIP inbound trunk and dispatch rule
  switchboard livekit status     list LiveKit trunks and rules, and numbers missing from LiveKit
  switchboard keys create --admin [--label L]
  switchboard keys create --tenant NAME [--label L]
                                 print a new API key for every tenant (--admin) or for one
                                 (shown once; only its hash is stored)
  switchboard keys list          list API keys (prefix, tenant, label, created, last used, revoked)
  switchboard keys revoke ID     revoke an API key
  switchboard healthcheck        exit 0 if the server on PORT answers /healthz (for container health checks)
  switchboard doctor             check configuration, DATA_DIR, database, LiveKit and webhook keys; say what to fix
  switchboard --help | --version

Configuration is read from environment variables; see README.md. Without DATABASE_URL the
embedded PostgreSQL in DATA_DIR (default ./data) is used.`;

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...args] = argv;
  // `npm start -- --help` arrives as `serve --help`: help wins wherever it is asked for.
  if (["--help", "-h", "help"].includes(command) || args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  if (command === "--version" || command === "-v" || command === "version") {
    console.log(VERSION_LINE);
    return 0;
  }
  const config = loadConfig();
  // The data directory holds callers' numbers: what switchboard creates is for its own user only.
  process.umask(0o077);
  switch (command) {
    case "serve":
      assertServable(config);
      // Loaded only here: the other commands, the container's healthcheck among them, have no
      // use for the server's code (HTTP, tracing).
      return (await import("./cli/serve")).serve(config, createLogger(config.logLevel));
    case "migrate":
      return withDatabase(config, async (database) => {
        const { applied } = await migrateDatabase(database);
        console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
        return 0;
      });
    case "seed":
      return seedCommand(config, args[0]);
    case "livekit":
      return liveKitCommand(config, args);
    case "keys":
      return keysCommand(config, args);
    case "healthcheck":
      return healthcheck(config);
    case "doctor":
      return (await import("./doctor/doctor")).runDoctor(config, (line) => console.log(line));
    default:
      throw new UsageError(`unknown command "${command}" (try --help)`);
  }
}

/** One line saying what to fix, and an exit status systemd's unit knows whether to restart on. */
function exitOnFailure(error: unknown): never {
  const known = knownFailure(error);
  if (known) {
    console.error(`switchboard: ${known.line}`);
    process.exit(known.status);
  }
  // The configuration loaded before the command failed, so it loads again here.
  const config = (() => {
    try {
      return loadConfig();
    } catch {
      return undefined;
    }
  })();
  const context = { port: config?.port ?? 0, databaseUrl: config?.databaseUrl, liveKitUrl: config?.livekit.url };
  console.error(`switchboard: ${operatingErrorLine(error, context) ?? firstLine(error)}`);
  if (error instanceof Error && (config?.logLevel === "debug" || config?.logLevel === "trace")) console.error(error.stack);
  process.exit(1);
}

function knownFailure(error: unknown): { line: string; status: number } | undefined {
  if (error instanceof ConfigError) return { line: `configuration error: ${error.message}`, status: EXIT_CONFIGURATION };
  if (error instanceof UsageError) return { line: error.message, status: EXIT_CONFIGURATION };
  if (error instanceof AppError) return { line: error.message, status: 1 };
  if (error instanceof MigrationRefusedError) {
    return { line: `migration refused, nothing was changed: ${error.message}`, status: EXIT_MIGRATION_REFUSED };
  }
  if (error instanceof DirectoryError) {
    return { line: `the directory file has problems, nothing was changed:\n${error.message}`, status: 1 };
  }
  return undefined;
}

main(process.argv.slice(2)).then((code) => process.exit(code), exitOnFailure);
