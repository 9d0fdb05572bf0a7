// zerobus-bun/compat: the official TypeScript SDK's API (@databricks/zerobus-ingest-sdk 1.3)
// over zerobus-bun, so switching is one import. Positional arguments, RecordType / ArrowDataType /
// IpcCompressionType enums, bigint offsets, Buffer / string / object records. See
// docs/migration.md for what maps to what.
import { InvalidArgumentError, ZerobusError } from "./errors.js";
import { loadArrow } from "./arrow-ipc.js";
import { ZerobusSdk as Sdk } from "./sdk.js";
import {
  ArrowDataType, arrowOptions, authOptions, recordType, streamOptions,
  type ArrowStreamConfigurationOptions, type Auth, type HeadersProvider, type StreamConfigurationOptions,
} from "./compat/options.js";
import { ZerobusArrowStream, ZerobusStream } from "./compat/streams.js";

export { RecordType, ArrowDataType, IpcCompressionType } from "./compat/options.js";
export type { StreamConfigurationOptions, ArrowStreamConfigurationOptions, HeadersProvider, JsHeadersProvider, HeaderPairs, Auth } from "./compat/options.js";
export type { RecordBytes } from "./compat/records.js";
export { ZerobusStream, ZerobusArrowStream } from "./compat/streams.js";
export { ZerobusError };

/** The target table; `descriptorProto` (base64 DescriptorProto) for protobuf records. */
export interface TableProperties {
  tableName: string;
  descriptorProto?: string;
}

/** One column of an Arrow stream's schema. `nullable` defaults to true. */
export interface ArrowField {
  name: string;
  dataType: ArrowDataType | number;
  nullable?: boolean | null;
}

export interface ArrowTableProperties {
  tableName: string;
  schemaFields: ArrowField[];
}

const invalid = (m: string) => new InvalidArgumentError(m, "INVALID_ARGUMENT", false);

/** The 2.0 options bag given as the only argument: table, auth and options in one object. */
type Bag<P, O> = P & O & { auth: Auth };

function tableName(p: unknown, what: string): string {
  if (!p || typeof p !== "object") throw invalid(`${what} takes table properties ({ tableName, ... }) first`);
  const name = (p as { tableName?: unknown }).tableName;
  if (typeof name !== "string") throw invalid(`${what} needs tableName (catalog.schema.table)`);
  return name;
}

/** Splits a 2.0 single-argument bag (it has `auth`) into (properties, options); else `options` as given. */
function unbag<O>(first: object, more: boolean, options: O | undefined, props: string[]): [Record<string, unknown>, O | undefined] {
  if (more || !("auth" in first)) return [first as Record<string, unknown>, options];
  const p: Record<string, unknown> = {};
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(first)) (props.includes(k) ? p : o)[k] = v;
  return [p, o as O];
}

function checkProps(p: Record<string, unknown>, known: string[], what: string): void {
  for (const k of Object.keys(p)) if (!known.includes(k)) throw invalid(`unknown ${what} property ${JSON.stringify(k)} (it takes ${known.join(", ")})`);
}

function descriptorBytes(d: unknown): Uint8Array | undefined {
  if (d === undefined || d === null) return undefined;
  if (d instanceof Uint8Array) return d;
  if (typeof d !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(d.trim())) throw invalid("descriptorProto must be a base64-encoded DescriptorProto");
  return Buffer.from(d, "base64");
}

/** The official SDK's `ZerobusSdk`: `new ZerobusSdk(zerobusEndpoint, unityCatalogUrl)`. */
export class ZerobusSdk {
  /** The zerobus-bun SDK underneath. */
  readonly inner: Sdk;

  constructor(zerobusEndpoint: string, unityCatalogUrl: string) {
    if (typeof zerobusEndpoint !== "string") throw invalid("ZerobusSdk takes (zerobusEndpoint, unityCatalogUrl): strings");
    this.inner = new Sdk({ endpoint: zerobusEndpoint, unityCatalogUrl });
  }

  /** Opens a JSON or protobuf stream (protobuf unless `options.recordType` is `RecordType.Json`). */
  createStream(
    tableProperties: TableProperties | Bag<TableProperties, StreamConfigurationOptions>,
    clientId?: string,
    clientSecret?: string,
    options?: StreamConfigurationOptions | null,
    headersProvider?: HeadersProvider | null,
  ): Promise<ZerobusStream> {
    return (async () => {
      const table = tableName(tableProperties, "createStream");
      const more = [clientId, clientSecret, options, headersProvider].some((a) => a != null);
      const [props, opts] = unbag(tableProperties, more, options, ["tableName", "descriptorProto"]);
      checkProps(props, ["tableName", "descriptorProto"], "TableProperties");
      const o = opts ?? {};
      const type = recordType(o);
      const descriptor = descriptorBytes(props["descriptorProto"]);
      if (type === "proto" && !descriptor) {
        throw invalid("a Proto stream needs tableProperties.descriptorProto (a base64 DescriptorProto); for JSON records pass options { recordType: RecordType.Json }");
      }
      const auth = authOptions(clientId, clientSecret, headersProvider, o.auth);
      const base = { table, ...auth, ...streamOptions(o) };
      const inner =
        type === "json"
          ? await this.inner.createStream({ ...base, recordType: "json" })
          : await this.inner.createStream({ ...base, recordType: "proto", descriptor: descriptor! });
      return new ZerobusStream(inner, type === "json");
    })();
  }

