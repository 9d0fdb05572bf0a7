// The prebuilt platform packages, `zerobus-bun-<tag>` (prebuilds/<tag>/): their tags, and for each
// a line that reaches the library it holds. A package's index.js imports its library
// `with { type: "file" }`: run from node_modules, that is the file's path; bundled by
// `bun build --compile`, it makes the bundler embed the library, and is its path inside the
// executable.
//
// The bundler follows a `require` whose argument is written out, and accepts one that does not
// resolve when it sits inside `try` (npm and bun install only the package matching the machine;
// the others throw here, caught). When compiling it replaces process.platform and process.arch by
// the target's, so each line tests those first: an executable holds its target's package only,
// also when others are installed (`bun build --compile --target=bun-linux-arm64` embeds
// zerobus-bun-linux-arm64-gnu, if installed, and not this machine's).
//
// Adding a platform: its tag in `platformTags` and its line in platformPackage()
// (test/paths.test.ts checks both against package.json and prebuilds/<tag>/package.json).

/** The platform packages that exist (zerobus-bun's optional dependencies), by tag. */
export const platformTags = [
  "linux-x64-gnu", "linux-arm64-gnu", "linux-x64-musl", "linux-arm64-musl", "darwin-x64", "darwin-arm64", "win32-x64", "win32-arm64",
];

export interface PlatformPackage {
  /** `zerobus-bun-<tag>` */
  name: string;
  /** The library's path (inside the executable when compiled), if the package is there. */
  library?: string | undefined;
  /** Why it is not there (the resolver's message). */
  missing?: string | undefined;
}

/** The platform package for `tag` and its library, as this process can reach it. */
export function platformPackage(tag: string): PlatformPackage {
  const name = `zerobus-bun-${tag}`;
  let mod: { library?: string } | undefined;
  try {
    if (process.platform === "linux" && process.arch === "x64" && tag === "linux-x64-gnu") mod = require("zerobus-bun-linux-x64-gnu");
    if (process.platform === "linux" && process.arch === "arm64" && tag === "linux-arm64-gnu") mod = require("zerobus-bun-linux-arm64-gnu");
    if (process.platform === "linux" && process.arch === "x64" && tag === "linux-x64-musl") mod = require("zerobus-bun-linux-x64-musl");
    if (process.platform === "linux" && process.arch === "arm64" && tag === "linux-arm64-musl") mod = require("zerobus-bun-linux-arm64-musl");
    if (process.platform === "darwin" && process.arch === "x64" && tag === "darwin-x64") mod = require("zerobus-bun-darwin-x64");
    if (process.platform === "darwin" && process.arch === "arm64" && tag === "darwin-arm64") mod = require("zerobus-bun-darwin-arm64");
    if (process.platform === "win32" && process.arch === "x64" && tag === "win32-x64") mod = require("zerobus-bun-win32-x64");
    if (process.platform === "win32" && process.arch === "arm64" && tag === "win32-arm64") mod = require("zerobus-bun-win32-arm64");
  } catch (e) {
    return { name, missing: String((e as Error).message ?? e).split("\n")[0] };
  }
  if (!mod) return { name, missing: platformTags.includes(tag) ? "src/platforms.ts has no line for it" : "no such package" };
  if (typeof mod.library !== "string") return { name, missing: "its index.js exports no library path" };
  return { name, library: mod.library };
}
