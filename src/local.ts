// A local Zerobus server (the Rust `zerobus-local` crate, running inside this process through the
// native library): gRPC ingestion, the OAuth token endpoint, durable JSON-lines files per table,
// and scriptable faults for tests.
import type { Pointer } from "bun:ffi";
import { readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { lib } from "./native";
import { lastError } from "./errors";

export interface LocalServerOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Where table files go (`<dataDir>/<table>.jsonl`). Default `./.zerobus-data`. */
  dataDir?: string;
  /** Tables that exist from the start. */
  tables?: string[];
  /** Accept any table name. Default false (unknown tables fail with NOT_FOUND). */
  autoCreateTables?: boolean;
  maxRecordBytes?: number;
  /** fsync before acknowledging. Default true. */
  fsync?: boolean;
  /** Benchmark mode: acknowledge records after checking framing, offsets, size and type, without storing them. */
  discard?: boolean;
  /** PEM files: serve TLS instead of plaintext. */
  tlsCertPem?: string;
  tlsKeyPem?: string;
  /** When set, the token endpoint checks these and gRPC requires the issued token. */
  clientId?: string;
  clientSecret?: string;
  /** Largest FlightData message (header + body) accepted; default 4 MiB. Ephemeral requests: `maxRecordBytes` + 64 KiB. */
  maxMessageBytes?: number;
  /** Lifetime of issued tokens (`expires_in`), seconds. Default 3600; expired tokens are refused. */
  tokenTtlSecs?: number;
}

export interface StatusSpec {
  code: string;
  message?: string;
}

/** A fault applied to the next `times` streams opened (optionally only for `table`). */
export interface Fault {
  table?: string;
  times?: number;
  dropAfterRecords?: number;
  ackDelayMs?: number;
  withholdAcks?: boolean;
  /** Commit records but never acknowledge them (acks lost on the way back). */
  loseAcks?: boolean;
  failCreate?: StatusSpec;
  failAfterRecords?: StatusSpec & { records: number };
  closeSignalAfterRecords?: { records: number; durationMs: number };
}

const buf = new Uint8Array(1024);

export class LocalServer implements AsyncDisposable {
  #h: Pointer | null;
  readonly url: string;
  readonly dataDir: string;

  /** @internal use startLocalServer */
  constructor(h: Pointer, dataDir: string) {
    this.#h = h;
    const n = Number(lib.zerobus_local_url(h, buf, buf.length));
    this.url = new TextDecoder().decode(buf.subarray(0, n));
    this.dataDir = dataDir;
  }

  /** Path of a table's JSON-lines file. */
  tablePath(table: string): string {
    return join(this.dataDir, `${table}.jsonl`);
  }

  /** Every record committed to `table`, parsed, in commit order. */
  records<R = Record<string, unknown>>(table: string): R[] {
    const p = this.tablePath(table);
    if (!existsSync(p)) return [];
    const text = readFileSync(p, "utf8");
    const out: R[] = [];
    for (const line of text.split("\n")) if (line) out.push(JSON.parse(line));
    return out;
  }

  async #control(method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${this.url.replace(/^https/, "http")}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`local server ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  addTable(name: string): Promise<void> {
    return this.#control("POST", "/control/tables", { name });
  }
  addFault(fault: Fault): Promise<void> {
    return this.#control("POST", "/control/faults", fault);
  }
  /** The next token requests answer with these HTTP statuses, in order (e.g. `[503, 429]`). */
  addTokenFaults(statuses: number[]): Promise<void> {
    return this.#control("POST", "/control/token-faults", { statuses });
  }
  /** Forgets every issued token: streams opened with one are refused with UNAUTHENTICATED. */
  revokeTokens(): Promise<void> {
    return this.#control("DELETE", "/control/tokens");
  }
  clearFaults(): Promise<void> {
    return this.#control("DELETE", "/control/faults");
  }
  stats(): Promise<any> {
    return this.#control("GET", "/control/stats");
  }

  stop(): void {
    if (this.#h) {
      lib.zerobus_local_stop(this.#h);
      this.#h = null;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }
}

/** Starts a local Zerobus server in this process. */
export function startLocalServer(options: LocalServerOptions = {}): LocalServer {
  const dataDir = resolve(options.dataDir ?? ".zerobus-data");
  const cfg = Buffer.from(JSON.stringify({ ...options, dataDir }));
  const h = lib.zerobus_local_start(cfg, cfg.byteLength) as Pointer | null;
  if (!h) throw lastError("cannot start local server");
  return new LocalServer(h, dataDir);
}
