// The SDK entry point: one Zerobus endpoint, many streams.
/// <reference lib="esnext.disposable" preserve="true" />
import type { Pointer } from "bun:ffi";
import type { Schema as ArrowSchema } from "apache-arrow";
import { toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { DescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { lib } from "./native.js";
import { lastError, InvalidArgumentError } from "./errors.js";
import { closest } from "./names.js";
import { arrowToIPC, foreignArrow, loadArrow, ownInstance } from "./arrow-ipc.js";
import { ZerobusStream, type HeadersFunction, type JsonObject, type LocalOptions, type LogEvent, type LogLevel, type RecordType } from "./stream.js";
import { ZerobusArrowStream, type ArrowBatch } from "./arrow.js";

export interface ZerobusSdkOptions {
  /** Zerobus gRPC endpoint: `https://<workspace-id>.zerobus.<region>.cloud.databricks.com`, or `http://host:port`. */
  endpoint: string;
  /** Workspace URL (`https://<workspace>.cloud.databricks.com`), used for OAuth tokens. */
  unityCatalogUrl?: string;
  /**
   * CA certificates (PEM text or bytes, one or more) trusted in addition to the built-in Mozilla
   * roots and the operating system's store, for the endpoint and the token endpoint.
   */
  caCertificates?: string | Uint8Array;
  /**
   * HTTP CONNECT proxy for the endpoint and the token endpoint: `http://[user:password@]host:port`,
   * or `false` for none. Absent: `grpc_proxy`, `https_proxy` (`http_proxy` for `http://`
   * endpoints) and `no_proxy` from the environment.
   */
  proxy?: string | false;
  /** Appended to the user agent sent with every request (`zerobus-bun/<version> <applicationName>`). */
  applicationName?: string;
  /**
   * Receives the streams' events: physical stream opened (with its id), recovery attempts with
   * their cause, close signals, token fetches, failures. Called on the JavaScript thread.
   */
  logger?: (event: LogEvent) => void;
  /**
   * Lowest level reported. Default: the `ZEROBUS_LOG` environment variable, else `"info"` when a
   * logger is given, else nothing (silent). With a level but no logger, events go to stderr.
   */
  logLevel?: LogLevel;
}

export interface StreamOptions {
  /** Records in flight (sent, not acknowledged) at most; more ingests wait. Default 1,000,000. */
  maxInflightRecords?: number;
  /** Record bytes in flight at most (your buffers are held until acknowledged); more ingests wait. Default 256 MiB. */
  maxInflightBytes?: number;
  /** Reconnect and replay unacknowledged records on retryable failures. Default true. */
  recovery?: boolean;
  /** Attempts to (re)open a stream before failing. Default 4. */
  recoveryRetries?: number;
  /** Pause between attempts. Default 500 ms. */
  recoveryBackoffMs?: number;
  /** Time to open a stream. Default 15,000 ms. */
  recoveryTimeoutMs?: number;
  /** Records outstanding with no ack for this long counts as a broken stream. Default 60,000 ms. */
  serverLackOfAckTimeoutMs?: number;
  /** `flush`/`close` give up after this long. Default 300,000 ms. */
  flushTimeoutMs?: number;
  /** `submit` blocks for capacity at most this long, then throws `TIMEOUT`. Default 60,000 ms. */
  submitTimeoutMs?: number;
  /** Largest record accepted. Default 10 MiB. */
  maxRecordBytes?: number;
  /**
   * After the server announces it will close a stream (CloseStreamSignal), how long to keep
   * collecting acknowledgements on it before moving to a new stream. Default: the duration the
   * server announced; 0 moves at once (replaying everything unacknowledged).
   */
  streamPausedMaxWaitTimeMs?: number;
  /**
   * Largest gRPC message sent. Default: 2 MiB on Arrow streams (as the official SDK), where a
   * bigger record batch is sent as row slices that fit; `maxRecordBytes` + 64 KiB on JSON/proto
   * streams, where a bigger batch is sent as several batch requests (one offset each).
   */
  maxMessageBytes?: number;
  /**
   * Read byte arrays larger than 1 KiB in place instead of copying them during the call (zero-copy).
   * You then promise not to write into, transfer, detach or resize such an array (`transfer()`,
   * `postMessage` with a transfer list, a BYOB read) until its record is acknowledged: the SDK
   * would read memory that is no longer the record's. Default false: every array you pass is
   * copied during the call, and nothing you do afterwards reaches the record. In a Worker arrays
   * are always copied.
   */
  zeroCopy?: boolean;
}

export interface CreateStreamOptions<S extends DescMessage = DescMessage> extends StreamOptions {
  /** Target table, `catalog.schema.table`. */
  table: string;
  /** `"json"` or `"proto"`. Defaults to `"proto"` when a schema or descriptor is given, else `"json"`. */
  recordType?: RecordType;
  /** Serialized `google.protobuf.DescriptorProto` of the record message (proto streams). */
  descriptor?: Uint8Array;
  /** A @bufbuild/protobuf message schema: gives the descriptor and lets `ingest` take message objects. */
  schema?: S;
  /** OAuth client credentials (service principal). */
  clientId?: string;
  clientSecret?: string;
  /**
   * Instead of OAuth: headers sent when each physical stream opens (e.g. `{ authorization: "Bearer ..." }`),
   * or a function (sync or async) returning them, called with the table name at every open, so
   * tokens can rotate during a long stream.
   */
  headers?: Record<string, string> | HeadersFunction;
}

/** A stream with a @bufbuild/protobuf schema: takes its messages, init objects and encoded bytes. */
export type SchemaStreamOptions<S extends DescMessage> = CreateStreamOptions<S> & { schema: S; recordType?: "proto" };
/** A proto stream without a schema (with a `descriptor`): takes encoded bytes. */
export type BytesStreamOptions = CreateStreamOptions & { schema?: undefined; recordType?: "proto"; descriptor: Uint8Array };
/** A JSON stream: takes JSON objects, JSON text and UTF-8 bytes. */
export type JsonStreamOptions = CreateStreamOptions & { schema?: undefined; descriptor?: undefined; recordType?: "json" };

export interface CreateArrowStreamOptions extends StreamOptions {
  /** Target table, `catalog.schema.table`. */
  table: string;
  /** The batches' schema: an apache-arrow Schema, or Arrow IPC stream bytes that start with it. */
  schema: ArrowSchema | Uint8Array;
  clientId?: string;
  clientSecret?: string;
  /** As for `createStream`: static headers or a function returning them. */
  headers?: Record<string, string> | HeadersFunction;
  /**
   * Send dictionary-encoded columns as they are. Default false: they are expanded to their
   * value type (as the official SDKs send them; apache-arrow's `tableFromArrays` makes string
   * columns dictionaries), which costs one IPC decode and encode per call for such batches only.
   */
  keepDictionaries?: boolean;
  /**
   * Compress every record batch's IPC body: `"lz4_frame"` (fast) or `"zstd"` (smaller). The
   * service caps a stream's bytes per second, so fewer bytes are more rows. Each call's batches
   * are then decoded and encoded again here. Default `"none"`: batches go as they come.
   */
  compression?: "lz4_frame" | "zstd" | "none";
}

/** A signal `flushOnExit` can handle: the names `process.on` takes. */
export type ExitSignal =
  | "SIGABRT" | "SIGALRM" | "SIGBUS" | "SIGCHLD" | "SIGCONT" | "SIGFPE" | "SIGHUP" | "SIGILL" | "SIGINT" | "SIGIO"
  | "SIGIOT" | "SIGKILL" | "SIGPIPE" | "SIGPOLL" | "SIGPROF" | "SIGPWR" | "SIGQUIT" | "SIGSEGV" | "SIGSTKFLT"
  | "SIGSTOP" | "SIGSYS" | "SIGTERM" | "SIGTRAP" | "SIGTSTP" | "SIGTTIN" | "SIGTTOU" | "SIGUNUSED" | "SIGURG"
  | "SIGUSR1" | "SIGUSR2" | "SIGVTALRM" | "SIGWINCH" | "SIGXCPU" | "SIGXFSZ" | "SIGBREAK" | "SIGLOST" | "SIGINFO";

export interface FlushOnExitOptions {
  /** Signals that flush and close every stream, then exit with 128 + the signal number. Default SIGINT and SIGTERM; `false` for none. */
  signals?: ExitSignal[] | false;
  /** How long exiting may wait for acknowledgements, in all. Default 30,000 ms. */
  timeoutMs?: number;
}

const SDK_OPTIONS = ["endpoint", "unityCatalogUrl", "caCertificates", "proxy", "applicationName", "logger", "logLevel"];
const LOG_LEVELS: LogLevel[] = ["error", "warn", "info", "debug"];

const stderrLogger = (e: LogEvent) => console.error(`zerobus-bun ${e.level} ${e.table}${e.streamId ? ` (${e.streamId})` : ""}: ${e.message}`);
const NUMERIC_OPTIONS = [
  "maxInflightRecords", "maxInflightBytes", "recoveryRetries", "recoveryBackoffMs", "recoveryTimeoutMs",
  "serverLackOfAckTimeoutMs", "flushTimeoutMs", "submitTimeoutMs", "maxRecordBytes", "streamPausedMaxWaitTimeMs",
  "maxMessageBytes",
];
const SIGNAL_NUMBERS: Partial<Record<ExitSignal, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

const invalid = (message: string) => new InvalidArgumentError(message, "INVALID_ARGUMENT", false);

/** The stream options the JavaScript side applies itself. */
function jsOptions(rest: StreamOptions, zeroCopy: unknown): LocalOptions {
  if (zeroCopy !== undefined && typeof zeroCopy !== "boolean") throw invalid(`zeroCopy must be a boolean, got ${typeof zeroCopy}`);
  return { flushTimeoutMs: rest.flushTimeoutMs, submitTimeoutMs: rest.submitTimeoutMs, zeroCopy: zeroCopy === true };
}

/** Names the official SDK (and its compat entry) uses for options zerobus-bun names differently. */
const OFFICIAL_NAMES: Record<string, string> = {
  tableName: "table",
  descriptorProto: "descriptor",
  maxInflightRequests: "maxInflightRecords",
  ipcCompression: "compression",
  format: "recordType",
};

/** Refuses keys not in `known` (typos would otherwise be ignored), naming the option meant. */
function checkKeys(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const official = OFFICIAL_NAMES[key];
    const near = official && known.includes(official) ? official : closest(key, known);
    const compat = official ? "; zerobus-bun/compat takes the official SDK's names and arguments" : "";
    throw invalid(`unknown ${what} option ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?${compat})` : compat ? ` (${compat.slice(2)})` : ""}`);
  }
}

const STREAM_OPTIONS = [
  "table", "clientId", "clientSecret", "headers", "recovery", "zeroCopy", ...NUMERIC_OPTIONS,
];
const CREATE_STREAM_OPTIONS = [...STREAM_OPTIONS, "recordType", "descriptor", "schema"];
const CREATE_ARROW_STREAM_OPTIONS = [...STREAM_OPTIONS, "schema", "keepDictionaries", "compression"];

/** Numbers must be finite (JSON would turn NaN and Infinity into null, i.e. the default); ranges are checked natively. */
function checkNumbers(options: Record<string, unknown>): void {
  for (const key of NUMERIC_OPTIONS) {
    const v = options[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v))) {
      throw invalid(`${key} must be a finite number, got ${typeof v === "number" ? String(v) : typeof v}`);
    }
  }
  if (options["recovery"] !== undefined && typeof options["recovery"] !== "boolean") throw invalid("recovery must be true or false");
}

/** The auth part of the native stream options, and the headers function if `headers` is one. */
function authOptions(clientId: unknown, clientSecret: unknown, headers: unknown): { json: object; fn?: HeadersFunction } {
  if (typeof headers === "function") {
    if (clientId !== undefined || clientSecret !== undefined) throw invalid("give either clientId/clientSecret or headers, not both");
    return { json: { headersProvider: true }, fn: headers as HeadersFunction };
  }
  if (headers !== undefined && (headers === null || typeof headers !== "object" || Array.isArray(headers))) {
    throw invalid("headers must be an object of strings or a function returning one");
  }
  return { json: { clientId, clientSecret, headers } };
}

const sdks = new FinalizationRegistry<Pointer>((h) => lib.zerobus_sdk_free(h));

export class ZerobusSdk implements Disposable {
  #h: Pointer | null;
  readonly endpoint: string;
  /** The streams' logger and level (undefined: silent). */
  #log: { logger: (e: LogEvent) => void; level: LogLevel } | undefined;
  /** Streams made by this SDK (weakly: dropping a stream lets it be collected). */
  #streams = new Set<WeakRef<ZerobusStream<any>>>();

  constructor(options: ZerobusSdkOptions) {
    if (!options || typeof options !== "object") throw invalid("ZerobusSdk takes an options object ({ endpoint, unityCatalogUrl })");
    checkKeys(options, SDK_OPTIONS, "ZerobusSdk");
    if (typeof options.endpoint !== "string" || options.endpoint.trim() === "") throw invalid("ZerobusSdk needs an endpoint");
    if (options.unityCatalogUrl !== undefined && typeof options.unityCatalogUrl !== "string") {
      throw invalid("unityCatalogUrl must be a string (the workspace URL)");
    }
    const { caCertificates, proxy, applicationName, logger, logLevel } = options;
    if (logger !== undefined && typeof logger !== "function") throw invalid("logger must be a function (event) => void");
    if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel)) throw invalid(`logLevel must be one of ${LOG_LEVELS.join(", ")}, got ${String(logLevel)}`);
    const envLevel = process.env["ZEROBUS_LOG"]?.toLowerCase() as LogLevel | undefined;
    const level = logLevel ?? (envLevel && LOG_LEVELS.includes(envLevel) ? envLevel : logger ? "info" : undefined);
    this.#log = level ? { logger: logger ?? stderrLogger, level } : undefined;
    if (caCertificates !== undefined && typeof caCertificates !== "string" && !(caCertificates instanceof Uint8Array)) {
      throw invalid("caCertificates must be PEM text (a string) or bytes (Uint8Array)");
    }
    if (proxy !== undefined && proxy !== false && typeof proxy !== "string") throw invalid("proxy must be a URL string or false");
    if (applicationName !== undefined && typeof applicationName !== "string") throw invalid("applicationName must be a string");
    this.endpoint = options.endpoint;
    const cfg = Buffer.from(
      JSON.stringify({
        endpoint: options.endpoint,
        unityCatalogUrl: options.unityCatalogUrl,
        caCertificates: caCertificates instanceof Uint8Array ? new TextDecoder().decode(caCertificates) : caCertificates,
        proxy,
        applicationName,
      }),
    );
    this.#h = lib.zerobus_sdk_new(cfg, cfg.byteLength) as Pointer | null;
    if (!this.#h) throw lastError("cannot create SDK");
    sdks.register(this, this.#h, this);
  }

  #track<S extends ZerobusStream<any>>(stream: S): S {
    for (const r of this.#streams) if (!r.deref()) this.#streams.delete(r);
    this.#streams.add(new WeakRef(stream));
    return stream;
  }

  /** The live streams this SDK made. */
  #live(): ZerobusStream<any>[] {
    const out: ZerobusStream<any>[] = [];
    for (const r of this.#streams) {
      const s = r.deref();
      if (s) out.push(s);
      else this.#streams.delete(r);
    }
    return out;
  }

  /**
   * Makes exiting safe for records in flight. A script that simply ends already waits for its
   * acknowledgements; this covers the rest:
   * - `process.exit()`: the exit handler blocks until this SDK's streams have their records
   *   acknowledged (at most `timeoutMs`), and reports on stderr what was not;
   * - SIGINT / SIGTERM (or `signals`): every stream is flushed and closed, then the process exits
   *   with 128 + the signal number.
   * Returns a function that removes the handlers.
   */
  flushOnExit(options: FlushOnExitOptions = {}): () => void {
    checkKeys(options, ["signals", "timeoutMs"], "flushOnExit");
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw invalid("flushOnExit: timeoutMs must be a finite number >= 0");
    const signals = options.signals === false ? [] : (options.signals ?? ["SIGINT", "SIGTERM"]);
    // One budget for the whole exit: a signal's close and the exit handler after it share it.
    let until: number | undefined;
    const onExit = () => {
      until ??= performance.now() + timeoutMs;
      let left = 0;
      for (const s of this.#live()) left += s.flushSync(until - performance.now());
      if (left > 0) console.error(`zerobus-bun: exiting with ${left} records not acknowledged`);
    };
    let exiting = false;
    const onSignal = (signal: ExitSignal) => {
      if (exiting) return;
      exiting = true;
      until = performance.now() + timeoutMs;
      const code = 128 + (SIGNAL_NUMBERS[signal] ?? 0);
      const closed = Promise.allSettled(this.#live().map((s) => s.close()));
      const timer = setTimeout(() => process.exit(code), timeoutMs);
      closed.then(() => {
        clearTimeout(timer);
        process.exit(code);
      });
    };
    process.on("exit", onExit);
    for (const sig of signals) process.on(sig, onSignal);
    return () => {
      process.off("exit", onExit);
      for (const sig of signals) process.off(sig, onSignal);
    };
  }

  /**
   * Opens a stream and resolves once the server accepted it. Its records are typed by what it
   * takes: with `schema`, that message's init objects and messages; a JSON stream JSON objects
   * (or `T`: `createStream<Order>({ table, recordType: "json" })`) and JSON text; a proto stream
   * without a schema encoded bytes only. Every stream takes encoded bytes (`Uint8Array`).
   */
  createStream<S extends DescMessage>(options: SchemaStreamOptions<S>): Promise<ZerobusStream<MessageInitShape<S>>>;
  createStream(options: BytesStreamOptions): Promise<ZerobusStream<Uint8Array>>;
  createStream<T extends JsonObject = JsonObject>(options: JsonStreamOptions): Promise<ZerobusStream<T | string>>;
  /** A record type known only at run time: records are checked then. */
  createStream(options: CreateStreamOptions): Promise<ZerobusStream<unknown>>;
  async createStream(options: CreateStreamOptions): Promise<ZerobusStream<any>> {
    const stream = this.openStream(options);
    try {
      await stream.opened();
    } catch (e) {
      await stream.close().catch(() => {});
      throw e;
    }
    return stream;
  }

  /** Starts opening a stream and returns it at once; records ingested meanwhile wait for it. Typed as `createStream`. */
  openStream<S extends DescMessage>(options: SchemaStreamOptions<S>): ZerobusStream<MessageInitShape<S>>;
  openStream(options: BytesStreamOptions): ZerobusStream<Uint8Array>;
  openStream<T extends JsonObject = JsonObject>(options: JsonStreamOptions): ZerobusStream<T | string>;
  openStream(options: CreateStreamOptions): ZerobusStream<unknown>;
  openStream(options: CreateStreamOptions): ZerobusStream<any> {
    if (!this.#h) throw new InvalidArgumentError("SDK is closed", "INVALID_ARGUMENT", false);
    if (!options || typeof options !== "object") throw invalid("createStream takes an options object ({ table, ... })");
    checkKeys(options, CREATE_STREAM_OPTIONS, "createStream");
    if (typeof options.table !== "string") throw invalid("createStream needs `table`: the table name, catalog.schema.table");
    const { table, recordType, descriptor, schema, clientId, clientSecret, headers, zeroCopy, ...rest } = options;
    checkNumbers(rest as Record<string, unknown>);
    const local = jsOptions(rest, zeroCopy);
    let desc = descriptor;
    if (schema) {
      if (schema.kind !== "message") throw new InvalidArgumentError("schema must be a message schema", "INVALID_ARGUMENT", false);
      desc ??= toBinary(DescriptorProtoSchema, schema.proto);
    }
    const type: RecordType = recordType ?? (desc ? "proto" : "json");
    if (type !== "json" && type !== "proto") {
      throw new InvalidArgumentError(`recordType must be "json" or "proto", got ${String(type)}`, "INVALID_ARGUMENT", false);
    }
    if (type === "proto" && !desc) {
      throw invalid("a proto stream needs `schema` (a @bufbuild/protobuf message schema, e.g. EventSchema) or `descriptor` (a serialized DescriptorProto)");
    }
    const auth = authOptions(clientId, clientSecret, headers);
    const json = JSON.stringify({ table, recordType: type, ...auth.json, logLevel: this.#log?.level, ...rest });
    return this.#track(new ZerobusStream(this.#h, table, type, json, type === "proto" ? desc : undefined, schema, local, auth.fn, this.#log?.logger));
  }

  /**
   * Opens an Arrow stream (Arrow Flight) and resolves once the server accepted it. Batches must
   * have `schema`; `maxInflightRecords` counts rows.
   */
  async createArrowStream(options: CreateArrowStreamOptions): Promise<ZerobusArrowStream> {
    if (!this.#h) throw new InvalidArgumentError("SDK is closed", "INVALID_ARGUMENT", false);
    if (!options || typeof options !== "object") throw invalid("createArrowStream takes an options object ({ table, schema, ... })");
    checkKeys(options, CREATE_ARROW_STREAM_OPTIONS, "createArrowStream");
    if (typeof options.table !== "string") throw invalid("createArrowStream needs `table`: the table name, catalog.schema.table");
    const { table, schema, clientId, clientSecret, headers, zeroCopy, ...rest } = options;
    checkNumbers(rest as Record<string, unknown>);
    const local = jsOptions(rest, zeroCopy);
    let schemaIpc: Uint8Array;
    // apache-arrow is optional: without it, streams take IPC bytes only.
    const arrow = await loadArrow();
    if (schema instanceof Uint8Array) schemaIpc = schema;
    else if (arrow && ownInstance(arrow.Schema, schema)) schemaIpc = arrowToIPC(new arrow.Table(schema as ArrowSchema));
    else if (schema && typeof schema === "object" && Array.isArray((schema as { fields?: unknown }).fields)) {
      throw arrow ? foreignArrow("this Schema") : invalid("an apache-arrow Schema needs the apache-arrow package installed (npm install apache-arrow); or pass the schema as Arrow IPC bytes");
    } else {
      throw new InvalidArgumentError("createArrowStream needs a schema (apache-arrow Schema or IPC bytes)", "INVALID_ARGUMENT", false);
    }
    const auth = authOptions(clientId, clientSecret, headers);
    const json = JSON.stringify({ table, ...auth.json, logLevel: this.#log?.level, ...rest });
    const stream = this.#track(new ZerobusStream<ArrowBatch>(this.#h, table, "arrow", json, schemaIpc, undefined, local, auth.fn, this.#log?.logger));
    try {
      await stream.opened();
    } catch (e) {
      await stream.close().catch(() => {});
      throw e;
    }
    return new ZerobusArrowStream(stream);
  }

  /**
   * Opens a new stream that continues a failed one: same table, record type or Arrow schema,
   * options and auth, with the requests the failed stream had not acknowledged queued first, in
   * their order (`failed.unackedRecords()`), and resolves once the server accepted it. Works
   * before or after `close()` of the failed stream. Refused unless `failed` has failed.
   * Delivery stays at-least-once: a request whose ack was lost may be written again.
   */
  async recreateStream<S extends ZerobusStream<any> | ZerobusArrowStream>(failed: S): Promise<S> {
    if (!this.#h) throw new InvalidArgumentError("SDK is closed", "INVALID_ARGUMENT", false);
    const inner = failed instanceof ZerobusArrowStream ? failed.inner : failed;
    if (!(inner instanceof ZerobusStream)) throw invalid("recreateStream takes a stream made by createStream or createArrowStream");
    const next = this.#track(inner._recreate(this.#h));
    try {
      await next.opened();
    } catch (e) {
      await next.close().catch(() => {});
      throw e;
    }
    return (failed instanceof ZerobusArrowStream ? new ZerobusArrowStream(next as ZerobusStream<ArrowBatch>) : next) as S;
  }

  close(): void {
    if (this.#h) {
      sdks.unregister(this);
      lib.zerobus_sdk_free(this.#h);
      this.#h = null;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
