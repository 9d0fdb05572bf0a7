// Throughput of the official Databricks SDK (napi addon @databricks/zerobus-ingest-sdk-linux-x64-gnu)
// against a local server. Runs under Node or Bun.
// usage: node scripts/bench/official.cjs <addon.node> <endpoint> <case> <seconds>
// cases: <proto100|proto10k|proto1m|json100>-<ingest|batch1000>, arrow100-batch1000
// With scripts/bench/alloc-count.so preloaded (ZB_ALLOC_FILE set) it also reports allocations.
"use strict";
const [addonPath, endpoint, kind, secs] = process.argv.slice(2);
const { ZerobusSdk, RecordType, ArrowDataType } = require(addonPath);
const { descriptor, protoRecord, jsonRecord, recordSize, arrowIpc, mark, pipelineBatches, result } = require("./records.cjs");

async function arrowCase(sdk, size) {
  if (!kind.endsWith("batch1000")) throw new Error(`unknown case ${kind}`);
  const ipc = arrowIpc(1000, size);
  const stream = await sdk.createArrowStream(
    {
      tableName: "bench.default.t",
      schemaFields: [
        { name: "id", dataType: ArrowDataType.Int64, nullable: true },
        { name: "name", dataType: ArrowDataType.Utf8, nullable: true },
      ],
    },
    "bench",
    "bench",
    {},
  );
  const deadline = performance.now() + Number(secs) * 1000;
  const mark0 = mark();
  const t0 = performance.now();
  const batches = await pipelineBatches(deadline, () => stream.ingestBatch(ipc));
  await stream.flush();
  const el = (performance.now() - t0) / 1000;
  console.log(result("official", kind, batches * 1000, batches * ipc.length, el, mark0));
  await stream.close();
}

async function main() {
  const size = recordSize(kind);
  const sdk = new ZerobusSdk(endpoint, endpoint);
  if (kind.startsWith("arrow")) return arrowCase(sdk, size);
  const json = kind.startsWith("json");
  const stream = await sdk.createStream(
    { tableName: "bench.default.t", descriptorProto: json ? undefined : descriptor().toString("base64") },
    "bench",
    "bench",
    { recordType: json ? RecordType.Json : RecordType.Proto, maxInflightRequests: 1_000_000 },
  );
  // Same records as ours.ts: 64 pre-encoded proto records, or JSON objects built per record.
  const pool = json ? [] : Array.from({ length: 64 }, (_, i) => protoRecord(i, size));
  const jsonRec = (i) => jsonRecord(i, size);
  const inflight = size >= 1 << 20 ? 64 : 1000;
  const deadline = performance.now() + Number(secs) * 1000;
  const mark0 = mark();
  const t0 = performance.now();
  let n = 0;
  if (kind.endsWith("batch1000")) {
    const batch = Array.from({ length: 1000 }, (_, i) => (json ? jsonRec(i) : pool[i & 63]));
    n = 1000 * (await pipelineBatches(deadline, () => stream.ingestRecords(batch)));
  } else {
    const window = [];
    while (performance.now() < deadline) {
      for (let k = 0; k < inflight; k++) window.push(stream.ingestRecord(json ? jsonRec(n + k) : pool[(n + k) & 63]));
      n += inflight;
      if (window.length >= 2 * inflight) await Promise.all(window.splice(0, inflight));
    }
    await Promise.all(window);
  }
  await stream.flush();
  const el = (performance.now() - t0) / 1000;
  console.log(result("official", kind, n, n * size, el, mark0));
  await stream.close();
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
