// Runs the Rust test suites (core unit tests, the local server's tests, and the allocation-counting
// zero-copy test of the C ABI) so that `bun test` covers both languages. Cargo's output streams
// through, so a first (cold) build shows its progress.
import { expect, test } from "bun:test";
import { join } from "node:path";

test(
  "cargo test --release --workspace",
  () => {
    const manifest = join(import.meta.dir, "..", "rust", "Cargo.toml");
    const r = Bun.spawnSync(
      ["cargo", "test", "--release", "--workspace", "--manifest-path", manifest, "--", "--nocapture"],
      { stdout: "inherit", stderr: "inherit" },
    );
    expect(r.exitCode).toBe(0);
  },
  { timeout: 900_000 },
);
