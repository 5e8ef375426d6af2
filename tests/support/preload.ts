// Loaded before every test file (bunfig.toml): `bun test` and `npm test` run alike. Several tests
// boot an embedded PostgreSQL or a child process, which takes seconds on a small machine; Bun's
// default of 5 s per test would fail them for being slow, not wrong.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
