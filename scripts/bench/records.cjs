// Benchmark records shared by both SDKs' drivers, so both send identical bytes.
// Proto message: `message Event { optional int64 id = 1; optional string name = 2; }`.
"use strict";

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

function lenDelimited(tag, bytes) {
  return [(tag << 3) | 2, ...varint(bytes.length), ...bytes];
}

const utf8 = (s) => [...Buffer.from(s, "utf8")];

/** Serialized DescriptorProto of Event. */
function descriptor() {
  const field = (name, number, type) =>
    lenDelimited(2, [...lenDelimited(1, utf8(name)), 0x18, ...varint(number), 0x20, 1 /* LABEL_OPTIONAL */, 0x28, ...varint(type)]);
  return Buffer.from([...lenDelimited(1, utf8("Event")), ...field("id", 1, 3 /* TYPE_INT64 */), ...field("name", 2, 9 /* TYPE_STRING */)]);
}

/** An encoded Event of about `size` bytes. */
function protoRecord(i, size) {
  const head = [0x08, ...varint(i)];
  let pad = Math.max(0, size - head.length - 2);
  // the length prefix grows with the padding
  while (pad > 0 && head.length + 1 + varint(pad).length + pad > size) pad--;
  const out = Buffer.allocUnsafe(head.length + 1 + varint(pad).length + pad);
  let at = 0;
  for (const b of [...head, 0x12, ...varint(pad)]) out[at++] = b;
  out.fill(0x78, at);
  return out;
}

/** A JSON record of about `size` bytes once serialized. */
function jsonRecord(i, size) {
  return { id: i, name: "x".repeat(Math.max(0, size - 30)) };
}

function recordSize(kind) {
  return kind.includes("1m") ? 1 << 20 : kind.includes("10k") ? 10_000 : 100;
}

/**
 * Arrow IPC stream bytes (schema + one record batch) of `rows` rows `{id: Int64, name: Utf8}`,
 * both nullable, about `rowSize` bytes per row. Both SDKs ingest these same bytes.
 */
function arrowIpc(rows, rowSize) {
  const A = require("apache-arrow");
  const name = "x".repeat(Math.max(1, rowSize - 12)); // + 8 B id + 4 B string offset
  const table = A.makeTable({
    id: A.vectorFromArray(Array.from({ length: rows }, (_, i) => BigInt(i)), new A.Int64()),
    name: A.vectorFromArray(Array.from({ length: rows }, () => name), new A.Utf8()),
  });
  return Buffer.from(A.tableToIPC(table, "stream"));
}

/**
 * Allocation counters [calls, bytes] from scripts/bench/alloc-count.c when it is preloaded
 * (ZB_ALLOC_FILE set), else undefined.
 */
function allocCounters() {
  const file = process.env.ZB_ALLOC_FILE;
  if (!file) return undefined;
  const b = require("node:fs").readFileSync(file);
  return [0, 8, 16, 24].map((o) => Number(b.readBigUInt64LE(o)));
}

/**
 * Where a timed run starts: allocation counters (when counted) and this process's CPU time (all
 * its threads: the SDK's native threads too).
 */
function mark() {
  return { alloc: allocCounters(), cpu: process.cpuUsage() };
}

/**
 * Calls `send` (one batch, returns a promise) until `deadline` (a performance.now() time) with 8
 * to 16 batches in flight, and waits for them all. Returns how many batches were sent.
 */
async function pipelineBatches(deadline, send) {
  const window = [];
  let sent = 0;
  while (performance.now() < deadline) {
    window.push(send());
    sent++;
    if (window.length >= 16) await Promise.all(window.splice(0, 8));
  }
  await Promise.all(window);
  return sent;
}

/** The JSON line a driver prints for one run. */
function result(sdk, kind, records, bytes, seconds, start) {
  const cpu = process.cpuUsage(start.cpu);
  const out = {
    sdk,
    case: kind,
    records,
    seconds: +seconds.toFixed(3),
    recordsPerSec: Math.round(records / seconds),
    MBps: +(bytes / seconds / 1e6).toFixed(1),
    // user + system CPU of this process during the run, seconds per million records
    cpuPerMillion: +(((cpu.user + cpu.system) / 1e6 / records) * 1e6).toFixed(3),
  };
  const allocStart = start.alloc;
  const end = allocCounters();
  if (allocStart && end) {
    out.allocsPerRecord = +((end[0] - allocStart[0]) / records).toFixed(3);
    out.allocBytesPerRecord = +((end[1] - allocStart[1]) / records).toFixed(1);
    // bytes copied (memcpy/memmove of >= 4 KiB) per byte of record data ingested
    out.copiedPerByte = +((end[3] - allocStart[3]) / bytes).toFixed(3);
  }
  return JSON.stringify(out);
}

module.exports = { descriptor, protoRecord, jsonRecord, recordSize, arrowIpc, allocCounters, mark, pipelineBatches, result };
