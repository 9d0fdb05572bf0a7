// JSON records: serialized once with JSON.stringify, after a check that nothing would be lost or
// changed silently on the way. JSON.stringify turns a Map into {}, drops Symbol values and
// Symbol-keyed fields, writes NaN, undefined, array holes and invalid Dates as null, -0 as 0,
// lone surrogates as escapes no UTF-8 reader accepts, and throws raw TypeErrors on BigInt and
// cycles: each of these is refused with InvalidArgumentError naming the path, except -0, which is
// written as -0. Values with toJSON are checked as toJSON returns them. The check is one pass
// over the record's own fields, built for the common flat record (strings, finite numbers,
// booleans, null); lone surrogates are looked for in the text JSON.stringify wrote (as escapes),
// and only when one shows is the record walked again to name where.
//
// Also here: the stricter check of a google.protobuf.Struct value (checkJsonValue), which
// @bufbuild/protobuf converts without toJSON or wrapper objects.
import { InvalidArgumentError } from "./errors.js";

const toTag = Object.prototype.toString;
const objectProto = Object.prototype;
const hasOwn = Object.prototype.hasOwnProperty;
const getSymbols = Object.getOwnPropertySymbols;
const isEnumerable = Object.prototype.propertyIsEnumerable;
const ancestors: object[] = [];
/** The record being checked holds a -0 (JSON.stringify would write 0). */
let negativeZero = false;
/** JSON.stringify's escape of a lone surrogate (or a literal backslash before "ud8.."; then the walk finds nothing). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON;
/** Writes -0 as -0 (JSON.stringify writes 0); used only for records that hold one. */
function keepNegativeZero(_key: string, v: unknown): unknown {
  if (v === 0 ? 1 / (v as number) < 0 : v instanceof Number && Object.is(v.valueOf(), -0)) return rawJSON!("-0");
  return v;
}

function refuse(what: string): never {
  throw new InvalidArgumentError(what, "INVALID_ARGUMENT", false);
}

/** What a value is, for messages: "null", "an array", "a Map", "a bigint". */
export function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return `a ${toTag.call(v).slice(8, -1)}`;
  return `a ${typeof v}`;
}

/** Plain objects and class instances (whose own fields JSON.stringify writes), not Map, Date, ... */
function isRecordLike(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  if (proto === objectProto || proto === null) return true;
  return toTag.call(v) === "[object Object]" && !(v instanceof Map || v instanceof Set || ArrayBuffer.isView(v));
}

/** Where the first lone surrogate of `s` sits. */
function loneSurrogateAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      else return i;
    } else if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

function refuseSurrogate(s: string, where: string): never {
  const at = loneSurrogateAt(s);
  const code = s.charCodeAt(at).toString(16).toUpperCase();
  refuse(`${where} holds a lone surrogate (U+${code} at index ${at}), which UTF-8 cannot encode: it would be stored as U+FFFD or refused by the server`);
}

/** JSON text given as a string: sent as UTF-8, so it must be well-formed UTF-16. */
export function checkJsonText(text: string): string {
  if (!text.isWellFormed()) refuseSurrogate(text, "the JSON text");
  return text;
}

/** The JSON text of one record, or InvalidArgumentError naming what cannot be stored as given. */
export function jsonText(record: unknown): string {
  if (record === null || typeof record !== "object" || Array.isArray(record) || !isRecordLike(record)) {
    refuse(`a JSON record must be an object (or JSON text, or UTF-8 bytes), got ${kind(record)}`);
  }
  const typeName = (record as { $typeName?: unknown }).$typeName;
  if (typeof typeName === "string") {
    refuse(
      `a protobuf message (${typeName}) cannot go to a JSON stream: create a proto stream with its schema, ` +
        "or ingest its bytes (toBinary) on a proto stream, or its JSON form (toJson) here",
    );
  }
  let value: unknown = record;
  if (typeof (record as { toJSON?: unknown }).toJSON === "function") {
    // Written as toJSON returns it (JSON.stringify calls toJSON once per value), which must be a
    // plain record itself; that result is what is checked and written.
    value = (record as { toJSON(key: string): unknown }).toJSON("");
    if (value === null || typeof value !== "object" || Array.isArray(value) || !isRecordLike(value)) {
      refuse(`a JSON record's toJSON must return an object, got ${kind(value)}`);
    }
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") refuse("a JSON record's toJSON returned an object with a toJSON of its own");
  }
  ancestors.length = 0;
  negativeZero = false;
  checkFields(value as Record<string, unknown>, "");
  let text: string;
  if (!negativeZero) text = JSON.stringify(value);
  else if (rawJSON) text = JSON.stringify(value, keepNegativeZero);
  else refuse("the record holds -0, which this runtime's JSON.stringify writes as 0");
  if (SURROGATE_ESCAPE.test(text)) findSurrogate(value, "", 0, false);
  return text;
}

function checkFields(o: Record<string, unknown>, path: string): void {
  ancestors.push(o);
  const proto = Object.getPrototypeOf(o);
  const inherits = proto !== objectProto && proto !== null;
  for (const k in o) {
    if (inherits && !hasOwn.call(o, k)) continue; // JSON.stringify writes own fields only
    const v = o[k];
    const t = typeof v;
    if (t === "string" || t === "boolean" || t === "undefined" || v === null) continue;
    if (t === "number") {
      if ((v as number) - (v as number) !== 0) refuse(`${v} at ${path}.${k} has no JSON form (JSON.stringify would write null)`);
      if (v === 0 && 1 / (v as number) < 0) negativeZero = true;
      continue;
    }
    checkValue(v, `${path}.${k}`, k);
  }
  const symbols = getSymbols(o);
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i]!;
    if (isEnumerable.call(o, s)) refuse(`the field ${String(s)} at ${path || "the top level"} is keyed by a Symbol, which JSON cannot hold (JSON.stringify would drop it)`);
  }
  ancestors.pop();
}

