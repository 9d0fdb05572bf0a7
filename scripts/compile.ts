#!/usr/bin/env bun
// Builds a single-file executable of an app that uses zerobus-bun, with the native library embedded.
// usage: bun scripts/compile.ts <entry.ts> --outfile <file> [--target bun-<os>-<arch>] [more bun build flags]
// It finds the library for the target (ZEROBUS_BUN_LIB, the local cargo build for the host,
// prebuilds/<platform>/, or the installed zerobus-bun-<platform> package) and passes it to
// `bun build --compile`.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const args = process.argv.slice(2);
const ti = args.indexOf("--target");
const target = ti >= 0 ? args[ti + 1]! : `bun-${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
const m = target.match(/^bun-(linux|darwin|windows)-(x64|arm64)/);
if (!m) throw new Error(`unsupported --target ${target}`);
const os = m[1] === "windows" ? "win32" : m[1]!;
const tag = `${os}-${m[2]}${os === "linux" ? "-gnu" : ""}`;
const file = os === "win32" ? "zerobus_bun.dll" : os === "darwin" ? "libzerobus_bun.dylib" : "libzerobus_bun.so";
const root = join(import.meta.dir, "..");

// As at run time (src/native.ts): in a source checkout a local cargo build for the host wins over
// prebuilds/, which may be older than the TypeScript beside it.
const hostTag = `${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}`;
const candidates = [
  process.env.ZEROBUS_BUN_LIB,
  tag === hostTag ? join(root, "rust", "target", "release", file) : undefined,
  join(root, "prebuilds", tag, file),
  (() => {
    try {
      return join(createRequire(import.meta.url).resolve(`zerobus-bun-${tag}/package.json`), "..", file);
    } catch {
      return undefined;
    }
  })(),
].filter((p): p is string => !!p);
const lib = candidates.find((p) => existsSync(p));
if (!lib) {
  console.error(`no native library for ${tag}; looked in:\n  ${candidates.join("\n  ")}`);
  process.exit(1);
}
console.error(`embedding ${lib}`);
const r = Bun.spawnSync([process.execPath, "build", "--compile", ...args, lib], { stdout: "inherit", stderr: "inherit" });
process.exit(r.exitCode ?? 1);
