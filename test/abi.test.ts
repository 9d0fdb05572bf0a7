// The C ABI from C (test/c/abi.c): NULL pointers, empty arrays, 64-bit pointer arrays with 32-bit
// lengths, exactly-once release on every path. Needs a C compiler (cc), as the Rust build does.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { libraryPath } from "../src/native";
import { startLocalServer } from "../src/local";

test.skipIf(process.platform !== "linux")("C ABI edge cases, called from C", () => {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-abi-"));
  const server = startLocalServer({ dataDir: dir, tables: ["c.abi.t"], fsync: false });
  try {
    const exe = join(dir, "abi");
    const root = join(import.meta.dir, "..");
    const cc = Bun.spawnSync(
      ["cc", "-std=c11", "-Wall", "-Werror", "-o", exe, join(import.meta.dir, "c", "abi.c"), `-I${join(root, "rust", "ffi", "include")}`,
        libraryPath, `-Wl,-rpath,${dirname(libraryPath)}`],
      { stderr: "pipe" },
    );
    expect(cc.stderr.toString()).toBe("");
    expect(cc.exitCode).toBe(0);
    const r = Bun.spawnSync([exe, server.url], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toMatch(/^ok \d+ checks/);
    const rows = readFileSync(join(dir, "c.abi.t.jsonl"), "utf8").trim().split("\n");
    expect(rows.length).toBe(8);
    expect(rows.slice(1).map((l) => JSON.parse(l).n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