/**
 * Anything but a string, boolean, null, undefined or finite number. `converted`: `v` is what a
 * toJSON returned, which JSON.stringify writes as it is (it calls no toJSON on it).
 */
function checkValue(v: unknown, path: string, key: string, converted = false): void {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined": // a field left out, as JSON.stringify does (array elements are checked before)
      return;
    case "number":
      if (!Number.isFinite(v)) refuse(`${v} at ${path} has no JSON form (JSON.stringify would write null)`);
      if (v === 0 && 1 / v < 0) negativeZero = true;
      return;
    case "bigint":
      refuse(`BigInt at ${path} has no JSON form: convert it first (String(x), or Number(x) if it fits)`);
    case "symbol":
    case "function":
      refuse(`${kind(v)} at ${path} has no JSON form (JSON.stringify would drop it)`);
  }
  if (v === null) return;
  const o = v as object;
  if (!converted && typeof (o as { toJSON?: unknown }).toJSON === "function") {
    if (toTag.call(o) === "[object Date]") {
      // Any realm's Date: its toJSON writes null for an invalid one.
      if (Number.isNaN(Date.prototype.getTime.call(o))) refuse(`an invalid Date at ${path} would be written as null`);
      return;
    }
    // Written as toJSON returns it: that is what is checked.
    return checkValue((o as { toJSON(key: string): unknown }).toJSON(key), path, key, true);
  }
  if (ancestors.includes(o)) refuse(`the record is circular at ${path}`);
  if (ancestors.length > 512) refuse(`the record is nested more than 512 levels deep at ${path}`);
  if (Array.isArray(o)) {
    if (Object.keys(o).length > o.length) refuse(`the array at ${path} has named properties, which JSON.stringify would drop`);
    ancestors.push(o);
    for (let i = 0; i < o.length; i++) {
      const e = o[i];
      if (e === undefined || typeof e === "function" || typeof e === "symbol") {
        const what = e === undefined ? (i in o ? "undefined" : "a hole") : kind(e);
        refuse(`${what} at ${path}[${i}] has no JSON form (JSON.stringify would write null)`);
      }
      checkValue(e, `${path}[${i}]`, String(i));
    }
    ancestors.pop();
    return;
  }
  switch (toTag.call(o)) {
    case "[object String]": // wrapper objects: JSON.stringify writes their primitive value
    case "[object Number]":
    case "[object Boolean]":
      if (o instanceof String || o instanceof Number || o instanceof Boolean) return checkValue(o.valueOf(), path, key, true);
      break;
    case "[object BigInt]":
      refuse(`a BigInt object at ${path} has no JSON form: convert it first (String(x), or Number(x) if it fits)`);
  }
  if (isRecordLike(o)) {
    checkFields(o as Record<string, unknown>, path);
  } else {
    refuse(`${kind(o)} at ${path} would not be stored as it is (JSON.stringify keeps only plain objects' own fields: a Map or Set becomes {})`);
  }
}

/** Names where a lone surrogate sits (field names and strings, as JSON.stringify reaches them). */
function findSurrogate(v: unknown, path: string, depth: number, converted: boolean): void {
  if (typeof v === "string") {
    if (!v.isWellFormed()) refuseSurrogate(v, `the string at ${path || "the top level"}`);
    return;
  }
  if (v === null || typeof v !== "object" || depth > 512) return;
  if (!converted && typeof (v as { toJSON?: unknown }).toJSON === "function") {
    return findSurrogate((v as { toJSON(k: string): unknown }).toJSON(path.slice(path.lastIndexOf(".") + 1)), path, depth + 1, true);
  }
  if (v instanceof String) return findSurrogate(v.valueOf(), path, depth + 1, true);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) findSurrogate(v[i], `${path}[${i}]`, depth + 1, false);
    return;
  }
  for (const k of Object.keys(v)) {
    if (!k.isWellFormed()) refuseSurrogate(k, `the field name at ${path || "the top level"}`);
    findSurrogate((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1, false);
  }
}

/**
 * A google.protobuf.Struct given as a JSON object: only what @bufbuild/protobuf converts as it
 * is (strings UTF-8 can encode, finite numbers, booleans, null, arrays, plain objects); it reads
 * no toJSON and no wrapper objects, writes undefined as null and drops Symbol keys.
 */
export function checkJsonValue(v: unknown, path: string, depth = 0): void {
  switch (typeof v) {
    case "string":
      if (!v.isWellFormed()) refuseSurrogate(v, `the string at ${path}`);
      return;
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) refuse(`${v} at ${path} has no JSON form`);
      return;
    case "object":
      break;
    default:
      refuse(`${kind(v)} at ${path} is not a JSON value (google.protobuf.Struct holds JSON only)`);
  }
  if (v === null) return;
  if (depth > 512) refuse(`the value is nested more than 512 levels deep (or circular) at ${path}`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkJsonValue(v[i], `${path}[${i}]`, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if ((proto !== objectProto && proto !== null) || typeof (v as { $typeName?: unknown }).$typeName === "string") {
    refuse(`${kind(v)} at ${path} is not a JSON value (google.protobuf.Struct holds plain objects, arrays and primitives)`);
  }
  if (getSymbols(v).length > 0) refuse(`a field at ${path} is keyed by a Symbol, which JSON cannot hold`);
  for (const k of Object.keys(v)) {
    if (!k.isWellFormed()) refuseSurrogate(k, `the field name at ${path}`);
    checkJsonValue((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
  }
}
