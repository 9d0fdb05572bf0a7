import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { fixture, FAST, TABLE } from "./helpers";
import { EventSchema } from "./schema";
import { ZerobusStream } from "../src/index";
import { heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function jsonStream(table = TABLE, extra = {}): Promise<ZerobusStream> {
  await f.server.addTable(table);
  return f.sdk.createStream({ table, recordType: "json", ...FAST, ...extra });
}

describe("JSON streams", () => {
  test("ingest resolves with sequential offsets once durable; the file holds the records", async () => {
    const s = await jsonStream("main.default.json_single");
    expect(s.state).toBe("open");
    expect(s.streamId).toBeString();
    const offsets = await Promise.all([s.ingest({ id: 1, name: "a" }), s.ingest('{"id":2,"name":"b"}'), s.ingest(new TextEncoder().encode('{"id":3}'))]);
    expect(offsets).toEqual([0, 1, 2]);
    expect(s.ackedOffset).toBe(2);
    await s.close();
    expect(s.state).toBe("closed");
    expect(f.server.records("main.default.json_single")).toEqual([{ id: 1, name: "a" }, { id: 2, name: "b" }, { id: 3 }]);
  });

  test("ingestBatch takes one offset per batch and keeps record order", async () => {
    const s = await jsonStream("main.default.json_batch");
    const a = await s.ingestBatch([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const b = await s.ingestBatch(['{"i":3}', new TextEncoder().encode('{"i":4}')]);
    expect([a, b]).toEqual([0, 1]);
    await s.close();
    expect(f.server.records("main.default.json_batch").map((r) => r.i)).toEqual([0, 1, 2, 3, 4]);
  });

  test("submit + flush: 100k records land exactly once, in order", async () => {
    const table = "main.default.json_many";
    const s = await jsonStream(table);
    const n = 100_000;
    let last = -1;
    for (let i = 0; i < n; i++) last = s.submit({ i, s: `row-${i}` });
    expect(last).toBe(n - 1);
    await s.flush();
    expect(s.ackedOffset).toBe(n - 1);
    await s.close();
    const rows = f.server.records(table);
    expect(rows.length).toBe(n);
    expect(rows.every((r, i) => r.i === i && r.s === `row-${i}`)).toBe(true);
  });

  test("large strings and byte arrays go zero-copy and are released after the ack", async () => {
    const table = "main.default.json_large";
    const s = await jsonStream(table);
    const big = "x".repeat(100_000);
    const bytes = new TextEncoder().encode(JSON.stringify({ big }));
    await Promise.all([s.ingest({ big }), s.ingest(bytes), s.ingestBatch([bytes, bytes])]);
    await s.close();
    expect(heldCount()).toBe(0);
    const rows = f.server.records(table);
    expect(rows.length).toBe(4);
    expect(rows.every((r) => r.big === big)).toBe(true);
  });

  test("await using closes the stream", async () => {
    const table = "main.default.json_using";
    await f.server.addTable(table);
    {
      await using s = await f.sdk.createStream({ table, ...FAST });
      s.submit({ v: 1 });
    }
    expect(f.server.records(table)).toEqual([{ v: 1 }]);
  });
});

describe("proto streams", () => {
  test("message objects with a @bufbuild/protobuf schema", async () => {
    const table = "main.default.proto_schema";
    await f.server.addTable(table);
    const s = await f.sdk.createStream({ table, schema: EventSchema, ...FAST });
    await s.ingest(create(EventSchema, { id: 7n, name: "seven", score: 1.5, ok: true, tags: ["a", "b"] }));
    await s.ingestBatch([create(EventSchema, { id: 8n }), create(EventSchema, { id: 9n, name: "nine" })]);
    await s.close();
    const rows = f.server.records(table);
    expect(rows.length).toBe(3);
    expect(rows[0]).toMatchObject({ name: "seven", score: 1.5, ok: true, tags: ["a", "b"] });
    expect(rows.map((r) => String(r.id))).toEqual(["7", "8", "9"]);
  });

  test("encoded bytes with a descriptor", async () => {
    const table = "main.default.proto_bytes";
    await f.server.addTable(table);
    const { toBinary: tb } = await import("@bufbuild/protobuf");
    const { DescriptorProtoSchema } = await import("@bufbuild/protobuf/wkt");
    const descriptor = tb(DescriptorProtoSchema, EventSchema.proto);
    const s = await f.sdk.createStream({ table, recordType: "proto", descriptor, ...FAST });
    for (let i = 0; i < 1000; i++) s.submit(toBinary(EventSchema, create(EventSchema, { id: BigInt(i), name: `e${i}` })));
    await s.close();
    const rows = f.server.records(table);
    expect(rows.length).toBe(1000);
    expect(rows[999]).toMatchObject({ name: "e999" });
  });
});
