// Builds the single-file switchboard executable: `bun run build [--outfile PATH]`.
// PGlite's WebAssembly modules and file-system bundle and the SQL migrations are imported
// `with { type: "file" | "text" }` in src/, so the compiled binary needs nothing next to it.
// A fresh embedded-database directory is made here and embedded too (see createPgdataTemplate).
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cachedPgdataTemplate, createPgdataTemplate, PGDATA_TEMPLATE } from "../src/db/pglite";

const root = resolve(import.meta.dir, "..");

/**
 * What `--all` builds, beside dist/switchboard (this machine's: linux x64 in CI). Bun fetches
 * each target's runtime from the npm registry once and caches it. The baseline build runs on
 * x64 processors without AVX2 (older or emulated CPUs, some cloud instance types).
 */
const ALL_TARGETS = [
  { target: "bun-linux-arm64", suffix: "linux-arm64" },
  { target: "bun-linux-x64-baseline", suffix: "linux-x64-baseline" },
];

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    outfile: { type: "string" },
    target: { type: "string" },
    all: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (values.help) {
  console.log(
    "usage: bun scripts/build.ts [--outfile PATH] [--target bun-linux-arm64|...]   (default: dist/switchboard)\n" +
      `       bun scripts/build.ts --all   dist/switchboard and dist/switchboard-{${ALL_TARGETS.map((t) => t.suffix).join(",")}}`,
  );
  process.exit(0);
}

const outfile = resolve(values.outfile ?? resolve(root, "dist/switchboard"));
const builds = [
  { target: values.target, outfile },
  ...(values.all ? ALL_TARGETS.map((t) => ({ target: t.target, outfile: `${outfile}-${t.suffix}` })) : []),
];
mkdirSync(dirname(outfile), { recursive: true });

const scratch = mkdtempSync(join(tmpdir(), "switchboard-build-"));
try {
  // The embedded database's first data directory is WebAssembly's work: one template serves every
  // target, the checkout's cached one when there is one (made by the same PGlite build and start
  // parameters, and checked against its content), else one made here.
  const template = join(scratch, PGDATA_TEMPLATE);
  await Bun.write(template, (await cachedPgdataTemplate()) ?? (await createPgdataTemplate(join(scratch, "pgdata"))));
  for (const build of builds) buildOne(template, build);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

function buildOne(template: string, build: { target?: string; outfile: string }) {
  const started = performance.now();
  const compiled = compileExecutable(template, build);
  if (compiled.exitCode !== 0) {
    console.error(`build failed (exit ${compiled.exitCode ?? compiled.signalCode})`);
    process.exit(compiled.exitCode || 1);
  }
  // --sourcemap puts the map inside the executable (stack traces name src/ files and lines);
  // the copy bun also writes next to it is not needed, and dist/ should hold the binary alone.
  // Bun writes an empty one for the template too, named after it as an entry point.
  rmSync(`${build.outfile}.map`, { force: true });
  rmSync(join(dirname(build.outfile), `${basename(PGDATA_TEMPLATE, extname(PGDATA_TEMPLATE))}.js.map`), { force: true });

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const megabytes = (statSync(build.outfile).size / 1024 / 1024).toFixed(1);
  const shown = relative(process.cwd(), build.outfile);
  console.log(`built ${shown.startsWith("..") ? build.outfile : shown} (${megabytes} MB${build.target ? `, ${build.target}` : ""}) in ${seconds} s`);
}

function compileExecutable(template: string, build: { target?: string; outfile: string }) {
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
      ...(build.target ? [`--target=${build.target}`] : []),
      "src/main.ts",
      template,
      "--outfile",
      build.outfile,
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
