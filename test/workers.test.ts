// Workers: each JS realm has its own release sink and waker, so no realm frees another's pinned
// buffers or misses its progress. Workers copy their records (a terminated Worker takes its heap
// with it); the main thread pins large ones. All through reconnects and GC.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fixture, FAST } from "./helpers";
import { heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

test("several Workers and the main thread with reconnects and GC: every record stored once and intact, nothing held after close", async () => {
  const workers = 3;
  const n = 3000;
  const tables = Array.from({ length: workers + 1 }, (_, w) => `main.default.worker${w}`);
  for (const t of tables) {
    await f.server.addTable(t);
    await f.server.addFault({ table: t, dropAfterRecords: 1000, ackDelayMs: 100, times: 2 });
  }
  const results = Promise.all(
    tables.slice(0, workers).map(
      (table, id) =>
        new Promise<any>((resolve, reject) => {
          const w = new Worker(new URL("./fixtures/worker-ingest.ts", import.meta.url).href);
          w.onmessage = (e) => {
            resolve(e.data);
            w.terminate();
          };
          w.onerror = (e) => reject(e);
          w.postMessage({ url: f.server.url, table, n, id });
        }),
    ),
  );
  // Meanwhile the main thread pins its own large records.
  const mainTable = tables[workers]!;
  const before = heldCount();
  const s = await f.sdk.createStream({ table: mainTable, recordType: "json", ...FAST, zeroCopy: true });
  const enc = new TextEncoder();
  const acks: Promise<number>[] = [];
  for (let i = 0; i < n; i++) {
    const r = enc.encode(JSON.stringify({ w: workers, i, pad: "m".repeat(1500) }));
    acks.push(s.ingest(r));
    if (i % 500 === 0) Bun.gc(false);
  }
  expect(heldCount()).toBeGreaterThan(before);
  await Promise.all(acks);
  expect(s.streamsOpened).toBeGreaterThanOrEqual(2);
  await s.close();
  expect(heldCount()).toBe(before);

  for (const [id, r] of (await results).entries()) {
    expect(r.ok).toBe(true);
    expect(r.heldInFlight).toBe(0); // copied, never pinned, in a Worker
    expect(r.heldAfter).toBe(0);
    expect(r.streams).toBeGreaterThanOrEqual(2); // reconnected at least once
  }
  for (const [id, table] of tables.entries()) {
    const rows = f.server.records<{ w: number; i: number; pad: string }>(table);
    expect(rows.length).toBe(n);
    const pad = id === workers ? "m".repeat(1500) : String(id).repeat(1500);
    expect(rows.every((row, i) => row.w === id && row.i === i && row.pad === pad)).toBe(true);
  }
}, 60_000);
