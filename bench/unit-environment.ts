// The JavaScript engine's settings deploy/switchboard.service gives the server (BUN_JSC_*, read from
// the unit, so there is one place that says them; tests/deploy.test.ts checks the image gives the
// same). The benchmarks start the binary with them, to measure it as the unit runs it; the rest of
// the unit's environment (DATA_DIR, the env file) is the benchmarks' own to choose. A setting already
// in the shell's environment wins, so a build can be measured with and without one side by side.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const unit = resolve(import.meta.dir, "..", "deploy", "switchboard.service");

/** The unit's BUN_JSC_* settings, as `Environment=NAME=value` lines (one setting a line, unquoted). */
export function unitEngineSettings(): Record<string, string> {
  const settings = readFileSync(unit, "utf8").matchAll(/^Environment=(BUN_JSC_\w+)=(\S+)$/gm);
  return Object.fromEntries([...settings].map(([, name, value]) => [name!, value!]));
}

/** The unit's engine settings the shell's environment does not set itself. */
export function unitEngineEnvironment(): Record<string, string> {
  return Object.fromEntries(Object.entries(unitEngineSettings()).filter(([name]) => process.env[name] === undefined));
}
