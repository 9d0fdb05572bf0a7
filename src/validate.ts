// Message records checked against their schema before they are encoded. @bufbuild/protobuf's
// create() and toBinary() take any value without a word: a string for a double is written as NaN,
// a misspelt field is dropped, 2**40 for an int32 wraps. So each object record is walked once
// against its DescMessage: unknown fields, values of the wrong type, integers out of range,
// enum values the enum does not define, strings UTF-8 cannot encode and missing proto2 required
// fields are refused with InvalidArgumentError naming the field's path. Pre-encoded bytes are
// not checked here.
import { ScalarType, type DescEnum, type DescField, type DescMessage, type DescOneof } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "./errors.js";
import { checkJsonValue, kind } from "./json.js";
import { closest } from "./names.js";

/** FeatureSet.FieldPresence.LEGACY_REQUIRED: a proto2 `required` field. */
const LEGACY_REQUIRED = 3;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const DECIMAL = /^-?[0-9]+$/;
const toTag = Object.prototype.toString;

/** What one message's walk needs, built once per schema. */
interface Plan {
  members: Map<string, DescField | DescOneof>;
  /** The same, as arrays: iterated per record. */
  names: string[];
  list: (DescField | DescOneof)[];
  required: DescField[];
  enumValues: Map<DescEnum, Set<number>>;
}
const plans = new WeakMap<DescMessage, Plan>();

function plan(desc: DescMessage): Plan {
  let p = plans.get(desc);
  if (!p) {
    const members = new Map<string, DescField | DescOneof>();
    for (const m of desc.members) members.set(m.localName, m);
    p = {
      members, names: [...members.keys()], list: [...members.values()],
      required: desc.fields.filter((f) => f.presence === LEGACY_REQUIRED), enumValues: new Map(),
    };
    plans.set(desc, p);
  }
  return p;
}

function refuse(message: string): never {
  throw new InvalidArgumentError(message, "INVALID_ARGUMENT", false);
}

/** A value as a message shows it: its type and, for primitives, the value. */
function shown(v: unknown): string {
  switch (typeof v) {
    case "string":
      return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
    case "number":
      return `the number ${v}`;
    case "bigint":
      return `the bigint ${v}n`;
    case "boolean":
      return `${v}`;
    default:
      return kind(v);
  }
}

/** The closest known member name to `key` (a field's .proto name counts), for "did you mean". */
function nearest(p: Plan, key: string): string | undefined {
  for (const [name, m] of p.members) if (m.kind === "field" && m.name === key) return name;
  return closest(key, p.members.keys());
}

const SCALAR_NAMES: Record<number, string> = {
  [ScalarType.DOUBLE]: "double", [ScalarType.FLOAT]: "float", [ScalarType.INT64]: "int64", [ScalarType.UINT64]: "uint64",
  [ScalarType.INT32]: "int32", [ScalarType.FIXED64]: "fixed64", [ScalarType.FIXED32]: "fixed32", [ScalarType.BOOL]: "bool",
  [ScalarType.STRING]: "string", [ScalarType.BYTES]: "bytes", [ScalarType.UINT32]: "uint32", [ScalarType.SFIXED32]: "sfixed32",
  [ScalarType.SFIXED64]: "sfixed64", [ScalarType.SINT32]: "sint32", [ScalarType.SINT64]: "sint64",
};

/** Why `v` is not a value of `scalar`, or undefined if it is. */
function scalarProblem(scalar: ScalarType, v: unknown): string | undefined {
  switch (scalar) {
    case ScalarType.DOUBLE:
      return typeof v === "number" ? undefined : "a number";
    case ScalarType.FLOAT:
      if (typeof v !== "number") return "a number";
      return Number.isFinite(v) && !Number.isFinite(Math.fround(v)) ? "a number within float range" : undefined;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return typeof v === "number" && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff ? undefined : "a whole number from -2147483648 to 2147483647";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? undefined : "a whole number from 0 to 4294967295";
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64: {
      const b = int64(v);
      return b !== undefined && b >= INT64_MIN && b <= INT64_MAX ? undefined : "a bigint (or whole number, or decimal string) within int64";
    }
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const b = int64(v);
      return b !== undefined && b >= 0n && b <= UINT64_MAX ? undefined : "a bigint (or whole number, or decimal string) from 0 to 2^64-1";
    }
    case ScalarType.BOOL:
      return typeof v === "boolean" ? undefined : "a boolean";
    case ScalarType.STRING:
      if (typeof v !== "string") return "a string";
      return v.isWellFormed() ? undefined : "a string UTF-8 can encode (it holds a lone surrogate)";
    case ScalarType.BYTES:
      return v instanceof Uint8Array ? undefined : "a Uint8Array";
  }
}

