// The SDK, tests and scripts type-check under strict TypeScript; the public entry points'
// sources under the strictest flags, with declarations that need neither Bun's nor Node's types
// (scripts/build-types.ts, which `prepack` runs; user-types.test.ts checks them in a user's project).
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

function ok(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString() + r.stderr.toString();
  if (r.exitCode !== 0) console.error(out);
  expect(r.exitCode).toBe(0);
}

test(
  "tsc --noEmit",
  () => {
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    ok([process.execPath, tsc, "-p", root]);
  },
  { timeout: 120_000 },
);

test(
  "declarations of the entry points build",
  () => {
    const out = mkdtempSync(join(tmpdir(), "zerobus-types-"));
    try {
      ok([process.execPath, join(root, "scripts", "build-types.ts"), out]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
  { timeout: 120_000 },
);
