#!/usr/bin/env node
// First step of `npm run demo` and `npm test` in a source checkout (plain Node, so it runs before
// Bun is installed): installs Bun (the `bun` npm package ships the binary) and the JS dependencies
// with `npm ci` when they are missing or older than package-lock.json, and checks for cargo, which
// builds the native library and the local server from source on first use.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const marker = join(root, "node_modules", ".package-lock.json");
const bun = join(root, "node_modules", "bun", "package.json");
const lock = join(root, "package-lock.json");
const stale = !existsSync(marker) || !existsSync(bun) || statSync(lock).mtimeMs > statSync(marker).mtimeMs;

function which(cmd) {
  const r = spawnSync(process.platform === "win32" ? "where" : "sh", process.platform === "win32" ? [cmd] : ["-c", `command -v ${cmd}`], { stdio: "ignore" });
  return r.status === 0;
}

if (stale) {
  console.error("zerobus-bun: installing Bun and the JS dependencies (npm ci) ...");
  const t = Date.now();
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: root, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) {
    console.error(`zerobus-bun: npm ci failed (exit ${r.status}); run it by hand to see why`);
    process.exit(1);
  }
  console.error(`zerobus-bun: dependencies installed in ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
if (!process.env.ZEROBUS_BUN_LIB && !which("cargo")) {
  console.error(
    "zerobus-bun: cargo not found. A source checkout builds its native library with Rust: install it\n" +
      "  (https://rustup.rs, or e.g. `apt-get install cargo`), or point ZEROBUS_BUN_LIB and ZEROBUS_LOCAL_BIN\n" +
      "  at prebuilt files.",
  );
  process.exit(1);
}
