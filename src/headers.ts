// The `headers` option as a function: called when a physical stream opens (the native side asks
// by a request id in its progress), its answer checked and handed back to the native stream.
import type { Pointer } from "bun:ffi";
import { lib } from "./native.js";

import type { HeadersFunction } from "./types.js";

const encoder = new TextEncoder();

/** Why `value` is not a headers object (an object of string values), or undefined if it is. */
function headersProblem(value: unknown): string | undefined {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return `headers function must return an object of strings, got ${Array.isArray(value) ? "an array" : typeof value}`;
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") return `headers function returned a ${typeof v} for header ${JSON.stringify(k)} (values must be strings)`;
  }
  return undefined;
}

/**
 * Calls `fn` for `table` and hands its answer to `answer` (at once, or when its promise settles):
 * the value, and whether it is a failure (a throw or a rejection).
 */
export function callHeaders(fn: HeadersFunction, table: string, answer: (value: unknown, failed: boolean) => void): void {
  try {
    const r = fn(table);
    if (r && typeof (r as Promise<unknown>).then === "function") {
      (r as Promise<unknown>).then((v) => answer(v, false), (e) => answer(e, true));
    } else answer(r, false);
  } catch (e) {
    answer(e, true);
  }
}

/**
 * Answers headers request `id` of stream `h` with a headers function's answer: the headers as
 * JSON (kind 0), a failure's message (1), or why the answer is unusable (2).
 */
export function replyHeaders(h: Pointer, id: number, value: unknown, failed: boolean): void {
  let text: string;
  let kind = failed ? 1 : 0;
  if (failed) text = value instanceof Error ? value.message : String(value);
  else {
    const bad = headersProblem(value);
    text = bad ?? JSON.stringify(value);
    if (bad) kind = 2;
  }
  const bytes = encoder.encode(text);
  lib.zerobus_stream_headers_reply(h, id, bytes, bytes.byteLength, kind);
}
