// Integrity: no record corrupted, lost, duplicated beyond what at-least-once allows, or leaked,
// and nothing hangs — under what users and the GC actually do.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { fixture, FAST } from "./helpers";
import { EventSchema } from "./schema";
import { InvalidArgumentError, ZerobusError, ZerobusSdk, startLocalServer } from "../src/index";
import { heldCount } from "../src/memory";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture();
});
afterAll(() => f.close());

async function jsonStream(table: string, extra: Record<string, unknown> = {}) {
  await f.server.addTable(table);
  return f.sdk.createStream({ table, recordType: "json", ...FAST, ...extra });
}

/** Garbage and full collections, so freed storage is reused while records wait for replay. */
function churn(rounds = 10) {
  for (let k = 0; k < rounds; k++) {
    let junk: Uint8Array[] = Array.from({ length: 5000 }, (_, j) => new Uint8Array(48 + (j % 64)).fill(j & 255));
    Bun.gc(true);
    junk = [];
  }
}

describe("records whose storage JavaScriptCore moved are sent intact", () => {
  test("small JSON arrays touched with .buffer after ingest, dropped, GC'd, then replayed", async () => {
    const table = "main.default.moved_json";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 1800, ackDelayMs: 300 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
    const enc = new TextEncoder();
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 2000; i++) {
      const r = enc.encode(JSON.stringify({ i, pad: "abcdefghijklmnopqrstuvwxyz" }));
      acks.push(s.ingest(r));
      void r.buffer; // moves a small array's contents out of the GC heap
    }
    churn();
    expect(await Promise.all(acks)).toEqual(acks.map((_, i) => i));
    expect(s.streamsOpened).toBe(2);
    await s.close();
    expect(f.server.records(table)).toEqual(Array.from({ length: 2000 }, (_, i) => ({ i, pad: "abcdefghijklmnopqrstuvwxyz" })));
  });

  test("proto records (where garbage could decode) in batches and alone, subarrays, then replayed", async () => {
    const table = "main.default.moved_proto";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 900, ackDelayMs: 300 });
    const s = await f.sdk.createStream({ table, schema: EventSchema, ...FAST });
    const acks: Promise<number>[] = [];
    const ev = (id: number) => toBinary(EventSchema, create(EventSchema, { id: BigInt(id), name: `event-${id}` }));
    for (let i = 0; i < 1000; i += 10) {
      const batch = Array.from({ length: 5 }, (_, k) => ev(i + k));
      acks.push(s.ingestBatch(batch));
      for (const r of batch) void r.subarray(1); // subarray moves the storage too
      for (let k = 5; k < 10; k++) {
        const r = ev(i + k);
        acks.push(s.ingest(r));
        void Buffer.from(r.buffer);
      }
    }
    churn();
    await Promise.all(acks);
    await s.close();
    const rows = f.server.records<{ id: string; name: string }>(table);
    expect(rows.length).toBe(1000);
    expect(rows.map((r) => [Number(r.id), r.name])).toEqual(Array.from({ length: 1000 }, (_, i) => [i, `event-${i}`]));
  });

  test("with zeroCopy, large arrays are used in place, pinned until acknowledged, and released after", async () => {
    const table = "main.default.moved_large";
    await f.server.addTable(table);
    await f.server.addFault({ table, dropAfterRecords: 150, ackDelayMs: 200 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, zeroCopy: true });
    const before = heldCount();
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 200; i++) {
      const r = new TextEncoder().encode(JSON.stringify({ i, pad: "z".repeat(3000) }));
      acks.push(s.ingest(r));
      void r.buffer;
    }
    expect(heldCount()).toBeGreaterThan(before);
    churn(3);
    await Promise.all(acks);
    await s.close();
    expect(heldCount()).toBe(before);
    expect(f.server.records<{ i: number }>(table).map((r) => r.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});

describe("acks, timeouts and duplicates: at-least-once, never a storm", () => {
  test("timing options out of range are refused with InvalidArgumentError", async () => {
    const bad: [string, unknown][] = [
      ["serverLackOfAckTimeoutMs", 10],
      ["serverLackOfAckTimeoutMs", 0],
      ["serverLackOfAckTimeoutMs", -1],
      ["serverLackOfAckTimeoutMs", NaN],
      ["serverLackOfAckTimeoutMs", 2 ** 31],
      ["recoveryBackoffMs", 0],
      ["recoveryTimeoutMs", Infinity],
      ["flushTimeoutMs", 1.5],
      ["maxInflightRecords", 0],
      ["submitTimeoutMs", "100"],
    ];
    for (const [key, value] of bad) {
      const err = await f.sdk.createStream({ table: "main.default.opts", ...FAST, [key]: value }).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toContain(key);
    }
  });

  test("acks lost on one stream: the replay duplicates only what that stream committed, and flush succeeds", async () => {
    const table = "main.default.lost_acks";
    await f.server.addTable(table);
    await f.server.addFault({ table, loseAcks: true });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
    for (let i = 0; i < 300; i++) s.submit({ i });
    await s.flush();
    expect(s.streamsOpened).toBe(2);
    await s.close();
    const ids = f.server.records<{ i: number }>(table).map((r) => r.i);
    const counts = new Map<number, number>();
    for (const i of ids) counts.set(i, (counts.get(i) ?? 0) + 1);
    // Every record at least once; none more than twice (the lost-ack stream, then the replay).
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
  });

  test("acks lost on every stream: the stream fails with TIMEOUT after recoveryRetries, duplicates stay bounded", async () => {
    const table = "main.default.lost_acks_always";
    await f.server.addTable(table);
    await f.server.addFault({ table, loseAcks: true, times: 50 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000, recoveryRetries: 2 });
    for (let i = 0; i < 100; i++) s.submit({ i });
    const err = await s.flush().catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain("gave up after 3 attempts");
    expect(s.state).toBe("failed");
    expect(s.streamsOpened).toBe(3);
    expect(f.server.records(table).length).toBeLessThanOrEqual(3 * 100);
    await f.server.clearFaults();
  });

  test("the ack timeout counts from the send, not from the stream's last message", async () => {
    // With the timer counting from the last message, a record sent shortly before the timer
    // (started when the idle stream opened) runs out would be declared lost and replayed.
    const table = "main.default.idle_then_send";
    await f.server.addTable(table);
    await f.server.addFault({ table, ackDelayMs: 400 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
    await Bun.sleep(800);
    await s.ingest({ i: 0 });
    await Bun.sleep(1300); // idle again, longer than the timeout
    await s.ingest({ i: 1 });
    expect(s.streamsOpened).toBe(1);
    await s.close();
    expect(f.server.records(table)).toEqual([{ i: 0 }, { i: 1 }]);
  });

  test("a server that closes every stream before acknowledging: backoff, retry budget, then a clear failure", async () => {
    const table = "main.default.close_storm";
    await f.server.addTable(table);
    await f.server.addFault({ table, ackDelayMs: 500, closeSignalAfterRecords: { records: 1, durationMs: 0 }, times: 50 });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST, recoveryRetries: 2 });
    const acks = Array.from({ length: 50 }, (_, i) => s.ingest({ i }).catch((e) => e));
    const results = await Promise.all(acks);
    const err = results.find((r) => r instanceof ZerobusError) as ZerobusError;
    expect(err).toBeDefined();
    expect(err.message).toContain("CloseStreamSignal");
    expect(s.state).toBe("failed");
    // Three attempts without catching up; a replay that the server acknowledged before its
    // signal resets the count once at most.
    expect(s.streamsOpened).toBeGreaterThanOrEqual(3);
    expect(s.streamsOpened).toBeLessThanOrEqual(6);
    await f.server.clearFaults();
  });
});

describe("nothing hangs; every failure is a prompt, typed rejection", () => {
  test("waitForOffset: NaN and offsets never handed out reject at once; after close too", async () => {
    const s = await jsonStream("main.default.wait_offsets");
    await expect(s.waitForOffset(NaN)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(s.waitForOffset(0)).rejects.toThrow("never handed out");
    await s.waitForOffset(-1);
    const o = await s.ingest({ i: 0 });
    await s.waitForOffset(o);
    await expect(s.waitForOffset(5)).rejects.toThrow("never handed out");
    await s.close();
    await s.waitForOffset(o); // acknowledged before close: still fine
    const err = await s.waitForOffset(o + 1).catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("STREAM_CLOSED");
  });

  test("flush and close on a failed stream reject at once with the stream's error", async () => {
    const table = "main.default.failed_flush";
    await f.server.addTable(table);
    await f.server.addFault({ table, failAfterRecords: { records: 1, code: "INVALID_ARGUMENT", message: "refused" } });
    const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
    const results = await Promise.all([s.ingest({ i: 0 }), s.ingest({ i: 1 })].map((p) => p.catch((e) => e)));
    expect(results[1]).toBeInstanceOf(ZerobusError);
    await expect(s.close()).rejects.toThrow("refused");
    // Closed after failing: flush must not wait out flushTimeoutMs (300 s by default).
    const err = await s.flush().catch((e) => e);
    expect(err.code).toBe("SERVER_ERROR");
    expect(err.message).toContain("refused");
  });

  test("ingest after close rejects (it does not throw); submit throws", async () => {
    const s = await jsonStream("main.default.after_close");
    await s.close();
    let p: Promise<number> | undefined;
    expect(() => {
      p = s.ingest({ i: 0 });
    }).not.toThrow();
    await expect(p!).rejects.toThrow("closed");
    await expect(s.ingestBatch([{ i: 1 }])).rejects.toThrow("closed");
    expect(() => s.submit({ i: 2 })).toThrow("closed");
  });

  test("a token endpoint that accepts and never answers: createStream fails with TIMEOUT", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: `http://127.0.0.1:${silent.port}` });
      const err = await sdk
        .createStream({ table: "main.default.events", clientId: "id", clientSecret: "s", recoveryTimeoutMs: 300, recoveryRetries: 1, recoveryBackoffMs: 10 })
        .catch((e) => e);
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.code).toBe("TIMEOUT");
      expect(err.message).toContain("auth headers");
      sdk.close();
    } finally {
      silent.stop(true);
    }
  });

  test("a certificate the client does not trust fails at once, naming the problem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zerobus-tls-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const gen = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
      { stderr: "pipe" },
    );
    expect(gen.exitCode).toBe(0);
    const server = startLocalServer({ tables: ["main.default.events"], dataDir: dir, fsync: false, tlsCertPem: cert, tlsKeyPem: key });
    try {
      expect(server.url).toStartWith("https://");
      const sdk = new ZerobusSdk({ endpoint: server.url });
      const err = await sdk.createStream({ table: "main.default.events", ...FAST, recoveryRetries: 3 }).catch((e) => e);
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.code).toBe("TRANSPORT");
      expect(err.retryable).toBe(false);
      expect(err.message).toContain("certificate");
      expect(err.message).not.toContain("gave up after");
      sdk.close();
    } finally {
      server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("bad input is refused locally and the stream stays usable", () => {
  test("JSON values that JSON.stringify would lose, change or choke on", async () => {
    const table = "main.default.bad_json";
    const s = await jsonStream(table);
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const bad: [unknown, string][] = [
      [new Map([["a", 1]]), "Map"],
      [new ArrayBuffer(4), "ArrayBuffer"],
      [new DataView(new ArrayBuffer(4)), "DataView"],
      [{ s: Symbol("x") }, "symbol"],
      [{ n: 1n }, "BigInt"],
      [circular, "circular"],
      [{ nested: { m: new Set([1]) } }, "Set"],
      [{ x: NaN }, "NaN"],
      [{ f() {} }, "function"],
      [[], "array"],
      [[1, 2], "array"],
      [new Date(0), "Date"],
      ["", "must be one JSON object"],
      ["42", "must be one JSON object"],
      ["[1]", "must be one JSON object"],
      [new TextEncoder().encode('"text"'), "must be one JSON object"],
      [new Uint8Array([0xff, 0xfe]), "UTF-8"],
    ];
    for (const [record, why] of bad) {
      const err = await s.ingest(record as any).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toContain(why);
    }
    const batchErr = await s.ingestBatch([{ ok: 0 }, { n: 2n }]).catch((e) => e);
    expect(batchErr).toBeInstanceOf(InvalidArgumentError);
    expect(() => s.submit("  ")).toThrow(InvalidArgumentError);
    // Still usable, and nothing bad reached the table.
    await s.ingest({ ok: 1, when: new Date(0), list: [1, "two", null], nested: { deep: true } });
    await s.close();
    expect(f.server.records(table)).toEqual([{ ok: 1, when: "1970-01-01T00:00:00.000Z", list: [1, "two", null], nested: { deep: true } }]);
  });

  test("SDK options: typos and unsupported endpoint schemes are refused", () => {
    expect(() => new ZerobusSdk({ endpoint: f.server.url, unityCatalogURL: f.server.url } as any)).toThrow('did you mean "unityCatalogUrl"');
    expect(() => new ZerobusSdk({ endpoint: "ftp://example.com" })).toThrow(InvalidArgumentError);
    expect(() => new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: "ftp://example.com" })).toThrow(InvalidArgumentError);
    new ZerobusSdk({ endpoint: "1234.zerobus.example.com" }).close(); // no scheme: https
  });

  test("streams dropped without close() are freed: server streams and file descriptors return to where they were", async () => {
    const table = "main.default.dropped";
    await f.server.addTable(table);
    const fds = () => readdirSync("/proc/self/fd").length;
    const active = async () => (await f.server.stats()).streamsActive as number;
    const fds0 = fds();
    const active0 = await active();
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const s = await f.sdk.createStream({ table, recordType: "json", ...FAST });
          await s.ingest({ round, i }); // then the stream is simply dropped
        }),
      );
      Bun.gc(true);
      await Bun.sleep(10);
    }
    for (let t = 0; t < 100 && (await active()) > active0 + 50; t++) {
      Bun.gc(true);
      await Bun.sleep(20);
    }
    // The GC scans the stack conservatively, so a few may survive; 1,000 must not.
    expect(await active()).toBeLessThan(active0 + 50);
    expect(fds()).toBeLessThan(fds0 + 100);
    expect(f.server.records(table).length).toBe(1000);
  }, 60_000);
});
