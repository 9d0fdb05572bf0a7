// JSON records: serialized once with JSON.stringify, after a check that nothing would be lost or
// changed silently on the way (JSON.stringify turns a Map into {}, drops Symbol values, writes
// NaN as null, throws raw TypeErrors on BigInt and cycles).
import { InvalidArgumentError } from "./errors";

const toTag = Object.prototype.toString;
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

/** The JSON text of one record, or InvalidArgumentError naming what cannot be stored as given. */
export function jsonText(record: unknown): string {
  if (record === null || typeof record !== "object" || toTag.call(record) !== "[object Object]") {
    refuse(`a JSON record must be an object (or JSON text, or UTF-8 bytes), got ${kind(record)}`);
  }
  ancestors.length = 0;
  check(record, "", 0);
  return JSON.stringify(record);
}

function check(v: unknown, path: string, depth: number): void {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined": // left out, as JSON.stringify does
      return;
    case "number":
      if (!Number.isFinite(v)) refuse(`${v} at ${path || "the top"} has no JSON form (JSON.stringify would write null)`);
      return;
    case "bigint":
      refuse(`BigInt at ${path} has no JSON form: convert it first (String(x), or Number(x) if it fits)`);
    case "symbol":
    case "function":
      refuse(`${kind(v)} at ${path} has no JSON form (JSON.stringify would drop it)`);
    case "object": {
      if (v === null) return;
      if (typeof (v as { toJSON?: unknown }).toJSON === "function") return; // Date and friends decide their form
      if (ancestors.includes(v)) refuse(`the record is circular at ${path}`);
      if (depth > 512) refuse(`the record is nested more than 512 levels deep at ${path}`);
      ancestors.push(v);
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) check(v[i], `${path}[${i}]`, depth + 1);
      } else if (toTag.call(v) === "[object Object]") {
        for (const k in v) check((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
      } else {
        refuse(`${kind(v)} at ${path} would be stored as {} (JSON.stringify keeps only plain objects' own fields)`);
      }
      ancestors.pop();
      return;
    }
  }
}
