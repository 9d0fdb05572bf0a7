// What the caller does to an array after ingesting it cannot reach the stored record: reuse at
// capacity (records waiting in the JavaScript queue), detaching (transfer(), postMessage with a
// transfer list, BYOB reads), resizing; and what zeroCopy changes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { fixture, freshTable, FAST } from "./helpers";
import { EventSchema } from "./schema";
import { InvalidArgumentError } from "../src/index";
import { drainReleased, heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

const table = () => freshTable(f.server, "buffers");

/** Garbage and full collections, so freed memory is reused (and overwritten) before a replay. */
function churn(rounds = 6) {
  for (let k = 0; k < rounds; k++) {
    let junk: Uint8Array[] = Array.from({ length: 200 }, (_, j) => new Uint8Array(70_000).fill(0x5a ^ j));
    Bun.gc(true);
    junk = [];
  }
}

const enc = new TextEncoder();
const json = (i: number, pad: number) => enc.encode(JSON.stringify({ i, pad: "x".repeat(pad) }));

describe("arrays reused at capacity are stored as they were at the call", () => {
  for (const [label, size] of [["small (copied) arrays", 60], ["2 KiB arrays", 2000]] as const) {
    test(`ingest() of ${label}, overwritten right after the call`, async () => {
      const t = await table();
      await f.server.addFault({ table: t, ackDelayMs: 50 });
      const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, maxInflightRecords: 10 });
      const acks: Promise<number>[] = [];
      for (let i = 0; i < 200; i++) {
        const r = json(i, size);
        acks.push(s.ingest(r));
        r.fill(0x20); // the caller reuses its array
        r[0] = 0x31; // "1"
        if (i % 20 === 19) await Bun.sleep(1); // later calls find records waiting for capacity
      }
      await Promise.all(acks);
      await s.close();
      expect(f.server.records<{ i: number }>(t).map((r) => r.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });
  }

  test("ingestBatch() of small arrays, overwritten right after the call", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 50 });
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, maxInflightRecords: 10 });
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 200; i += 5) {
      const batch = Array.from({ length: 5 }, (_, k) => json(i + k, 40));
      acks.push(s.ingestBatch(batch));
      for (const r of batch) r.fill(0x20), (r[0] = 0x31);
      if (i % 20 === 15) await Bun.sleep(1);
    }
    await Promise.all(acks);
    await s.close();
    expect(f.server.records<{ i: number }>(t).map((r) => r.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  test("Node Buffers (whose slice() shares memory) refilled right after ingest() at capacity, also in batches", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 50 });
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, maxInflightRecords: 2 });
    const buf = Buffer.alloc(3000);
    const fillWith = (i: number) => {
      buf.fill(0x20);
      buf.write(JSON.stringify({ i }));
    };
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 40; i += 2) {
      fillWith(i);
      acks.push(s.ingest(buf));
      fillWith(i + 1);
      acks.push(s.ingestBatch([buf.subarray(0, 100)]));
      if (i % 10 === 8) await Bun.sleep(1);
    }
    fillWith(999);
    await Promise.all(acks);
    await s.close();
    expect(f.server.records<{ i: number }>(t).map((r) => r.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  test("in a Worker, 2 KiB arrays overwritten right after ingest() at capacity", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 50 });
    const w = new Worker(new URL("./fixtures/worker-reuse.ts", import.meta.url).href);
    try {
      const r = await new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(e);
        w.postMessage({ url: f.server.url, table: t, n: 100 });
      });
      expect(r).toEqual({ ok: true });
    } finally {
      w.terminate();
    }
    expect(f.server.records<{ i: number }>(t).map((r) => r.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe("detached and resized buffers", () => {
  /** Ingests 70 KB records, lets `detach` take each array's buffer, then forces a replay from the SDK's memory. */
  async function detachThenReplay(detach: (bytes: Uint8Array) => Promise<void> | void, opts: { zeroCopy?: boolean; proto?: boolean; resizable?: boolean } = {}) {
    const t = await table();
    await f.server.addFault({ table: t, dropAfterRecords: 15, ackDelayMs: 300 });
    const s = opts.proto
      ? await f.sdk.createStream({ table: t, schema: EventSchema, ...FAST, zeroCopy: opts.zeroCopy })
      : await f.sdk.createStream({ table: t, recordType: "json", ...FAST, zeroCopy: opts.zeroCopy });
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 20; i++) {
      let bytes = opts.proto
        ? toBinary(EventSchema, create(EventSchema, { id: BigInt(i), name: "n".repeat(70_000) }))
        : json(i, 70_000);
      if (opts.resizable) {
        const r = new Uint8Array(new ArrayBuffer(bytes.byteLength, { maxByteLength: 1 << 20 }));
        r.set(bytes);
        bytes = r;
      }
      acks.push(s.ingest(bytes));
      await detach(bytes);
    }
    churn();
    await Promise.all(acks);
    expect(s.streamsOpened).toBe(2);
    await s.close();
    if (opts.proto) {
      const rows = f.server.records<{ id: string | number; name: string }>(t);
      expect(rows.map((r) => [Number(r.id), r.name.length, r.name === "n".repeat(70_000)])).toEqual(
        Array.from({ length: 20 }, (_, i) => [i, 70_000, true]),
      );
    } else {
      const rows = f.server.records<{ i: number; pad: string }>(t);
      expect(rows.map((r) => [r.i, r.pad === "x".repeat(70_000)])).toEqual(Array.from({ length: 20 }, (_, i) => [i, true]));
    }
  }

  test("ArrayBuffer.prototype.transfer() right after ingest, the new buffer dropped", async () => {
    await detachThenReplay((b) => {
      (b.buffer as ArrayBuffer).transfer().constructor; // the new owner is dropped at once
    });
  });

  test("transfer() of protobuf records (where garbage could decode)", async () => {
    await detachThenReplay((b) => void (b.buffer as ArrayBuffer).transfer(), { proto: true });
  });

  test("postMessage with a transfer list right after ingest", async () => {
    await detachThenReplay(async (b) => {
      const { port1, port2 } = new MessageChannel();
      const got = new Promise<unknown>((resolve) => (port2.onmessage = (e) => resolve(e.data)));
      port1.postMessage(b.buffer, [b.buffer as ArrayBuffer]);
      await got;
      port1.close();
      port2.close();
    });
  });

  test("a BYOB read into the ingested array's buffer", async () => {
    await detachThenReplay(async (b) => {
      const rs = new ReadableStream({
        type: "bytes",
        pull(c) {
          const v = c.byobRequest?.view as Uint8Array | undefined;
          if (v) {
            v.fill(0x7b, 0, 16);
            c.byobRequest!.respond(16);
          }
        },
      });
      const reader = rs.getReader({ mode: "byob" });
      await reader.read(new Uint8Array(b.buffer as ArrayBuffer));
      reader.releaseLock();
      expect(b.byteLength).toBe(0); // detached
    });
  });

  test("with zeroCopy, a resizable buffer shrunk after ingest does not reach the record", async () => {
    await detachThenReplay(
      (b) => {
        (b.buffer as ArrayBuffer & { resize(n: number): void }).resize(0);
      },
      { zeroCopy: true, resizable: true },
    );
  });

  test("with zeroCopy, a Buffer over a resizable ArrayBuffer is copied too", async () => {
    const t = await table();
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, zeroCopy: true });
    const rab = new ArrayBuffer(4096, { maxByteLength: 8192 });
    const b = Buffer.from(rab, 0, 4096).fill(0x20);
    b.write(JSON.stringify({ v: "A" }));
    const ack = s.ingest(b);
    b.fill(0x20);
    b.write(JSON.stringify({ v: "Z" }));
    (rab as ArrayBuffer & { resize(n: number): void }).resize(0);
    await ack;
    await s.close();
    expect(f.server.records(t)).toEqual([{ v: "A" }]);
  });

  test("an array whose buffer is already detached is refused, the stream still usable", async () => {
    const t = await table();
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST });
    const b = json(1, 10);
    void (b.buffer as ArrayBuffer).transfer();
    await expect(s.ingest(b)).rejects.toThrow(InvalidArgumentError);
    expect(() => s.submit(b)).toThrow(/detached/);
    expect(await s.ingest(json(2, 10))).toBe(0);
    await s.close();
  });
});

