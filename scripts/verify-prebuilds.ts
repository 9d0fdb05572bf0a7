#!/usr/bin/env bun
// Verifies the prebuilt native libraries in prebuilds/<platform>/ (see prebuilds/README.md).
//
//   bun scripts/verify-prebuilds.ts                       # every platform
//   bun scripts/verify-prebuilds.ts --targets linux-arm64-gnu,win32-x64
//   bun scripts/verify-prebuilds.ts --dir /tmp/prebuilds  # libraries somewhere else
//   bun scripts/verify-prebuilds.ts --static              # static checks only
//   bun scripts/verify-prebuilds.ts --src DIR             # header and tests of another source tree
//                                                         # (cross-build.ts --ref exports one)
//
// For each platform:
//   static (always): the file format and CPU (ELF / PE / Mach-O parsed here, no external tool), the
//     exported `zerobus_*` functions equal the functions declared in rust/ffi/include/zerobus_bun.h,
//     the package's package.json and index.js equal what cross-build.ts writes, and per format: the
//     newest GLIBC symbol version needed (ELF -gnu), only musl's libc needed and a static
//     zerobus-local (ELF -musl), the DLLs imported (PE: only Windows system DLLs), the dylibs linked,
//     minimum macOS and the ad-hoc code signature's page hashes (Mach-O; macOS on Apple Silicon
//     refuses unsigned arm64 code).
//   runtime, where this machine can run it:
//     linux-x64-gnu    bun test (basic, recovery, arrow, integrity, workers) with ZEROBUS_BUN_LIB=<lib>
//     linux-arm64-gnu  the same under qemu-aarch64 with Bun for linux-aarch64 (npm @oven/bun-linux-aarch64)
//     linux-*-musl     platformTag() and the same tests under Bun's musl build (scripts/verify-musl.ts;
//                      arm64 through qemu-aarch64)
//     win32-x64        scripts/win-harness/harness.c (mingw gcc or zig cc) under wine: local server,
//                      JSON stream, 1000 records, the table file checked
//     win32-arm64, darwin-*: static only (no way to run them here)
// A check whose tool is missing is SKIPped with the reason. Exits 1 if any check FAILed.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { PLATFORMS, headerFunctions, localServerFile, platformPackageSources, type Platform } from "./cross-build";
import { muslChecks, muslRuntime } from "./verify-musl";

const repoRoot = resolve(import.meta.dir, "..");
/** Source tree whose header and tests are used (--src); the repository by default. */
let root = repoRoot;
const crossDir = join(repoRoot, "rust", "target-cross");

type Status = "PASS" | "FAIL" | "SKIP";
interface Check {
  platform: string;
  name: string;
  status: Status;
  detail: string;
}
const checks: Check[] = [];
function report(platform: string, name: string, status: Status, detail: string) {
  checks.push({ platform, name, status, detail });
  console.log(`  ${status.padEnd(4)} ${name}: ${detail}`);
}

// ---------------------------------------------------------------- header

// ---------------------------------------------------------------- binary formats

interface BinInfo {
  format: "ELF" | "PE" | "Mach-O";
  arch: string;
  kind: string;
  exports: string[];
  notes: string[];
  problems: string[];
  /** ELF: DT_NEEDED libraries and the PT_INTERP loader ("" when there is none). */
  needed?: string[];
  interp?: string;
}

const cstr = (b: Buffer, off: number) => {
  let e = off;
  while (e < b.length && b[e] !== 0) e++;
  return b.toString("latin1", off, e);
};

