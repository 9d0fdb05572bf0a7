// The official SDK's (1.3) stream options and enums, and their translation to zerobus-bun's
// createStream / createArrowStream options. Also accepts the 2.0 options-bag spellings
// (`format`, `auth: { type }`, `compression`).
import { InvalidArgumentError } from "../errors.js";
import { closest } from "../names.js";
import type { HeadersFunction } from "../stream.js";
import type { StreamOptions } from "../sdk.js";

// The enums are objects (no reverse mapping, as the official addon's) with a namespace of member
// types beside each, so that `RecordType.Json` is a type too, as with an enum.

/** Record serialization format (`StreamConfigurationOptions.recordType`). */
export const RecordType = { Json: 0, Proto: 1 } as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];
export declare namespace RecordType {
  type Json = 0;
  type Proto = 1;
}

/** Arrow IPC body compression (`ArrowStreamConfigurationOptions.ipcCompression`). */
export const IpcCompressionType = { Lz4Frame: 0, Zstd: 1 } as const;
export type IpcCompressionType = (typeof IpcCompressionType)[keyof typeof IpcCompressionType];
export declare namespace IpcCompressionType {
  type Lz4Frame = 0;
  type Zstd = 1;
}

/** Column types of `ArrowTableProperties.schemaFields`. */
export const ArrowDataType = {
  Boolean: 0, Int8: 1, Int16: 2, Int32: 3, Int64: 4, UInt8: 5, UInt16: 6, UInt32: 7, UInt64: 8, Float32: 9,
  Float64: 10, Utf8: 11, LargeUtf8: 12, Binary: 13, LargeBinary: 14, Date32: 15, Date64: 16, TimestampMicros: 17,
  TimestampNanos: 18,
} as const;
export type ArrowDataType = (typeof ArrowDataType)[keyof typeof ArrowDataType];
export declare namespace ArrowDataType {
  type Boolean = 0; type Int8 = 1; type Int16 = 2; type Int32 = 3; type Int64 = 4; type UInt8 = 5; type UInt16 = 6;
  type UInt32 = 7; type UInt64 = 8; type Float32 = 9; type Float64 = 10; type Utf8 = 11; type LargeUtf8 = 12;
  type Binary = 13; type LargeBinary = 14; type Date32 = 15; type Date64 = 16; type TimestampMicros = 17;
  type TimestampNanos = 18;
}

/** Header pairs, `[name, value]`, as a headers provider returns them. */
export type HeaderPairs = Array<[string, string]> | string[][];

/**
 * Custom authentication: called each time a physical stream opens, returns header pairs (as the
 * official SDK requires: `authorization` and `x-databricks-zerobus-table-name`).
 */
export interface HeadersProvider {
  getHeadersCallback: () => HeaderPairs | Promise<HeaderPairs>;
}
/** The official SDK's name for `HeadersProvider`. */
export type JsHeadersProvider = HeadersProvider;

/** The 2.0 options bag's `auth`. */
export type Auth =
  | { type: "oauth"; clientId: string; clientSecret: string }
  | { type: "custom" | "headers"; headersProvider: HeadersProvider }
  | { type: "token" | "pat"; token: string };

/** Options zerobus-bun adds beyond the official ones (its own names), accepted here too. */
type Extras = Pick<StreamOptions, "maxInflightBytes" | "submitTimeoutMs" | "maxRecordBytes" | "maxMessageBytes" | "zeroCopy">;

export interface StreamConfigurationOptions extends Extras {
  /** Records sent and not acknowledged, at most. zerobus-bun's default: 1,000,000. */
  maxInflightRequests?: number;
  recovery?: boolean;
  recoveryTimeoutMs?: number;
  recoveryBackoffMs?: number;
  recoveryRetries?: number;
  flushTimeoutMs?: number;
  serverLackOfAckTimeoutMs?: number;
  /** `RecordType.Json` or `RecordType.Proto` (the default, which needs `descriptorProto`). */
  recordType?: RecordType | number;
  streamPausedMaxWaitTimeMs?: number;
  /** 2.0 spelling of `recordType`. */
  format?: "json" | "proto" | RecordType | number;
  /** 2.0: authentication in the options bag (instead of clientId/clientSecret/headersProvider). */
  auth?: Auth;
}

