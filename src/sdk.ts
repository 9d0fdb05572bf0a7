// The SDK entry point: one Zerobus endpoint, many streams.
import type { Pointer } from "bun:ffi";
import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import { DescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { lib } from "./native";
import { lastError, InvalidArgumentError } from "./errors";
import { ZerobusStream, arrowToIPC, loadArrow, type RecordType } from "./stream";
import { ZerobusArrowStream, type ArrowBatch } from "./arrow";

export interface ZerobusSdkOptions {
  /** Zerobus gRPC endpoint: `https://<workspace-id>.zerobus.<region>.cloud.databricks.com`, or `http://host:port`. */
  endpoint: string;
  /** Workspace URL (`https://<workspace>.cloud.databricks.com`), used for OAuth tokens. */
  unityCatalogUrl?: string;
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
  /** Largest record accepted. Default 10 MiB. */
  maxRecordBytes?: number;
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
  /** Instead of OAuth: headers sent when each physical stream opens (e.g. `{ authorization: "Bearer ..." }`). */
  headers?: Record<string, string>;
}

export interface CreateArrowStreamOptions extends StreamOptions {
  /** Target table, `catalog.schema.table`. */
  table: string;
  /** The batches' schema: an apache-arrow Schema, or Arrow IPC stream bytes that start with it. */
  schema: import("apache-arrow").Schema | Uint8Array;
  clientId?: string;
  clientSecret?: string;
  headers?: Record<string, string>;
}

export class ZerobusSdk implements Disposable {
  #h: Pointer | null;
  readonly endpoint: string;

  constructor(options: ZerobusSdkOptions) {
    if (!options || typeof options.endpoint !== "string" || options.endpoint.trim() === "") {
      throw new InvalidArgumentError("ZerobusSdk needs an endpoint", "INVALID_ARGUMENT", false);
    }
    this.endpoint = options.endpoint;
    const cfg = Buffer.from(JSON.stringify({ endpoint: options.endpoint, unityCatalogUrl: options.unityCatalogUrl }));
    this.#h = lib.zerobus_sdk_new(cfg, cfg.byteLength) as Pointer | null;
    if (!this.#h) throw lastError("cannot create SDK");
  }

  /** Opens a stream and resolves once the server accepted it. */
  async createStream<S extends DescMessage>(options: CreateStreamOptions<S>): Promise<ZerobusStream<any>> {
    const stream = this.openStream(options);
    try {
      await stream.opened();
    } catch (e) {
      await stream.close().catch(() => {});
      throw e;
    }
    return stream;
  }

  /** Starts opening a stream and returns it at once; records ingested meanwhile wait for it. */
  openStream<S extends DescMessage>(options: CreateStreamOptions<S>): ZerobusStream<any> {
    if (!this.#h) throw new InvalidArgumentError("SDK is closed", "INVALID_ARGUMENT", false);
    if (!options || typeof options.table !== "string") {
      throw new InvalidArgumentError("createStream needs a table name", "INVALID_ARGUMENT", false);
    }
    const { table, recordType, descriptor, schema, clientId, clientSecret, headers, ...rest } = options;
    let desc = descriptor;
    if (schema) {
      if (schema.kind !== "message") throw new InvalidArgumentError("schema must be a message schema", "INVALID_ARGUMENT", false);
      desc ??= toBinary(DescriptorProtoSchema, schema.proto);
    }
    const type: RecordType = recordType ?? (desc ? "proto" : "json");
    if (type !== "json" && type !== "proto") {
      throw new InvalidArgumentError(`recordType must be "json" or "proto", got ${String(type)}`, "INVALID_ARGUMENT", false);
    }
    const json = JSON.stringify({ table, recordType: type, clientId, clientSecret, headers, ...rest });
    return new ZerobusStream(this.#h, table, type, json, type === "proto" ? desc : undefined, schema, rest.flushTimeoutMs);
  }

  /**
   * Opens an Arrow stream (Arrow Flight) and resolves once the server accepted it. Batches must
   * have `schema`; `maxInflightRecords` counts rows.
   */
  async createArrowStream(options: CreateArrowStreamOptions): Promise<ZerobusArrowStream> {
    if (!this.#h) throw new InvalidArgumentError("SDK is closed", "INVALID_ARGUMENT", false);
    if (!options || typeof options.table !== "string") {
      throw new InvalidArgumentError("createArrowStream needs a table name", "INVALID_ARGUMENT", false);
    }
    const { table, schema, clientId, clientSecret, headers, ...rest } = options;
    let schemaIpc: Uint8Array;
    let arrow: Awaited<ReturnType<typeof loadArrow>> | undefined;
    try {
      arrow = await loadArrow();
    } catch {
      // apache-arrow is optional: without it, streams take IPC bytes only.
    }
    if (schema instanceof Uint8Array) schemaIpc = schema;
    else if (arrow && schema && typeof schema === "object" && Array.isArray((schema as { fields?: unknown }).fields)) {
      schemaIpc = arrowToIPC(new arrow.Table(schema));
    } else {
      throw new InvalidArgumentError("createArrowStream needs a schema (apache-arrow Schema or IPC bytes)", "INVALID_ARGUMENT", false);
    }
    const json = JSON.stringify({ table, clientId, clientSecret, headers, ...rest });
    const stream = new ZerobusStream<ArrowBatch>(this.#h, table, "arrow", json, schemaIpc, undefined, rest.flushTimeoutMs);
    try {
      await stream.opened();
    } catch (e) {
      await stream.close().catch(() => {});
      throw e;
    }
    return new ZerobusArrowStream(stream);
  }

  close(): void {
    if (this.#h) {
      lib.zerobus_sdk_free(this.#h);
      this.#h = null;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
