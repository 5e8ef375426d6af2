// Loaded before the test files (bunfig.toml): `bun test` and `npm test` run alike. Several tests
// boot an embedded PostgreSQL or a child process, which takes seconds on a small machine; Bun's
// default of 5 s per test would fail them for being slow, not wrong.
//
// setDefaultTimeout applies to the file being run, and Bun 1.4.5 runs the preload once per
// process: on its own it reaches only the first file. So each test file, as Bun loads it, sets
// the timeout for itself, on its first line (line numbers in failures stay right).
import { plugin } from "bun";
import { setDefaultTimeout } from "bun:test";

const TIMEOUT_MS = 60_000;

setDefaultTimeout(TIMEOUT_MS);

plugin({
  name: "test-file-timeout",
  setup(build) {
    build.onLoad({ filter: /\.test\.ts$/ }, async ({ path }) => ({
      contents: `import { setDefaultTimeout as __setDefaultTimeout } from "bun:test"; __setDefaultTimeout(${TIMEOUT_MS}); ${await Bun.file(path).text()}`,
      loader: "ts",
    }));
  },
});