export interface ArrowStreamConfigurationOptions extends Extras {
  /** Accepted; zerobus-bun bounds batches in flight by rows and bytes (`maxInflightBytes`) instead. */
  maxInflightBatches?: number;
  recovery?: boolean;
  recoveryTimeoutMs?: number;
  recoveryBackoffMs?: number;
  recoveryRetries?: number;
  serverLackOfAckTimeoutMs?: number;
  flushTimeoutMs?: number;
  /** Time to open a stream: zerobus-bun's `recoveryTimeoutMs` when that is not given. */
  connectionTimeoutMs?: number;
  ipcCompression?: IpcCompressionType | number;
  /** 2.0 spelling of `ipcCompression`. */
  compression?: "lz4_frame" | "zstd" | "none" | IpcCompressionType | number;
  auth?: Auth;
}

const invalid = (m: string) => new InvalidArgumentError(m, "INVALID_ARGUMENT", false);

const SHARED = ["recovery", "recoveryTimeoutMs", "recoveryBackoffMs", "recoveryRetries", "flushTimeoutMs", "serverLackOfAckTimeoutMs", "auth",
  "maxInflightBytes", "submitTimeoutMs", "maxRecordBytes", "maxMessageBytes", "zeroCopy"];
const STREAM_KEYS = [...SHARED, "maxInflightRequests", "recordType", "streamPausedMaxWaitTimeMs", "format"];
const ARROW_KEYS = [...SHARED, "maxInflightBatches", "connectionTimeoutMs", "ipcCompression", "compression"];
/** Passed to zerobus-bun under the same name. */
const SAME = ["recovery", "recoveryTimeoutMs", "recoveryBackoffMs", "recoveryRetries", "flushTimeoutMs", "serverLackOfAckTimeoutMs",
  "streamPausedMaxWaitTimeMs", "maxInflightBytes", "submitTimeoutMs", "maxRecordBytes", "maxMessageBytes", "zeroCopy"];

function checkKeys(options: object, known: string[], what: string): void {
  for (const key of Object.keys(options)) {
    if ((options as Record<string, unknown>)[key] == null || known.includes(key)) continue;
    const near = closest(key, known);
    throw invalid(`unknown ${what} option ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ""}`);
  }
}

/** zerobus-bun's auth options from the official arguments (or the 2.0 `auth`). */
export function authOptions(
  clientId: unknown,
  clientSecret: unknown,
  provider: unknown,
  auth: Auth | undefined,
): { clientId?: string; clientSecret?: string; headers?: HeadersFunction } {
  if (auth != null) {
    if (!auth || typeof auth !== "object") throw invalid("auth must be an object: { type: \"oauth\", clientId, clientSecret } or { type: \"custom\", headersProvider }");
    if (auth.type === "oauth") return { clientId: auth.clientId, clientSecret: auth.clientSecret };
    if (auth.type === "custom" || auth.type === "headers") return { headers: headersFunction(auth.headersProvider) };
    if (auth.type === "token" || auth.type === "pat") {
      if (typeof auth.token !== "string" || auth.token === "") throw invalid("auth.token must be a non-empty string");
      const token = auth.token;
      return { headers: () => ({ authorization: `Bearer ${token}` }) };
    }
    throw invalid(`auth.type must be "oauth", "custom" or "token", got ${JSON.stringify((auth as { type?: unknown }).type)}`);
  }
  if (provider !== undefined && provider !== null) return { headers: headersFunction(provider) };
  if (typeof clientId !== "string" || typeof clientSecret !== "string") {
    throw invalid("createStream needs clientId and clientSecret (strings), or a headersProvider ({ getHeadersCallback })");
  }
  return { clientId, clientSecret };
}

/** A `HeadersProvider` as zerobus-bun's headers function (sync when the callback is). */
function headersFunction(provider: unknown): HeadersFunction {
  const cb = (provider as HeadersProvider | null)?.getHeadersCallback;
  if (typeof cb !== "function") throw invalid("headersProvider must be an object with getHeadersCallback: () => [name, value][]");
  const toRecord = (pairs: unknown): Record<string, string> => {
    if (!Array.isArray(pairs)) {
      if (pairs && typeof pairs === "object") return pairs as Record<string, string>;
      throw invalid("getHeadersCallback must return an array of [name, value] pairs");
    }
    const out: Record<string, string> = {};
    for (const p of pairs) {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== "string" || typeof p[1] !== "string") {
        throw invalid("getHeadersCallback must return [name, value] pairs of strings");
      }
      out[p[0].toLowerCase()] = p[1];
    }
    return out;
  };
  return () => {
    const r = cb.call(provider);
    return r instanceof Promise ? r.then(toRecord) : toRecord(r);
  };
}