function parseElf(b: Buffer): BinInfo {
  if (b[4] !== 2 || b[5] !== 1) throw new Error("not a 64-bit little-endian ELF");
  const machines: Record<number, string> = { 62: "x64", 183: "arm64" };
  const machine = b.readUInt16LE(18);
  const type = b.readUInt16LE(16);
  const phoff = Number(b.readBigUInt64LE(0x20));
  let interp = "";
  for (let i = 0; i < b.readUInt16LE(0x38); i++) {
    const o = phoff + i * b.readUInt16LE(0x36);
    if (b.readUInt32LE(o) === 3 /* PT_INTERP */) interp = cstr(b, Number(b.readBigUInt64LE(o + 8)));
  }
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const sh = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(o + 4),
      offset: Number(b.readBigUInt64LE(o + 24)),
      size: Number(b.readBigUInt64LE(o + 32)),
      link: b.readUInt32LE(o + 40),
      info: b.readUInt32LE(o + 44),
      entsize: Number(b.readBigUInt64LE(o + 56)),
    };
  };
  const exports: string[] = [];
  const notes: string[] = [];
  const problems: string[] = [];
  let glibcMax = "";
  const needed = new Set<string>();
  const versioned = new Set<string>();
  const verCmp = (a: string, c: string) => {
    const pa = a.split(".").map(Number), pc = c.split(".").map(Number);
    for (let i = 0; i < Math.max(pa.length, pc.length); i++) if ((pa[i] ?? 0) !== (pc[i] ?? 0)) return (pa[i] ?? 0) - (pc[i] ?? 0);
    return 0;
  };
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    if (s.type === 11 /* SHT_DYNSYM */) {
      const str = sh(s.link);
      for (let o = s.offset; o + 24 <= s.offset + s.size; o += 24) {
        const name = cstr(b, str.offset + b.readUInt32LE(o));
        const info = b[o + 4]!, other = b[o + 5]!, shndx = b.readUInt16LE(o + 6);
        const bind = info >> 4, stype = info & 15;
        if (shndx !== 0 && (bind === 1 || bind === 2) && (other & 3) === 0 && stype === 2) exports.push(name);
      }
    } else if (s.type === 6 /* SHT_DYNAMIC */) {
      const str = sh(s.link);
      for (let o = s.offset; o + 16 <= s.offset + s.size; o += 16) {
        const tag = Number(b.readBigInt64LE(o));
        if (tag === 0) break;
        if (tag === 1 /* DT_NEEDED */) needed.add(cstr(b, str.offset + Number(b.readBigUInt64LE(o + 8))));
      }
    } else if (s.type === 0x6ffffffe /* SHT_GNU_verneed */) {
      const str = sh(s.link);
      let o = s.offset;
      for (let n = 0; n < s.info; n++) {
        const cnt = b.readUInt16LE(o + 2);
        versioned.add(cstr(b, str.offset + b.readUInt32LE(o + 4)));
        let a = o + b.readUInt32LE(o + 8);
        for (let k = 0; k < cnt; k++) {
          const v = cstr(b, str.offset + b.readUInt32LE(a + 8));
          if (v.startsWith("GLIBC_") && /^[\d.]+$/.test(v.slice(6)) && (!glibcMax || verCmp(v.slice(6), glibcMax) > 0)) glibcMax = v.slice(6);
          a += b.readUInt32LE(a + 12);
        }
        const next = b.readUInt32LE(o + 12);
        if (!next) break;
        o += next;
      }
    }
  }
  for (const v of versioned) needed.add(v);
  notes.push(`needs GLIBC ${glibcMax || "(none)"}`, `libraries: ${[...needed].join(" ") || "(none)"}`);
  if (interp) notes.push(`interpreter ${interp}`);
  return { format: "ELF", arch: machines[machine] ?? `machine ${machine}`, kind: type === 3 ? "shared object" : `type ${type}`, exports, notes, problems, needed: [...needed], interp };
}

/** DLLs every Windows 10+ has (what Rust std, tokio/mio and ring import on windows-gnu). */
const WINDOWS_SYSTEM_DLLS = /^(kernel32|ntdll|ws2_32|userenv|advapi32|bcrypt|bcryptprimitives|msvcrt|ucrtbase|crypt32|secur32|shell32|ole32|oleaut32|user32|iphlpapi|ncrypt|synchronization|api-ms-win-[a-z0-9-]+)\.dll$/i;

