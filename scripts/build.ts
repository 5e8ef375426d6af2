// Builds the single-file switchboard executable: `bun run build [--outfile PATH]`.
// PGlite's WebAssembly modules and file-system bundle and the SQL migrations are imported
// `with { type: "file" | "text" }` in src/, so the compiled binary needs nothing next to it.
// A fresh embedded-database directory is made here and embedded too (see createPgdataTemplate).
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createPgdataTemplate, PGDATA_TEMPLATE } from "../src/db/client";

const root = resolve(import.meta.dir, "..");

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { outfile: { type: "string" }, help: { type: "boolean", short: "h" } },
  strict: true,
});
if (values.help) {
  console.log("usage: bun scripts/build.ts [--outfile PATH]   (default: dist/switchboard)");
  process.exit(0);
}

const outfile = resolve(values.outfile ?? resolve(root, "dist/switchboard"));
mkdirSync(dirname(outfile), { recursive: true });

const started = performance.now();
const scratch = mkdtempSync(join(tmpdir(), "switchboard-build-"));
let build: ReturnType<typeof compileExecutable>;
try {
  const template = join(scratch, PGDATA_TEMPLATE);
  await Bun.write(template, await createPgdataTemplate(join(scratch, "pgdata")));
  build = compileExecutable(template);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
if (build.exitCode !== 0) {
  console.error(`build failed (exit ${build.exitCode ?? build.signalCode})`);
  process.exit(build.exitCode || 1);
}

// --sourcemap puts the map inside the executable (stack traces name src/ files and lines);
// the copy bun also writes next to it is not needed, and dist/ should hold the binary alone.
// Bun writes an empty one for the template too, named after it as an entry point.
rmSync(`${outfile}.map`, { force: true });
rmSync(join(dirname(outfile), `${basename(PGDATA_TEMPLATE, extname(PGDATA_TEMPLATE))}.js.map`), { force: true });

const seconds = ((performance.now() - started) / 1000).toFixed(1);
const megabytes = (statSync(outfile).size / 1024 / 1024).toFixed(1);
const shown = relative(process.cwd(), outfile);
console.log(`built ${shown.startsWith("..") ? outfile : shown} (${megabytes} MB) in ${seconds} s`);

function compileExecutable(template: string) {
  // The bun CLI rather than Bun.build: same flags as one would type, and process.execPath
  // is the pinned bun from node_modules whichever way this script was started.
  return Bun.spawnSync(
    [
      process.execPath,
      "build",
      "--compile",
      "--minify",
      "--sourcemap",
      // The modules as bytecode, still as ES modules (--bytecode alone would make CommonJS):
      // parsing them took about 150 ms of every start.
      "--bytecode",
      "--format=esm",
      // The header flag is baked in: Bun's 16 KiB default would refuse large heads with an empty 431
      // before the app's own (lower) bound could answer with a reason.
      "--compile-exec-argv=--max-http-header-size=65536",
      `--define=SWITCHBOARD_BUILD_COMMIT=${JSON.stringify(buildCommit())}`,
      // Embedded files keep their names: the client finds the template by its name.
      "--asset-naming=[name].[ext]",
      "src/main.ts",
      template,
      "--outfile",
      outfile,
    ],
    { cwd: root, stdout: "inherit", stderr: "inherit", env: process.env },
  );
}

/** The commit being built (with "-dirty" for uncommitted changes); SWITCHBOARD_COMMIT where there is no .git (a container build). */
function buildCommit(): string {
  if (process.env.SWITCHBOARD_COMMIT) return process.env.SWITCHBOARD_COMMIT;
  // Bun throws when the program is missing (the container's build image has no git).
  const git = (...args: string[]) => {
    try {
      const run = Bun.spawnSync(["git", ...args], { cwd: root, stdout: "pipe", stderr: "ignore" });
      return run.exitCode === 0 ? run.stdout.toString().trim() : undefined;
    } catch {
      return undefined;
    }
  };
  const head = git("rev-parse", "--short=12", "HEAD");
  if (!head) return "unknown";
  return `${head}${git("status", "--porcelain", "--untracked-files=no") ? "-dirty" : ""}`;
}
