// What the commands share: the database opened for one command, migrations with the refusals a
// person must fix first, and the exit statuses a restart cannot cure.
import { type Config } from "../config";
import { type Database, openDatabase } from "../db/client";
import { constraintViolation } from "../db/errors";
import { migrate, MigrationChangedError } from "../db/migrate";

/** A command used wrongly: the message says how to use it. */
export class UsageError extends Error {}

/** The database refused a migration over data someone has to fix first (the message says what). */
export class MigrationRefusedError extends Error {}

/**
 * Exit statuses a restart cannot cure (deploy/switchboard.service: RestartPreventExitStatus):
 * 2 for a configuration or usage error, 3 for a migration refused until someone fixes the data or files.
 */
export const EXIT_CONFIGURATION = 2;
export const EXIT_MIGRATION_REFUSED = 3;

/**
 * Migrates in one transaction. A constraint the data breaks (0006's check for agent names two
 * tenants share) leaves everything as it was, and its message says what to fix: no stack trace.
 */
export async function migrateDatabase(database: Database) {
  try {
    return await migrate(database);
  } catch (error) {
    const violation = constraintViolation(error);
    if (violation) throw new MigrationRefusedError(violation.message);
    if (error instanceof MigrationChangedError) throw new MigrationRefusedError(error.message);
    throw error;
  }
}

export async function withDatabase(config: Config, work: (database: Database) => Promise<number>): Promise<number> {
  const database = await openDatabase(databaseOptions(config));
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

export function databaseOptions(config: Config) {
  return {
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    statementTimeoutMs: config.statementTimeoutMs,
  };
}