function parsePe(b: Buffer): BinInfo {
  if (b.toString("latin1", 0, 2) !== "MZ") throw new Error("no MZ header");
  const pe = b.readUInt32LE(0x3c);
  if (b.toString("latin1", pe, pe + 4) !== "PE\0\0") throw new Error("no PE signature");
  const machines: Record<number, string> = { 0x8664: "x64", 0xaa64: "arm64", 0x14c: "ia32" };
  const machine = b.readUInt16LE(pe + 4);
  const nsect = b.readUInt16LE(pe + 6);
  const optSize = b.readUInt16LE(pe + 20);
  const chars = b.readUInt16LE(pe + 22);
  const opt = pe + 24;
  const magic = b.readUInt16LE(opt);
  if (magic !== 0x20b) throw new Error(`not PE32+ (magic ${magic.toString(16)})`);
  const dir = (i: number) => ({ rva: b.readUInt32LE(opt + 112 + i * 8), size: b.readUInt32LE(opt + 112 + i * 8 + 4) });
  const sects: Array<{ va: number; vsize: number; raw: number; rawSize: number }> = [];
  for (let i = 0; i < nsect; i++) {
    const o = opt + optSize + i * 40;
    sects.push({ vsize: b.readUInt32LE(o + 8), va: b.readUInt32LE(o + 12), rawSize: b.readUInt32LE(o + 16), raw: b.readUInt32LE(o + 20) });
  }
  const off = (rva: number) => {
    const s = sects.find((x) => rva >= x.va && rva < x.va + Math.max(x.vsize, x.rawSize));
    if (!s) throw new Error(`RVA ${rva.toString(16)} outside every section`);
    return rva - s.va + s.raw;
  };
  const exports: string[] = [];
  const ed = dir(0);
  if (ed.rva) {
    const e = off(ed.rva);
    const nNames = b.readUInt32LE(e + 24);
    const names = off(b.readUInt32LE(e + 32));
    for (let i = 0; i < nNames; i++) exports.push(cstr(b, off(b.readUInt32LE(names + i * 4))));
  }
  const imports: string[] = [];
  const id = dir(1);
  if (id.rva) {
    for (let o = off(id.rva); ; o += 20) {
      const name = b.readUInt32LE(o + 12);
      if (!name) break;
      imports.push(cstr(b, off(name)));
    }
  }
  const problems: string[] = [];
  const foreign = imports.filter((d) => !WINDOWS_SYSTEM_DLLS.test(d));
  if (foreign.length) problems.push(`imports DLLs that Windows does not ship: ${foreign.join(", ")}`);
  return {
    format: "PE",
    arch: machines[machine] ?? `machine 0x${machine.toString(16)}`,
    kind: chars & 0x2000 ? "DLL" : "EXE",
    exports,
    notes: [`imports: ${imports.join(" ")}`],
    problems,
  };
}

function parseMachO(b: Buffer): BinInfo {
  if (b.readUInt32LE(0) !== 0xfeedfacf) throw new Error("not a 64-bit little-endian Mach-O (fat files are not used here)");
  const cpus: Record<number, string> = { 0x01000007: "x64", 0x0100000c: "arm64" };
  const cputype = b.readUInt32LE(4);
  const filetype = b.readUInt32LE(12);
  const ncmds = b.readUInt32LE(16);
  const exports: string[] = [];
  const dylibs: string[] = [];
  const notes: string[] = [];
  const problems: string[] = [];
  let minos = "";
  let signature: { off: number; size: number } | null = null;
  let o = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = b.readUInt32LE(o);
    const size = b.readUInt32LE(o + 4);
    if (cmd === 0x2 /* LC_SYMTAB */) {
      const symoff = b.readUInt32LE(o + 8), nsyms = b.readUInt32LE(o + 12), stroff = b.readUInt32LE(o + 16);
      for (let k = 0; k < nsyms; k++) {
        const s = symoff + k * 16;
        const type = b[s + 4]!;
        if ((type & 0xe0) === 0 && (type & 0x01) && (type & 0x0e) === 0x0e) {
          const name = cstr(b, stroff + b.readUInt32LE(s));
          exports.push(name.startsWith("_") ? name.slice(1) : name);
        }
      }
    } else if (cmd === 0xc || cmd === 0x80000018 || cmd === 0x8000001f) {
      dylibs.push(cstr(b, o + b.readUInt32LE(o + 8)));
    } else if (cmd === 0x32 /* LC_BUILD_VERSION */) {
      const v = b.readUInt32LE(o + 12);
      minos = `${v >>> 16}.${(v >> 8) & 0xff}`;
    } else if (cmd === 0x24 /* LC_VERSION_MIN_MACOSX */) {
      const v = b.readUInt32LE(o + 8);
      minos = `${v >>> 16}.${(v >> 8) & 0xff}`;
    } else if (cmd === 0x1d /* LC_CODE_SIGNATURE */) {
      signature = { off: b.readUInt32LE(o + 8), size: b.readUInt32LE(o + 12) };
    }
    o += size;
  }
  notes.push(`minimum macOS ${minos || "?"}`, `dylibs: ${dylibs.join(" ")}`);
  const foreign = dylibs.filter((d) => !d.startsWith("/usr/lib/") && !d.startsWith("/System/Library/"));
  if (foreign.length) problems.push(`links dylibs outside the OS: ${foreign.join(", ")}`);
  // Code signature: check every page hash of the CodeDirectory (what the kernel checks on load).
  if (!signature) {
    if (cpus[cputype] === "arm64") problems.push("no code signature (LC_CODE_SIGNATURE): macOS on arm64 refuses to load it");
    else notes.push("not signed (fine on x86_64)");
  } else {
    const sb = signature.off;
    if (b.readUInt32BE(sb) !== 0xfade0cc0) problems.push("code signature: no SuperBlob");
    else {
      const count = b.readUInt32BE(sb + 8);
      let verified = false;
      for (let k = 0; k < count; k++) {
        const type = b.readUInt32BE(sb + 12 + k * 8);
        const cd = sb + b.readUInt32BE(sb + 16 + k * 8);
        if (type !== 0 || b.readUInt32BE(cd) !== 0xfade0c02) continue;
        const hashOffset = b.readUInt32BE(cd + 16);
        const nCodeSlots = b.readUInt32BE(cd + 28);
        const codeLimit = b.readUInt32BE(cd + 32);
        const hashSize = b[cd + 36]!, hashType = b[cd + 37]!, pageSize = 1 << b[cd + 39]!;
        const algo = hashType === 2 ? "sha256" : hashType === 1 ? "sha1" : "";
        if (!algo) {
          problems.push(`code signature: unknown hash type ${hashType}`);
          break;
        }
        let bad = 0;
        for (let p = 0; p < nCodeSlots; p++) {
          const page = b.subarray(p * pageSize, Math.min((p + 1) * pageSize, codeLimit));
          const want = b.subarray(cd + hashOffset + p * hashSize, cd + hashOffset + (p + 1) * hashSize);
          const got = createHash(algo).update(page).digest().subarray(0, hashSize);
          if (!got.equals(want)) bad++;
        }
        if (bad) problems.push(`code signature: ${bad} of ${nCodeSlots} page hashes do not match (signature broken after signing)`);
        else notes.push(`ad-hoc code signature valid (${nCodeSlots} ${algo} page hashes over ${codeLimit} bytes)`);
        verified = true;
        break;
      }
      if (!verified && !problems.length) problems.push("code signature: no CodeDirectory");
    }
  }
  return { format: "Mach-O", arch: cpus[cputype] ?? `cputype 0x${cputype.toString(16)}`, kind: filetype === 6 ? "dylib" : `filetype ${filetype}`, exports, notes, problems };
}

