// Message size limits: the local server refuses FlightData over 4 MiB (its maxMessageBytes) and
// ephemeral requests over maxRecordBytes + 64 KiB, as a real service limits message size. The SDK
// must never send such a message: Arrow batches go as row slices, JSON/proto batches as several
// requests, and what cannot be cut is refused before sending.
import { afterEach, expect, test } from "bun:test";
import { tableFromArrays, tableToIPC, Table } from "apache-arrow";
import { fixture, FAST, TABLE } from "./helpers";
import { lib } from "../src/native";

let f: ReturnType<typeof fixture> | undefined;
afterEach(() => {
  f?.close();
  f = undefined;
});

const passes = () => {
  const out = new BigUint64Array(2);
  lib.zerobus_ipc_passes(out);
  return { encode: Number(out[0]), decode: Number(out[1]) };
};

function bigTable(rows: number, from = 0) {
  const pad = "x".repeat(100);
  return tableFromArrays({
    id: Int32Array.from({ length: rows }, (_, i) => from + i),
    text: Array.from({ length: rows }, (_, i) => `${pad}${from + i}`),
  });
}

test("a 50 MB Arrow record batch lands exactly once, sent as slices under the limit (one decode)", async () => {
  f = fixture();
  const t = bigTable(450_000); // ~50 MB in IPC
  const ipc = tableToIPC(new Table(t.batches.length === 1 ? t.batches : [t.batches[0]!]), "stream");
  const rows = new Table(t.batches.length === 1 ? t.batches : [t.batches[0]!]).numRows;
  expect(ipc.byteLength).toBeGreaterThan(45_000_000);
  const s = await f.sdk.createArrowStream({ table: TABLE, schema: t.schema, ...FAST });
  const before = passes();
  const last = await s.ingestBatch(ipc);
  const after = passes();
  expect(after.decode - before.decode).toBe(1); // the one oversized batch, decoded to be sliced
  expect(last).toBeGreaterThanOrEqual(24); // at least 50 MB / 2 MiB requests
  await s.close();
  const ids = f.server.records<{ id: number }>(TABLE).map((r) => r.id);
  expect(ids.length).toBe(rows);
  expect(ids).toEqual(Array.from({ length: rows }, (_, i) => i));
  const st = s.stats();
  expect(st.recordsAcked).toBe(rows);
}, 120_000);

test("small batches stay zero-copy (no decode); a Table over the limit is sliced before encoding", async () => {
  f = fixture();
  const small = bigTable(1000);
  // Its strings are dictionary columns (tableFromArrays), which are expanded (decoded) unless kept.
  const s = await f.sdk.createArrowStream({ table: TABLE, schema: small.schema, ...FAST, maxMessageBytes: 256 * 1024, keepDictionaries: true });
  const before = passes();
  await s.ingestBatch(tableToIPC(small, "stream"));
  expect(passes().decode - before.decode).toBe(0);
  const last = await s.ingestBatch(bigTable(20_000, 1000)); // ~2.5 MB as a Table
  expect(last).toBeGreaterThan(5);
  await s.close();
  expect(f.server.records(TABLE).length).toBe(21_000);
});

test("an Arrow row bigger than maxMessageBytes is refused before sending; the stream stays usable", async () => {
  f = fixture();
  const huge = tableFromArrays({ id: Int32Array.from([1]), text: ["y".repeat(300_000)] });
  const s = await f.sdk.createArrowStream({ table: TABLE, schema: huge.schema, ...FAST, maxMessageBytes: 64 * 1024 });
  const err = await s.ingestBatch(tableToIPC(huge, "stream")).catch((e) => e);
  expect(err.code).toBe("INVALID_ARGUMENT");
  expect(err.message).toContain("max_message_bytes");
  await s.ingestBatch(tableFromArrays({ id: Int32Array.from([2]), text: ["ok"] }));
  await s.close();
  expect(f.server.records(TABLE)).toEqual([{ id: 2, text: "ok" }]);
});

test("a JSON batch bigger than one message is sent as several requests, every record once and in order", async () => {
  f = fixture({ maxRecordBytes: 1024 * 1024 }); // server: requests up to 1 MiB + 64 KiB
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST, maxRecordBytes: 1024 * 1024 });
  const pad = "z".repeat(4000);
  const records = Array.from({ length: 1000 }, (_, i) => ({ i, pad })); // ~4 MB in one call
  const last = await s.ingestBatch(records);
  expect(last).toBeGreaterThanOrEqual(3);
  await s.close();
  expect(f.server.records<{ i: number }>(TABLE).map((r) => r.i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
});

test("a JSON record that cannot fit one message is refused before sending", async () => {
  f = fixture();
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST, maxMessageBytes: 64 * 1024 });
  const err = await s.ingest({ pad: "q".repeat(100_000) }).catch((e) => e);
  expect(err.code).toBe("INVALID_ARGUMENT");
  expect(err.message).toContain("max_message_bytes");
  await s.ingest({ ok: true });
  await s.close();
  expect(f.server.records(TABLE)).toEqual([{ ok: true }]);
});

test("maxMessageBytes out of range is refused", async () => {
  f = fixture();
  for (const bad of [0, 4095, 1.5, 2 ** 31]) {
    const err = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST, maxMessageBytes: bad }).catch((e) => e);
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toContain("maxMessageBytes");
  }
});
