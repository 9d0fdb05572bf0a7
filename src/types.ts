// The types of the stream API that are not classes: what streams take and report. Declarations
// only, so that the published declarations reach no module that needs Bun's types.
import type { ZerobusError } from "./errors.js";

export type StreamState = "opening" | "open" | "recovering" | "closing" | "closed" | "failed";

export type RecordType = "json" | "proto";

/**
 * An object record for a JSON stream (serialized once with JSON.stringify): any object but a
 * protobuf message, which has no faithful JSON form here (use toJson, or a proto stream).
 */
export type JsonObject = { readonly $typeName?: never; readonly [field: string]: unknown } | (object & { readonly $typeName?: never });
/** A record for a JSON stream: an object, JSON text, or UTF-8 bytes. */
export type JsonRecord = JsonObject | string | Uint8Array;

/** The `headers` option as a function: called with the table name each time a physical stream opens. */
export type HeadersFunction = (table: string) => Record<string, string> | Promise<Record<string, string>>;

/** A stream's running totals (`stream.stats()`). Arrow streams count rows as records. */
export interface StreamStats {
  recordsIngested: number;
  bytesIngested: number;
  /** Handed to a physical stream, replays included. */
  recordsSent: number;
  bytesSent: number;
  recordsAcked: number;
  bytesAcked: number;
  /** Queued or sent, not yet acknowledged. */
  recordsInflight: number;
  bytesInflight: number;
  /** Physical streams opened (1 + recoveries). */
  streamsOpened: number;
  /** Physical streams that replaced a broken or server-closed one. */
  recoveries: number;
  /** OAuth tokens fetched for this stream (cache hits not counted). */
  tokensFetched: number;
  /** The error that ended the last physical stream (even if recovered), or the stream's error once failed. */
  lastError?: ZerobusError;
}

/** A request not acknowledged (`stream.unackedRecords()`). */
export interface UnackedRecord {
  /** Its logical offset on the stream it came from. */
  offset: number;
  /** Whether it was one batch request (`ingestBatch`), else a single record. */
  batch: boolean;
  /** Its records' bytes: JSON as UTF-8 text, protobuf encoded; an Arrow batch as one IPC stream (schema, dictionaries, batch). */
  records: Uint8Array[];
}

/** How much the SDK reports to its logger. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** One event for the SDK's `logger`. */
export interface LogEvent {
  level: LogLevel;
  message: string;
  /** The stream's table. */
  table: string;
  /** The server's id of the current physical stream, once one is open. */
  streamId?: string | undefined;
}
