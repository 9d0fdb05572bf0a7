// stream.stats(): running totals that survive recovery and close.
import { afterEach, expect, test } from "bun:test";
import { fixture, FAST, TABLE } from "./helpers";

let f: ReturnType<typeof fixture> | undefined;
afterEach(() => {
  f?.close();
  f = undefined;
});

test("stats count records and bytes through a recovery, name the error recovered from, and survive close", async () => {
  f = fixture();
  await f.server.addFault({ failAfterRecords: { records: 50, code: "UNAVAILABLE", message: "injected" } });
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST });
  let bytes = 0;
  for (let i = 0; i < 200; i++) {
    const text = JSON.stringify({ i });
    bytes += text.length;
    s.submit(text);
  }
  await s.flush();
  const st = s.stats();
  expect(st.recordsIngested).toBe(200);
  expect(st.bytesIngested).toBe(bytes);
  expect(st.recordsAcked).toBe(200);
  expect(st.bytesAcked).toBe(bytes);
  expect(st.recordsInflight).toBe(0);
  expect(st.bytesInflight).toBe(0);
  expect(st.recordsSent).toBeGreaterThanOrEqual(200);
  expect(st.streamsOpened).toBe(2);
  expect(st.recoveries).toBe(1);
  expect(st.tokensFetched).toBe(0);
  expect(st.lastError?.code).toBe("TRANSPORT");
  expect(st.lastError?.message).toContain("injected");
  await s.close();
  expect(s.stats()).toEqual(st);
});

test("stats of a batch stream and of records in flight", async () => {
  f = fixture();
  await f.server.addFault({ withholdAcks: true });
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...FAST, flushTimeoutMs: 100 });
  s.submitBatch([{ a: 1 }, { a: 2 }, { a: 3 }]);
  for (let i = 0; i < 50 && s.stats().recordsSent < 3; i++) await Bun.sleep(10);
  const st = s.stats();
  expect(st.recordsIngested).toBe(3);
  expect(st.recordsSent).toBe(3);
  expect(st.recordsAcked).toBe(0);
  expect(st.recordsInflight).toBe(3);
  expect(st.lastError).toBeUndefined();
  await s.close().catch(() => {});
});

test("tokensFetched counts token requests made for the stream, not cache hits", async () => {
  f = fixture({ clientId: "id", clientSecret: "secret" });
  const creds = { clientId: "id", clientSecret: "secret", recordType: "json" as const };
  const a = await f.sdk.createStream({ table: TABLE, ...creds });
  const b = await f.sdk.createStream({ table: TABLE, ...creds });
  expect(a.stats().tokensFetched).toBe(1);
  expect(b.stats().tokensFetched).toBe(0);
  await Promise.all([a.close(), b.close()]);
});

test("logger: stream opened, recovery with its cause, close signal, token fetch and failure reach it", async () => {
  const { ZerobusSdk } = await import("../src/index");
  f = fixture({ clientId: "id", clientSecret: "secret" });
  const events: { level: string; message: string; table: string }[] = [];
  const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: f.server.url, logger: (e) => events.push(e), logLevel: "debug" });
  await f.server.addFault({ failAfterRecords: { records: 5, code: "UNAVAILABLE", message: "injected outage" } });
  const s = await sdk.createStream({ table: TABLE, recordType: "json", clientId: "id", clientSecret: "secret", recoveryBackoffMs: 20 });
  for (let i = 0; i < 20; i++) s.submit({ i });
  await s.flush();
  await s.close();
  await f.server.addFault({ closeSignalAfterRecords: { records: 3, durationMs: 0 } });
  const t = await sdk.createStream({ table: TABLE, recordType: "json", clientId: "id", clientSecret: "secret", recoveryBackoffMs: 20 });
  for (let i = 0; i < 20; i++) t.submit({ i });
  await t.flush();
  await t.close();
  const text = events.map((e) => `${e.level}: ${e.message}`).join("\n");
  expect(text).toContain("info: fetched an OAuth token");
  expect(text).toMatch(/info: physical stream opened \(id local-/);
  expect(text).toMatch(/warn: physical stream ended: .*injected outage.*attempt 1 of 4/);
  expect(text).toContain("CloseStreamSignal");
  expect(events.every((e) => e.table === TABLE)).toBe(true);

  // a failure, at error level; a logger that throws does not break anything
  sdk.close();
  f.close();
  f = fixture(); // no auth
  await f.server.addFault({ failCreate: { code: "NOT_FOUND", message: "no such table" } });
  const failing: string[] = [];
  const quiet = new ZerobusSdk({ endpoint: f.server.url, logger: (e) => { failing.push(`${e.level}: ${e.message}`); throw new Error("logger bug"); }, logLevel: "error" });
  const err = await quiet.createStream({ table: TABLE, recordType: "json", headers: { authorization: "Bearer x" } }).catch((e) => e);
  expect(err.code).toBe("NOT_FOUND");
  expect(failing).toEqual([expect.stringMatching(/^error: stream failed: .*no such table/)]);
  quiet.close();
});

test("silent by default; a bad logLevel or logger is refused", async () => {
  const { ZerobusSdk } = await import("../src/index");
  f = fixture();
  expect(() => new ZerobusSdk({ endpoint: f!.server.url, logLevel: "verbose" as "info" })).toThrow("logLevel");
  expect(() => new ZerobusSdk({ endpoint: f!.server.url, logger: "console" as unknown as () => void })).toThrow("logger");
});

test("logLevel warn: recoveries and refused credentials are reported, info events are not produced", async () => {
  const { ZerobusSdk } = await import("../src/index");
  f = fixture({ clientId: "id", clientSecret: "secret" });
  const events: { level: string; message: string }[] = [];
  const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: f.server.url, logger: (e) => events.push(e), logLevel: "warn" });
  await f.server.addFault({ failAfterRecords: { records: 2, code: "UNAVAILABLE", message: "injected outage" } });
  const s = await sdk.createStream({ table: TABLE, recordType: "json", clientId: "id", clientSecret: "secret", recoveryBackoffMs: 20 });
  await s.ingest({ n: 1 });
  await f.server.revokeTokens(); // the reopen after the outage is refused once, then gets a new token
  await s.ingest({ n: 2 });
  await s.ingest({ n: 3 });
  await s.close();
  sdk.close();
  expect(events.every((e) => e.level === "warn")).toBe(true);
  const text = events.map((e) => e.message).join("\n");
  expect(text).toMatch(/physical stream ended: .*injected outage/);
  expect(text).toContain("refused the credentials (UNAUTHENTICATED)");
});
