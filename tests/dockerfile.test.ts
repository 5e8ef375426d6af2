// No Docker engine here, so the Dockerfile is checked the other way round: its rules are read
// from the file, and its build stage's commands run on exactly the files it copies.
import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const lines = readFileSync(join(ROOT, "Dockerfile"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"));
const stages = lines.reduce<string[][]>((all, line) => {
  if (/^FROM /i.test(line)) all.push([]);
  all.at(-1)?.push(line);
  return all;
}, []);
const [buildStage, runStage] = [stages[0]!, stages.at(-1)!];
const instruction = (stage: string[], name: string) => stage.filter((line) => line.toUpperCase().startsWith(`${name} `));

// Processes with an environment of their own on the embedded database: CI's PostgreSQL pass
// (DATABASE_URL set) would run the very same thing again, so it skips them.
const repeatUnderPostgres = Boolean(process.env.DATABASE_URL);

describe("Dockerfile", () => {
  test("is multi-stage; the image runs as a non-root user, checks its health without a shell, and keeps data in a volume", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const user = instruction(runStage, "USER").at(-1)?.split(/\s+/)[1] ?? "root";
    expect(["root", "0", "0:0"]).not.toContain(user);
    const [healthcheck] = instruction(runStage, "HEALTHCHECK");
    expect(JSON.parse(healthcheck!.replace(/^.*\bCMD\s+/, ""))).toEqual(["/switchboard", "healthcheck"]);
    expect(instruction(runStage, "ENTRYPOINT")[0]).toContain('["/switchboard"]');
    expect(instruction(runStage, "VOLUME")[0]).toContain("/data");
    expect(instruction(runStage, "ENV").join(" ") + runStage.join(" ")).toContain("DATA_DIR=/data");
  });

  test.skipIf(repeatUnderPostgres)("the build stage's commands, run on only the files it copies, produce a binary that runs", () => {
    const context = mkdtempSync(join(tmpdir(), "docker-build-"));
    for (const copy of instruction(buildStage, "COPY")) {
      const sources = copy.split(/\s+/).slice(1, -1);
      for (const source of sources) {
        expect(existsSync(join(ROOT, source))).toBe(true);
        cpSync(join(ROOT, source), join(context, source), { recursive: true });
      }
    }
    // `npm ci` would fetch what node_modules already holds, at the versions package-lock.json pins.
    symlinkSync(join(ROOT, "node_modules"), join(context, "node_modules"));
    const build = Bun.spawnSync(["npm", "run", "build", "--silent"], { cwd: context, stdout: "pipe", stderr: "pipe", env: process.env });
    expect(build.stderr.toString()).not.toContain("error");
    expect(build.exitCode).toBe(0);
    const version = Bun.spawnSync([join(context, "dist", "switchboard"), "--version"], { cwd: context, env: { PATH: process.env.PATH ?? "" } });
    expect(version.exitCode).toBe(0);
    expect(version.stdout.toString()).toMatch(/^\d+\.\d+\.\d+ \(commit /);
  }, 180_000);
});