export function inspectBinary(path: string): BinInfo {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) === 0x7f454c46) return parseElf(b);
  if (b.toString("latin1", 0, 2) === "MZ") return parsePe(b);
  if (b.readUInt32LE(0) === 0xfeedfacf) return parseMachO(b);
  throw new Error(`unknown binary format (magic ${b.subarray(0, 4).toString("hex")})`);
}

// ---------------------------------------------------------------- static checks

function staticChecks(p: Platform, lib: string, pkgDir: string, header: string[]): BinInfo | null {
  let info: BinInfo;
  try {
    info = inspectBinary(lib);
  } catch (e) {
    report(p.tag, "format", "FAIL", (e as Error).message);
    return null;
  }
  const wantFormat = p.os === "linux" ? "ELF" : p.os === "win32" ? "PE" : "Mach-O";
  const wantKind = p.os === "linux" ? "shared object" : p.os === "win32" ? "DLL" : "dylib";
  const okFormat = info.format === wantFormat && info.arch === p.cpu && info.kind === wantKind;
  report(p.tag, "format", okFormat ? "PASS" : "FAIL", `${info.format} ${info.kind}, ${info.arch} (want ${wantFormat} ${wantKind}, ${p.cpu}); ${(statSync(lib).size / 1048576).toFixed(2)} MiB`);

  const exported = [...new Set(info.exports.filter((n) => n.startsWith("zerobus_")))].sort();
  const missing = header.filter((n) => !exported.includes(n));
  const extra = exported.filter((n) => !header.includes(n));
  report(
    p.tag,
    "exports",
    missing.length || extra.length ? "FAIL" : "PASS",
    missing.length || extra.length
      ? `missing: [${missing.join(", ")}] not in header: [${extra.join(", ")}]`
      : `all ${header.length} zerobus_* functions of the header exported, no other zerobus_* symbol`,
  );
  // Anything else exported leaks internals (Rust symbols, C libraries): a few runtime symbols
  // (e.g. _CRT_INIT, DllMain, ELF _init/_fini) are harmless.
  const others = [...new Set(info.exports.filter((n) => !n.startsWith("zerobus_")))];
  const leaked = others.filter((n) => /^_?(_R|_ZN)/.test(n) || /^(ring_core|ZSTD_|LZ4)/.test(n));
  report(
    p.tag,
    "no internal exports",
    leaked.length ? "FAIL" : "PASS",
    leaked.length
      ? `${leaked.length} internal symbols exported, e.g. ${leaked.slice(0, 3).join(", ")}`
      : `${others.length} other exported symbols${others.length ? `: ${others.slice(0, 6).join(", ")}${others.length > 6 ? ", ..." : ""}` : ""}`,
  );
  report(p.tag, "linkage", info.problems.length ? "FAIL" : "PASS", [...info.problems, ...info.notes].join("; "));
  if (p.os === "darwin") {
    const want = p.env?.MACOSX_DEPLOYMENT_TARGET ?? "11.0";
    const have = /minimum macOS ([\d.]+)/.exec(info.notes.join(" "))?.[1] ?? "?";
    const num = (v: string) => v.split(".").map(Number).reduce((a, x, i) => a + x / 100 ** i, 0);
    report(p.tag, "macOS version", have !== "?" && num(have) <= num(want) ? "PASS" : "FAIL", `minimum macOS ${have} (want <= ${want})`);
  }
  if (p.libc === "musl") muslStatic(p, info, join(pkgDir, localServerFile(p)));
  else if (p.os === "linux") {
    const g = /needs GLIBC ([\d.]+)/.exec(info.notes.join(" "))?.[1];
    const [major, minor] = (g ?? "").split(".").map(Number);
    const ok = !!g && major === 2 && (minor ?? Infinity) <= 17;
    report(p.tag, "glibc", ok ? "PASS" : "FAIL", `newest GLIBC symbol version needed: ${g} (want <= 2.17)`);
  }

  for (const [name, want] of Object.entries(platformPackageSources(p))) {
    const path = join(pkgDir, name);
    if (!existsSync(path)) report(p.tag, name, "FAIL", `${path} missing`);
    else {
      const have = readFileSync(path, "utf8");
      const what = name === "package.json" ? `${JSON.parse(have).name}@${JSON.parse(have).version}` : `exports the path of ${p.file}`;
      report(p.tag, name, have === want ? "PASS" : "FAIL", have === want ? what : "differs from what scripts/cross-build.ts writes (rerun it)");
    }
  }
  const server = join(pkgDir, localServerFile(p));
  report(p.tag, "local server", existsSync(server) ? "PASS" : "FAIL", existsSync(server) ? `${localServerFile(p)} ${(statSync(server).size / 1048576).toFixed(2)} MiB; library ${(statSync(lib).size / 1048576).toFixed(2)} MiB` : `${server} missing (bun scripts/cross-build.ts --targets ${p.tag})`);
  return info;
}

