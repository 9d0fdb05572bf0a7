#!/usr/bin/env bun
// Benchmark: zerobus-bun (on Bun) against the official Databricks SDK (napi addon, on Node) with
// the same local server in the same run. Prints a Markdown table.
// usage: bun scripts/bench/run.ts [--seconds N] [--store] [--tls] [--pin] [--zero-copy]
//                                 [--arrow-compression lz4_frame|zstd] [--cases a,b,...]
//                                 [--official-runtime node|bun] [--no-alloc] [--alloc-seconds N]
//   --pin: the server runs on the first half of the CPUs this process may use and the SDKs on
//          the other half (the SDKs get the odd one), so neither takes the other's CPU time, as
//          with a remote server (hyperthreads of one core may land in both halves); default:
//          unpinned
//   --zero-copy: zerobus-bun streams read record arrays over 1 KiB in place (the `zeroCopy`
//          option) instead of copying them during the call (the default)
//   --arrow-compression: zerobus-bun Arrow streams compress IPC bodies (the `compression` option);
//          the bytes sent per batch are printed to stderr
//   --tls: the server serves TLS with a certificate from a private CA made for the run (both SDKs
//          trust it through SSL_CERT_FILE), as the real service is TLS-only
//   CPU: user + system seconds per million records, of the SDK's process (all its threads, from
//        the timed section) and of the server (its /proc counters around the whole run, Linux)
//   --store: the server converts and stores records (default: --discard, so the SDKs are measured,
//            not the disk)
//   allocations: after each timed run, a second shorter run of the same case is made with
//   scripts/bench/alloc-count.c preloaded (LD_PRELOAD, Linux/glibc), which counts malloc-family
//   calls and bytes in the SDK's process; --no-alloc skips it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { localServerFile } from "../../src/paths";
import { officialAddon } from "../official-sdk";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : def;
};
const seconds = opt("--seconds", "3");
const store = args.includes("--store");
const tls = args.includes("--tls");
const officialRuntime = opt("--official-runtime", "node");
const pin = args.includes("--pin");
if (args.includes("--zero-copy")) process.env.ZB_ZERO_COPY = "1";
if (args.includes("--arrow-compression")) process.env.ZB_ARROW_COMPRESSION = opt("--arrow-compression", "none");
let serverPin: string[] = [];
let sdkPin: string[] = [];
/** How the run is pinned, for the table's heading ("" when unpinned). */
let pinned = "";
if (pin) {
  // The CPUs this process may use (e.g. "0-3,8-11"), split in two halves.
  const allowed = (() => {
    try {
      const list = readFileSync("/proc/self/status", "utf8").match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? "";
      return list.split(",").flatMap((r) => {
        const [a, b = a] = r.split("-").map(Number);
        return Array.from({ length: b! - a! + 1 }, (_, i) => a! + i);
      });
    } catch {
      return [];
    }
  })();
  if (process.platform !== "linux" || allowed.length < 2 || !Bun.which("taskset")) {
    console.error("--pin needs Linux, taskset (util-linux) and at least 2 CPUs");
    process.exit(2);
  }
  const half = Math.floor(allowed.length / 2);
  const [serverCpus, sdkCpus] = [allowed.slice(0, half).join(","), allowed.slice(half).join(",")];
  serverPin = ["taskset", "-c", serverCpus];
  sdkPin = ["taskset", "-c", sdkCpus];
  pinned = `, server on CPUs ${serverCpus}, SDKs on CPUs ${sdkCpus}`;
}
const allocSeconds = opt("--alloc-seconds", "1");
const allCases = [
  "proto100-ingest",
  "proto100-submit",
  "proto100-batch1000",
  "json100-ingest",
  "json100-batch1000",
  "proto10k-ingest",
  "proto1m-ingest",
  "arrow100-batch1000",
];
const cases = opt("--cases", allCases.join(",")).split(",");
const here = import.meta.dir;
const root = join(here, "..", "..");

