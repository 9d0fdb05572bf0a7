#!/usr/bin/env bun
// Demo: start a local Zerobus server, ingest N JSON records (default 1,000,000), close the stream,
// and check that the server's table file holds exactly those records.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function runDemo(args: string[] = []): Promise<number> {
  const flag = (name: string, def: number) => {
    const i = args.indexOf(name);
    const v = i >= 0 ? Number(args[i + 1]) : def;
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer`);
    return v;
  };
  const total = flag("--records", 1_000_000);
  const batch = flag("--batch", 1);
  if (!process.env.ZEROBUS_BUN_LIB && !args.includes("--no-build")) {
    const { buildNative } = await import("./build");
    buildNative();
  }
  const { startLocalServer, ZerobusSdk } = await import("../src/index");

  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-bun-demo-"));
  const table = "demo.default.events";
  const server = startLocalServer({ dataDir, tables: [table] });
  console.log(`local Zerobus server on ${server.url}, data in ${dataDir}`);
  const sdk = new ZerobusSdk({ endpoint: server.url, unityCatalogUrl: server.url });
  // The local server issues OAuth tokens, so the demo uses the same client-credentials flow as Databricks.
  const stream = await sdk.createStream({ table, recordType: "json", clientId: "demo", clientSecret: "demo" });

  const started = performance.now();
  let lastReport = started;
  const event = (i: number) => ({ id: i, device: `sensor-${i % 100}`, temperature: 20 + (i % 50) / 10, ts: 1_700_000_000_000 + i });
  for (let i = 0; i < total; ) {
    if (batch === 1) {
      stream.submit(event(i++));
    } else {
      const n = Math.min(batch, total - i);
      stream.submitBatch(Array.from({ length: n }, (_, j) => event(i + j)));
      i += n;
    }
    const now = performance.now();
    if (now - lastReport > 1000) {
      lastReport = now;
      console.log(`  queued ${i.toLocaleString()} / ${total.toLocaleString()}, acknowledged through offset ${stream.ackedOffset}`);
    }
  }
  await stream.close();
  const secs = (performance.now() - started) / 1000;
  console.log(`ingested ${total.toLocaleString()} records in ${secs.toFixed(2)} s (${Math.round(total / secs).toLocaleString()} records/s), all acknowledged`);

  // Check the durable file: exactly the records sent, in order, once each.
  const lines = readFileSync(server.tablePath(table), "utf8").split("\n").filter(Boolean);
  let ok = lines.length === total;
  for (let i = 0; ok && i < lines.length; i++) {
    const r = JSON.parse(lines[i]!);
    const e = event(i);
    ok = r.id === e.id && r.device === e.device && r.temperature === e.temperature && r.ts === e.ts;
    if (!ok) console.error(`line ${i + 1} differs: ${lines[i]}`);
  }
  sdk.close();
  server.stop();
  if (!ok) {
    console.error(`FAILED: ${server.tablePath(table)} holds ${lines.length.toLocaleString()} lines, expected exactly the ${total.toLocaleString()} records sent`);
    return 1;
  }
  console.log(`verified: ${server.tablePath(table)} holds exactly the ${total.toLocaleString()} records, in order`);
  rmSync(dataDir, { recursive: true, force: true });
  return 0;
}

if (import.meta.main) process.exit(await runDemo(process.argv.slice(2)));
