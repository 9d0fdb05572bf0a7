#!/usr/bin/env bun
// Throughput of zerobus-bun against a local server in another process.
// usage: bun scripts/bench/ours.ts <endpoint> <case> [seconds]
// cases: proto100-submit | proto100-ingest1000 | proto100-batch1000 | json100-submit | proto10k-submit | proto1m-submit
import { ZerobusSdk } from "../../src/index";
import { toBinary, create } from "@bufbuild/protobuf";
import { DescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { EventSchema } from "../../test/schema";

const [endpoint, kind = "proto100-submit", secs = "3"] = process.argv.slice(2);
const table = "bench.default.t";
const sdk = new ZerobusSdk({ endpoint: endpoint! });
const json = kind.startsWith("json");
const size = kind.includes("1m") ? 1 << 20 : kind.includes("10k") ? 10_000 : 100;
const descriptor = toBinary(DescriptorProtoSchema, EventSchema.proto);
const s = await sdk.createStream({
  table,
  recordType: json ? "json" : "proto",
  descriptor: json ? undefined : descriptor,
  headers: { authorization: "Bearer bench" },
});

// A proto record of `size` bytes: Event{id, name=padding}.
function protoRecord(i: number): Uint8Array {
  const base = toBinary(EventSchema, create(EventSchema, { id: BigInt(i), name: "" }));
  const pad = Math.max(0, size - base.length - 4);
  return toBinary(EventSchema, create(EventSchema, { id: BigInt(i), name: "x".repeat(pad) }));
}
const pool = json ? [] : Array.from({ length: 64 }, (_, i) => protoRecord(i));
const jsonRec = (i: number) => ({ id: i, name: "x".repeat(Math.max(0, size - 30)) });

const deadline = performance.now() + Number(secs) * 1000;
const t0 = performance.now();
let n = 0;
if (kind.endsWith("submit")) {
  while (performance.now() < deadline) {
    for (let k = 0; k < 1000; k++) s.submit(json ? jsonRec(n + k) : pool[(n + k) & 63]!);
    n += 1000;
  }
} else if (kind.endsWith("ingest1000")) {
  const window: Promise<number>[] = [];
  while (performance.now() < deadline) {
    for (let k = 0; k < 1000; k++) window.push(s.ingest(json ? jsonRec(n + k) : pool[(n + k) & 63]!));
    n += 1000;
    if (window.length >= 2000) await Promise.all(window.splice(0, 1000));
  }
  await Promise.all(window);
} else if (kind.endsWith("batch1000")) {
  const batch = json ? Array.from({ length: 1000 }, (_, i) => jsonRec(i)) : Array.from({ length: 1000 }, (_, i) => pool[i & 63]!);
  while (performance.now() < deadline) {
    s.submitBatch(batch);
    n += 1000;
  }
}
await s.flush();
const el = (performance.now() - t0) / 1000;
await s.close();
console.log(JSON.stringify({ sdk: "zerobus-bun", case: kind, records: n, seconds: +el.toFixed(3), recordsPerSec: Math.round(n / el), MBps: +((n * size) / el / 1e6).toFixed(1) }));
sdk.close();
