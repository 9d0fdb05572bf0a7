import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  Bool, Field, Float64, Int32, Int64, Schema, Table, TimestampMillisecond, Utf8,
  tableFromArrays, tableToIPC, vectorFromArray, makeTable, RecordBatch,
} from "apache-arrow";
import { fixture, FAST } from "./helpers";
import { InvalidArgumentError, ZerobusError } from "../src/index";
import { lib } from "../src/native";
import { heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

function events(from: number, n: number): Table {
  return tableFromArrays({
    id: BigInt64Array.from({ length: n }, (_, i) => BigInt(from + i)),
    name: Array.from({ length: n }, (_, i) => `e${from + i}`), // dictionary-encoded by apache-arrow
    score: Float64Array.from({ length: n }, (_, i) => (from + i) / 2),
  });
}

async function stream(table: string, schema: Schema, extra: Record<string, unknown> = {}) {
  await f.server.addTable(table);
  return f.sdk.createArrowStream({ table, schema, ...FAST, ...extra });
}

const ipcPasses = () => {
  const out = new BigUint64Array(2);
  lib.zerobus_ipc_passes(out);
  return [Number(out[0]), Number(out[1])];
};

describe("Arrow streams", () => {
  test("tables, record batches and raw IPC bytes round trip; offsets per record batch", async () => {
    const table = "main.default.arrow_rt";
    const s = await stream(table, events(0, 1).schema);
    const a = await s.ingestBatch(events(0, 3));
    const b = await s.ingestBatch(events(3, 2).batches[0]!);
    const c = await s.ingestBatch(tableToIPC(events(5, 4), "stream"));
    expect([a, b, c]).toEqual([0, 1, 2]);
    await s.close();
    const rows = f.server.records(table);
    expect(rows.map((r) => Number(r.id))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rows[8]).toMatchObject({ name: "e8", score: 4 });
    expect(heldCount()).toBe(0);
  });

  test("many column types, with nulls", async () => {
    const table = "main.default.arrow_types";
    const t = makeTable({
      i32: vectorFromArray([1, null, 3], new Int32()),
      i64: vectorFromArray([1n, 2n, null], new Int64()),
      f64: vectorFromArray([0.5, null, -1.25], new Float64()),
      s: vectorFromArray(["a", null, "ç"], new Utf8()),
      b: vectorFromArray([true, false, null], new Bool()),
      ts: vectorFromArray([0, 1_700_000_000_000, null], new TimestampMillisecond()),
    } as any);
    const s = await stream(table, t.schema);
    await s.ingestBatch(t);
    await s.close();
    const rows = f.server.records(table);
    expect(rows.length).toBe(3);
    expect(rows[0]).toMatchObject({ i32: 1, i64: 1, f64: 0.5, s: "a", b: true });
    expect(rows[1]!.i32 ?? null).toBeNull();
    expect(rows[2]).toMatchObject({ i32: 3, f64: -1.25, s: "ç" });
  });

  test("IPC bytes are forwarded without any IPC decode or encode pass (no dictionaries, or keepDictionaries)", async () => {
    const plain = tableFromArrays({ id: Int32Array.from({ length: 1000 }, (_, i) => i), v: Float64Array.from({ length: 1000 }, (_, i) => i / 2) });
    for (const [table, t, extra] of [
      ["main.default.arrow_zero", plain, {}],
      ["main.default.arrow_zero_kept", events(0, 1000), { keepDictionaries: true }],
    ] as const) {
      const ipc = tableToIPC(t, "stream");
      const s = await stream(table, t.schema, extra);
      const before = ipcPasses();
      for (let i = 0; i < 20; i++) s.submitBatch(ipc);
      expect(ipcPasses()).toEqual(before);
      await s.close();
      expect(f.server.records(table).length).toBe(20_000);
    }
  });

  test("dictionary columns are expanded to their value type by default (one decode and encode per call)", async () => {
    const table = "main.default.arrow_hydrated";
    const dictionaries = async () => (await f.server.stats()).dictionaryBatches as number;
    const before = await dictionaries();
    const s = await stream(table, events(0, 1).schema);
    const passes = ipcPasses();
    await s.ingestBatch(tableToIPC(events(0, 10), "stream"));
    await s.ingestBatch(events(10, 10)); // a Table: written to IPC in JS, then expanded
    expect(ipcPasses()).toEqual([passes[0]! + 2, passes[1]! + 2]);
    await s.close();
    expect(await dictionaries()).toBe(before); // no dictionary batch reached the server
    const rows = f.server.records<{ id: number; name: string }>(table);
    expect(rows.map((r) => [Number(r.id), r.name])).toEqual(Array.from({ length: 20 }, (_, i) => [i, `e${i}`]));
  });

  test("compression: lz4_frame and zstd batches land as given; a bad value is refused", async () => {
    for (const compression of ["lz4_frame", "zstd"] as const) {
      const table = `main.default.arrow_${compression}`;
      const s = await stream(table, events(0, 1).schema, { compression });
      const passes = ipcPasses();
      await s.ingestBatch(tableToIPC(events(0, 500), "stream"));
      await s.ingestBatch(events(500, 500));
      expect(ipcPasses()).toEqual([passes[0]! + 2, passes[1]! + 2]);
      await s.close();
      const rows = f.server.records<{ id: number; name: string; score: number }>(table);
      expect(rows.map((r) => [Number(r.id), r.name, r.score])).toEqual(Array.from({ length: 1000 }, (_, i) => [i, `e${i}`, i / 2]));
    }
    await f.server.addTable("main.default.arrow_badzip");
    const err = await f.sdk.createArrowStream({ table: "main.default.arrow_badzip", schema: events(0, 1).schema, ...FAST, compression: "gzip" as never }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain('compression must be "lz4_frame", "zstd" or "none"');
  });

  test("several record batches in one buffer take consecutive offsets", async () => {
    const table = "main.default.arrow_multi";
    const ids = (from: number, n: number) => tableFromArrays({ id: Int32Array.from({ length: n }, (_, i) => from + i) });
    const multi = new Table([...ids(0, 4).batches, ...ids(4, 6).batches]);
    expect(multi.batches.length).toBe(2);
    const s = await stream(table, multi.schema);
    const last = await s.ingestBatch(tableToIPC(multi, "stream"));
    expect(last).toBe(multi.batches.length - 1);
    await s.close();
    expect(f.server.records(table).map((r) => Number(r.id))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("schema mismatch is a clear error and the stream stays usable", async () => {
    const table = "main.default.arrow_mismatch";
    const s = await stream(table, events(0, 1).schema);
    const other = tableFromArrays({ x: Int32Array.from([1]) });
    const err = await s.ingestBatch(other).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("schema mismatch");
    await expect(s.ingestBatch(new Uint8Array([1, 2, 3]))).rejects.toThrow(InvalidArgumentError);
    await expect(s.ingestBatch({ not: "arrow" } as any)).rejects.toThrow("apache-arrow Table");
    await s.ingestBatch(events(0, 2));
    await s.close();
    expect(f.server.records(table).length).toBe(2);
  });

  test("recovery replays unacknowledged batches: rows land exactly once", async () => {
    const table = "main.default.arrow_recover";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 2500 });
    const s = await f.sdk.createArrowStream({ table, schema: events(0, 1).schema, ...FAST });
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 100; i++) acks.push(s.ingestBatch(events(i * 100, 100)));
    await Promise.all(acks);
    expect(s.streamsOpened).toBe(2);
    await s.close();
    const ids = f.server.records(table).map((r) => Number(r.id));
    expect(ids).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
  });

  test("durability is by ack_up_to_records: a batch whose rows the server has not counted is replayed", async () => {
    const table = "main.default.arrow_rows_behind";
    await f.server.addTable(table);
    // Each ack's ack_up_to_offset covers the newest batch, its ack_up_to_records not; the rows
    // held back are dropped when that stream ends (they were never durable).
    await f.server.addFault({ table, rowsBehind: true, times: 1 });
    const s = await f.sdk.createArrowStream({ table, schema: events(0, 1).schema, ...FAST, serverLackOfAckTimeoutMs: 1000 });
    for (let i = 0; i < 5; i++) expect(await s.submitBatch(events(i * 10, 10))).toBe(i);
    await s.flush();
    expect(s.streamsOpened).toBe(2); // the uncounted batch went again, on a new stream
    await s.close();
    const ids = f.server.records(table).map((r) => Number(r.id)).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  test("with keepDictionaries, batches sharing one dictionary (sent once per call) land right, also when replayed", async () => {
    const table = "main.default.arrow_shared_dict";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 1500 });
    const names = ["red", "green", "blue", "cyan"];
    const whole = tableFromArrays({
      id: Int32Array.from({ length: 4000 }, (_, i) => i),
      name: Array.from({ length: 4000 }, (_, i) => names[i % 7 % 4]!),
    });
    // One IPC buffer: the schema, the dictionary once, then 40 record batches that use it.
    const parts = Array.from({ length: 40 }, (_, k) => whole.slice(k * 100, k * 100 + 100).batches).flat();
    const ipc = tableToIPC(new Table(parts), "stream");
    const dictionaries = async () => (await f.server.stats()).dictionaryBatches as number;
    const before = await dictionaries();
    const s = await f.sdk.createArrowStream({ table, schema: whole.schema, ...FAST, keepDictionaries: true });
    expect(await s.ingestBatch(ipc)).toBe(39);
    expect(s.streamsOpened).toBe(2);
    await s.close();
    // Once on the first call, once more with the first batch replayed on the second.
    expect((await dictionaries()) - before).toBe(2);
    const rows = f.server.records(table);
    expect(rows.map((r) => Number(r.id))).toEqual(Array.from({ length: 4000 }, (_, i) => i));
    expect(rows.every((r, i) => r.name === names[i % 7 % 4])).toBe(true);
  });

  test("unknown table fails stream creation", async () => {
    const err = await f.sdk.createArrowStream({ table: "main.default.arrow_nope", schema: events(0, 1).schema, ...FAST }).catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("NOT_FOUND");
  });
});

describe("Arrow objects from another copy of apache-arrow", () => {
  test("a Schema or Table from a second copy is refused with a clear error (not a bad IPC message)", async () => {
    // A second copy of the package, as a project with two apache-arrow versions would have.
    const { cpSync, mkdtempSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(import.meta.dir, "..", "node_modules", ".arrow-copy-"));
    try {
      cpSync(join(import.meta.dir, "..", "node_modules", "apache-arrow"), join(dir, "apache-arrow"), { recursive: true });
      const other = await import(join(dir, "apache-arrow", "Arrow.node.mjs"));
      const foreign = other.tableFromArrays({ id: Int32Array.from([1, 2]) });
      expect(foreign.schema instanceof Schema).toBe(true); // apache-arrow's cross-copy instanceof, yet its writer cannot write it
      await f.server.addTable("main.default.arrow_foreign");
      const err = await f.sdk.createArrowStream({ table: "main.default.arrow_foreign", schema: foreign.schema, ...FAST }).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toContain("different copy of apache-arrow");
      const s = await stream("main.default.arrow_foreign", tableFromArrays({ id: Int32Array.from([1]) }).schema);
      const e2 = await s.ingestBatch(foreign).catch((e) => e);
      expect(e2).toBeInstanceOf(InvalidArgumentError);
      expect(e2.message).toContain("different copy of apache-arrow");
      // IPC bytes written by the other copy are fine: they are just bytes.
      expect(await s.ingestBatch(other.tableToIPC(foreign, "stream"))).toBe(0);
      await s.close();
      expect(f.server.records("main.default.arrow_foreign")).toEqual([{ id: 1 }, { id: 2 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
