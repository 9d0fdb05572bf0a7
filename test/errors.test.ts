import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fixture, FAST, TABLE } from "./helpers";
import { EventSchema } from "./schema";
import { InvalidArgumentError, ZerobusError, ZerobusSdk } from "../src/index";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function stream(table: string, extra: Record<string, unknown> = {}) {
  await f.server.addTable(table);
  return f.sdk.createStream({ table, recordType: "json", ...FAST, ...extra });
}

describe("bad input is refused with clear errors", () => {
  test("unknown table: createStream rejects with NOT_FOUND", async () => {
    const err = await f.sdk.createStream({ table: "main.default.nope", ...FAST }).catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("NOT_FOUND");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("main.default.nope");
  });

  test("table name without three parts", async () => {
    const err = await f.sdk.createStream({ table: "events", ...FAST }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("catalog.schema.table");
  });

  test("proto stream without a descriptor", async () => {
    const err = await f.sdk.createStream({ table: TABLE, recordType: "proto", ...FAST } as any).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("descriptor");
  });

  test("missing auth", async () => {
    const err = await f.sdk.createStream({ table: TABLE }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("clientId");
  });

  test("unknown stream option is rejected", async () => {
    const err = await f.sdk.createStream({ table: TABLE, ...FAST, maxInflight: 5 } as any).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("maxInflight");
  });

  test("an option typo or an official SDK name says which option was meant", async () => {
    const msg = async (o: object, arrow = false) =>
      ((await (arrow ? f.sdk.createArrowStream(o as any) : f.sdk.createStream(o as any)).catch((e) => e)) as Error).message;
    const typo = await msg({ table: TABLE, ...FAST, maxInflightRecord: 5 });
    expect(typo).toBe('unknown createStream option "maxInflightRecord" (did you mean "maxInflightRecords"?)');
    expect(typo).not.toContain("headersProvider"); // no internal names, no serializer positions
    expect(await msg({ tableName: TABLE, ...FAST })).toContain('unknown createStream option "tableName" (did you mean "table"?; zerobus-bun/compat takes the official SDK\'s names');
    expect(await msg({ table: TABLE, ...FAST, descriptorProto: "AA==" })).toContain('(did you mean "descriptor"?');
    expect(await msg({ table: TABLE, ...FAST, schema: new Uint8Array(0), keepDictionary: true }, true)).toContain('did you mean "keepDictionaries"?');
    expect(await msg({ table: TABLE, ...FAST, recordType: "json", compression: "zstd" })).toContain('unknown createStream option "compression"');
  });

  test("a proto stream without a schema names the options that give one", async () => {
    const err = await f.sdk.createStream({ table: TABLE, recordType: "proto", ...FAST } as any).catch((e) => e);
    expect(err.message).toContain("`schema`");
    expect(err.message).toContain("`descriptor`");
    expect(err.message).not.toContain("descriptor_proto");
  });

  test("SDK without endpoint", () => {
    expect(() => new ZerobusSdk({} as any)).toThrow(InvalidArgumentError);
  });

  test("oversize record: rejected at once, stream stays usable, nothing lost", async () => {
    const table = "main.default.oversize";
    const s = await stream(table, { maxRecordBytes: 1000 });
    const a = s.ingest({ i: 0 });
    const err = await s.ingest({ big: "x".repeat(2000) }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain("max_record_bytes");
    const b = s.ingest({ i: 1 });
    expect(await Promise.all([a, b])).toEqual([0, 1]);
    await s.close();
    expect(f.server.records(table)).toEqual([{ i: 0 }, { i: 1 }]);
  });

  test("wrong input types", async () => {
    const s = await stream("main.default.types");
    await expect(s.ingest(42 as any)).rejects.toThrow("a JSON record must be an object");
    await expect(s.ingest(null as any)).rejects.toThrow(InvalidArgumentError);
    await expect(s.ingestBatch([])).rejects.toThrow("at least one record");
    expect(() => s.submit(undefined as any)).toThrow(InvalidArgumentError);
    await s.close();
    const p = await f.sdk.createStream({ table: TABLE, schema: EventSchema, ...FAST });
    await expect(p.ingest("text" as any)).rejects.toThrow("test.Event");
    await p.close();
  });

  test("invalid JSON: the server refuses it; earlier records stay durable, later ones fail", async () => {
    const table = "main.default.badjson";
    const s = await stream(table, { recovery: true });
    const good = [s.ingest({ i: 0 }), s.ingest({ i: 1 })];
    await Promise.all(good);
    const bad = s.ingest("{not json}"); // shaped like an object, so only the server can tell
    const after = s.ingest({ i: 3 }).catch((e) => e); // may be refused before `bad` settles
    const err = await bad.catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("SERVER_ERROR");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("invalid JSON");
    expect(await after).toBeInstanceOf(ZerobusError);
    expect(s.state).toBe("failed");
    expect(s.ackedOffset).toBe(1);
    // The server can refuse offset 2 before `after` is even submitted (a busy machine may pause
    // this thread between the two calls): then `after` is refused at once and is not in the range.
    expect(s.error?.offsets?.first).toBe(2);
    expect([2, 3]).toContain(s.error?.offsets?.last ?? -1);
    expect(() => s.submit({ i: 4 })).toThrow("stream failed");
    await expect(s.close()).rejects.toThrow(ZerobusError);
    expect(f.server.records(table)).toEqual([{ i: 0 }, { i: 1 }]);
  });

  test("wrong proto bytes: decode error names the offset", async () => {
    const table = "main.default.badproto";
    await f.server.addTable(table);
    const s = await f.sdk.createStream({ table, schema: EventSchema, ...FAST });
    await s.ingest({ id: 1n, name: "ok" } as any);
    const err = await s.ingest(new Uint8Array([0xff, 0xff, 0xff])).catch((e) => e);
    expect(err.code).toBe("SERVER_ERROR");
    expect(err.message).toContain("offset 1");
    expect(f.server.records(table).length).toBe(1);
    await s.close().catch(() => {});
  });

  test("records the SDK cannot encode fail with InvalidArgumentError, not with the encoder's own error; the stream stays usable", async () => {
    await f.server.addTable("main.default.untyped_proto");
    const p = await f.sdk.createStream({ table: "main.default.untyped_proto", schema: EventSchema, ...FAST });
    const j = await stream("main.default.untyped_json");
    const detached = new Uint8Array(new ArrayBuffer(2000));
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    const refused: unknown[] = [
      await p.ingest({ id: "abc" } as never).catch((e) => e), // not an int64
      await j.ingest({ x: { toJSON: () => 10n } }).catch((e) => e), // JSON.stringify refuses a BigInt
      await j.ingest(detached).catch((e) => e),
    ];
    try {
      p.submit({ id: 1.5 } as never);
    } catch (e) {
      refused.push(e);
    }
    expect(refused.length).toBe(4);
    const said = ["test.Event.id (int64)", "BigInt at .x", "detached", "test.Event.id (int64)"];
    for (const [i, e] of refused.entries()) {
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).message).toContain(said[i]!);
    }
    expect(await j.ingest({ ok: true })).toBe(0);
    await Promise.all([p.close(), j.close()]);
  });
});
