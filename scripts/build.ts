#!/usr/bin/env bun
// Builds the native files for this machine from source: the client library (zerobus-bun-ffi) and
// the local server executable (zerobus-local), in one cargo invocation so they share one build
// with the Rust tests (`cargo test --release --workspace`). A no-op when up to date.
// usage: bun scripts/build.ts [--profile release|dist]
//   release (default): optimized, no LTO, parallel codegen; what the demo and the tests use.
//   dist: LTO and one codegen unit, as the published prebuilds; what the benchmark uses.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { libraryFile, localServerFile } from "../src/paths";

const root = join(import.meta.dir, "..");

export interface NativeBuild {
  /** The client library. */
  lib: string;
  /** The local server executable. */
  localServer: string;
}

export function buildNative(opts: { quiet?: boolean; profile?: "release" | "dist" } = {}): NativeBuild {
  const profile = opts.profile ?? "release";
  const manifest = join(root, "rust", "Cargo.toml");
  if (!existsSync(manifest)) throw new Error("rust/Cargo.toml not found: this is not a source checkout");
  if (!Bun.which("cargo")) {
    throw new Error("cargo not found: install Rust (https://rustup.rs, or your distribution's cargo package) to build from source, or install a prebuilt zerobus-bun-<platform> package");
  }
  const dir = join(root, "rust", "target", profile);
  const out = { lib: join(dir, libraryFile), localServer: join(dir, localServerFile) };
  if (!opts.quiet || !existsSync(out.lib)) {
    console.error(`zerobus-bun: building the native library and the local server (cargo build --profile ${profile}) ...`);
  }
  const r = Bun.spawnSync(
    ["cargo", "build", "--profile", profile, "-p", "zerobus-bun-ffi", "-p", "zerobus-local", "--manifest-path", manifest],
    { stdout: "inherit", stderr: "inherit" },
  );
  if (r.exitCode !== 0) throw new Error(`cargo build failed (exit ${r.exitCode})`);
  return out;
}

if (import.meta.main) {
  try {
    const i = process.argv.indexOf("--profile");
    const profile = i >= 0 ? process.argv[i + 1] : "release";
    if (profile !== "release" && profile !== "dist") throw new Error(`--profile must be release or dist, not ${profile}`);
    const b = buildNative({ profile });
    console.log(b.lib);
    console.log(b.localServer);
  } catch (e) {
    console.error(`zerobus-bun: ${(e as Error).message}`);
    process.exit(1);
  }
}
