// zerobus-bun/compat: the official SDK's API. The same program (test/fixtures/compat-app.ts,
// after the official README and examples) runs against the official napi addon and against
// compat; their results and the rows they store must match. The rest checks compat's own
// promises: queued vs acknowledged, waiting without blocking, the 2.0 options bag, errors.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import protobuf from "protobufjs";
import { tableFromArrays, tableToIPC } from "apache-arrow";
import type { LocalServer } from "../src/index";
import { ArrowDataType, IpcCompressionType, RecordType, ZerobusError, ZerobusSdk, type ZerobusStream } from "../src/compat";
import { officialAddon } from "../scripts/official-sdk";
import { fixture, freshTable } from "./helpers";

let f: ReturnType<typeof fixture>;
let server: LocalServer;
let sdk: ZerobusSdk;
const ID = "client-id";
const SECRET = "client-secret";

beforeAll(() => {
  f = fixture();
  server = f.server;
  sdk = new ZerobusSdk(server.url, server.url);
});
afterAll(() => {
  sdk.inner.close();
  f.close();
});

/** Whether `p` is still pending once everything already settled has run. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  const probe = Symbol();
  return (await Promise.race([p.then(() => undefined, () => undefined), new Promise((r) => setTimeout(() => r(probe), 0))])) === probe;
}

test("a program written for the official SDK gives the same results and rows with zerobus-bun/compat", async () => {
  const addon = officialAddon();
  if (!addon && process.env.ZEROBUS_NO_OFFICIAL !== "1") {
    expect(process.platform === "linux" && process.arch === "x64").toBe(false); // elsewhere there is no official build to compare with
    return;
  }
  if (!addon) return;
  const app = join(import.meta.dir, "fixtures", "compat-app.ts");
  const kinds = ["json", "proto", "hdr", "arrow"];
  const outputs: string[] = [];
  for (const [prefix, module] of [["official", addon], ["compat", join(import.meta.dir, "..", "src", "compat.ts")]] as const) {
    for (const k of kinds) await server.addTable(`main.default.${prefix}_${k}`);
    const r = Bun.spawnSync([process.execPath, app, module, server.url, `main.default.${prefix}`], { stdout: "pipe", stderr: "pipe", env: process.env });
    if (r.exitCode !== 0) console.error(prefix, r.stdout.toString(), r.stderr.toString());
    expect(r.exitCode).toBe(0);
    outputs.push(r.stdout.toString().replaceAll(`main.default.${prefix}_`, "<table>_"));
  }
  const steps = outputs[0]!.trim().split("\n");
  expect(steps.length).toBe(20);
  expect(outputs[1]!.trim().split("\n")).toEqual(steps);
  for (const k of kinds) {
    const official = server.records(`main.default.official_${k}`);
    expect(official.length).toBeGreaterThan(0);
    expect(server.records(`main.default.compat_${k}`)).toEqual(official);
  }
}, 120_000);

test("ingestRecordOffset resolves once the record is queued; the deprecated ingestRecord once it is acknowledged", async () => {
  const table = await freshTable(server, "compat_queued");
  await server.addFault({ table, withholdAcks: true });
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, flushTimeoutMs: 500, recoveryRetries: 0 });
  const acked = s.ingestRecord({ i: 0 });
  const offset = await s.ingestRecordOffset({ i: 1 });
  expect(offset).toBe(1n);
  expect(s.inner.ackedOffset).toBe(-1); // nothing acknowledged, yet the offset is known
  expect(await pending(acked)).toBe(true);
  await s.close().catch(() => {});
  await acked.catch(() => {});
  await server.clearFaults();
});

test("at the in-flight limit, ingestRecordOffset waits without blocking the thread and keeps call order", async () => {
  const table = await freshTable(server, "compat_limit");
  await server.addFault({ table, ackDelayMs: 20 });
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, maxInflightRequests: 10 });
  const n = 200;
  let timerRan = false;
  let lastResolved = false;
  const calls: Promise<bigint>[] = [];
  for (let i = 0; i < n; i++) calls.push(s.ingestRecordOffset(i % 3 === 0 ? JSON.stringify({ i }) : { i }));
  calls[n - 1]!.then(() => (lastResolved = true));
  setTimeout(() => (timerRan = !lastResolved), 0);
  const offsets = await Promise.all(calls);
  expect(timerRan).toBe(true); // the event loop ran while records waited for room
  expect(offsets).toEqual(Array.from({ length: n }, (_, i) => BigInt(i)));
  await s.flush();
  await s.close();
  expect(server.records<{ i: number }>(table).map((r) => r.i)).toEqual(Array.from({ length: n }, (_, i) => i));
  await server.clearFaults();
});

test("20,000 records with await ingestRecordOffset, then flush: all stored in order", async () => {
  const table = await freshTable(server, "compat_bulk");
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json });
  for (let i = 0; i < 20_000; i++) await s.ingestRecordOffset({ i });
  await s.flush();
  await s.close();
  const rows = server.records<{ i: number }>(table);
  expect(rows.length).toBe(20_000);
  expect(rows.every((r, i) => r.i === i)).toBe(true);
});

test("the README's async getHeadersCallback works (the official addon needs a synchronous one on Bun)", async () => {
  const table = await freshTable(server, "compat_async_headers");
  const s = await sdk.createStream({ tableName: table }, "", "", { recordType: RecordType.Json }, {
    getHeadersCallback: async () => [
      ["authorization", "Bearer token"],
      ["x-databricks-zerobus-table-name", table],
    ],
  });
  await s.waitForOffset(await s.ingestRecordOffset({ ok: true }));
  await s.close();
  expect(server.records(table)).toEqual([{ ok: true }]);
});

test("the 2.0 options bag: format, auth and compression", async () => {
  const table = await freshTable(server, "compat_bag");
  const s = await sdk.createStream({ tableName: table, format: "json", auth: { type: "oauth", clientId: ID, clientSecret: SECRET } });
  await s.ingestRecordOffset({ a: 1 });
  await s.close();
  const arrowTable = await freshTable(server, "compat_bag_arrow");
  const a = await sdk.createArrowStream(
    { tableName: arrowTable, schemaFields: [{ name: "n", dataType: ArrowDataType.Int32, nullable: false }] },
    undefined,
    undefined,
    { compression: "zstd", auth: { type: "custom", headersProvider: { getHeadersCallback: () => [["authorization", "Bearer t"]] } } },
  );
  await a.ingestBatch(Buffer.from(tableToIPC(tableFromArrays({ n: Int32Array.from([1, 2, 3]) }), "stream")));
  await a.close();
  const b = await sdk.createArrowStream({ tableName: arrowTable, schemaFields: [{ name: "n", dataType: ArrowDataType.Int32, nullable: false }] }, ID, SECRET, { ipcCompression: IpcCompressionType.Lz4Frame });
  await b.ingestBatch(tableToIPC(tableFromArrays({ n: Int32Array.from([4]) }), "stream"));
  await b.close();
  expect(server.records(table)).toEqual([{ a: 1 }]);
  expect(server.records<{ n: number }>(arrowTable).map((r) => r.n)).toEqual([1, 2, 3, 4]);
});

test("errors name the fix", async () => {
  const table = await freshTable(server, "compat_errors");
  const err = (p: Promise<unknown>) => p.then(() => undefined, (e: Error) => e);
  const typo = await err(sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, maxInflightRequest: 5 } as never));
  expect(typo?.message).toContain('did you mean "maxInflightRequests"');
  const noDescriptor = await err(sdk.createStream({ tableName: table }, ID, SECRET));
  expect(noDescriptor?.message).toContain("descriptorProto");
  expect(noDescriptor?.message).toContain("RecordType.Json");
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json });
  const T = protobuf.parse('syntax = "proto3"; message M { int32 a = 1; }').root.lookupType("M");
  const wrongStream = await err(s.ingestRecordOffset(T.create({ a: 1 })));
  expect(wrongStream?.message).toContain("protobuf message was passed to a JSON stream");
  expect(wrongStream).toBeInstanceOf(ZerobusError);
  expect((wrongStream as ZerobusError).isRetryable).toBe(false);
  expect((await err(s.waitForOffset(5 as never)))?.message).toContain("never handed out");
  await s.close();
  const arrowErr = await err(sdk.createArrowStream({ tableName: table, schemaFields: [{ name: "x", dataType: 99 as never }] }, ID, SECRET));
  expect(arrowErr?.message).toContain("dataType must be an ArrowDataType");
});

test("after a failure: unacknowledged records come back grouped as ingested, and recreateStream lands them", async () => {
  const table = await freshTable(server, "compat_recreate");
  await server.addFault({ table, ackDelayMs: 2000, failAfterRecords: { records: 1, code: "INVALID_ARGUMENT", message: "injected fatal" } });
  const s: ZerobusStream = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, recoveryRetries: 0 });
  // queued in one go, before the failure can come back
  const queued = [s.ingestRecordOffset({ i: 0 }), s.ingestRecordsOffset([{ i: 1 }, { i: 2 }]), s.ingestRecordOffset({ i: 3 })];
  const offsets = await Promise.all(queued);
  expect(offsets).toEqual([0n, 1n, 2n]);
  const failure = await s.waitForOffset(2n).then(() => undefined, (e: unknown) => e);
  expect(failure).toBeInstanceOf(ZerobusError);
  const batches = (await s.getUnackedBatches()).map((b) => b.map((r) => JSON.parse(r.toString()).i));
  // the first record may have been committed before the failure; the rest never were
  expect([[[0], [1, 2], [3]], [[1, 2], [3]]]).toContainEqual(batches);
  expect((await s.getUnackedRecords()).length).toBe(batches.flat().length);
  const next = await sdk.recreateStream(s);
  await next.flush();
  await next.close();
  const rows = server.records<{ i: number }>(table).map((r) => r.i);
  expect(new Set(rows)).toEqual(new Set([0, 1, 2, 3]));
  expect(rows.slice(-3)).toEqual([1, 2, 3]);
});

test("Arrow: a batch without rows is refused, as the official SDK does", async () => {
  const table = await freshTable(server, "compat_arrow_empty");
  const s = await sdk.createArrowStream({ tableName: table, schemaFields: [{ name: "n", dataType: ArrowDataType.Int32, nullable: false }] }, ID, SECRET);
  const empty = tableFromArrays({ n: new Int32Array(0) });
  const e = await s.ingestBatch(Buffer.from(tableToIPC(empty, "stream"))).catch((x: Error) => x);
  expect((e as Error).message).toContain("zero rows");
  const o = await s.ingestBatch(Buffer.from(tableToIPC(tableFromArrays({ n: Int32Array.from([7]) }), "stream")));
  expect(o).toBe(0n);
  await s.close();
  expect(server.records(table)).toEqual([{ n: 7 }]);
});
