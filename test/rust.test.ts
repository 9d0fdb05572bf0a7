// Runs the Rust test suites (core unit tests, the local server's tests, and the allocation-counting
// zero-copy test of the C ABI) so that `bun test` covers both languages.
import { expect, test } from "bun:test";
import { join } from "node:path";

test(
  "cargo test --release --workspace",
  () => {
    const manifest = join(import.meta.dir, "..", "rust", "Cargo.toml");
    const r = Bun.spawnSync(["cargo", "test", "--release", "--workspace", "--manifest-path", manifest], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = r.stdout.toString() + r.stderr.toString();
    if (r.exitCode !== 0) console.error(out);
    // Show the zero-copy measurement line in the test log.
    for (const line of out.split("\n")) if (line.includes("records x 1 MiB")) console.log(line.trim());
    expect(r.exitCode).toBe(0);
  },
  { timeout: 900_000 },
);
