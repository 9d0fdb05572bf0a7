// Failed records back: after a non-retryable failure the unacknowledged requests can be read
// (unackedRecords / unackedBatches) and re-ingested in order on a new stream (recreateStream).
import { afterEach, expect, test } from "bun:test";
import { tableFromArrays, tableFromIPC } from "apache-arrow";
import { fixture, FAST, TABLE } from "./helpers";
import { ZerobusArrowStream, ZerobusError } from "../src/index";
import { drainReleased, heldCount } from "../src/memory";

let f: ReturnType<typeof fixture> | undefined;
afterEach(() => {
  f?.close();
  f = undefined;
});

// acks held back, so what was accepted is still unacknowledged when the failure comes
const fatal = { ackDelayMs: 2000, failAfterRecords: { records: 300, code: "INVALID_ARGUMENT", message: "injected fatal" } };

async function failed<S extends { state: string; waitForOffset(o: number): Promise<void> }>(s: S, last: number) {
  const err = await s.waitForOffset(last).catch((e) => e);
  expect(err).toBeInstanceOf(ZerobusError);
  expect(s.state).toBe("failed");
  return err as ZerobusError;
}

test("JSON: the unacknowledged records come back in order, and a recreated stream stores each once", async () => {
  f = fixture();
  await f.server.addFault(fatal);
  const s = f.sdk.openStream({ table: TABLE, recordType: "json", ...FAST, recoveryRetries: 0 });
  // Records and batches are accepted until the failure is seen (submit then throws).
  const accepted: number[] = [];
  let last = -1;
  try {
    for (let i = 0; i < 600; i += 100) {
      for (let k = 0; k < 50; k++) {
        last = s.submit({ i: i + k });
        accepted.push(i + k);
      }
      const batch = Array.from({ length: 50 }, (_, k) => ({ i: i + 50 + k }));
      last = s.submitBatch(batch);
      accepted.push(...batch.map((r) => r.i));
    }
  } catch (e) {
    expect((e as ZerobusError).code).toBe("STREAM_FAILED");
  }
  const err = await failed(s, last);
  expect(err.message).toContain("injected fatal");
  const unacked = s.unackedRecords();
  expect(unacked.length).toBeGreaterThan(0);
  // offsets ascend by one from the first unacknowledged one to the last handed out
  expect(unacked[0]!.offset).toBe(s.ackedOffset + 1);
  unacked.forEach((u, k) => k > 0 && expect(u.offset).toBe(unacked[k - 1]!.offset + 1));
  expect(unacked.at(-1)!.offset).toBe(last);
  const back = unacked.flatMap((u) => u.records.map((r) => (JSON.parse(new TextDecoder().decode(r)) as { i: number }).i));
  expect(back).toEqual(accepted.slice(accepted.length - back.length)); // the tail of what was accepted
  expect(unacked.some((u) => u.batch && u.records.length === 50)).toBe(true);

  const next = await f.sdk.recreateStream(s);
  expect(next).not.toBe(s);
  await next.flush();
  await next.close();
  const ids = f.server.records<{ i: number }>(TABLE).map((r) => r.i);
  expect(ids).toEqual(accepted); // every accepted record once, in order
});

test("after close(): unackedRecords still answers and recreateStream still works", async () => {
  f = fixture();
  await f.server.addFault(fatal);
  const s = f.sdk.openStream({ table: TABLE, recordType: "json", ...FAST, recoveryRetries: 0 });
  let last = -1;
  let n = 0;
  try {
    for (; n < 400; n++) last = s.submit({ i: n });
  } catch {}
  await failed(s, last);
  const before = s.unackedRecords();
  await s.close().catch(() => {});
  const after = s.unackedRecords();
  expect(after).toEqual(before);
  // Copies: writing into what came back changes neither a later answer nor the recreated stream.
  for (const u of after) for (const r of u.records) r.fill(0x20);
  expect(s.unackedRecords()).toEqual(before);
  const next = await f.sdk.recreateStream(s);
  await next.close();
  expect(f.server.records<{ i: number }>(TABLE).map((r) => r.i)).toEqual(Array.from({ length: n }, (_, i) => i));
});

