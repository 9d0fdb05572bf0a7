// Records as the official SDK takes them, in the form zerobus-bun's streams take: a Buffer (or
// any Uint8Array) is bytes; a string is JSON text; a protobuf.js message (its class has a static
// `encode`) is encoded with it; a plain object is a JSON record.
import { InvalidArgumentError } from "../errors.js";

const invalid = (m: string) => new InvalidArgumentError(m, "INVALID_ARGUMENT", false);

/** Bytes of a protobuf.js message (`Type.encode(message).finish()`), or undefined for other values. */
function protobufjsBytes(value: object): Uint8Array | undefined {
  const ctor = (value as { constructor?: unknown }).constructor as (Function & { encode?: unknown }) | undefined;
  if (typeof ctor !== "function" || typeof ctor.encode !== "function") return undefined;
  const writer = (ctor.encode as (m: object) => { finish?: () => unknown } | undefined).call(ctor, value);
  const bytes = typeof writer?.finish === "function" ? writer.finish() : undefined;
  if (!(bytes instanceof Uint8Array)) throw invalid("a protobuf message's encode() must return a writer whose finish() gives bytes");
  return bytes;
}

/**
 * One record for a JSON (`json`) or proto stream. What the official SDK cannot convert at all
 * (null, a number, JSON.stringify failing) throws here, synchronously, as it throws; a record of
 * the wrong kind for the stream is returned as an error, for the call's promise to reject with,
 * as the official SDK's does.
 */
export function record(value: unknown, json: boolean): unknown {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === "string") {
    if (json) return value;
    return invalid("a proto stream takes encoded bytes (a Buffer) or a protobuf.js message, not a string; JSON text goes to a stream made with { recordType: RecordType.Json }");
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const bytes = protobufjsBytes(value);
    if (bytes) {
      if (json) return invalid("a protobuf message was passed to a JSON stream: create the stream with recordType: RecordType.Proto and its descriptorProto, or pass the message's JSON form");
      return bytes;
    }
    if (json) return value;
    return invalid(
      "a proto stream takes encoded bytes (a Buffer) or a protobuf.js message, not a plain object: encode it first " +
        "(e.g. toBinary(Schema, message) with @bufbuild/protobuf), or create the stream with { recordType: RecordType.Json }",
    );
  }
  throw invalid(`a record must be a Buffer, a string, a protobuf message or a plain object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`);
}

/**
 * A Buffer at run time (as the official SDK returns), declared without Node's types so that
 * users' projects need none: the bytes, and `toString(encoding)`.
 */
export type RecordBytes = Uint8Array & { toString(encoding?: "utf8" | "utf-8" | "base64" | "hex" | "latin1" | "binary" | "ascii"): string };

/** A zerobus-bun byte array as a Buffer over the same memory. */
export const asBuffer = (b: Uint8Array): RecordBytes => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
