// The JavaScript engine's settings deploy/switchboard.service gives the server (BUN_JSC_*, read from
// the unit, so there is one place that says them). The benchmarks start the binary with them, to
// measure it as the unit runs it; the rest of the unit's environment (DATA_DIR, the env file) is
// the benchmarks' own to choose.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const unit = resolve(import.meta.dir, "..", "deploy", "switchboard.service");

export function unitEngineEnvironment(): Record<string, string> {
  const settings = readFileSync(unit, "utf8").matchAll(/^Environment=(BUN_JSC_\w+)=(\S+)$/gm);
  return Object.fromEntries([...settings].map(([, name, value]) => [name!, value!]));
}
