// Arrow IPC on the JavaScript side: loading apache-arrow (an optional peer dependency) and
// writing its Tables and RecordBatches as IPC stream bytes. IPC bytes callers pass are not read here.
import { InvalidArgumentError } from "./errors.js";

type ArrowModule = typeof import("apache-arrow");
let arrowModule: ArrowModule | undefined;

/**
 * @internal Loads apache-arrow (an optional peer dependency) as an ES module: the same module instance as
 * the application's own `import`, so its Tables are recognised by its writer (a `require` would
 * load a second copy). Undefined when it is not installed. The import sits inside try/catch so
 * that bundlers (`bun build`, `--compile`) accept its absence and include it when present.
 */
export async function loadArrow(): Promise<ArrowModule | undefined> {
  if (arrowModule) return arrowModule;
  try {
    arrowModule = await import("apache-arrow");
  } catch {
    return undefined;
  }
  return arrowModule;
}

/**
 * `value` was made by this copy of apache-arrow. Its classes answer `instanceof` for objects of any
 * copy (they check a marker), but only its own objects can be written as IPC by it.
 */
export function ownInstance(cls: Function, value: unknown): boolean {
  return Function.prototype[Symbol.hasInstance].call(cls, value);
}

/** An error for an apache-arrow object made by a different copy of apache-arrow. */
export function foreignArrow(what: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${what} comes from a different copy of apache-arrow than the one zerobus-bun loads ` +
      `(${import.meta.resolve?.("apache-arrow") ?? "apache-arrow"}), so it cannot be written as Arrow IPC here: ` +
      "make your project resolve a single apache-arrow, or pass Arrow IPC stream bytes (tableToIPC(table, \"stream\"))",
    "INVALID_ARGUMENT",
    false,
  );
}

/** An apache-arrow Table or RecordBatch as Arrow IPC stream bytes (one encode pass, in JS). */
export function arrowToIPC(value: unknown): Uint8Array {
  const v = value as { schema?: unknown; batches?: unknown; numRows?: unknown; data?: unknown } | null;
  if (v && typeof v === "object" && v.schema && (Array.isArray(v.batches) || (typeof v.numRows === "number" && v.data))) {
    const arrow = arrowModule;
    if (!arrow) throw new InvalidArgumentError("an apache-arrow Table or RecordBatch needs the apache-arrow package installed (npm install apache-arrow); or pass Arrow IPC stream bytes", "INVALID_ARGUMENT", false);
    if (ownInstance(arrow.Table, v)) return arrow.tableToIPC(v as import("apache-arrow").Table, "stream");
    if (ownInstance(arrow.RecordBatch, v)) return arrow.tableToIPC(new arrow.Table(v as import("apache-arrow").RecordBatch), "stream");
    throw foreignArrow(Array.isArray(v.batches) ? "this Table" : "this RecordBatch");
  }
  throw new InvalidArgumentError(
    "an Arrow stream takes Arrow IPC stream bytes (Uint8Array) or an apache-arrow Table / RecordBatch",
    "INVALID_ARGUMENT",
    false,
  );
}