/** zerobus-bun's recordType from `recordType` / `format`; the official default is Proto. */
export function recordType(o: StreamConfigurationOptions): "json" | "proto" {
  const v = o.format ?? o.recordType ?? RecordType.Proto;
  if (v === RecordType.Json || v === "json") return "json";
  if (v === RecordType.Proto || v === "proto") return "proto";
  throw invalid(`recordType must be RecordType.Json or RecordType.Proto, got ${JSON.stringify(v)}`);
}

/** zerobus-bun stream options from the official ones (auth and record type aside). */
export function streamOptions(o: StreamConfigurationOptions | null | undefined): StreamOptions {
  const opts = o ?? {};
  if (typeof opts !== "object") throw invalid("options must be an object (StreamConfigurationOptions)");
  checkKeys(opts, STREAM_KEYS, "StreamConfigurationOptions");
  const out: Record<string, unknown> = pick(opts);
  if (opts.maxInflightRequests !== undefined && opts.maxInflightRequests !== null) out["maxInflightRecords"] = clamp("maxInflightRecords", opts.maxInflightRequests);
  return out as StreamOptions;
}

/** zerobus-bun Arrow stream options from the official ones. */
export function arrowOptions(o: ArrowStreamConfigurationOptions | null | undefined): StreamOptions & { compression?: "lz4_frame" | "zstd" | "none" } {
  const opts = o ?? {};
  if (typeof opts !== "object") throw invalid("options must be an object (ArrowStreamConfigurationOptions)");
  checkKeys(opts, ARROW_KEYS, "ArrowStreamConfigurationOptions");
  const out: Record<string, unknown> = pick(opts);
  if (opts.maxInflightBatches != null && typeof opts.maxInflightBatches !== "number") throw invalid("maxInflightBatches must be a number");
  if (opts.recoveryTimeoutMs == null && opts.connectionTimeoutMs != null) out["recoveryTimeoutMs"] = clamp("recoveryTimeoutMs", opts.connectionTimeoutMs);
  const c = opts.compression ?? opts.ipcCompression;
  if (c != null) {
    if (c === IpcCompressionType.Lz4Frame || c === "lz4_frame") out["compression"] = "lz4_frame";
    else if (c === IpcCompressionType.Zstd || c === "zstd") out["compression"] = "zstd";
    else if (c !== "none") throw invalid(`ipcCompression must be IpcCompressionType.Lz4Frame or IpcCompressionType.Zstd, got ${JSON.stringify(c)}`);
  }
  return out as StreamOptions;
}

/**
 * zerobus-bun's ranges for the numeric options compat passes on. The official addon takes any
 * 32-bit unsigned value; compat takes those too and moves them into these ranges (a fraction
 * rounded, a negative number, which the addon reads as a huge unsigned one, as the maximum).
 */
const MAX_MS = 2 ** 31 - 1;
const RANGES: Record<string, [number, number]> = {
  maxInflightRecords: [1, MAX_MS], maxInflightBytes: [1, 2 ** 40], recoveryRetries: [0, 1000], recoveryBackoffMs: [10, MAX_MS],
  recoveryTimeoutMs: [100, MAX_MS], serverLackOfAckTimeoutMs: [1000, MAX_MS], flushTimeoutMs: [100, MAX_MS],
  submitTimeoutMs: [100, MAX_MS], maxRecordBytes: [1, MAX_MS], streamPausedMaxWaitTimeMs: [0, MAX_MS], maxMessageBytes: [4096, MAX_MS],
};

/** `v` moved into `name`'s range; not a number: left for zerobus-bun to refuse. */
function clamp(name: string, v: unknown): unknown {
  const r = RANGES[name];
  if (!r || typeof v !== "number" || Number.isNaN(v)) return v;
  if (v < 0) return r[1];
  return Math.min(r[1], Math.max(r[0], Math.round(v)));
}

function pick(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of SAME) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined && v !== null) out[k] = clamp(k, v);
  }
  return out;
}
