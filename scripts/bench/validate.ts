#!/usr/bin/env bun
// CPU cost of checking message objects against their schema (src/validate.ts), beside the
// encoding every message object needs anyway (@bufbuild/protobuf create + toBinary), per record.
// usage: bun scripts/bench/validate.ts [records]
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { checkMessage } from "../../src/validate";
import { EventSchema } from "../../test/schema";

const n = Number(process.argv[2] ?? 300_000);
const records = Array.from({ length: 1024 }, (_, i) => ({ id: BigInt(i), name: `event-${i}-abcdefghijklmnopqrstuvwxyz`, score: i / 7, ok: i % 2 === 0, tags: ["a", "b"] }));

function time(label: string, f: (r: object) => void): number {
  for (let i = 0; i < 50_000; i++) f(records[i & 1023]!); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(records[i & 1023]!);
  const ns = ((performance.now() - t0) * 1e6) / n;
  console.log(`${label.padEnd(28)} ${ns.toFixed(0).padStart(5)} ns/record`);
  return ns;
}

const schema: DescMessage = EventSchema;
const bytes = toBinary(schema, create(schema, records[0] as never)).byteLength;
console.log(`test.Event init objects (~${bytes} B encoded), ${n} records, best of 3`);
const best = (label: string, f: (r: object) => void) => Math.min(time(label, f), time(label, f), time(label, f));
const check = best("check only", (r) => checkMessage(schema, r));
const encode = best("create + toBinary", (r) => void toBinary(schema, create(schema, r as never)));
const both = best("check + create + toBinary", (r) => {
  checkMessage(schema, r);
  void toBinary(schema, create(schema, r as never));
});
console.log(`check adds ${(both - encode).toFixed(0)} ns/record (${(((both - encode) / encode) * 100).toFixed(0)}% of encoding); alone ${check.toFixed(0)} ns`);
