// Faults of real networks and servers, beyond a clean drop: a dead (half-open) connection, a slow
// link, a reset, a half-close (through test/relay.ts), and servers that acknowledge what they were
// never sent, acknowledge backwards or before confirming the stream. Every record whose promise
// resolved must be stored; duplicates only where acknowledgements were really lost.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ZerobusError, ZerobusSdk } from "../src/index";
import { fixture, FAST } from "./helpers";
import { startRelay, type Relay } from "./relay";

let f: ReturnType<typeof fixture>;
let relay: Relay;
let sdk: ZerobusSdk;
let tables = 0;

beforeAll(async () => {
  f = fixture();
  relay = await startRelay(f.server.url);
  sdk = new ZerobusSdk({ endpoint: relay.url });
});
afterAll(() => {
  sdk.close();
  relay.close();
  f.close();
});

async function table(name: string): Promise<string> {
  const t = `main.default.nf_${name}_${tables++}`;
  await f.server.addTable(t);
  return t;
}

/** The `i` of every stored row, and how many distinct ones. */
function stored(t: string): { rows: number[]; distinct: Set<number> } {
  const rows = f.server.records<{ i: number }>(t).map((r) => r.i);
  return { rows, distinct: new Set(rows) };
}

describe("connections that die or crawl", () => {
  test("a dead connection (no FIN, no RST) is given up at the ack timeout and the stream reopens on a new one", async () => {
    await relay.set({ up: {}, down: {}, scope: "all" });
    const t = await table("halfopen");
    // Acks come late, so records are in flight when the connection dies.
    await f.server.addFault({ table: t, ackDelayMs: 100 });
    const opts = { ...FAST, serverLackOfAckTimeoutMs: 1000, recoveryRetries: 2, recoveryTimeoutMs: 2000 };
    const s = await sdk.createStream({ table: t, recordType: "json", ...opts });
    const before = (await relay.stats()).accepted;
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 2000; i++) acks.push(s.ingest({ i }));
    await Bun.sleep(20);
    // The live connection passes nothing more, either way; new connections work.
    await relay.set({ up: { mode: "stall" }, down: { mode: "stall" } });
    for (let i = 2000; i < 6000; i++) acks.push(s.ingest({ i }));
    expect((await Promise.all(acks)).length).toBe(6000);
    const stats = s.stats();
    await s.close();
    expect(stats.streamsOpened).toBe(2);
    expect(stats.lastError?.code).toBe("TIMEOUT");
    expect(stats.lastError?.message).toContain("no acknowledgement from the server");
    // One new connection: the reopen did not go over the dead one.
    expect((await relay.stats()).accepted - before).toBe(1);
    const { distinct } = stored(t);
    expect(distinct.size).toBe(6000);
  });

  test("a slow link (1 MB/s) with a 1 s ack timeout: no spurious timeouts, no duplicates", async () => {
    const t = await table("slow");
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
    await relay.set({ up: { bytesPerSecond: 1_000_000 }, down: { bytesPerSecond: 1_000_000 }, scope: "all" });
    try {
      const before = (await relay.stats()).up;
      const pad = "x".repeat(980);
      const acks: Promise<number>[] = [];
      for (let i = 0; i < 3000; i++) acks.push(s.ingest({ i, pad }));
      await Promise.all(acks);
      const stats = s.stats();
      await s.close();
      expect(stats.streamsOpened).toBe(1);
      expect(stats.lastError).toBeUndefined();
      const { rows } = stored(t);
      expect(rows).toEqual(Array.from({ length: 3000 }, (_, i) => i));
      // What crossed the link is the records once (and their framing).
      expect((await relay.stats()).up - before).toBeLessThan(3_000_000 * 1.05);
    } finally {
      await relay.set({ up: {}, down: {}, scope: "all" });
    }
  }, 30_000);

  test("a server that reads everything but acknowledges nothing is given up while records keep flowing to it", async () => {
    const t = await table("readsnoacks");
    await f.server.addFault({ table: t, withholdAcks: true });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
    // A producer that keeps sending for 5 ack timeouts: the socket keeps taking its bytes, which
    // must not count as a sign of life of a server that never acknowledges.
    const pad = "p".repeat(1000);
    const acks: Promise<number>[] = [];
    let i = 0;
    const until = performance.now() + 5000;
    while (performance.now() < until) {
      for (let k = 0; k < 100; k++, i++) acks.push(s.ingest({ i, pad }));
      await Bun.sleep(20);
    }
    const openedWhileProducing = s.streamsOpened;
    await Promise.all(acks);
    await s.close();
    expect(openedWhileProducing).toBeGreaterThanOrEqual(2);
    expect(stored(t).distinct.size).toBe(i);
  }, 30_000);

  test("a slower link (200 KB/s) with a 1 s ack timeout: a tick's worth of small ingests is acknowledged as it arrives", async () => {
    const t = await table("slower");
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
    await relay.set({ up: { bytesPerSecond: 200_000 }, down: { bytesPerSecond: 200_000 }, scope: "all" });
    try {
      // 300 KB queued in one tick: the server must see records before the whole lot has arrived.
      const pad = "m".repeat(1000);
      await Promise.all(Array.from({ length: 300 }, (_, i) => s.ingest({ i, pad })));
      const stats = s.stats();
      await s.close();
      expect(stats.streamsOpened).toBe(1);
      expect(stored(t).rows).toEqual(Array.from({ length: 300 }, (_, i) => i));
    } finally {
      await relay.set({ up: {}, down: {}, scope: "all" });
    }
  }, 30_000);

  test("a reset connection and a half-closed one are recovered from", async () => {
    for (const fault of ["reset", "half-close"] as const) {
      const t = await table(fault === "reset" ? "rst" : "fin");
      await f.server.addFault({ table: t, ackDelayMs: 50 });
      const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, serverLackOfAckTimeoutMs: 1000 });
      const acks: Promise<number>[] = [];
      for (let i = 0; i < 3000; i++) acks.push(s.ingest({ i }));
      await Bun.sleep(20);
      if (fault === "reset") await relay.reset();
      else await relay.set({ up: { mode: "close" } });
      for (let i = 3000; i < 5000; i++) acks.push(s.ingest({ i }));
      await Promise.all(acks);
      const opened = s.streamsOpened;
      await s.close();
      expect(opened).toBeGreaterThanOrEqual(2);
      expect(stored(t).distinct.size).toBe(5000);
    }
  });
});

