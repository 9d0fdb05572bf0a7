// Single ingest() calls of small records made in one tick are queued by one native call (a run).
// What callers see must not change: offsets in call order across every way of ingesting, each
// record's own error, the in-flight limits, nothing left behind by close or flushSync.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fixture, FAST } from "./helpers";
import { InvalidArgumentError, type ZerobusStream } from "../src/index";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function jsonStream(table: string, extra = {}): Promise<ZerobusStream> {
  await f.server.addTable(table);
  return f.sdk.createStream({ table, recordType: "json", ...FAST, ...extra });
}
const bytes = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

describe("ingest() calls gathered in one tick", () => {
  test("offsets follow call order across ingest, submit, ingestBatch and large records", async () => {
    const table = "main.default.run_order";
    const s = await jsonStream(table);
    const big = "x".repeat(20_000); // too large for a run: queued on its own
    const got: (number | Promise<number>)[] = [];
    got.push(s.ingest({ i: 0 }));
    got.push(s.submit('{"i":1}'));
    got.push(s.ingest(bytes({ i: 2 })));
    expect(s.lastOffset).toBe(2); // reading offsets sends the run first
    got.push(s.ingest({ i: 3 }));
    got.push(s.ingestBatch([{ i: 4 }, { i: 5 }]));
    got.push(s.ingest({ i: 6 }));
    got.push(s.ingest({ i: 7, big }));
    got.push(s.ingest('{"i":8}'));
    got.push(s.submitBatch([{ i: 9 }]));
    got.push(s.ingest({ i: 10 }));
    expect(await Promise.all(got)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await s.close();
    expect(f.server.records(table).map((r) => r.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test("a refused record rejects alone; the records around it land", async () => {
    const table = "main.default.run_refused";
    const s = await jsonStream(table);
    const results = await Promise.allSettled([
      s.ingest({ i: 0 }),
      s.ingest("[1, 2]"), // JSON, but not an object
      s.ingest({ i: 1 }),
      s.ingest(new Uint8Array([0xff, 0xfe])), // not UTF-8
      s.ingest({ i: 2 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect(results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([0, 1, 2]);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(InvalidArgumentError);
    expect(String((results[1] as PromiseRejectedResult).reason.message)).toContain("must be one JSON object");
    await s.close();
    expect(f.server.records(table).map((r) => r.i)).toEqual([0, 1, 2]);
  });

  test("the in-flight limit holds for a run: the rest waits for acknowledgements, in order", async () => {
    const table = "main.default.run_limit";
    const s = await jsonStream(table, { maxInflightRecords: 8 });
    const n = 1000;
    const all: Promise<number>[] = [];
    for (let i = 0; i < n; i++) all.push(s.ingest({ i }));
    await Promise.resolve(); // the run is sent at the end of the tick
    // One at a time once the run was refused as a whole: the limit applies (an idle stream
    // would otherwise take the whole run as one lot), the rest waits in order.
    const st = s.stats();
    expect(st.recordsInflight).toBeLessThanOrEqual(8);
    expect(st.recordsIngested).toBeLessThan(n);
    expect(await Promise.all(all)).toEqual(Array.from({ length: n }, (_, i) => i));
    await s.close();
    expect(f.server.records(table).map((r) => r.i)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  test("a full run never overtakes records already waiting for capacity", async () => {
    // Over 4,096 records in one tick against a limit of 8: the first run is refused and its
    // records wait in order; every later record (from the next run on) must wait behind them,
    // also when acknowledgements free capacity meanwhile.
    const table = "main.default.run_behind";
    const s = await jsonStream(table, { maxInflightRecords: 8 });
    const n = 10_000;
    const all: Promise<number>[] = [];
    for (let i = 0; i < n; i++) {
      all.push(s.ingest({ i }));
      // Still in the same tick: the thread sleeps while the server acknowledges what was sent,
      // so the native side has capacity again while records wait in the queue.
      if (i === 4096) Bun.sleepSync(300);
    }
    const want = Array.from({ length: n }, (_, i) => i);
    expect(await Promise.all(all)).toEqual(want);
    await s.close();
    expect(f.server.records(table).map((r) => r.i)).toEqual(want);
  });

  test("a stream failing with records in a run: every promise settles, none hangs", async () => {
    const table = "main.default.run_failed";
    await f.server.addFault({ table, failAfterRecords: { records: 3, code: "INVALID_ARGUMENT", message: "injected fatal" } });
    const s = await jsonStream(table);
    const first = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => s.ingest({ i })));
    expect(first.some((r) => r.status === "rejected")).toBe(true);
    expect(s.state).toBe("failed");
    // On the failed stream, a new run is refused record by record with the stream's error.
    const later = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => s.ingest({ i: 50 + i })));
    expect(later.every((r) => r.status === "rejected" && /stream failed/.test(String(r.reason?.message)))).toBe(true);
    await s.close().catch(() => {});
  });

  test("more records than one run holds in a single tick: several runs, one order", async () => {
    const table = "main.default.run_full";
    const s = await jsonStream(table);
    const n = 20_000; // over 4,096 records and over 256 KiB of text
    const pad = "p".repeat(40);
    const all: Promise<number>[] = [];
    for (let i = 0; i < n; i++) all.push(s.ingest(i % 3 === 0 ? { i, pad } : i % 3 === 1 ? `{"i":${i},"pad":"${pad}"}` : bytes({ i, pad })));
    expect(await Promise.all(all)).toEqual(Array.from({ length: n }, (_, i) => i));
    await s.close();
    const rows = f.server.records(table);
    expect(rows.length).toBe(n);
    expect(rows.every((r, i) => r.i === i && r.pad === pad)).toBe(true);
  });

  test("close and flushSync right after ingest() send the run first", async () => {
    const table = "main.default.run_close";
    const s = await jsonStream(table);
    const a = s.ingest({ i: 0 });
    const b = s.ingest({ i: 1 });
    await s.close();
    expect([await a, await b]).toEqual([0, 1]);
    const t = await jsonStream(table);
    const c = t.ingest({ i: 2 });
    expect(t.flushSync(5000)).toBe(0);
    expect(await c).toBe(0);
    await t.close();
    expect(f.server.records(table).map((r) => r.i)).toEqual([0, 1, 2]);
  });

  test("ingest() while closing rejects; what was ingested before close lands", async () => {
    const table = "main.default.run_closed";
    const s = await jsonStream(table);
    const sent = s.ingest({ i: 0 });
    const closing = s.close();
    const late = s.ingest({ i: 1 }).catch((e) => e);
    await closing;
    expect(await sent).toBe(0);
    expect(await late).toMatchObject({ code: "STREAM_CLOSED" });
    expect(f.server.records(table).map((r) => r.i)).toEqual([0]);
  });
});