/** A 64-bit integer given as bigint, whole number or decimal string. */
function int64(v: unknown): bigint | undefined {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v) : undefined;
  if (typeof v === "string" && DECIMAL.test(v)) return BigInt(v);
  return undefined;
}

/** What a field holds, for messages: "double", "enum test.Color", "message test.Point". */
function typeOf(f: { scalar?: ScalarType | undefined; enum?: DescEnum | undefined; message?: DescMessage | undefined }): string {
  if (f.scalar !== undefined) return SCALAR_NAMES[f.scalar] ?? "scalar";
  if (f.enum) return `enum ${f.enum.typeName}`;
  return `message ${f.message!.typeName}`;
}


/**
 * An object `create()` reads field by field: a plain object, a class instance or a message. Not
 * a Map, Date, array or typed array (create() would read none of their contents).
 */
function isPlain(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object") return false;
  return toTag.call(v) === "[object Object]" || typeof (v as { $typeName?: unknown }).$typeName === "string";
}

/**
 * Checks `record` (a message init object or message) against `desc`; throws InvalidArgumentError
 * naming the first problem. `path` prefixes field paths in messages.
 */
export function checkMessage(desc: DescMessage, record: unknown, path = desc.typeName): void {
  if (!isPlain(record)) {
    refuse(`${path} must be a ${desc.typeName} message or a plain init object, got ${shown(record)}`);
  }
  const o = record;
  const typeName = o["$typeName"];
  const isMessage = typeName !== undefined;
  if (isMessage && typeName !== desc.typeName) {
    refuse(`${path} must be a ${desc.typeName}, got a ${String(typeName)} message`);
  }
  const p = plan(desc);
  // Enumerable keys: nothing unknown. Then every member as create() reads it (through the prototype).
  for (const key in o) {
    if (key === "$typeName") continue;
    if (key === "$unknown") {
      checkUnknown(o["$unknown"], isMessage, path);
      continue;
    }
    if (!p.members.has(key)) {
      const near = nearest(p, key);
      refuse(`${path} has no field ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ""}`);
    }
  }
  for (let i = 0; i < p.list.length; i++) {
    const key = p.names[i]!;
    const m = p.list[i]!;
    const v = o[key];
    if (v === undefined) continue;
    if (m.kind === "oneof") checkOneof(m, v, `${path}.${key}`);
    else checkField(p, m, v, `${path}.${key}`);
  }
  for (const f of p.required) {
    // A message made by create() holds unset proto2 fields' defaults on its prototype.
    const set = isMessage ? Object.hasOwn(o, f.localName) : o[f.localName] !== undefined;
    if (!set) refuse(`${path}.${f.localName} is required (${typeOf(f)}) but not set`);
  }
}

/** `$unknown`: fields a parsed message kept as bytes. Only messages carry it (create() drops it). */
function checkUnknown(v: unknown, isMessage: boolean, path: string): void {
  if (!isMessage) refuse(`${path}.$unknown is set on an init object (create() would drop it): pass a message`);
  if (v === undefined) return;
  const ok =
    Array.isArray(v) &&
    v.every(
      (u: { no?: unknown; wireType?: unknown; data?: unknown }) =>
        Number.isInteger(u?.no) && (u.no as number) >= 1 && (u.no as number) <= 0x1fffffff &&
        Number.isInteger(u.wireType) && (u.wireType as number) >= 0 && (u.wireType as number) <= 5 && u.data instanceof Uint8Array,
    );
  if (!ok) refuse(`${path}.$unknown must be a list of { no, wireType (0-5), data: Uint8Array }`);
}

function checkOneof(oneof: DescOneof, v: unknown, path: string): void {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    refuse(`${path} is a oneof: give { case: "<field>", value }, got ${shown(v)}`);
  }
  const { case: c, value } = v as { case?: unknown; value?: unknown };
  if (c === undefined) return;
  const field = oneof.fields.find((f) => f.localName === c);
  if (!field) refuse(`${path}.case must name one of ${oneof.fields.map((f) => JSON.stringify(f.localName)).join(", ")}, got ${shown(c)}`);
  if (value === undefined) refuse(`${path}.value is missing for case ${JSON.stringify(c)}`);
  checkSingular(field, value, `${path}.value`, true);
}