  /** A new stream like `stream` (after it failed), its unacknowledged records queued first. */
  async recreateStream(stream: ZerobusStream): Promise<ZerobusStream> {
    if (!(stream instanceof ZerobusStream)) throw invalid("recreateStream takes a stream made by createStream");
    return new ZerobusStream(await this.inner.recreateStream(stream.inner), stream._json);
  }

  /** Opens an Arrow Flight stream whose batches have the columns `schemaFields`. */
  createArrowStream(
    tableProperties: ArrowTableProperties | Bag<ArrowTableProperties, ArrowStreamConfigurationOptions>,
    clientId?: string,
    clientSecret?: string,
    options?: ArrowStreamConfigurationOptions | null,
    headersProvider?: HeadersProvider | null,
  ): Promise<ZerobusArrowStream> {
    return (async () => {
      const table = tableName(tableProperties, "createArrowStream");
      const more = [clientId, clientSecret, options, headersProvider].some((a) => a != null);
      const [props, opts] = unbag(tableProperties, more, options, ["tableName", "schemaFields"]);
      checkProps(props, ["tableName", "schemaFields"], "ArrowTableProperties");
      const schema = await arrowSchema(props["schemaFields"]);
      const auth = authOptions(clientId, clientSecret, headersProvider, opts?.auth);
      const s = await this.inner.createArrowStream({ table, schema, ...auth, ...arrowOptions(opts) });
      return new ZerobusArrowStream(s.inner);
    })();
  }

  /** A new Arrow stream like `stream` (after it failed), its unacknowledged batches queued first. */
  async recreateArrowStream(stream: ZerobusArrowStream): Promise<ZerobusArrowStream> {
    if (!(stream instanceof ZerobusArrowStream)) throw invalid("recreateArrowStream takes a stream made by createArrowStream");
    const next = await this.inner.recreateStream(stream.inner);
    return new ZerobusArrowStream(next);
  }
}

/** An apache-arrow Schema from `schemaFields` (the types as the official SDK maps them). */
async function arrowSchema(fields: unknown): Promise<import("apache-arrow").Schema> {
  if (!Array.isArray(fields) || fields.length === 0) throw invalid("schemaFields must be a non-empty array of { name, dataType, nullable? }");
  const A = await loadArrow();
  if (!A) throw invalid("createArrowStream needs the apache-arrow package (bun add apache-arrow) to build the schema from schemaFields");
  const D = ArrowDataType;
  const types: Record<number, () => import("apache-arrow").DataType> = {
    [D.Boolean]: () => new A.Bool(), [D.Int8]: () => new A.Int8(), [D.Int16]: () => new A.Int16(), [D.Int32]: () => new A.Int32(),
    [D.Int64]: () => new A.Int64(), [D.UInt8]: () => new A.Uint8(), [D.UInt16]: () => new A.Uint16(), [D.UInt32]: () => new A.Uint32(),
    [D.UInt64]: () => new A.Uint64(), [D.Float32]: () => new A.Float32(), [D.Float64]: () => new A.Float64(), [D.Utf8]: () => new A.Utf8(),
    [D.LargeUtf8]: () => new A.LargeUtf8(), [D.Binary]: () => new A.Binary(), [D.LargeBinary]: () => new A.LargeBinary(),
    [D.Date32]: () => new A.DateDay(), [D.Date64]: () => new A.DateMillisecond(),
    [D.TimestampMicros]: () => new A.TimestampMicrosecond("UTC"), [D.TimestampNanos]: () => new A.TimestampNanosecond("UTC"),
  };
  return new A.Schema(
    fields.map((f: unknown, i) => {
      const { name, dataType, nullable } = (f ?? {}) as Partial<ArrowField>;
      if (typeof name !== "string" || name === "") throw invalid(`schemaFields[${i}].name must be a non-empty string`);
      const make = typeof dataType === "number" ? types[dataType] : undefined;
      if (!make) throw invalid(`schemaFields[${i}] (${name}): dataType must be an ArrowDataType, got ${JSON.stringify(dataType)}`);
      if (nullable != null && typeof nullable !== "boolean") throw invalid(`schemaFields[${i}] (${name}): nullable must be a boolean`);
      return new A.Field(name, make(), nullable ?? true);
    }),
  );
}
