// The systemd unit in deploy/ is what operators install as is: systemd must accept it, its
// hardening must stay at systemd's "OK" exposure level, and it must give a graceful shutdown
// the time the server takes for one.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { unitEngineSettings } from "../bench/unit-environment";
import { loadConfig } from "../src/config";

const unitText = readFileSync(resolve(import.meta.dir, "..", "deploy", "switchboard.service"), "utf8");
const hasSystemd = !spawnSync("systemd-analyze", ["--version"]).error;

/** The unit as installed, its ExecStart pointing at `binary` (verify checks that the program exists). */
function installedUnit(binary: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "unit-")), "switchboard.service");
  writeFileSync(path, unitText.replace("/usr/local/bin/switchboard", binary));
  return path;
}

const analyze = (...args: string[]) => spawnSync("systemd-analyze", args, { encoding: "utf8" });

describe.skipIf(!hasSystemd)("deploy/switchboard.service", () => {
  test("systemd-analyze verify accepts it", () => {
    const result = analyze("verify", installedUnit(process.execPath));
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  test("verify refuses it when the binary is not where ExecStart says (so the check above can fail)", () => {
    expect(analyze("verify", installedUnit("/nonexistent/switchboard")).status).not.toBe(0);
  });

  test("its exposure stays at systemd's OK level (2.0 or lower on the 10-point scale)", () => {
    const result = analyze("security", "--offline=true", "--threshold=20", installedUnit(process.execPath));
    expect(result.status).toBe(0);
  });
});

describe("deploy/switchboard.service settings", () => {
  const setting = (name: string) => new RegExp(`^${name}=(.*)$`, "m").exec(unitText)?.[1];

  test("systemd waits longer than the server's graceful shutdown before it kills", () => {
    const stopSeconds = Number(setting("TimeoutStopSec"));
    expect(stopSeconds * 1000).toBeGreaterThan(loadConfig({}).shutdownTimeoutMs);
  });

  test("the embedded database and journal go to the state directory systemd creates for the service", () => {
    expect(setting("StateDirectory")).toBe("switchboard");
    expect(setting("Environment")).toBe("DATA_DIR=%S/switchboard");
    expect(setting("Restart")).toBe("on-failure");
    expect(setting("EnvironmentFile")).toBe("/etc/switchboard/switchboard.env");
  });

  test("the image gives the JavaScript engine the same settings as the unit (BUN_JSC_*, deploy/README.md)", () => {
    const engine = Object.entries(unitEngineSettings());
    const dockerfile = readFileSync(resolve(import.meta.dir, "..", "Dockerfile"), "utf8");
    expect(engine.length).toBeGreaterThan(0);
    for (const [name, value] of engine) expect(dockerfile).toMatch(new RegExp(`\\b${name}=${value}\\b`));
  });

  test("a start that fails on configuration, or on a refused migration (exit 3, tests/migration-checksum.test.ts), is not restarted in a loop", () => {
    const notRestarted = (setting("RestartPreventExitStatus") ?? "").split(/\s+/);
    const badConfig = spawnSync(process.execPath, ["src/main.ts", "serve"], {
      cwd: join(import.meta.dir, ".."),
      env: { PATH: process.env.PATH, PORT: "not-a-port" },
      encoding: "utf8",
    });
    expect(notRestarted).toContain(String(badConfig.status));
    expect(notRestarted).toContain("3");
  });
});
