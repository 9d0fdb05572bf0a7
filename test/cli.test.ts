import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZerobusSdk } from "../src/index";

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

function cliRun(...args: string[]): { code: number | null; out: string; err: string } {
  const r = Bun.spawnSync([process.execPath, cli, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

test("help, unknown commands and bad flags: messages and exit codes", () => {
  for (const args of [[], ["--help"], ["help"]]) {
    const r = cliRun(...args);
    expect(r.code).toBe(0);
    expect(r.out).toContain("usage: zerobus-bun <command>");
  }
  expect(cliRun("help", "demo").out).toContain("usage: zerobus-bun demo");
  expect(cliRun("demo", "--help").out).toContain("--records N");
  const local = cliRun("local", "--help");
  expect(local.code).toBe(0);
  expect(local.out).toContain("--data-dir DIR");
  const unknown = cliRun("bogus");
  expect(unknown.code).toBe(2);
  expect(unknown.err).toContain('zerobus-bun: unknown command "bogus"');
  const badDemo = cliRun("demo", "--records", "0");
  expect(badDemo.code).toBe(2);
  expect(badDemo.err).toContain("--records needs a positive integer");
  expect(cliRun("demo", "--bogus").err).toContain("unknown option --bogus");
  const badLocal = cliRun("local", "--bogus");
  expect(badLocal.code).toBe(2);
  expect(badLocal.err).toContain("unknown argument: --bogus");
  expect(cliRun("local", "--port", "-1").code).toBe(2);
  expect(cliRun("local", "--table").err).toContain("--table needs a value");
  const v = cliRun("version");
  expect(v.code).toBe(0);
  expect(v.out).toMatch(/zerobus-bun \d+\.\d+\.\d+ \(native library /);
  expect(v.out).toContain("local server: /");
});

test("a local server that cannot start fails with its reason, and exit code 1", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-bun-cli-"));
  try {
    const r = cliRun("local", "--port", "0", "--data-dir", dataDir, "--tls-cert", join(dataDir, "missing.pem"));
    expect(r.code).toBe(1);
    expect(r.err).toContain("tlsCertPem and tlsKeyPem must be set together");
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("the demo ingests and verifies (small run)", () => {
  const r = cliRun("demo", "--records", "20000");
  if (r.code !== 0) console.error(r.out, r.err);
  expect(r.code).toBe(0);
  expect(r.out).toContain("verified:");
});