const deps = join(here, ".deps");
// The official addon is installed on demand (linux-x64 only), outside the project's dependencies.
const addon = officialAddon() ?? "";
const haveOfficial = addon !== "";
if (!haveOfficial) console.error("no official SDK here: measuring zerobus-bun only");

// The benchmark measures what users install: the dist profile (LTO), as the prebuilds. With
// ZEROBUS_BUN_LIB (and ZEROBUS_LOCAL_BIN) set, it measures those files instead (e.g. a copy of an
// earlier build, for before/after runs in one session).
let built: { lib: string; localServer: string };
if (process.env.ZEROBUS_BUN_LIB) {
  const lib = process.env.ZEROBUS_BUN_LIB;
  built = { lib, localServer: process.env.ZEROBUS_LOCAL_BIN ?? join(dirname(lib), localServerFile) };
} else {
  const { buildNative } = await import("../build");
  built = buildNative({ quiet: true, profile: "dist" });
}
process.env.ZEROBUS_BUN_LIB = built.lib;
process.env.ZEROBUS_LOCAL_BIN = built.localServer;
console.error(`measuring ${built.lib}`);

// The allocation counter (see alloc-count.c), built once into .deps.
let allocLib: string | undefined;
if (!args.includes("--no-alloc") && process.platform === "linux") {
  const out = join(deps, "alloc-count.so");
  const src = join(here, "alloc-count.c");
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(deps, { recursive: true });
    const r = Bun.spawnSync(["cc", "-O2", "-shared", "-fPIC", "-o", out, src, "-ldl"], { stderr: "inherit" });
    if (r.exitCode !== 0) console.error("could not build alloc-count.so: allocations not measured");
  }
  if (existsSync(out)) allocLib = out;
}

const dataDir = mkdtempSync(join(tmpdir(), "zerobus-bench-"));
let tlsArgs: string[] = [];
if (tls) {
  const { privateCa } = await import("../../test/net-helpers");
  const ca = privateCa();
  tlsArgs = ["--tls-cert", ca.certPem, "--tls-key", ca.keyPem];
  process.env.SSL_CERT_FILE = ca.caPem; // both SDKs' drivers inherit it
}
const server = Bun.spawn(
  [...serverPin, built.localServer, ...tlsArgs, "--port", "0", "--data-dir", dataDir, "--table", "bench.default.t", "--no-fsync", ...(store ? [] : ["--discard"])],
  { stdout: "pipe", stderr: "inherit" },
);
const reader = server.stdout.getReader();
let banner = "";
while (!banner.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("local server exited");
  banner += new TextDecoder().decode(value);
}
const endpoint = banner.match(/listening on (\S+)/)![1]!;
console.error(`local server ${endpoint} (${store ? "storing records" : "--discard"}${tls ? ", TLS" : ""}${pinned}${process.env.ZB_ZERO_COPY === "1" ? ", zeroCopy" : ""}), ${seconds} s per case`);

