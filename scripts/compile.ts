#!/usr/bin/env bun
// Builds a single-file executable from this source checkout of zerobus-bun, with a native library of
// the checkout embedded: ZEROBUS_BUN_LIB, the cargo build (rust/target/release, for this machine)
// or the cross build (prebuilds/<platform>/), given to `bun build --compile` as one more entry point.
// usage: bun scripts/compile.ts <entry.ts> --outfile <file> [--target bun-<os>-<arch>[-musl]] [more bun build flags]
//
// Only a checkout needs it: where zerobus-bun and its platform package are installed, the plain
// `bun build --compile app.ts --outfile app` embeds the package's library (src/platforms.ts).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { platformTag } from "../src/paths";

const args = process.argv.slice(2);
const ti = args.findIndex((a) => a === "--target" || a.startsWith("--target="));
const target = ti < 0 ? `bun-${process.platform === "win32" ? "windows" : process.platform}-${process.arch}` : args[ti]!.includes("=") ? args[ti]!.split("=")[1]! : args[ti + 1]!;
const m = target.match(/^bun-(linux|darwin|windows)-(x64|arm64)(-musl)?/);
if (!m) throw new Error(`unsupported --target ${target}`);
const os = m[1] === "windows" ? "win32" : m[1]!;
const tag = `${os}-${m[2]}${os === "linux" ? (m[3] ?? "-gnu") : ""}`;
const file = os === "win32" ? "zerobus_bun.dll" : os === "darwin" ? "libzerobus_bun.dylib" : "libzerobus_bun.so";
const root = join(import.meta.dir, "..");

// As at run time (src/paths.ts): the cargo build of these sources wins over prebuilds/, which may be older.
const candidates = [
  process.env.ZEROBUS_BUN_LIB,
  tag === platformTag() ? join(root, "rust", "target", "release", file) : undefined,
  join(root, "prebuilds", tag, file),
].filter((p): p is string => !!p);
const lib = candidates.find((p) => existsSync(p));
if (!lib) {
  console.error(
    `no native library for ${tag} in this checkout; looked in:\n  ${candidates.join("\n  ")}\n` +
      `Build it (\`bun run build:native\` for this machine, \`bun scripts/cross-build.ts --targets ${tag}\`) or set ZEROBUS_BUN_LIB.`,
  );
  process.exit(1);
}
console.error(`embedding ${lib}`);
const r = Bun.spawnSync([process.execPath, "build", "--compile", ...args, lib], { stdout: "inherit", stderr: "inherit" });
process.exit(r.exitCode ?? 1);
