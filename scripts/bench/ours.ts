#!/usr/bin/env bun
// Throughput of zerobus-bun against a local server in another process.
// usage: bun scripts/bench/ours.ts <endpoint> <case> <seconds>
// cases: <proto100|proto10k|proto1m|json100>-<ingest|submit|batch1000>
//   ingest: a promise per record, 1000 in flight (64 for 1 MB records), like the official driver
//   submit: no promise per record (submit + one flush)
//   batch1000: batches of 1000 records
import { ZerobusSdk } from "../../src/index";
// @ts-ignore: CommonJS helper shared with the official driver
import { descriptor, protoRecord, jsonRecord, recordSize } from "./records.cjs";

const [endpoint, kind = "proto100-submit", secs = "3"] = process.argv.slice(2);
const json = kind.startsWith("json");
const size: number = recordSize(kind);
const sdk = new ZerobusSdk({ endpoint: endpoint! });
const s = await sdk.createStream({
  table: "bench.default.t",
  recordType: json ? "json" : "proto",
  descriptor: json ? undefined : new Uint8Array(descriptor()),
  headers: { authorization: "Bearer bench" },
});
const pool: Uint8Array[] = json ? [] : Array.from({ length: 64 }, (_, i) => protoRecord(i, size));
const record = (i: number) => (json ? jsonRecord(i, size) : pool[i & 63]!);
const inflight = size >= 1 << 20 ? 64 : 1000;

const deadline = performance.now() + Number(secs) * 1000;
const t0 = performance.now();
let n = 0;
if (kind.endsWith("submit")) {
  while (performance.now() < deadline) {
    for (let k = 0; k < inflight; k++) s.submit(record(n + k));
    n += inflight;
  }
} else if (kind.endsWith("ingest")) {
  const window: Promise<number>[] = [];
  while (performance.now() < deadline) {
    for (let k = 0; k < inflight; k++) window.push(s.ingest(record(n + k)));
    n += inflight;
    if (window.length >= 2 * inflight) await Promise.all(window.splice(0, inflight));
  }
  await Promise.all(window);
} else if (kind.endsWith("batch1000")) {
  const batch = Array.from({ length: 1000 }, (_, i) => record(i));
  const window: Promise<number>[] = [];
  while (performance.now() < deadline) {
    window.push(s.ingestBatch(batch));
    n += 1000;
    if (window.length >= 16) await Promise.all(window.splice(0, 8));
  }
  await Promise.all(window);
} else {
  throw new Error(`unknown case ${kind}`);
}
await s.flush();
const el = (performance.now() - t0) / 1000;
await s.close();
console.log(JSON.stringify({ sdk: "zerobus-bun", case: kind, records: n, seconds: +el.toFixed(3), recordsPerSec: Math.round(n / el), MBps: +((n * size) / el / 1e6).toFixed(1) }));
sdk.close();