/** The server's user + system CPU seconds so far (Linux /proc; undefined elsewhere). */
function serverCpu(): number | undefined {
  try {
    const stat = readFileSync(`/proc/${server.pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

type Row = {
  sdk: string;
  case: string;
  records: number;
  seconds: number;
  recordsPerSec: number;
  MBps: number;
  allocsPerRecord?: number;
  allocBytesPerRecord?: number;
  /** user-space bytes copied in copies of >= 4 KiB, per byte of record data */
  copiedPerByte?: number;
  /** CPU seconds per million records: the SDK's process, and the server's */
  cpuPerMillion?: number;
  serverCpuPerMillion?: number;
};
function run1(cmd: string[], env?: Record<string, string>): Row | undefined {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const line = r.stdout.toString().trim().split("\n").pop() ?? "";
  if (r.exitCode === 0 && !env) for (const note of r.stderr.toString().split("\n")) if (/^(lz4_frame|zstd):/.test(note)) console.error(note);
  if (r.exitCode !== 0 || !line.startsWith("{")) {
    console.error(`failed: ${cmd.join(" ")}\n${r.stderr.toString()}`);
    return undefined;
  }
  return JSON.parse(line);
}

/** A timed run, then (with the counter) a short run that counts allocations. */
function run(cmd: (secs: string) => string[]): Row | undefined {
  const cpu0 = serverCpu();
  const timed = run1(cmd(seconds));
  const cpu1 = serverCpu();
  const row = timed && cpu0 !== undefined && cpu1 !== undefined ? { ...timed, serverCpuPerMillion: +(((cpu1 - cpu0) / timed.records) * 1e6).toFixed(3) } : timed;
  if (!row || !allocLib) return row;
  const file = join(dataDir, `alloc-${process.pid}`);
  const counted = run1(cmd(allocSeconds), { LD_PRELOAD: allocLib, ZB_ALLOC_FILE: file });
  rmSync(file, { force: true });
  return counted ? { ...row, allocsPerRecord: counted.allocsPerRecord, allocBytesPerRecord: counted.allocBytesPerRecord, copiedPerByte: counted.copiedPerByte } : row;
}

const rows: { kase: string; ours?: Row; official?: Row }[] = [];
for (const kase of cases) {
  const ours = run((secs) => [...sdkPin, process.execPath, join(here, "ours.ts"), endpoint, kase, secs]);
  let official: Row | undefined;
  if (haveOfficial && !kase.endsWith("submit")) {
    const rt = officialRuntime === "bun" ? process.execPath : "node";
    official = run((secs) => [...sdkPin, rt, join(here, "official.cjs"), addon, endpoint, kase, secs]);
  }
  const say = (r?: Row) => (r ? `${r.recordsPerSec} rec/s${r.allocBytesPerRecord !== undefined ? `, ${r.allocBytesPerRecord} B alloc/rec` : ""}` : "-");
  console.error(`${kase}: zerobus-bun ${say(ours)}; official ${say(official)}`);
  rows.push({ kase, ours, official });
}
server.kill();
await server.exited;
rmSync(dataDir, { recursive: true, force: true });

const fmt = (n?: number) => (n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const mb = (r?: Row) => (r ? r.MBps.toFixed(0) : "–");
// allocations per record: "calls / bytes"
const al = (r?: Row) =>
  r?.allocBytesPerRecord === undefined
    ? "–"
    : `${r.allocsPerRecord!.toFixed(r.allocsPerRecord! < 10 ? 2 : 0)} / ${fmt(r.allocBytesPerRecord)} B`;
// CPU seconds per million records: "SDK + server"
const cpu = (r?: Row) =>
  r?.cpuPerMillion === undefined ? "–" : `${r.cpuPerMillion.toFixed(2)}${r.serverCpuPerMillion !== undefined ? ` + ${r.serverCpuPerMillion.toFixed(2)}` : ""}`;
console.log(`${tls ? "TLS" : "plaintext"}, ${store ? "records stored" : "server discarding"}${pinned}; CPU = user+system s per million records, SDK process + server`);
const cp = (r?: Row) => (r?.copiedPerByte === undefined ? "–" : r.copiedPerByte.toFixed(2));
console.log(`copies = bytes copied by memcpy/memmove of >= 4 KiB in the SDK's process, per byte of record data`);
console.log(`| case | zerobus-bun records/s | MB/s | allocs/record | copies | CPU | official records/s | MB/s | allocs/record | copies | CPU | speed-up |`);
console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
for (const { kase, ours, official } of rows) {
  const x = ours && official ? `${(ours.recordsPerSec / official.recordsPerSec).toFixed(1)}x` : "–";
  console.log(
    `| ${kase} | ${fmt(ours?.recordsPerSec)} | ${mb(ours)} | ${al(ours)} | ${cp(ours)} | ${cpu(ours)} | ${fmt(official?.recordsPerSec)} | ${mb(official)} | ${al(official)} | ${cp(official)} | ${cpu(official)} | ${x} |`,
  );
}