test("Arrow: unacknowledged batches come back as IPC, and a recreated stream lands every row once", async () => {
  f = fixture();
  // acks held back, so what was accepted is still unacknowledged when the failure comes
  await f.server.addFault({ ackDelayMs: 2000, failAfterRecords: { records: 3, code: "INVALID_ARGUMENT", message: "injected fatal" } });
  const batch = (from: number) => tableFromArrays({ id: Int32Array.from({ length: 100 }, (_, i) => from + i) });
  const s = await f.sdk.createArrowStream({ table: TABLE, schema: batch(0).schema, ...FAST, recoveryRetries: 0 });
  // batches are accepted until the failure is seen (submit then throws): count what was accepted
  const ipc = Array.from({ length: 8 }, (_, b) => batch(b * 100));
  let last = -1;
  for (const t of ipc) {
    try {
      last = s.submitBatch(t);
    } catch {
      break;
    }
  }
  const accepted = last + 1;
  await failed(s, last);
  const back = s.unackedBatches();
  expect(back.length).toBeGreaterThan(0);
  for (const u of back) {
    const ids = tableFromIPC(u.ipc).getChild("id")!.toArray() as Int32Array;
    expect(ids[0]).toBe(u.offset * 100); // batch b holds ids b*100 ..
    expect(ids.length).toBe(100);
  }
  const next = await f.sdk.recreateStream(s);
  expect(next).toBeInstanceOf(ZerobusArrowStream);
  await next.close();
  const ids = f.server.records<{ id: number }>(TABLE).map((r) => r.id);
  expect(new Set(ids).size).toBe(accepted * 100);
  expect(ids.length).toBe(accepted * 100);
});

test("recreateStream refuses a stream that has not failed; a headers function carries over", async () => {
  f = fixture();
  let calls = 0;
  const headers = () => {
    calls++;
    return { authorization: "Bearer h" };
  };
  const ok = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST, headers });
  const err = await f.sdk.recreateStream(ok).catch((e) => e);
  expect(err.code).toBe("INVALID_ARGUMENT");
  await f.server.addFault(fatal);
  const s = f.sdk.openStream({ table: TABLE, recordType: "json", ...FAST, recoveryRetries: 0, headers });
  let last = -1;
  try {
    for (let i = 0; i < 400; i++) last = s.submit({ i });
  } catch {}
  await failed(s, last);
  const before = calls;
  const next = await f.sdk.recreateStream(s);
  expect(calls).toBe(before + 1);
  await Promise.all([next.close(), ok.close()]);
});

test("a failure releases the caller's buffers at once; what they held stays available as copies", async () => {
  f = fixture();
  await f.server.addFault(fatal);
  const s = f.sdk.openStream({ table: TABLE, recordType: "json", ...FAST, recoveryRetries: 0, zeroCopy: true });
  const before = heldCount();
  const bufs: Uint8Array[] = [];
  let last = -1;
  try {
    for (let i = 0; i < 400; i++) {
      const b = new TextEncoder().encode(JSON.stringify({ i, pad: "p".repeat(2000) })); // > 1 KiB: used in place (zeroCopy)
      last = s.submit(b);
      bufs.push(b);
    }
  } catch {}
  await failed(s, last);
  for (let i = 0; i < 50 && heldCount() > before; i++) {
    await Bun.sleep(10);
    drainReleased();
  }
  expect(heldCount()).toBe(before); // released without close()
  for (const b of bufs) b.fill(0x20); // the caller reuses its buffers
  const back = s.unackedRecords();
  expect(back.length).toBeGreaterThan(0);
  for (const u of back) expect(JSON.parse(new TextDecoder().decode(u.records[0])).i).toBe(u.offset);
  await s.close().catch(() => {});
});
