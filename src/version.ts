import pkg from "../package.json";

export const VERSION: string = pkg.version;

// Replaced by the build (scripts/build.ts --define): the commit the binary was built from.
declare const SWITCHBOARD_BUILD_COMMIT: string | undefined;

/** The git commit of a built binary; "source" when running from a checkout. */
export const BUILD_COMMIT: string = typeof SWITCHBOARD_BUILD_COMMIT === "string" ? SWITCHBOARD_BUILD_COMMIT : "source";

/** What --version prints: `0.1.0 (commit 1a2b3c4)`. */
export const VERSION_LINE = `${VERSION} (commit ${BUILD_COMMIT})`;