/** musl: the library needs only musl's libc (no glibc symbol, no loader of its own); zerobus-local is static. */
function muslStatic(p: Platform, lib: BinInfo, server: string) {
  const foreign = (lib.needed ?? []).filter((n) => !/^libc\.(so|musl-[a-z0-9_]+\.so\.1)$/.test(n));
  const glibc = /needs GLIBC ([\d.]+)/.exec(lib.notes.join(" "))?.[1];
  const ok = !foreign.length && !glibc && !lib.interp && (lib.needed ?? []).length > 0;
  report(p.tag, "musl linkage", ok ? "PASS" : "FAIL", `NEEDED: ${(lib.needed ?? []).join(" ") || "(none: a static-libc library cannot load into Bun)"}${foreign.length ? `; not musl's libc: ${foreign.join(" ")}` : ""}; GLIBC symbol versions: ${glibc ?? "none"}`);
  if (!existsSync(server)) return;
  try {
    const exe = inspectBinary(server);
    const st = exe.format === "ELF" && exe.arch === p.cpu && !exe.interp && !(exe.needed ?? []).length;
    report(p.tag, "zerobus-local static", st ? "PASS" : "FAIL", `${exe.format} ${exe.arch}, interpreter: ${exe.interp || "none"}, NEEDED: ${(exe.needed ?? []).join(" ") || "none"}`);
  } catch (e) {
    report(p.tag, "zerobus-local static", "FAIL", (e as Error).message);
  }
}

// ---------------------------------------------------------------- runtime checks

function spawn(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs: number }): { code: number | null; out: string; ms: number } {
  const t = Date.now();
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe", timeout: opts.timeoutMs });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString(), ms: Date.now() - t };
}

const TESTS = ["test/libc.test.ts", "test/basic.test.ts", "test/recovery.test.ts", "test/arrow.test.ts", "test/integrity.test.ts", "test/workers.test.ts", "test/network.test.ts", "test/token.test.ts", "test/large-messages.test.ts", "test/runs.test.ts"];

