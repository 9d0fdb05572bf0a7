#!/usr/bin/env bun
// Soak run (not a test): N records through one stream while the server drops it every
// --every records, then checks that every record was stored and that this process's memory
// stayed flat. The server runs in its own process (`zerobus-bun local`), so RSS is the SDK's.
// usage: bun scripts/soak.ts [--records 20000000] [--every 1000000] [--keep]
import { mkdtempSync, rmSync, readFileSync, createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ZerobusSdk } from "../src/index";

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const total = opt("--records", 20_000_000);
const every = opt("--every", 1_000_000);
const table = "soak.default.events";
const dataDir = mkdtempSync(join(tmpdir(), "zerobus-soak-"));
const rssMb = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024);

const cli = join(import.meta.dir, "..", "src", "cli.ts");
const server = Bun.spawn([process.execPath, cli, "local", "--port", "0", "--no-fsync", "--data-dir", dataDir, "--table", table], {
  stdout: "pipe",
  stderr: "inherit",
});
const reader = server.stdout.getReader();
let banner = "";
while (!banner.includes("\n")) banner += new TextDecoder().decode((await reader.read()).value);
const url = banner.match(/listening on (\S+)/)![1]!;
// Every stream (the first and each replacement) is dropped after `every` records.
await fetch(`${url}/control/faults`, {
  method: "POST",
  body: JSON.stringify({ table, dropAfterRecords: every, times: Math.ceil(total / every) + 1 }),
});

const sdk = new ZerobusSdk({ endpoint: url });
const s = await sdk.createStream({ table, recordType: "json", headers: { authorization: "Bearer soak" }, recoveryBackoffMs: 50 });
const samples: number[] = [];
const t0 = performance.now();
const step = 1_000_000;
for (let from = 0; from < total; from += step) {
  const to = Math.min(total, from + step);
  for (let i = from; i < to; i++) s.submit({ i, source: "soak" });
  await Bun.sleep(0);
  Bun.gc(true);
  samples.push(rssMb());
  console.log(`${to.toLocaleString()} submitted, ${(s.ackedOffset + 1).toLocaleString()} acknowledged, ${s.streamsOpened} streams, RSS ${samples.at(-1)} MB`);
}
await s.flush();
const secs = (performance.now() - t0) / 1000;
const streams = s.streamsOpened;
await s.close();
sdk.close();
server.kill();
await server.exited;

// Every record stored? (at-least-once: duplicates are counted, not failed)
const seen = new Uint8Array(total);
let lines = 0;
let dupes = 0;
const rl = createInterface({ input: createReadStream(join(dataDir, `${table}.jsonl`)) });
for await (const line of rl) {
  if (!line) continue;
  lines++;
  const i = JSON.parse(line).i as number;
  if (seen[i]) dupes++;
  seen[i] = 1;
}
const missing = seen.reduce((n, v) => n + (v ? 0 : 1), 0);
const warm = samples.slice(Math.min(2, samples.length - 1));
console.log(
  `\n${total.toLocaleString()} records in ${secs.toFixed(1)} s (${Math.round(total / secs).toLocaleString()}/s), ${streams} physical streams\n` +
    `stored ${lines.toLocaleString()} rows: ${missing} missing, ${dupes} duplicates\n` +
    `RSS after each million: min ${Math.min(...warm)} MB, max ${Math.max(...warm)} MB (first: ${samples[0]} MB)`,
);
if (!args.includes("--keep")) rmSync(dataDir, { recursive: true, force: true });
process.exit(missing === 0 ? 0 : 1);
