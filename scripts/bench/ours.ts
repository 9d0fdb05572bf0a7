#!/usr/bin/env bun
// Throughput of zerobus-bun against a local server in another process.
// usage: bun scripts/bench/ours.ts <endpoint> <case> <seconds>
// cases: <proto100|proto10k|proto1m|json100>-<ingest|submit|batch1000>, arrow100-batch1000
//   ingest: a promise per record, 1000 in flight (64 for 1 MB records), like the official driver
//   submit: no promise per record (submit + one flush)
//   batch1000: batches of 1000 records (Arrow: IPC bytes of 1000 rows), 8-16 in flight
// With scripts/bench/alloc-count.so preloaded (ZB_ALLOC_FILE set) it also reports allocations.
import { ZerobusSdk } from "../../src/index";
// @ts-ignore: CommonJS helper shared with the official driver
import { descriptor, protoRecord, jsonRecord, recordSize, arrowIpc, mark, pipelineBatches, result } from "./records.cjs";

const [endpoint, kind = "proto100-submit", secs = "3"] = process.argv.slice(2);
const size: number = recordSize(kind);
const sdk = new ZerobusSdk({ endpoint: endpoint! });
const headers = { authorization: "Bearer bench" };
const zeroCopy = process.env.ZB_ZERO_COPY === "1";
const compression = (process.env.ZB_ARROW_COMPRESSION ?? "none") as "lz4_frame" | "zstd" | "none";
const table = "bench.default.t";
const deadline = () => performance.now() + Number(secs) * 1000;

let n = 0;
let t0 = 0;
let mark0: unknown;
const start = () => {
  mark0 = mark();
  t0 = performance.now();
};

if (kind.startsWith("arrow")) {
  if (!kind.endsWith("batch1000")) throw new Error(`unknown case ${kind}`);
  const ipc: Uint8Array = arrowIpc(1000, size);
  const s = await sdk.createArrowStream({ table, schema: ipc, headers, zeroCopy, compression });
  const end = deadline();
  start();
  const batches: number = await pipelineBatches(end, () => s.ingestBatch(ipc));
  await s.flush();
  const el = (performance.now() - t0) / 1000;
  console.log(result("zerobus-bun", kind, batches * 1000, batches * ipc.byteLength, el, mark0));
  if (compression !== "none") {
    const st = s.stats();
    console.error(`${compression}: ${st.bytesSent} bytes sent for ${st.recordsSent / 1000} batches of ${ipc.byteLength} IPC bytes (${((st.bytesSent / (st.recordsSent / 1000) / ipc.byteLength) * 100).toFixed(1)}%)`);
  }
  await s.close();
} else {
  const json = kind.startsWith("json");
  const s = await sdk.createStream({
    table,
    recordType: json ? "json" : "proto",
    descriptor: json ? undefined : new Uint8Array(descriptor()),
    headers,
    zeroCopy,
  });
  const pool: Uint8Array[] = json ? [] : Array.from({ length: 64 }, (_, i) => protoRecord(i, size));
  const record = (i: number) => (json ? jsonRecord(i, size) : pool[i & 63]!);
  const inflight = size >= 1 << 20 ? 64 : 1000;
  const end = deadline();
  start();
  if (kind.endsWith("submit")) {
    while (performance.now() < end) {
      for (let k = 0; k < inflight; k++) s.submit(record(n + k));
      n += inflight;
    }
  } else if (kind.endsWith("ingest")) {
    const window: Promise<number>[] = [];
    while (performance.now() < end) {
      for (let k = 0; k < inflight; k++) window.push(s.ingest(record(n + k)));
      n += inflight;
      if (window.length >= 2 * inflight) await Promise.all(window.splice(0, inflight));
    }
    await Promise.all(window);
  } else if (kind.endsWith("batch1000")) {
    const batch = Array.from({ length: 1000 }, (_, i) => record(i));
    n = 1000 * (await pipelineBatches(end, () => s.ingestBatch(batch)));
  } else {
    throw new Error(`unknown case ${kind}`);
  }
  await s.flush();
  const el = (performance.now() - t0) / 1000;
  console.log(result("zerobus-bun", kind, n, n * size, el, mark0));
  await s.close();
}
sdk.close();
