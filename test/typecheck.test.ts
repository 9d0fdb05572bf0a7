// The SDK, tests and scripts type-check under strict TypeScript.
import { expect, test } from "bun:test";
import { join } from "node:path";

test(
  "tsc --noEmit",
  () => {
    const root = join(import.meta.dir, "..");
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    const r = Bun.spawnSync([process.execPath, tsc, "-p", root], { stdout: "pipe", stderr: "pipe" });
    const out = r.stdout.toString() + r.stderr.toString();
    if (r.exitCode !== 0) console.error(out);
    expect(r.exitCode).toBe(0);
  },
  { timeout: 120_000 },
);