function summarizeBunTest(out: string): string {
  const lines = out.split("\n").map((l) => l.trim());
  const pass = lines.find((l) => /^\d+ pass$/.test(l)) ?? "";
  const fail = lines.find((l) => /^\d+ fail$/.test(l)) ?? "";
  const ran = lines.find((l) => /^Ran \d+ tests/.test(l)) ?? "";
  return [pass, fail, ran].filter(Boolean).join(", ");
}

function bunTests(p: Platform, lib: string, cmdPrefix: string[], label: string, timeoutMs: number) {
  console.log(`  ... ${label}: bun test ${TESTS.join(" ")} (ZEROBUS_BUN_LIB=${lib})`);
  // ZEROBUS_TEST_BUN: how tests start Bun subprocesses (under qemu, through qemu too). The local
  // server is the package's zerobus-local, started the same way (a wrapper script under qemu).
  const server = join(dirname(lib), localServerFile(p));
  let localBin = server;
  if (cmdPrefix.length > 1) {
    localBin = join(crossDir, `zerobus-local-${p.tag}.sh`);
    writeFileSync(localBin, `#!/bin/sh\nexec ${cmdPrefix.slice(0, -1).map((a) => `'${a}'`).join(" ")} '${server}' "$@"\n`, { mode: 0o755 });
  }
  const env = { ZEROBUS_BUN_LIB: lib, ZEROBUS_LOCAL_BIN: localBin, ZEROBUS_TEST_BUN: JSON.stringify(cmdPrefix) };
  const r = spawn([...cmdPrefix, "test", "--timeout", "120000", ...TESTS], { env, timeoutMs });
  const summary = summarizeBunTest(r.out);
  const ok = r.code === 0 && /^\s*0 fail\s*$/m.test(r.out);
  report(p.tag, `tests (${label})`, ok ? "PASS" : "FAIL", `${summary || "no summary"} in ${(r.ms / 1000).toFixed(1)} s${ok ? "" : `, exit ${r.code}\n${r.out.split("\n").slice(-40).join("\n")}`}`);
}

function hostRuntime(p: Platform, lib: string) {
  if (process.platform !== "linux" || process.arch !== "x64") return report(p.tag, "tests", "SKIP", "not a linux-x64 host");
  bunTests(p, lib, [process.execPath], "native bun", 10 * 60_000);
}

function bunArm64(): string | null {
  if (process.env.ZEROBUS_BUN_ARM64 && existsSync(process.env.ZEROBUS_BUN_ARM64)) return process.env.ZEROBUS_BUN_ARM64;
  const dir = join(crossDir, "tools", `bun-linux-aarch64-${Bun.version}`);
  const bin = join(dir, "package", "bin", "bun");
  if (existsSync(bin)) return bin;
  const npm = Bun.which("npm");
  if (!npm) return null;
  console.log(`  ... fetching Bun ${Bun.version} for linux-aarch64 (npm pack @oven/bun-linux-aarch64@${Bun.version})`);
  mkdirSync(dir, { recursive: true });
  const r = spawn([npm, "pack", `@oven/bun-linux-aarch64@${Bun.version}`], { cwd: dir, timeoutMs: 5 * 60_000 });
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (r.code !== 0 || !tgz) return null;
  spawn(["tar", "xzf", tgz], { cwd: dir, timeoutMs: 60_000 });
  return existsSync(bin) ? bin : null;
}

function arm64Runtime(p: Platform, lib: string) {
  const qemu = Bun.which("qemu-aarch64") ?? Bun.which("qemu-aarch64-static");
  const sysroot = process.env.ZEROBUS_ARM64_SYSROOT ?? "/usr/aarch64-linux-gnu";
  if (process.platform === "linux" && process.arch === "arm64") return bunTests(p, lib, [process.execPath], "native bun", 10 * 60_000);
  if (!qemu) return report(p.tag, "tests", "SKIP", "qemu-aarch64 not found (apt-get install qemu-user)");
  if (!existsSync(join(sysroot, "lib", "ld-linux-aarch64.so.1"))) return report(p.tag, "tests", "SKIP", `no arm64 glibc in ${sysroot} (apt-get install libc6-arm64-cross)`);
  const bun = bunArm64();
  if (!bun) return report(p.tag, "tests", "SKIP", "Bun for linux-aarch64 not available (npm pack @oven/bun-linux-aarch64 failed)");
  bunTests(p, lib, [qemu, "-L", sysroot, bun], "qemu-aarch64 + bun arm64", 20 * 60_000);
}

