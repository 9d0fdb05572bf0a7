// Message records are checked against their schema: wrong types, unknown fields, integers out of
// range, unknown enum values, missing required fields are refused with InvalidArgumentError naming
// the field; the stream stays usable; encoded bytes pass as they are.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { create, createFileRegistry, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FieldDescriptorProto_Type as Ty, FieldDescriptorProto_Label as L } from "@bufbuild/protobuf/wkt";
import { fixture, freshTable, FAST } from "./helpers";
import { EventSchema } from "./schema";
import { InvalidArgumentError } from "../src/index";
import { checkMessage } from "../src/validate";
import { file_google_protobuf_struct, file_google_protobuf_timestamp } from "@bufbuild/protobuf/wkt";

const file = create(FileDescriptorProtoSchema, {
  name: "test_reading.proto",
  package: "test",
  syntax: "proto2",
  messageType: [
    {
      name: "Reading",
      field: [
        { name: "id", number: 1, type: Ty.INT64, label: L.REQUIRED, jsonName: "id" },
        { name: "device", number: 2, type: Ty.STRING, label: L.OPTIONAL, jsonName: "device" },
        { name: "temperature", number: 3, type: Ty.DOUBLE, label: L.OPTIONAL, jsonName: "temperature" },
        { name: "count", number: 4, type: Ty.INT32, label: L.OPTIONAL, jsonName: "count" },
        { name: "ucount", number: 5, type: Ty.UINT32, label: L.OPTIONAL, jsonName: "ucount" },
        { name: "big", number: 6, type: Ty.UINT64, label: L.OPTIONAL, jsonName: "big" },
        { name: "unit", number: 7, type: Ty.ENUM, typeName: ".test.Reading.Unit", label: L.OPTIONAL, jsonName: "unit" },
        { name: "at", number: 8, type: Ty.MESSAGE, typeName: ".test.Reading.Point", label: L.OPTIONAL, jsonName: "at" },
        { name: "samples", number: 9, type: Ty.INT32, label: L.REPEATED, jsonName: "samples" },
        { name: "labels", number: 10, type: Ty.MESSAGE, typeName: ".test.Reading.LabelsEntry", label: L.REPEATED, jsonName: "labels" },
        { name: "sensor", number: 11, type: Ty.STRING, label: L.OPTIONAL, jsonName: "sensor", oneofIndex: 0 },
        { name: "channel", number: 12, type: Ty.INT32, label: L.OPTIONAL, jsonName: "channel", oneofIndex: 0 },
        { name: "ratio", number: 13, type: Ty.FLOAT, label: L.OPTIONAL, jsonName: "ratio" },
        { name: "device_id", number: 14, type: Ty.STRING, label: L.OPTIONAL, jsonName: "deviceId" },
      ],
      oneofDecl: [{ name: "source" }],
      enumType: [{ name: "Unit", value: [{ name: "UNIT_UNSPECIFIED", number: 0 }, { name: "CELSIUS", number: 1 }, { name: "KELVIN", number: 2 }] }],
      nestedType: [
        {
          name: "Point",
          field: [
            { name: "x", number: 1, type: Ty.DOUBLE, label: L.OPTIONAL, jsonName: "x" },
            { name: "y", number: 2, type: Ty.DOUBLE, label: L.OPTIONAL, jsonName: "y" },
          ],
        },
        {
          name: "LabelsEntry",
          options: { mapEntry: true },
          field: [
            { name: "key", number: 1, type: Ty.STRING, label: L.OPTIONAL, jsonName: "key" },
            { name: "value", number: 2, type: Ty.INT32, label: L.OPTIONAL, jsonName: "value" },
          ],
        },
      ],
    },
  ],
});
const Reading: DescMessage = createFileRegistry(file, () => undefined).getMessage("test.Reading")!;

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function stream() {
  const table = await freshTable(f.server, "validation");
  return { table, s: await f.sdk.createStream({ table, schema: Reading, ...FAST }) };
}

const full = {
  id: 7n, device: "d1", temperature: 21.5, count: -3, ucount: 4_000_000_000, big: 2n ** 64n - 1n, unit: 2,
  at: { x: 1, y: -2 }, samples: [1, 2, 3], labels: { a: 1, b: -1 }, source: { case: "channel", value: 9 }, ratio: 0.5,
  deviceId: "d-1",
};

