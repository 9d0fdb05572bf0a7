// Runs the integration tests again in GC-torture mode (see test/torture.ts) as part of `bun test`.
import { expect, test } from "bun:test";
import { join } from "node:path";

const files = ["basic", "recovery", "integrity", "arrow", "errors", "buffers"].map((f) => join(import.meta.dir, `${f}.test.ts`));

test(
  "integration tests pass in GC-torture mode",
  () => {
    if (process.env.ZEROBUS_GC_TORTURE) return; // already inside the torture run
    const r = Bun.spawnSync([process.execPath, "test", ...files], {
      cwd: join(import.meta.dir, ".."),
      env: { ...process.env, ZEROBUS_GC_TORTURE: "1" },
      stdout: "inherit",
      stderr: "inherit",
    });
    expect(r.exitCode).toBe(0);
  },
  { timeout: 600_000 },
);
