// Which C library the running Bun uses on Linux: glibc (most distributions) or musl (Alpine, the
// `oven/bun:alpine` image). It picks the platform package (`zerobus-bun-linux-<arch>-gnu` or
// `-musl`, src/paths.ts `platformTag()`): a library linked for one does not load into the other.
// Decided once per process, from what Bun itself is, not from the distribution.
import { closeSync, existsSync, openSync, readSync } from "node:fs";

export type Libc = "gnu" | "musl";

let cached: Libc | undefined;

/** The C library of the running Bun on Linux, cached (about 0.3 ms the first time). */
export function linuxLibc(): Libc {
  return (cached ??= detect());
}

function detect(): Libc {
  // 1. Bun reports the glibc version it runs on, as Node does; Bun's musl build reports none.
  let header: Record<string, unknown> | undefined;
  try {
    header = (process.report?.getReport() as { header?: Record<string, unknown> } | undefined)?.header;
  } catch {
    header = undefined;
  }
  if (typeof header?.["glibcVersionRuntime"] === "string") return "gnu";
  // 2. The dynamic loader Bun's executable names: /lib/ld-musl-<arch>.so.1 on musl,
  //    /lib64/ld-linux-x86-64.so.2 or /lib/ld-linux-aarch64.so.1 with glibc.
  const interp = elfInterpreter(process.execPath);
  if (interp) return /musl/.test(interp) ? "musl" : "gnu";
  // 3. Neither (no readable executable): a report without a glibc version, or an Alpine system.
  return header || existsSync("/etc/alpine-release") ? "musl" : "gnu";
}

/** PT_INTERP of a 64-bit little-endian ELF executable, or undefined. */
export function elfInterpreter(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    const ph = Buffer.alloc(phentsize * phnum);
    if (readSync(fd, ph, 0, ph.length, phoff) < ph.length) return undefined;
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== 3 /* PT_INTERP */) continue;
      const size = Math.min(Number(ph.readBigUInt64LE(o + 32)), 4096);
      const name = Buffer.alloc(size);
      readSync(fd, name, 0, size, Number(ph.readBigUInt64LE(o + 8)));
      return name.toString("latin1").replace(/\0.*$/s, "");
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
