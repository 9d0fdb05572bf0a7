// The demo (`zerobus-bun demo`, `bun run demo` in a checkout): start a local Zerobus server,
// ingest N JSON records (default 1,000,000), close the stream, and check that the server's table
// file holds exactly those records. Returns the exit code.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const DEMO_USAGE = `usage: zerobus-bun demo [--records N] [--batch N]
  Starts a local Zerobus server, ingests N JSON records (default 1,000,000) one by one, or in
  batches of N, and checks that the server's table file holds exactly those records, in order.`;

/** Parses the demo's flags; throws on anything else. */
export function parseDemoArgs(args: string[]): { records: number; batch: number } {
  const out = { records: 1_000_000, batch: 1 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (flag !== "--records" && flag !== "--batch") throw new Error(`unknown option ${a}`);
    const raw = eq > 0 ? a.slice(eq + 1) : args[++i];
    const v = Number(raw);
    if (raw === undefined || raw === "" || !Number.isSafeInteger(v) || v <= 0) throw new Error(`${flag} needs a positive integer`);
    out[flag === "--records" ? "records" : "batch"] = v;
  }
  return out;
}

export async function runDemo(args: string[] = []): Promise<number> {
  const { records: total, batch } = parseDemoArgs(args);
  const { startLocalServer, ZerobusSdk } = await import("./index.js");

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
