// GC-torture mode for the integration tests (ZEROBUS_GC_TORTURE=1, loaded by test/setup.ts):
// every array handed to a stream has its `.buffer` touched right after the call (which moves a
// small typed array's contents out of JavaScriptCore's GC heap), and the heap is churned and
// collected all the time, so any pointer the native side kept to moved or freed storage shows
// up as a corrupted, refused or missing record.
import { ZerobusStream } from "../src/stream";

let calls = 0;
let junk: unknown[] = [];

function torture(args: unknown[]): void {
  for (const a of args) {
    if (a instanceof Uint8Array) void a.buffer;
    else if (Array.isArray(a)) for (const r of a) if (r instanceof Uint8Array) void r.buffer;
  }
  calls++;
  if (calls % 16 === 0) junk.push(Array.from({ length: 64 }, (_, i) => new Uint8Array(16 + i).fill(0xaa)));
  if (calls % 256 === 0) {
    junk = [];
    Bun.gc(false);
  }
  if (calls % 4096 === 0) Bun.gc(true);
}

const proto = ZerobusStream.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const name of ["ingest", "ingestBatch", "submit", "submitBatch"]) {
  const original = proto[name]!;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    const r = original.apply(this, args);
    torture(args);
    return r;
  };
}
console.error("zerobus-bun: GC torture mode");
