// ASan canary for scripts/asan.sh --bun: proves that the AddressSanitizer runtime preloaded into
// Bun really checks the ASan-built native library. It hands the library a freed malloc() block
// (the preloaded runtime's malloc/free) as the SDK config, so the Rust side
// reads freed memory: ASan must abort with "heap-use-after-free" inside zerobus_sdk_new.
// malloc/free are looked up in the preloaded runtime itself: dlsym on a libc.so.6 handle would
// give libc's own (unchecked) malloc, not the interceptor.
// Exits 0 only if that read was NOT caught (then asan.sh reports the setup as broken).
import { dlopen, FFIType as T } from "bun:ffi";

const path = process.env.ZEROBUS_BUN_LIB;
if (!path) throw new Error("set ZEROBUS_BUN_LIB to the ASan-built libzerobus_bun.so");
const runtime = process.env.LD_PRELOAD?.split(/[: ]/).find((l) => l.includes("asan"));
if (!runtime) throw new Error("LD_PRELOAD holds no ASan runtime");
const libc = dlopen(runtime, {
  malloc: { args: [T.u64], returns: T.ptr },
  free: { args: [T.ptr], returns: T.void },
  memcpy: { args: [T.ptr, T.ptr, T.u64], returns: T.ptr },
}).symbols;
const zb = dlopen(path, { zerobus_sdk_new: { args: [T.ptr, T.u64], returns: T.ptr } }).symbols;

const cfg = Buffer.from('{"endpoint": "http://127.0.0.1:1"}');
const p = libc.malloc(cfg.length)!;
libc.memcpy(p, cfg, cfg.length);
libc.free(p);
zb.zerobus_sdk_new(p, cfg.length); // use after free: ASan aborts the process here
console.log("asan-bun-canary: the use-after-free was NOT detected");
