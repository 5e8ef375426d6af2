// `switchboard keys` as an operator uses it: the listing has a header, and revoking says what
// happened, including when the key was revoked already.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const dataDir = join(mkdtempSync(join(tmpdir(), "cli-keys-")), "data");

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

function keys(...args: string[]) {
  const result = Bun.spawnSync([process.execPath, "src/main.ts", "keys", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATA_DIR: dataDir, LOG_LEVEL: "error" },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: result.exitCode, stdout: result.stdout.toString().trim(), stderr: result.stderr.toString().trim() };
}

test.skipIf(repeatUnderPostgres)("keys list has a header; revoking twice says the second time that the key was revoked already", () => {
  const created = keys("create", "--admin", "--label", "ops");
  expect(created.code).toBe(0);
  const id = /id ([0-9a-f-]{36})/.exec(created.stderr)?.[1];
  expect(id).toBeDefined();

  const listed = keys("list").stdout.split("\n").map((line) => line.split("\t"));
  expect(listed[0]).toEqual(["id", "prefix", "tenant", "label", "created", "last used", "status"]);
  expect(listed).toHaveLength(2);
  expect(listed[1]![0]).toBe(id!);
  expect(listed[1]![listed[0]!.indexOf("status")]).toBe("active");

  expect(keys("revoke", id!).stdout).toBe(`revoked ${id}`);
  const revokedAt = keys("list").stdout.split("\n")[1]!.split("\t")[6];
  expect(revokedAt).toStartWith("revoked ");

  const again = keys("revoke", id!);
  expect(again.code).toBe(0);
  expect(again.stdout).toBe(`already revoked ${id}`);
  // The first revocation's time stays.
  expect(keys("list").stdout.split("\n")[1]!.split("\t")[6]).toBe(revokedAt!);

  const unknown = keys("revoke", "00000000-0000-4000-8000-000000000000");
  expect(unknown.code).not.toBe(0);
  expect(unknown.stderr).toContain("not found");
}, 120_000);
