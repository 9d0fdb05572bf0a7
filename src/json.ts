// JSON records: serialized once with JSON.stringify, after a check that nothing would be lost or
// changed silently on the way (JSON.stringify turns a Map into {}, drops Symbol values, writes
// NaN as null, throws raw TypeErrors on BigInt and cycles). The check is one pass over the
// record's values, built for the common flat record: strings, finite numbers, booleans, null.
import { InvalidArgumentError } from "./errors";

const toTag = Object.prototype.toString;
const objectProto = Object.prototype;
const ancestors: object[] = [];

function refuse(what: string): never {
  throw new InvalidArgumentError(what, "INVALID_ARGUMENT", false);
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return `a ${toTag.call(v).slice(8, -1)}`;
  return `a ${typeof v}`;
}

/** Plain objects and class instances (whose own fields JSON.stringify writes), not Map, Date, ... */
function isRecordLike(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === objectProto || proto === null || toTag.call(v) === "[object Object]";
}

/** The JSON text of one record, or InvalidArgumentError naming what cannot be stored as given. */
export function jsonText(record: unknown): string {
  if (record === null || typeof record !== "object" || Array.isArray(record) || !isRecordLike(record)) {
    refuse(`a JSON record must be an object (or JSON text, or UTF-8 bytes), got ${kind(record)}`);
  }
  ancestors.length = 0;
  checkFields(record as Record<string, unknown>, "");
  return JSON.stringify(record);
}

function checkFields(o: Record<string, unknown>, path: string): void {
  ancestors.push(o);
  for (const k in o) {
    const v = o[k];
    const t = typeof v;
    if (t === "string" || t === "boolean" || t === "undefined" || v === null) continue;
    if (t === "number") {
      if ((v as number) - (v as number) !== 0) refuse(`${v} at ${path}.${k} has no JSON form (JSON.stringify would write null)`);
      continue;
    }
    checkValue(v, `${path}.${k}`);
  }
  ancestors.pop();
}

/** Anything but a string, boolean, null, undefined or finite number. */
function checkValue(v: unknown, path: string): void {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined": // left out, as JSON.stringify does
      return;
    case "number":
      if (!Number.isFinite(v)) refuse(`${v} at ${path} has no JSON form (JSON.stringify would write null)`);
      return;
    case "bigint":
      refuse(`BigInt at ${path} has no JSON form: convert it first (String(x), or Number(x) if it fits)`);
    case "symbol":
    case "function":
      refuse(`${kind(v)} at ${path} has no JSON form (JSON.stringify would drop it)`);
  }
  if (v === null) return;
  const o = v as object;
  if (typeof (o as { toJSON?: unknown }).toJSON === "function") return; // Date and friends decide their form
  if (ancestors.includes(o)) refuse(`the record is circular at ${path}`);
  if (ancestors.length > 512) refuse(`the record is nested more than 512 levels deep at ${path}`);
  if (Array.isArray(o)) {
    ancestors.push(o);
    for (let i = 0; i < o.length; i++) checkValue(o[i], `${path}[${i}]`);
    ancestors.pop();
  } else if (isRecordLike(o)) {
    checkFields(o as Record<string, unknown>, path);
  } else {
    refuse(`${kind(o)} at ${path} would be stored as {} (JSON.stringify keeps only plain objects' own fields)`);
  }
}
