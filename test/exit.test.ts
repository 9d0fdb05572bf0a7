// How a process ends with records in flight, and what a tight submit loop holds.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { fixture, FAST } from "./helpers";
import { startLocalServer, ZerobusError } from "../src/index";
import { heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

const script = join(import.meta.dir, "fixtures", "exit-script.ts");

async function run(table: string, n: number, mode: string, ackDelayMs: number, onReady?: (p: Bun.Subprocess) => void) {
  await f.server.addTable(table);
  await f.server.addFault({ table, ackDelayMs });
  const p = Bun.spawn([process.execPath, script, f.server.url, table, String(n), mode], { stdout: "pipe", stderr: "pipe" });
  // stdout is read as it comes: "submitted" tells when the script is ready for onReady.
  const reader = p.stdout.getReader();
  let stdout = "";
  let ready = false;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += new TextDecoder().decode(value);
      if (!ready && stdout.includes("submitted")) {
        ready = true;
        onReady?.(p);
      }
    }
  })();
  const stderr = await new Response(p.stderr).text();
  const code = await p.exited;
  await reading;
  return { code, rows: f.server.records<{ i: number }>(table), stdout, stderr };
}

describe("ending a script never drops records in flight", () => {
  test("a script that ends right after submit() stays alive until its records are acknowledged", async () => {
    const { code, rows } = await run("main.default.exit_end", 200_000, "end", 1500);
    expect(code).toBe(0);
    expect(rows.length).toBe(200_000);
    expect(rows.every((r, i) => r.i === i)).toBe(true);
  }, 60_000);

  test("process.exit() with flushOnExit(): the exit handler waits for the acknowledgements", async () => {
    const { code, rows } = await run("main.default.exit_guarded", 50_000, "exit-guarded", 1000);
    expect(code).toBe(0);
    expect(rows.length).toBe(50_000);
  }, 60_000);

  test("SIGTERM with flushOnExit(): streams are flushed and closed, then the process exits with 143", async () => {
    const { code, rows } = await run("main.default.exit_signal", 50_000, "signal", 1500, (p) => p.kill("SIGTERM"));
    expect(code).toBe(143);
    expect(rows.length).toBe(50_000);
  }, 60_000);

  test("SIGTERM with flushOnExit() while a producer keeps calling ingest(): intake stops at the signal, what came before is stored", async () => {
    const { code, rows, stdout } = await run("main.default.exit_busy", 0, "signal-busy", 20, (p) => {
      setTimeout(() => p.kill("SIGTERM"), 300);
    });
    expect(code).toBe(143);
    const before = Number(/calls-before-signal (\d+)/.exec(stdout)?.[1]);
    expect(before).toBeGreaterThan(0);
    // Stored: exactly the calls made before the signal, each once, in order; none made after it.
    expect(rows.length).toBe(before);
    expect(rows.every((r, i) => r.i === i)).toBe(true);
  }, 60_000);
});

describe("submit() loops are bounded", () => {
  test("a synchronous submit loop holds no more buffers than the in-flight limit allows", async () => {
    const server = startLocalServer({ tables: ["main.default.t"], discard: true, dataDir: join(f.server.dataDir, "discard") });
    try {
      const { ZerobusSdk } = await import("../src/index");
      const sdk = new ZerobusSdk({ endpoint: server.url });
      const s = await sdk.createStream({ table: "main.default.t", recordType: "json", ...FAST, maxInflightBytes: 4 << 20, zeroCopy: true });
      const record = new TextEncoder().encode(JSON.stringify({ pad: "p".repeat(4000) })); // pinned (> 1 KiB, zeroCopy)
      const before = heldCount();
      let most = 0;
      for (let i = 0; i < 100_000; i++) {
        s.submit(record);
        if (i % 1000 === 0) most = Math.max(most, heldCount() - before);
      }
      await s.close();
      sdk.close();
      // 4 MiB in flight is ~1,000 records; released ones are forgotten at least every 1,024 holds
      // and whenever submit blocks (without either, this loop held all 100,000).
      expect(most).toBeLessThan(2500);
      expect(heldCount()).toBe(before);
    } finally {
      server.stop();
    }
  }, 60_000);

  /** Peak RSS (MB) of exit-script's submit loop in `mode` (a child process, against a discarding server). */
  async function peakRss(mode: string, records: number, dir: string): Promise<number> {
    const table = `main.default.${dir}`;
    const server = startLocalServer({ tables: [table], discard: true, dataDir: join(f.server.dataDir, dir) });
    try {
      const p = Bun.spawn([process.execPath, script, server.url, table, String(records), mode], { stdout: "pipe", stderr: "inherit" });
      expect(await p.exited).toBe(0);
      const mb = Number(/peak-rss-mb (\d+)/.exec(await new Response(p.stdout).text())?.[1]);
      expect(mb).toBeGreaterThan(0);
      return mb;
    } finally {
      server.stop();
    }
  }

  test("a process submitting 1,000,000 distinct 2 KiB records stays within a bounded peak RSS", async () => {
    const mb = await peakRss("memory", 1_000_000, "mem2k");
    console.log(`1M x 2 KiB submits, maxInflightBytes 16 MiB: peak RSS ${mb} MB`);
    expect(mb).toBeLessThan(600); // 2 GB of records went through
  }, 120_000);

  test("submits of 64 KiB arrays with 256 MiB in flight: buffers released by Rust do not pile up waiting for the collector", async () => {
    const mb = await peakRss("memory-64k", 40_000, "mem64k");
    console.log(`40,000 x 64 KiB submits, maxInflightBytes 256 MiB: peak RSS ${mb} MB`);
    // 2.6 GB of records went through; in flight at most 256 MiB, and forgotten buffers wait for
    // the collector only until the resident size grew by GC_AFTER (128 MiB).
    expect(mb).toBeLessThan(700);
  }, 120_000);

  test("submit blocks for capacity at most submitTimeoutMs, then throws TIMEOUT", async () => {
    const table = "main.default.submit_timeout";
    await f.server.addTable(table);
    await f.server.addFault({ table, withholdAcks: true });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, maxInflightRecords: 10, submitTimeoutMs: 300, flushTimeoutMs: 300 });
    for (let i = 0; i < 10; i++) s.submit({ i });
    let err: unknown;
    try {
      s.submit({ i: 10 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZerobusError);
    expect((err as ZerobusError).code).toBe("TIMEOUT");
    expect((err as ZerobusError).message).toContain("submitTimeoutMs");
    expect(s.lastOffset).toBe(9); // the record that timed out was not queued
    await s.close().catch(() => {});
    await f.server.clearFaults();
  });
});
