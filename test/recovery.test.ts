import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fixture, FAST, TABLE } from "./helpers";
import { ZerobusError } from "../src/index";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

/** Ingests `n` records (in batches of `batch` when given) and returns the table's rows after close. */
async function run(table: string, n: number, opts: Record<string, unknown> = {}, batch = 0) {
  await f.server.addTable(table);
  const { waitForStreams: _, ...streamOpts } = opts;
  const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, ...streamOpts });
  const acks: Promise<number>[] = [];
  if (batch) {
    for (let i = 0; i < n; i += batch) {
      acks.push(s.ingestBatch(Array.from({ length: Math.min(batch, n - i) }, (_, j) => ({ i: i + j }))));
    }
  } else {
    for (let i = 0; i < n; i++) acks.push(s.ingest({ i }));
  }
  const offsets = await Promise.all(acks);
  expect(offsets).toEqual(acks.map((_, k) => k));
  // A handover after CloseStreamSignal may still be opening the next stream: give it a moment.
  for (let t = 0; t < 100 && opts.waitForStreams && s.streamsOpened < (opts.waitForStreams as number); t++) await Bun.sleep(20);
  const opened = s.streamsOpened;
  await s.close();
  return { rows: f.server.records(table), opened };
}

function expectExactlyOnce(rows: { i: number }[], n: number) {
  expect(rows.length).toBe(n);
  expect(rows.map((r) => r.i)).toEqual(Array.from({ length: n }, (_, i) => i));
}

describe("recovery: replay without loss or duplicates", () => {
  test("stream dropped mid-way", async () => {
    await f.server.addFault({ table: "main.default.r_drop", dropAfterRecords: 3000 });
    const { rows, opened } = await run("main.default.r_drop", 10_000);
    expect(opened).toBe(2);
    expectExactlyOnce(rows as any, 10_000);
  });

  test("byte-array records (small and large, alone and in batches) are replayed intact after a drop", async () => {
    const table = "main.default.r_bytes_replay";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 1500, ackDelayMs: 200 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
    const enc = new TextEncoder();
    const rec = (i: number) => enc.encode(JSON.stringify({ i, pad: i % 10 === 0 ? "L".repeat(1500) : "s" }));
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 2000; i += 4) {
      acks.push(s.ingest(rec(i)), s.ingest(rec(i + 1)), s.ingestBatch([rec(i + 2), rec(i + 3)]));
    }
    await Promise.all(acks);
    expect(s.streamsOpened).toBe(2);
    await s.close();
    const rows = f.server.records<{ i: number; pad: string }>(table);
    expect(rows.map((r) => r.i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(rows.every((r) => r.pad === (r.i % 10 === 0 ? "L".repeat(1500) : "s"))).toBe(true);
  });

  test("stream dropped twice, with batches", async () => {
    await f.server.addFault({ table: "main.default.r_drop2", dropAfterRecords: 2500, times: 2 });
    const { rows, opened } = await run("main.default.r_drop2", 10_000, {}, 100);
    expect(opened).toBe(3);
    expectExactlyOnce(rows as any, 10_000);
  });

  test("CloseStreamSignal moves to a new stream", async () => {
    await f.server.addFault({ table: "main.default.r_close", closeSignalAfterRecords: { records: 1000, durationMs: 200 } });
    const { rows, opened } = await run("main.default.r_close", 5000, { waitForStreams: 2 });
    expect(opened).toBeGreaterThanOrEqual(2);
    expectExactlyOnce(rows as any, 5000);
  });

  test("withheld acks trip the ack timeout and the records are replayed", async () => {
    await f.server.addFault({ table: "main.default.r_withhold", withholdAcks: true });
    const { rows, opened } = await run("main.default.r_withhold", 500, { serverLackOfAckTimeoutMs: 1000 });
    expect(opened).toBe(2);
    expectExactlyOnce(rows as any, 500);
  });

  test("retryable server error (INTERNAL) after some records", async () => {
    await f.server.addFault({ table: "main.default.r_internal", failAfterRecords: { records: 100, code: "INTERNAL", message: "boom" } });
    const { rows, opened } = await run("main.default.r_internal", 1000);
    expect(opened).toBe(2);
    expectExactlyOnce(rows as any, 1000);
  });

  test("stream creation failing with UNAVAILABLE is retried", async () => {
    await f.server.addFault({ table: "main.default.r_create", failCreate: { code: "UNAVAILABLE", message: "try later" }, times: 2 });
    const { rows, opened } = await run("main.default.r_create", 100);
    expect(opened).toBe(1);
    expectExactlyOnce(rows as any, 100);
  });

  test("delayed acks with a small in-flight limit: backpressure keeps order", async () => {
    await f.server.addFault({ table: "main.default.r_slow", ackDelayMs: 20, times: 1 });
    const { rows } = await run("main.default.r_slow", 2000, { maxInflightRecords: 50 });
    expectExactlyOnce(rows as any, 2000);
  });

  test("byte limit: large records wait for acks (maxInflightBytes) and all land", async () => {
    const table = "main.default.r_bytes";
    await f.server.addTable(table);
    await f.server.addFault({ table, ackDelayMs: 5 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, maxInflightBytes: 250_000 });
    const big = "y".repeat(100_000);
    const acks = Array.from({ length: 20 }, (_, i) => s.ingest({ i, big }));
    expect(await Promise.all(acks)).toEqual(acks.map((_, i) => i));
    await s.close();
    expectExactlyOnce(f.server.records(table) as any, 20);
  });

  test("submit blocks for capacity instead of failing", async () => {
    const table = "main.default.r_submit";
    await f.server.addTable(table);
    await f.server.addFault({ table, ackDelayMs: 10 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, maxInflightRecords: 10 });
    for (let i = 0; i < 300; i++) s.submit({ i });
    await s.close();
    expectExactlyOnce(f.server.records(table) as any, 300);
  });
});

describe("failures that recovery must not hide", () => {
  test("non-retryable error mid-stream fails pending records; acked ones stay", async () => {
    const table = "main.default.f_invalid";
    await f.server.addTable(table);
    await f.server.addFault({ table, failAfterRecords: { records: 10, code: "INVALID_ARGUMENT", message: "rejected" } });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
    const acks = Array.from({ length: 50 }, (_, i) => s.ingest({ i }).then(() => true, (e) => e));
    const results = await Promise.all(acks);
    const okCount = results.filter((r) => r === true).length;
    expect(okCount).toBe(10);
    const err = results[49] as ZerobusError;
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("rejected");
    expect(s.state).toBe("failed");
    expectExactlyOnce(f.server.records(table) as any, 10);
    await s.close().catch(() => {});
  });

  test("flush gives up after flushTimeoutMs", async () => {
    const table = "main.default.f_flush";
    await f.server.addTable(table);
    await f.server.addFault({ table, withholdAcks: true });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, flushTimeoutMs: 300, serverLackOfAckTimeoutMs: 1000 });
    s.submit({ i: 0 });
    const err = await s.flush().catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain("flush timed out after 300 ms");
    // A flush timeout loses nothing: after the ack timeout the stream recovers and the record lands.
    await s.waitForOffset(0);
    await s.close();
    expectExactlyOnce(f.server.records(table) as any, 1);
  });

  test("close fails (and says why) when records cannot be made durable in time", async () => {
    const table = "main.default.f_close";
    await f.server.addTable(table);
    await f.server.addFault({ table, withholdAcks: true });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, flushTimeoutMs: 300 });
    const ack = s.ingest({ i: 0 });
    const err = await s.close().catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.message).toContain("close: flush timed out");
    await expect(ack).rejects.toThrow("flush timed out");
    expect(s.state).toBe("failed");
  });

  test("recovery gives up after recoveryRetries attempts", async () => {
    const table = "main.default.f_giveup";
    await f.server.addTable(table);
    await f.server.addFault({ table, failCreate: { code: "UNAVAILABLE", message: "down" }, times: 10 });
    const err = await f.sdk.createStream({ table, recordType: "json", ...FAST, recoveryRetries: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("TRANSPORT");
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("gave up after 3 attempts");
    await f.server.clearFaults();
  });

  test("recovery disabled: a dropped stream fails its pending records", async () => {
    const table = "main.default.f_norecovery";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 10 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, recovery: false });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => s.ingest({ i }).then(() => true, (e) => e)));
    expect(results.some((r) => r instanceof ZerobusError)).toBe(true);
    expect(s.state).toBe("failed");
    const ok = results.filter((r) => r === true).length;
    expect(f.server.records(table).length).toBe(ok);
    await s.close().catch(() => {});
  });

  test("unreachable endpoint fails stream creation with a transport error", async () => {
    const { ZerobusSdk } = await import("../src/index");
    const sdk = new ZerobusSdk({ endpoint: "http://127.0.0.1:1" });
    const err = await sdk
      .createStream({ table: "a.b.c", recordType: "json", ...FAST, recoveryRetries: 1, recoveryBackoffMs: 10 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("TRANSPORT");
    sdk.close();
  });
});