describe("what is kept", () => {
  test("by default nothing of the caller's is held: large arrays are copied during the call", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 100 });
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST });
    drainReleased();
    const before = heldCount();
    const acks = Array.from({ length: 50 }, (_, i) => s.ingest(json(i, 5000)));
    expect(heldCount()).toBe(before);
    await Promise.all(acks);
    await s.close();
  });

  test("zeroCopy holds large arrays until acknowledged (and copies small ones)", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 100 });
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, zeroCopy: true });
    drainReleased();
    const before = heldCount();
    const small = Array.from({ length: 50 }, (_, i) => s.ingest(json(i, 100)));
    expect(heldCount()).toBe(before);
    const large = Array.from({ length: 50 }, (_, i) => s.ingest(json(50 + i, 5000)));
    expect(heldCount()).toBe(before + 50);
    await Promise.all([...small, ...large]);
    await s.close();
    for (let i = 0; i < 50 && heldCount() > before; i++) {
      await Bun.sleep(10);
      drainReleased();
    }
    expect(heldCount()).toBe(before);
  });

  test("zeroCopy reads a batch in place only if every record may be: a mixed batch is copied", async () => {
    const t = await table();
    await f.server.addFault({ table: t, ackDelayMs: 100 });
    const s = await f.sdk.createStream({ table: t, recordType: "json", ...FAST, zeroCopy: true });
    drainReleased();
    const before = heldCount();
    const big = json(0, 5000);
    const ack = s.ingestBatch([big, json(1, 10)]);
    expect(heldCount()).toBe(before); // nothing held: copied during the call
    big.fill(0x20);
    await ack;
    await s.close();
    expect(f.server.records<{ i: number }>(t).map((r) => r.i)).toEqual([0, 1]);
  });

  test("zeroCopy must be a boolean", async () => {
    expect(() => f.sdk.openStream({ table: "main.default.x", recordType: "json", zeroCopy: 1 as unknown as boolean })).toThrow(
      /zeroCopy must be a boolean/,
    );
  });
});
