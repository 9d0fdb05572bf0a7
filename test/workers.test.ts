// Workers: each JS realm has its own release sink and waker, so one realm never frees another's
// pinned buffers, and every Worker's records arrive intact through reconnects and GC.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fixture } from "./helpers";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

test("several Workers with reconnects and GC: every record stored once and intact, nothing held after close", async () => {
  const workers = 3;
  const n = 3000;
  const tables = Array.from({ length: workers }, (_, w) => `main.default.worker${w}`);
  for (const t of tables) {
    await f.server.addTable(t);
    await f.server.addFault({ table: t, dropAfterRecords: 1000, ackDelayMs: 100, times: 2 });
  }
  const results = await Promise.all(
    tables.map(
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
  for (const [id, r] of results.entries()) {
    expect(r.ok).toBe(true);
    expect(r.heldInFlight).toBeGreaterThan(0); // its records were pinned, not copied
    expect(r.heldAfter).toBe(0);
    expect(r.streams).toBeGreaterThanOrEqual(2); // reconnected at least once
    const rows = f.server.records<{ w: number; i: number; pad: string }>(tables[id]!);
    expect(rows.length).toBe(n);
    expect(rows.every((row, i) => row.w === id && row.i === i && row.pad === String(id).repeat(1500))).toBe(true);
  }
}, 60_000);
