import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZerobusSdk } from "../src/index";
import { parseLocalArgs } from "../src/cli";

const cli = join(import.meta.dir, "..", "src", "cli.ts");

test("`zerobus-bun local` serves ingestion from a separate process", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-bun-cli-"));
  const proc = Bun.spawn([process.execPath, cli, "local", "--port", "0", "--data-dir", dataDir, "--table", "a.b.c"], {
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    const reader = proc.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const url = text.match(/listening on (\S+)/)?.[1];
    expect(url).toStartWith("http://127.0.0.1:");
    const sdk = new ZerobusSdk({ endpoint: url! });
    const s = await sdk.createStream({ table: "a.b.c", recordType: "json", headers: { authorization: "Bearer t" } });
    await s.ingestBatch([{ n: 1 }, { n: 2 }]);
    await s.close();
    sdk.close();
    expect(readFileSync(join(dataDir, "a.b.c.jsonl"), "utf8")).toBe('{"n":1}\n{"n":2}\n');
  } finally {
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("`zerobus-bun local` argument errors", () => {
  expect(parseLocalArgs(["--port=7", "--table", "x.y.z", "--no-fsync"])).toMatchObject({ port: 7, tables: ["x.y.z"], fsync: false });
  expect(() => parseLocalArgs(["--port", "-1"])).toThrow("non-negative integer");
  expect(() => parseLocalArgs(["--bogus"])).toThrow("unknown option --bogus");
  expect(() => parseLocalArgs(["--table"])).toThrow("needs a value");
});

test("the demo ingests and verifies (small run)", () => {
  const r = Bun.spawnSync([process.execPath, cli, "demo", "--records", "20000", "--no-build"], { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString();
  if (r.exitCode !== 0) console.error(out, r.stderr.toString());
  expect(r.exitCode).toBe(0);
  expect(out).toContain("verified:");
});
