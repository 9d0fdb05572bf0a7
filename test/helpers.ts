import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalServer, ZerobusSdk, type LocalServer, type LocalServerOptions } from "../src/index";

export const TABLE = "main.default.events";

/** A fresh local server (own data dir) and an SDK pointed at it. */
export function fixture(opts: LocalServerOptions = {}): { server: LocalServer; sdk: ZerobusSdk; close(): void } {
  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-bun-test-"));
  const server = startLocalServer({ tables: [TABLE], fsync: false, ...opts, dataDir });
  const sdk = new ZerobusSdk({ endpoint: server.url, unityCatalogUrl: server.url });
  return {
    server,
    sdk,
    close() {
      sdk.close();
      server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let tables = 0;
/** Adds a table of its own (`main.default.<prefix>_<n>`) to `server` and returns its name. */
export async function freshTable(server: LocalServer, prefix: string): Promise<string> {
  const table = `main.default.${prefix}_${tables++}`;
  await server.addTable(table);
  return table;
}

/** Stream options for tests: static auth header and quick recovery. */
export const FAST = {
  headers: { authorization: "Bearer test" },
  recoveryBackoffMs: 50,
  recoveryTimeoutMs: 5000,
} as const;