/** Under Bun's musl build: platformTag(), an installed app, then the test files with the library. */
function muslTests(p: Platform, lib: string) {
  const rt = muslRuntime(p.cpu);
  if ("skip" in rt) return report(p.tag, "tests (musl bun)", "SKIP", rt.skip);
  console.log(`  ... ${rt.detail}`);
  for (const c of muslChecks(rt, root, dirname(lib), p.tag)) report(p.tag, c.name, c.status, c.detail);
  bunTests(p, lib, rt.bun, rt.label, (rt.exec.length ? 25 : 10) * 60_000);
}

function harnessExe(): { exe: string | null; why: string } {
  const src = join(repoRoot, "scripts", "win-harness", "harness.c");
  const include = join(root, "rust", "ffi", "include");
  const outDir = join(crossDir, "win-harness");
  const key = createHash("sha1").update(readFileSync(src)).update(readFileSync(join(repoRoot, "scripts", "win-harness", "bcryptprimitives.c"))).update(readFileSync(join(include, "zerobus_bun.h"))).digest("hex").slice(0, 10);
  const exe = join(outDir, `harness-${key}.exe`);
  if (existsSync(exe) && existsSync(join(outDir, "bcryptprimitives.dll"))) return { exe, why: "cached build" };
  mkdirSync(outDir, { recursive: true });
  const gcc = Bun.which("x86_64-w64-mingw32-gcc");
  const zig = Bun.which("zig") ? ["zig", "cc"] : Bun.which("python3") && spawn(["python3", "-m", "ziglang", "version"], { timeoutMs: 60_000 }).code === 0 ? ["python3", "-m", "ziglang", "cc"] : null;
  const cc = gcc ? [gcc] : zig ? [...zig, "-target", "x86_64-windows-gnu"] : null;
  if (!cc) return { exe: null, why: "no compiler for Windows x64 (apt-get install gcc-mingw-w64-x86-64, or pip install ziglang)" };
  const shim = join(repoRoot, "scripts", "win-harness", "bcryptprimitives.c");
  const steps = [
    [...cc, "-O2", "-Wall", "-I", include, "-o", exe, src],
    // wine 8 has no bcryptprimitives.dll (Windows 10+ does): a test-only shim next to the harness
    [...cc, "-O2", "-Wall", "-shared", "-o", join(outDir, "bcryptprimitives.dll"), shim, "-ladvapi32"],
  ];
  for (const c of steps) {
    const r = spawn(c, { timeoutMs: 5 * 60_000 });
    if (r.code !== 0) {
      rmSync(exe, { force: true });
      return { exe: null, why: `${c.join(" ")} failed: ${r.out.slice(0, 2000)}` };
    }
  }
  return { exe, why: `built with ${cc.join(" ")}` };
}

