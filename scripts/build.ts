#!/usr/bin/env bun
// Builds the native library for this machine: `cargo build --release -p zerobus-bun-ffi`.
// Used by `bun install` (postinstall), the test preload and the demo; a no-op when up to date.
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

export function buildNative(opts: { quiet?: boolean } = {}): string {
  const manifest = join(root, "rust", "Cargo.toml");
  if (!existsSync(manifest)) throw new Error("rust/Cargo.toml not found: this is not a source checkout");
  if (!Bun.which("cargo")) {
    throw new Error("cargo not found: install Rust (https://rustup.rs) or a prebuilt zerobus-bun-<platform> package");
  }
  if (!opts.quiet) console.error("zerobus-bun: building the native library (cargo build --release) ...");
  const r = Bun.spawnSync(["cargo", "build", "--release", "-p", "zerobus-bun-ffi", "--manifest-path", manifest], {
    stdout: "inherit",
    stderr: "inherit",
  });
  if (r.exitCode !== 0) throw new Error(`cargo build failed (exit ${r.exitCode})`);
  const file = process.platform === "win32" ? "zerobus_bun.dll" : process.platform === "darwin" ? "libzerobus_bun.dylib" : "libzerobus_bun.so";
  return join(root, "rust", "target", "release", file);
}

if (import.meta.main) {
  try {
    console.log(buildNative());
  } catch (e) {
    console.error(`zerobus-bun: ${(e as Error).message}`);
    process.exit(1);
  }
}