describe("streamPausedMaxWaitTimeMs", () => {
  // The first stream announces it will close in 20 s and acknowledges only after 5 s.
  const fault = { ackDelayMs: 5000, closeSignalAfterRecords: { records: 1, durationMs: 20_000 } };
  const opts = { recordType: "json" as const, ...FAST, serverLackOfAckTimeoutMs: 20_000, flushTimeoutMs: 3000 };

  test("0 moves to a new stream at once after CloseStreamSignal and replays what was not acknowledged", async () => {
    const f2 = fixture();
    try {
      await f2.server.addFault(fault);
      const s = await f2.sdk.createStream({ table: TABLE, ...opts, streamPausedMaxWaitTimeMs: 0 });
      for (let i = 0; i < 10; i++) s.submit({ i });
      await s.flush();
      expect(s.streamsOpened).toBe(2);
      await s.close();
      expect(new Set(f2.server.records<{ i: number }>(TABLE).map((r) => r.i)).size).toBe(10);
    } finally {
      f2.close();
    }
  });

  test("by default the client keeps waiting on the closing stream for the announced duration", async () => {
    const f2 = fixture();
    try {
      await f2.server.addFault(fault);
      const s = await f2.sdk.createStream({ table: TABLE, ...opts });
      for (let i = 0; i < 10; i++) s.submit({ i });
      const err = await s.flush().catch((e) => e);
      expect(err.code).toBe("TIMEOUT");
      expect(s.streamsOpened).toBe(1);
      await s.close().catch(() => {});
    } finally {
      f2.close();
    }
  }, 30_000);

  test("out of range is refused", async () => {
    const f2 = fixture();
    try {
      for (const bad of [-1, 1.5, 2 ** 31]) {
        const err = await f2.sdk.createStream({ table: TABLE, ...opts, streamPausedMaxWaitTimeMs: bad }).catch((e) => e);
        expect(err.code).toBe("INVALID_ARGUMENT");
        expect(err.message).toContain("streamPausedMaxWaitTimeMs");
      }
    } finally {
      f2.close();
    }
  });
});