function win64Runtime(p: Platform, lib: string, header: string[]) {
  const wine = Bun.which("wine64") ?? Bun.which("wine");
  if (!wine) return report(p.tag, "harness", "SKIP", "wine not found (apt-get install wine wine64)");
  const { exe, why } = harnessExe();
  if (!exe) return report(p.tag, "harness", "SKIP", why);
  const data = mkdtempSync(join(tmpdir(), "zerobus-wine-"));
  const winPath = (p: string) => "Z:" + p.replace(/\//g, "\\");
  const prefix = join(crossDir, "wine");
  mkdirSync(prefix, { recursive: true });
  const wineEnv = { WINEPREFIX: prefix, WINEDEBUG: "-all", WINEDLLOVERRIDES: "mscoree,mshtml=" };
  // The package's zerobus-local.exe, under wine too: copied beside the harness, whose test-only
  // bcryptprimitives.dll shim it needs under wine 8 as the library does (Windows 10+ has the DLL).
  const ready = join(data, "ready.json");
  const serverExe = join(dirname(exe), localServerFile(p));
  copyFileSync(join(dirname(lib), localServerFile(p)), serverExe);
  const server = Bun.spawn(
    [wine, serverExe, "--port", "0", "--data-dir", winPath(data), "--table", "a.b.c", "--no-fsync", "--ready-file", winPath(ready)],
    { env: { ...process.env, ...wineEnv }, stdout: "ignore", stderr: "inherit" },
  );
  const deadline = Date.now() + 120_000;
  while (!existsSync(ready) && server.exitCode === null && Date.now() < deadline) Bun.sleepSync(50);
  const url = existsSync(ready) ? (JSON.parse(readFileSync(ready, "utf8")) as { url?: string }).url : undefined;
  report(p.tag, "zerobus-local.exe (wine)", url ? "PASS" : "FAIL", url ? `listening on ${url}` : `no ready file within 120 s (exit ${server.exitCode})`);
  if (!url) {
    server.kill(9);
    return;
  }
  console.log(`  ... harness (${why}) under ${wine}: 1000 JSON records into ${url}, data in ${data}`);
  const r = spawn([wine, exe, winPath(lib), url, winPath(data), "1000", header.join(",")], { env: wineEnv, timeoutMs: 5 * 60_000 });
  server.kill(9);
  const table = join(data, "a.b.c.jsonl");
  const lines = existsSync(table) ? readFileSync(table, "utf8").split("\n").filter(Boolean) : [];
  let inOrder = lines.length === 1000;
  for (let i = 0; inOrder && i < lines.length; i++) inOrder = JSON.parse(lines[i]!).id === i;
  const ok = r.code === 0 && /HARNESS PASS/.test(r.out) && inOrder;
  const out = r.out.split("\n").filter((l) => l.trim() && !/^(wine: |[0-9a-f]{4}:(fixme|err))/.test(l));
  report(p.tag, "harness (wine)", ok ? "PASS" : "FAIL", `${out.join(" | ")}; table file read back: ${lines.length} lines${inOrder ? ", ids 0..999 in order" : ""}; ${(r.ms / 1000).toFixed(1)} s`);
  rmSync(data, { recursive: true, force: true });
}

// ---------------------------------------------------------------- main

function parseArgs(argv: string[]) {
  const o = { targets: [] as string[], dir: join(repoRoot, "prebuilds"), staticOnly: false, src: repoRoot };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a.startsWith("--targets") || a === "-t") o.targets = val().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith("--dir")) o.dir = resolve(val());
    else if (a === "--static") o.staticOnly = true;
    else if (a.startsWith("--src")) o.src = resolve(val());
    else if (a === "--help" || a === "-h") {
      console.log("usage: bun scripts/verify-prebuilds.ts [--targets tag,...] [--dir DIR] [--src DIR] [--static]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const selected = opts.targets.length
    ? opts.targets.map((t) => PLATFORMS.find((x) => x.tag === t || x.triple === t) ?? (() => { throw new Error(`unknown target ${t}`); })())
    : PLATFORMS;
  root = opts.src;
  const header = headerFunctions();
  console.log(`header: ${header.length} functions in ${join(root, "rust/ffi/include/zerobus_bun.h")}; libraries from ${opts.dir}; tests from ${root}`);
  for (const [i, p] of selected.entries()) {
    const pkgDir = join(opts.dir, p.tag);
    const lib = join(pkgDir, p.file);
    console.log(`[${i + 1}/${selected.length}] ${p.tag}: ${lib}`);
    if (!existsSync(lib)) {
      report(p.tag, "library", "FAIL", `${lib} not found (bun scripts/cross-build.ts --targets ${p.tag})`);
      continue;
    }
    const info = staticChecks(p, lib, pkgDir, header);
    if (!info || opts.staticOnly) continue;
    if (p.tag === "linux-x64-gnu") hostRuntime(p, lib);
    else if (p.tag === "linux-arm64-gnu") arm64Runtime(p, lib);
    else if (p.libc === "musl") muslTests(p, lib);
    else if (p.tag === "win32-x64") win64Runtime(p, lib, header);
    else report(p.tag, "runtime", "SKIP", p.os === "darwin" ? "no macOS here (static checks only)" : "no Windows on arm64 emulation here (static checks only)");
  }
  console.log("\nsummary:");
  let failed = 0;
  for (const p of selected) {
    const cs = checks.filter((c) => c.platform === p.tag);
    const st: Status = cs.some((c) => c.status === "FAIL") ? "FAIL" : cs.every((c) => c.status === "SKIP") ? "SKIP" : "PASS";
    if (st === "FAIL") failed++;
    const counts = (s: Status) => cs.filter((c) => c.status === s).length;
    console.log(`  ${st.padEnd(4)} ${p.tag.padEnd(16)} ${counts("PASS")} passed, ${counts("FAIL")} failed, ${counts("SKIP")} skipped${cs.filter((c) => c.status === "SKIP").map((c) => ` [skip ${c.name}: ${c.detail}]`).join("")}`);
  }
  const n = (s: Status) => checks.filter((c) => c.status === s).length;
  console.log(`verify-prebuilds: ${n("PASS")} passed, ${n("FAIL")} failed, ${n("SKIP")} skipped`);
  process.exit(failed ? 1 : 0);
}

if (import.meta.main) {
  try {
    main();
  } catch (e) {
    console.error(`verify-prebuilds: ${(e as Error).message}`);
    process.exit(2);
  }
}
