// Builds the single-file switchboard executable: `bun run build [--outfile PATH]`.
// PGlite's WebAssembly modules and file-system bundle and the SQL migrations are imported
// `with { type: "file" | "text" }` in src/, so the compiled binary needs nothing next to it.
import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

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
// The bun CLI rather than Bun.build: same flags as one would type, and process.execPath
// is the pinned bun from node_modules whichever way this script was started.
const build = Bun.spawnSync(
  // The header flag is baked in: Bun's 16 KiB default would refuse large heads with an empty 431
  // before the app's own (lower) bound could answer with a reason.
  [process.execPath, "build", "--compile", "--minify", "--sourcemap", "--compile-exec-argv=--max-http-header-size=65536", "src/main.ts", "--outfile", outfile],
  { cwd: root, stdout: "inherit", stderr: "inherit", env: process.env },
);
if (build.exitCode !== 0) {
  console.error(`build failed (exit ${build.exitCode ?? build.signalCode})`);
  process.exit(build.exitCode || 1);
}

// --sourcemap puts the map inside the executable (stack traces name src/ files and lines);
// the copy bun also writes next to it is not needed, and dist/ should hold the binary alone.
rmSync(`${outfile}.map`, { force: true });

const seconds = ((performance.now() - started) / 1000).toFixed(1);
const megabytes = (statSync(outfile).size / 1024 / 1024).toFixed(1);
const shown = relative(process.cwd(), outfile);
console.log(`built ${shown.startsWith("..") ? outfile : shown} (${megabytes} MB) in ${seconds} s`);