describe("servers that break the protocol", () => {
  test("an acknowledgement beyond anything sent resolves nothing: the stream is treated as broken and replayed", async () => {
    const t = await table("ackbeyond");
    // The server takes 3 records, acknowledges offset 1,000,000,000 and drops the call.
    await f.server.addFault({ table: t, ackBeyond: { records: 3, offset: 1_000_000_000 }, dropAfterRecords: 3, ackDelayMs: 50 });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST });
    const acks: Promise<number>[] = [];
    for (let i = 0; i < 2000; i++) acks.push(s.ingest({ i }));
    await Promise.all(acks);
    const stats = s.stats();
    await s.close();
    expect(stats.lastError?.message).toContain("acknowledged offset 1000000000");
    expect(stored(t).distinct.size).toBe(2000);
  });

  test("an acknowledgement beyond anything sent, with recovery off, fails the stream instead of resolving records", async () => {
    const t = await table("ackbeyond_norecovery");
    await f.server.addFault({ table: t, ackBeyond: { records: 3, offset: 1_000_000_000 }, ackDelayMs: 50 });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, recovery: false });
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => s.ingest({ i }).then(() => true, (e) => e)));
    await s.close().catch(() => {});
    const resolved = results.filter((r) => r === true).length;
    // Only records the server stored may resolve.
    expect(resolved).toBeLessThanOrEqual(stored(t).distinct.size);
    const err = results.find((r) => r !== true) as ZerobusError;
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.message).toContain("acknowledged offset 1000000000");
  });

  test("acknowledgements that go backwards change nothing", async () => {
    const t = await table("ackback");
    await f.server.addFault({ table: t, ackBackwards: true });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST });
    await Promise.all(Array.from({ length: 3000 }, (_, i) => s.ingest({ i })));
    expect(s.streamsOpened).toBe(1);
    await s.close();
    expect(stored(t).rows).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });

  test("an acknowledgement before the stream is confirmed fails that attempt, and the next one works", async () => {
    const t = await table("ackfirst");
    await f.server.addFault({ table: t, ackBeforeCreate: true });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST });
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.ingest({ i })));
    const stats = s.stats();
    await s.close();
    expect(stats.lastError?.message).toContain("expected the stream to be confirmed first");
    expect(stored(t).rows).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe("close() while producers keep going", () => {
  test("close() stops intake at once, then flushes what was taken before it", async () => {
    const t = await table("closeload");
    await f.server.addFault({ table: t, ackDelayMs: 50 });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, maxInflightRecords: 200 });
    let calls = 0;
    let stop = false;
    const refused: unknown[] = [];
    const producer = (async () => {
      for (let i = 0; !stop; i++) {
        calls++;
        s.ingest({ i }).catch((e) => refused.push(e));
        if (i % 50 === 0) await Bun.sleep(1);
      }
    })();
    await Bun.sleep(300);
    const taken = calls;
    const closed = s.close();
    // Calls after close() began fail at once, synchronously checked.
    let submitErr: unknown;
    try {
      s.submit({ i: -1 });
    } catch (e) {
      submitErr = e;
    }
    await closed;
    stop = true;
    await producer;
    expect(submitErr).toBeInstanceOf(ZerobusError);
    expect((submitErr as ZerobusError).code).toBe("STREAM_CLOSED");
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => e instanceof ZerobusError && e.code === "STREAM_CLOSED" && e.message.includes("closing"))).toBe(true);
    expect(stored(t).rows).toEqual(Array.from({ length: taken }, (_, i) => i));
  }, 60_000);

  test("a close() that times out hands every record it took, also those waiting for capacity, to unackedRecords() and recreateStream()", async () => {
    const t = await table("closequeued");
    await f.server.addFault({ table: t, ackDelayMs: 1500 });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, maxInflightRecords: 2, flushTimeoutMs: 500, serverLackOfAckTimeoutMs: 5000 });
    // 2 in flight, 18 waiting for capacity on the SDK's side when close() begins.
    const results = Array.from({ length: 20 }, (_, i) => s.ingest({ i }).then(() => true, (e) => e));
    const err = await s.close().catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.message).toContain("flush timed out");
    const settled = await Promise.all(results);
    // Every record not acknowledged fails with the stream's error, none as if it came after close().
    for (const r of settled) if (r !== true) expect(r.message).toBe(err.message);
    const unacked = s.unackedRecords().map((u) => JSON.parse(new TextDecoder().decode(u.records[0])).i as number);
    const acked = settled.flatMap((r, i) => (r === true ? [i] : []));
    expect([...acked, ...unacked].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const again = await sdk.recreateStream(s);
    await again.close();
    expect(stored(t).distinct.size).toBe(20);
  });

  test("close() settles within flushTimeoutMs when the server never acknowledges", async () => {
    const t = await table("closebudget");
    await f.server.addFault({ table: t, withholdAcks: true });
    const s = await sdk.createStream({ table: t, recordType: "json", ...FAST, flushTimeoutMs: 500, maxInflightRecords: 10 });
    // More records than capacity: the rest wait in the SDK's queue, within the same budget.
    const acks = Array.from({ length: 50 }, (_, i) => s.ingest({ i }).catch((e) => e));
    const err = await s.close().catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.message).toContain("flush timed out");
    expect(s.state).toBe("failed");
    expect((await Promise.all(acks)).every((e) => e instanceof ZerobusError)).toBe(true);
  });
});