function checkField(p: Plan, f: DescField, v: unknown, path: string): void {
  if (v === null) refuse(`${path} is null: leave the field out (undefined) to not set it`);
  switch (f.fieldKind) {
    case "list":
      if (!Array.isArray(v)) refuse(`${path} (repeated ${typeOf(f)}) must be an array, got ${shown(v)}`);
      for (let i = 0; i < v.length; i++) checkItem(p, f, v[i], `${path}[${i}]`);
      return;
    case "map": {
      if (!isPlain(v)) refuse(`${path} (map) must be a plain object, got ${shown(v)}`);
      for (const k of Object.keys(v as object)) {
        const keyProblem = mapKeyProblem(f.mapKey, k);
        if (keyProblem) refuse(`${path} has the key ${JSON.stringify(k)}, but its keys are ${SCALAR_NAMES[f.mapKey]}: ${keyProblem}`);
        checkItem(p, f, (v as Record<string, unknown>)[k], `${path}[${JSON.stringify(k)}]`);
      }
      return;
    }
    default:
      checkSingular(f, v, path, f.oneof !== undefined);
  }
}

/** A list element or map value. */
function checkItem(p: Plan, f: DescField & { fieldKind: "list" | "map" }, v: unknown, path: string): void {
  const kind = f.fieldKind === "list" ? f.listKind : f.mapKind;
  if (v === undefined || v === null) refuse(`${path} is ${v}: ${f.fieldKind === "list" ? "a list" : "a map"} cannot hold it`);
  if (kind === "scalar") return scalarCheck(f.scalar!, v, path);
  if (kind === "enum") return enumCheck(p, f.enum!, v, path);
  if (isStructField(f)) return structCheck(v, path);
  checkMessage(f.message!, v, path);
}

/** @bufbuild/protobuf represents google.protobuf.Struct as a JSON object in fields (but in Value). */
function isStructField(f: DescField): boolean {
  return f.message?.typeName === "google.protobuf.Struct" && f.parent.typeName !== "google.protobuf.Value";
}

function structCheck(v: unknown, path: string): void {
  const proto = v !== null && typeof v === "object" ? Object.getPrototypeOf(v) : undefined;
  if (!isPlain(v) || v["$typeName"] !== undefined || (proto !== Object.prototype && proto !== null)) {
    refuse(`${path} (google.protobuf.Struct) must be a plain JSON object, got ${shown(v)}`);
  }
  checkJsonValue(v, path);
}

function checkSingular(f: DescField, v: unknown, path: string, inOneof: boolean): void {
  if (f.fieldKind === "scalar") return scalarCheck(f.scalar, v, path);
  if (f.fieldKind === "enum") return enumCheck(plan(f.parent), f.enum, v, path);
  if (f.fieldKind !== "message") return;
  const m = f.message;
  // Representations @bufbuild/protobuf uses in fields: wrappers as their value, Struct as a JSON object.
  if (!inOneof && isWrapperDesc(m)) return scalarCheck(m.fields[0]!.scalar!, v, path, `${m.typeName} (given as its value)`);
  if (isStructField(f)) return structCheck(v, path);
  checkMessage(m, v, path);
}

function scalarCheck(scalar: ScalarType, v: unknown, path: string, what = SCALAR_NAMES[scalar]): void {
  const want = scalarProblem(scalar, v);
  if (want) refuse(`${path} (${what}) must be ${want}, got ${shown(v)}`);
}

function enumCheck(p: Plan, e: DescEnum, v: unknown, path: string): void {
  let values = p.enumValues.get(e);
  if (!values) p.enumValues.set(e, (values = new Set(e.values.map((x) => x.number))));
  if (typeof v === "number" && values.has(v)) return;
  const names = e.values.slice(0, 8).map((x) => `${x.number} (${x.name})`).join(", ");
  refuse(`${path} (enum ${e.typeName}) must be one of its values: ${names}${e.values.length > 8 ? ", ..." : ""}; got ${shown(v)}`);
}

function mapKeyProblem(scalar: ScalarType, k: string): string | undefined {
  switch (scalar) {
    case ScalarType.STRING:
      return k.isWellFormed() ? undefined : "it holds a lone surrogate";
    case ScalarType.BOOL:
      return k === "true" || k === "false" ? undefined : 'give "true" or "false"';
    default: {
      const is64 = scalar === ScalarType.INT64 || scalar === ScalarType.UINT64 || scalar === ScalarType.SINT64 || scalar === ScalarType.FIXED64 || scalar === ScalarType.SFIXED64;
      // Canonical only: "01" and "1" would be one key.
      if (!DECIMAL.test(k) || BigInt(k).toString() !== k) return "give a whole number in canonical form";
      return scalarProblem(scalar, is64 ? BigInt(k) : Number(k));
    }
  }
}
