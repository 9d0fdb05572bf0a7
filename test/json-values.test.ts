// JSON values land exactly as given, or are refused with InvalidArgumentError naming where.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fixture, freshTable, FAST } from "./helpers";
import { InvalidArgumentError } from "../src/index";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function stream() {
  const table = await freshTable(f.server, "json_values");
  return { table, s: await f.sdk.createStream({ table, recordType: "json", ...FAST }) };
}

test("-0 is stored as -0, also nested, in arrays and as a Number object", async () => {
  const { table, s } = await stream();
  await s.ingest({ a: -0, b: 0, c: { d: -0 }, e: [1, -0], f: new Number(-0), g: -1.5 });
  await s.ingestBatch([{ a: -0 }]);
  s.submit({ a: -0 });
  await s.close();
  const rows = f.server.records<Record<string, any>>(table) as Record<string, any>[] & { 0: any; 1: any; 2: any };
  expect(rows.length).toBe(3);
  expect(Object.is(rows[0].a, -0)).toBe(true);
  expect(Object.is(rows[0].b, 0)).toBe(true);
  expect(Object.is(rows[0].c.d, -0)).toBe(true);
  expect(Object.is(rows[0].e[1], -0)).toBe(true);
  expect(Object.is(rows[0].f, -0)).toBe(true);
  expect(rows[0].g).toBe(-1.5);
  expect(Object.is(rows[1].a, -0)).toBe(true);
  expect(Object.is(rows[2].a, -0)).toBe(true);
});

test("undefined, holes, functions and Symbols in arrays are refused (JSON.stringify writes null)", async () => {
  const { table, s } = await stream();
  const refused = async (record: unknown, match: RegExp) => {
    const e = await s.ingest(record as Record<string, unknown>).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(String(e.message)).toMatch(match);
  };
  await refused({ a: [1, undefined, 3] }, /undefined at \.a\[1\]/);
  // biome-ignore lint: a hole on purpose
  await refused({ a: [1, , 3] }, /a hole at \.a\[1\]/);
  await refused({ a: { b: [() => 1] } }, /a function at \.a\.b\[0\]/);
  await refused({ a: [Symbol("s")] }, /a symbol at \.a\[0\]/);
  expect(() => s.submitBatch([{ ok: 1 }, { a: [undefined] }])).toThrow(InvalidArgumentError);
  await s.ingest({ a: [1, null, 3], b: undefined });
  await s.close();
  expect(f.server.records(table)).toEqual([{ a: [1, null, 3] }]);
});

test("Symbol-keyed fields are refused; non-enumerable ones are not written and not refused", async () => {
  const { table, s } = await stream();
  const e = await s.ingest({ a: 1, [Symbol("tag")]: "x" }).catch((x) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toContain("Symbol(tag)");
  const nested = await s.ingest({ a: { [Symbol.for("k")]: 1 } }).catch((x) => x);
  expect(nested).toBeInstanceOf(InvalidArgumentError);
  const hidden = { a: 2 };
  Object.defineProperty(hidden, Symbol("meta"), { value: 1, enumerable: false });
  await s.ingest(hidden);
  await s.close();
  expect(f.server.records(table)).toEqual([{ a: 2 }]);
});

test("lone surrogates are refused in JSON text, string values and field names; pairs are stored exactly", async () => {
  const { table, s } = await stream();
  for (const bad of ['{"a":"x\ud800"}', '{"a":"\udc00"}']) {
    const e = await s.ingest(bad).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toContain("lone surrogate");
  }
  expect(() => s.submit({ a: "ok\ud83d" })).toThrow(/lone surrogate \(U\+D83D at index 2\)/);
  expect(() => s.submit({ ["k\udfff"]: 1 })).toThrow(/field name/);
  expect(() => s.submit({ a: ["\ud800"] })).toThrow(/\.a\[0\]/);
  await s.ingest('{"a":"\ud83d\ude00 ok"}');
  await s.ingest({ a: "\ud83d\ude00 ok", "é": "ü" });
  await s.close();
  expect(f.server.records(table)).toEqual([{ a: "\u{1F600} ok" }, { a: "\u{1F600} ok", "é": "ü" }]);
});

test("String, Number and Boolean objects are stored as their values; BigInt objects are refused", async () => {
  const { table, s } = await stream();
  await s.ingest({ s: new String("x"), n: new Number(5), b: new Boolean(false), l: [new String("y")] });
  const e = await s.ingest({ big: Object(10n) }).catch((x) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toContain("BigInt");
  expect(() => s.submit({ n: new Number(NaN) })).toThrow(/NaN at \.n/);
  expect(() => s.submit({ s: new String("\ud800") })).toThrow(/lone surrogate/);
  await s.close();
  expect(f.server.records(table)).toEqual([{ s: "x", n: 5, b: false, l: ["y"] }]);
});

test("toJSON results are checked and written; invalid Dates refused; inherited fields neither checked nor written", async () => {
  const { table, s } = await stream();
  class Money {
    constructor(readonly cents: number) {}
    toJSON() {
      return { amount: this.cents / 100, currency: "EUR" };
    }
  }
  class Bad {
    toJSON() {
      return { y: NaN, z: [undefined] };
    }
  }
  await s.ingest({ price: new Money(1250), at: new Date(0) });
  await s.ingest({ toJSON: () => ({ whole: "record" }) }); // a record with its own toJSON
  const e = await s.ingest({ x: new Bad() }).catch((x) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toContain("NaN at .x.y");
  expect(() => s.submit({ d: new Date(NaN) })).toThrow("an invalid Date at .d");
  expect(() => s.submit({ toJSON: () => 5 } as never)).toThrow("toJSON must return an object");
  const withInherited = Object.assign(Object.create({ inherited: 10n }), { own: 1 });
  await s.ingest(withInherited);
  await s.close();
  expect(f.server.records(table)).toEqual([
    { price: { amount: 12.5, currency: "EUR" }, at: "1970-01-01T00:00:00.000Z" },
    { whole: "record" },
    { own: 1 },
  ]);
});

test("toJSON is followed once, as JSON.stringify does; arrays with named properties are refused", async () => {
  const { table, s } = await stream();
  class Stamp {
    constructor(readonly d: Date) {}
    toJSON() {
      return this.d; // a Date, which JSON.stringify then writes as {} (it calls no second toJSON)
    }
  }
  class Reading {
    toJSON() {
      return "n/a";
    }
  }
  class Sensor {
    toJSON() {
      return { value: NaN, reading: new Reading() }; // NaN written as null; reading via its toJSON
    }
  }
  expect(() => s.submit({ at: new Stamp(new Date(0)) })).toThrow(/a Date at \.at would not be stored/);
  expect(() => s.submit({ sensor: new Sensor() })).toThrow("NaN at .sensor.value");
  expect(() => s.submit({ list: Object.assign([1, 2], { unit: "kg" }) })).toThrow("named properties");
  class Ok {
    toJSON() {
      return { r: new Reading() };
    }
  }
  await s.ingest({ ok: new Ok() });
  await s.close();
  expect(f.server.records(table)).toEqual([{ ok: { r: "n/a" } }]);
});
