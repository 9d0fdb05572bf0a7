// A local Zerobus server for tests, demos and benchmarks: the `zerobus-local` executable (Rust,
// shipped beside the client library in each platform package), run as a child process (from a copy
// in the temporary directory when it is embedded in a `bun build --compile` executable). gRPC
// ingestion, the OAuth token endpoint, durable JSON-lines files per table, and scriptable faults.
// The SDK's native library holds only the client.
/// <reference lib="esnext.disposable" preserve="true" />
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { findLocalServer, isEmbedded, localServerFile } from "./paths.js";

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
  /** Once `records` arrived, acknowledge `offset` (beyond what was sent: a protocol violation). */
  ackBeyond?: { records: number; offset: number };
  /** After every acknowledgement, acknowledge offset 0 again (an ack that goes backwards). */
  ackBackwards?: boolean;
  /** Acknowledge offset 0 before confirming the stream. */
  ackBeforeCreate?: boolean;
  /**
   * Arrow streams: each commit holds back its last batch's rows until the next commit, so an
   * ack's `ack_up_to_records` stays behind its `ack_up_to_offset`; held rows are dropped if the
   * stream ends first (never durable).
   */
  rowsBehind?: boolean;
}

/** How long `startLocalServer` waits for the server to listen, and `stop()` for it to finish. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** The `zerobus-local` executable this SDK runs; throws naming where it looked and what to do. */
export function localServerExecutable(): string {
  const { path, message } = findLocalServer();
  if (!path) throw new Error(message);
  return runnable(path);
}

let extracted: string | undefined;

/**
 * `path`, or for an executable embedded in this one (which cannot be run where it is) a copy in a
 * directory of its own under the temporary directory, made once per process, removed at exit.
 */
function runnable(path: string): string {
  if (!isEmbedded(path)) return path;
  if (extracted) return extracted;
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-exe-"));
  const exe = join(dir, localServerFile);
  try {
    writeFileSync(exe, readFileSync(path), { mode: 0o755 });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`zerobus-bun: cannot copy the embedded ${localServerFile} to ${dir} (${(e as Error).message}); set TMPDIR to a writable directory, or ZEROBUS_LOCAL_BIN to a zerobus-local executable`);
  }
  process.once("exit", () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Windows keeps the file of a running executable: the server may still be ending
    }
  });
  return (extracted = exe);
}

type ReadyState = { url?: string; error?: string; stopped?: boolean };

/**
 * Process `pid` has ended: gone, or (Linux) a zombie not yet reaped, as /proc tells. Needed because
 * Bun updates a child's `exitCode` from its event loop, which a synchronous wait does not run.
 */
export function hasEnded(pid: number): boolean {
  if (process.platform === "linux") {
    try {
      return /^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return true;
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** The child has exited. (The executable also reports every failure it can see, panics included, in the ready file.) */
function exited(proc: Subprocess<"pipe", "ignore", "inherit">): boolean {
  return proc.exitCode !== null || hasEnded(proc.pid);
}

/** Reads the ready file the server writes (atomically); undefined while it is not there. */
function readReady(path: string): ReadyState | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as ReadyState;
  } catch {
    return undefined;
  }
}

export class LocalServer implements AsyncDisposable {
  #proc: Subprocess<"pipe", "ignore", "inherit"> | null;
  readonly #dir: string;
  readonly url: string;
  readonly dataDir: string;

  /** @internal use startLocalServer */
  constructor(proc: Subprocess<"pipe", "ignore", "inherit">, dir: string, url: string, dataDir: string) {
    this.#proc = proc;
    this.#dir = dir;
    this.url = url;
    this.dataDir = dataDir;
  }

  /** Process id of the server. */
  get pid(): number {
    return this.#proc?.pid ?? -1;
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
    const res = await fetch(`${this.url}${path}`, {
      method,
      // A TLS server serves its control API over TLS too. This is the child process this object
      // started, on loopback, whose certificate may come from a CA only the caller knows.
      ...(this.url.startsWith("https:") ? { tls: { rejectUnauthorized: false } } : {}),
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

  /**
   * Stops the server and returns once it has (open streams end with UNAVAILABLE, connections
   * drain for up to 5 s). Closing its standard input is the stop signal on every platform.
   */
  stop(): void {
    const proc = this.#proc;
    if (!proc) return;
    this.#proc = null;
    try {
      proc.stdin.end();
    } catch {
      // already closed
    }
    const ready = join(this.#dir, "ready.json");
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (!readReady(ready)?.stopped && !exited(proc) && Date.now() < deadline) Bun.sleepSync(2);
    if (!readReady(ready)?.stopped) proc.kill(9);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }
}

/**
 * Starts a local Zerobus server (the `zerobus-local` executable, as a child process that ends with
 * this process) and returns once it listens.
 */
export function startLocalServer(options: LocalServerOptions = {}): LocalServer {
  const dataDir = resolve(options.dataDir ?? ".zerobus-data");
  const exe = localServerExecutable();
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-"));
  const ready = join(dir, "ready.json");
  const config = JSON.stringify({ ...options, dataDir });
  let proc: Subprocess<"pipe", "ignore", "inherit">;
  try {
    proc = Bun.spawn([exe, "--config", config, "--ready-file", ready, "--exit-on-stdin-close"], { stdin: "pipe", stdout: "ignore", stderr: "inherit" });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const where = extracted === exe ? ` (a copy of the one embedded in this executable: if ${tmpdir()} does not allow running programs, set TMPDIR to a directory that does)` : "";
    throw new Error(`cannot start local server (${exe}${where}): ${(e as Error).message}`);
  }
  // The server must not keep this process alive; it exits when this process does (stdin closes).
  proc.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  let state = readReady(ready);
  while (!state && !exited(proc) && Date.now() < deadline) {
    Bun.sleepSync(1);
    state = readReady(ready);
  }
  state ??= readReady(ready); // it may have written its reason just before exiting
  if (!state?.url) {
    proc.kill(9);
    rmSync(dir, { recursive: true, force: true });
    const why = state?.error ?? (exited(proc) ? "exited without saying why (see its output above)" : `did not start within ${START_TIMEOUT_MS / 1000} s`);
    throw new Error(`cannot start local server (${exe}): ${why}`);
  }
  return new LocalServer(proc, dir, state.url, dataDir);
}