test("a valid record of every kind of field is stored as given", async () => {
  const { table, s } = await stream();
  await s.ingest(full);
  await s.ingest(create(Reading, { id: 8n, source: { case: "sensor", value: "s" } }));
  await s.ingest({ id: "9", big: 5 }); // 64-bit integers also as decimal strings and whole numbers
  await s.close();
  const rows = f.server.records<Record<string, unknown>>(table);
  expect(rows.length).toBe(3);
  expect(rows[0]).toMatchObject({
    id: 7, device: "d1", temperature: 21.5, count: -3, ucount: 4_000_000_000, unit: "KELVIN", at: { x: 1, y: -2 },
    samples: [1, 2, 3], labels: { a: 1, b: -1 }, channel: 9, ratio: 0.5, device_id: "d-1",
  });
  expect(readFileSync(f.server.tablePath(table), "utf8")).toContain('"big":18446744073709551615');
  expect(rows[1]).toMatchObject({ id: 8, sensor: "s" });
  expect(rows[2]).toMatchObject({ id: 9, big: 5 });
});

test("each kind of mistake is refused, naming the field; nothing refused is stored; the stream stays usable", async () => {
  const { table, s } = await stream();
  const cases: [Record<string, unknown>, string][] = [
    [{ id: 1n, temperature: "hot" }, 'test.Reading.temperature (double) must be a number, got the string "hot"'],
    [{ id: 1n, devcie: "x" }, 'test.Reading has no field "devcie" (did you mean "device"?)'],
    [{ id: 1n, device_id: "x" }, 'has no field "device_id" (did you mean "deviceId"?)'],
    [{ id: 1n, count: 2 ** 31 }, "test.Reading.count (int32) must be a whole number from -2147483648 to 2147483647, got the number 2147483648"],
    [{ id: 1n, count: 1.5 }, "test.Reading.count (int32)"],
    [{ id: 1n, ucount: -1 }, "test.Reading.ucount (uint32)"],
    [{ id: 1n, big: -1n }, "test.Reading.big (uint64) must be a bigint (or whole number, or decimal string) from 0 to 2^64-1, got the bigint -1n"],
    [{ id: 2n ** 63n }, "test.Reading.id (int64)"],
    [{ id: "12abc" }, "test.Reading.id (int64)"],
    [{ id: 1n, ratio: 1e40 }, "test.Reading.ratio (float) must be a number within float range"],
    [{ id: 1n, unit: 7 }, "test.Reading.unit (enum test.Reading.Unit) must be one of its values: 0 (UNIT_UNSPECIFIED), 1 (CELSIUS), 2 (KELVIN); got the number 7"],
    [{ id: 1n, unit: "CELSIUS" }, "test.Reading.unit (enum test.Reading.Unit)"],
    [{ device: "no id" }, "test.Reading.id is required (int64) but not set"],
    [{ id: 1n, at: { x: "1" } }, "test.Reading.at.x (double) must be a number"],
    [{ id: 1n, at: { z: 1 } }, 'test.Reading.at has no field "z"'],
    [{ id: 1n, samples: [1, "2"] }, "test.Reading.samples[1] (int32)"],
    [{ id: 1n, samples: 3 }, "test.Reading.samples (repeated int32) must be an array"],
    [{ id: 1n, labels: { a: "x" } }, 'test.Reading.labels["a"] (int32)'],
    [{ id: 1n, source: { case: "other", value: 1 } }, 'test.Reading.source.case must name one of "sensor", "channel"'],
    [{ id: 1n, source: { case: "channel", value: "9" } }, "test.Reading.source.value (int32)"],
    [{ id: 1n, sensor: "s" }, 'has no field "sensor"'],
    [{ id: 1n, device: "x\ud800" }, "test.Reading.device (string) must be a string UTF-8 can encode"],
    [{ id: 1n, device: null }, "test.Reading.device is null"],
    [create(EventSchema, { id: 1n }) as unknown as Record<string, unknown>, "must be a test.Reading, got a test.Event message"],
  ];
  for (const [record, message] of cases) {
    const e = await s.ingest(record).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toContain(message);
    expect(() => s.submit(record)).toThrow(InvalidArgumentError);
  }
  // A message made with create() and then given a bad value.
  const m = create(Reading, { id: 1n });
  (m as Record<string, unknown>).temperature = "hot";
  expect(() => s.submit(m)).toThrow("test.Reading.temperature (double)");
  // In a batch, the record is named by its index; no record of the batch is taken.
  const e = await s.ingestBatch([{ id: 1n }, { id: 2n, count: "x" }]).catch((x) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toContain("record 1 of the batch: test.Reading.count (int32)");
  await s.ingest({ id: 42n });
  await s.close();
  expect(f.server.records<{ id: number }>(table).map((r) => r.id)).toEqual([42]);
});

test("objects create() would empty, values read through the prototype, $unknown on init objects, non-canonical map keys", async () => {
  const { table, s } = await stream();
  class Base {
    get unit() {
      return 7; // create() reads it through the prototype: checked as well
    }
  }
  class Row extends Base {
    id = 1n;
  }
  const cases: [unknown, string][] = [
    [new Row(), "test.Reading.unit (enum test.Reading.Unit)"],
    [Object.assign(Object.create({ temperature: "hot" }), { id: 1n }), "test.Reading.temperature (double)"],
    [{ id: 1n, at: new Date(0) }, "test.Reading.at must be a test.Reading.Point message or a plain init object, got a Date"],
    [{ id: 1n, labels: new Map([["a", 1]]) }, "test.Reading.labels (map) must be a plain object, got a Map"],
    [{ id: 1n, labels: { "01": 1 } }, "" /* string keys: "01" is a fine string */],
    [{ id: 1n, $unknown: [] }, "test.Reading.$unknown is set on an init object"],
    [create(Reading, {}), "test.Reading.id is required (int64) but not set"],
  ];
  for (const [record, message] of cases) {
    if (!message) {
      expect(() => s.submit(record as never)).not.toThrow();
      continue;
    }
    expect(() => s.submit(record as never)).toThrow(message);
  }
  const m = create(Reading, { id: 3n });
  (m as { $unknown?: unknown }).$unknown = [{ no: 0, wireType: 7, data: "zz" }];
  expect(() => s.submit(m)).toThrow("$unknown must be a list of");
  await s.close();
  expect(f.server.records(table).length).toBe(1);
});

test("Struct fields hold JSON only; Timestamp and integer map keys are checked (schema checks without a server)", () => {
  const wkt = create(FileDescriptorProtoSchema, {
    name: "test_wkt.proto",
    package: "test",
    syntax: "proto3",
    dependency: ["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"],
    messageType: [
      {
        name: "Doc",
        field: [
          { name: "s", number: 1, type: Ty.MESSAGE, typeName: ".google.protobuf.Struct", label: L.OPTIONAL, jsonName: "s" },
          { name: "ss", number: 2, type: Ty.MESSAGE, typeName: ".google.protobuf.Struct", label: L.REPEATED, jsonName: "ss" },
          { name: "ts", number: 3, type: Ty.MESSAGE, typeName: ".google.protobuf.Timestamp", label: L.OPTIONAL, jsonName: "ts" },
          { name: "byId", number: 4, type: Ty.MESSAGE, typeName: ".test.Doc.ByIdEntry", label: L.REPEATED, jsonName: "byId" },
        ],
        nestedType: [
          {
            name: "ByIdEntry",
            options: { mapEntry: true },
            field: [
              { name: "key", number: 1, type: Ty.INT32, label: L.OPTIONAL, jsonName: "key" },
              { name: "value", number: 2, type: Ty.STRING, label: L.OPTIONAL, jsonName: "value" },
            ],
          },
        ],
      },
    ],
  });
  const deps = [file_google_protobuf_struct, file_google_protobuf_timestamp];
  const Doc = createFileRegistry(wkt, (name) => deps.find((d) => d.proto.name === name)?.proto).getMessage("test.Doc")!;
  checkMessage(Doc, { s: { a: [1, "x", null, { b: true }] }, ss: [{ a: 1 }], ts: { seconds: 5n, nanos: 1 }, byId: { "7": "x", "-2": "y" } });
  const refused: [unknown, string][] = [
    [{ s: { a: 10n } }, "test.Doc.s.a"],
    [{ s: { a: undefined } }, "test.Doc.s.a"],
    [{ s: { a: new Date(0) } }, "test.Doc.s.a"],
    [{ s: { a: "\ud800" } }, "lone surrogate"],
    [{ s: { a: NaN } }, "NaN at test.Doc.s.a"],
    [{ s: new Map() }, "google.protobuf.Struct) must be a plain JSON object"],
    [{ ss: [{ a: new Map() }] }, "test.Doc.ss[0].a"],
    [{ ts: new Date(0) }, "test.Doc.ts must be a google.protobuf.Timestamp message or a plain init object, got a Date"],
    [{ byId: { "01": "x" } }, 'test.Doc.byId has the key "01"'],
    [{ byId: { "1.5": "x" } }, 'test.Doc.byId has the key "1.5"'],
  ];
  for (const [record, message] of refused) expect(() => checkMessage(Doc, record)).toThrow(message);
});

test("encoded bytes are taken as they are", async () => {
  const { table, s } = await stream();
  await s.ingest(toBinary(Reading, create(Reading, { id: 5n, device: "raw" })));
  await s.close();
  expect(f.server.records(table)).toMatchObject([{ id: 5, device: "raw" }]);
});

test("a protobuf message on a JSON stream is named as such", async () => {
  const table = "main.default.validation_json";
  await f.server.addTable(table);
  const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
  const e = await s.ingest(create(Reading, { id: 1n }) as never).catch((x) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e.message).toContain("a protobuf message (test.Reading) cannot go to a JSON stream");
  await s.close();
});
