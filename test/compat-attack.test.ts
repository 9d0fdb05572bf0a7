// Adversarial checks of zerobus-bun/compat against what the official SDK (1.3.0 napi addon) does,
// each observed by running the same calls against both on the local server: payloads that throw
// at once, close() after a failure, option values outside zerobus-bun's ranges, DataView records,
// programs typed against the official shapes; and call order under a tight in-flight limit.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import protobuf from "protobufjs";
import type { LocalServer } from "../src/index";
import { RecordType, ZerobusSdk } from "../src/compat";
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

// Official behaviour (sync-vs-async payload errors): the official addon throws synchronously from
// ingestRecordOffset / ingestRecord / ingestRecordsOffset / ingestRecords when a payload is not a
// Buffer, string or object (null, undefined, number, boolean), when JSON.stringify throws (BigInt),
// and when ingestRecords* is not given an array. compat returns a rejected promise instead, so
// `try { stream.ingestRecordOffset(r) } catch { skip }` without await skips nothing and the
// rejection goes unhandled (the process exits 1).
test("a payload the official SDK cannot convert throws synchronously, as there", async () => {
  const table = await freshTable(server, "atk_sync");
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json });
  const rejections: unknown[] = [];
  const call = (f: () => Promise<unknown> | undefined) => {
    try {
      const p = f();
      p?.catch((e) => rejections.push(e));
      return "returned";
    } catch {
      return "threw";
    }
  };
  for (const bad of [null, undefined, 42, true, { n: 1n }]) {
    expect(call(() => s.ingestRecordOffset(bad))).toBe("threw");
    expect(call(() => s.ingestRecord(bad))).toBe("threw");
    expect(call(() => s.ingestRecordsOffset([{ ok: 1 }, bad]))).toBe("threw");
    expect(call(() => s.ingestRecords([bad]))).toBe("threw");
  }
  expect(call(() => s.ingestRecordsOffset({ not: "an array" } as never))).toBe("threw");
  await s.flush();
  await s.close();
  expect(rejections).toEqual([]);
  expect(server.records(table)).toEqual([]);
});

// Official behaviour (close after failure rejects): with the official addon, close() on a stream that failed
// (flush / waitForOffset already rejected with the failure) resolves. compat's close() rejects
// with the failure again, so `finally { await stream.close() }` after handling the error throws.
test("close() after a handled stream failure resolves, as in the official SDK", async () => {
  const table = await freshTable(server, "atk_close_failed");
  await server.addFault({ table, ackDelayMs: 300, failAfterRecords: { records: 1, code: "INVALID_ARGUMENT", message: "injected" } });
  try {
    const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, recovery: false, recoveryRetries: 0 });
    const o = await s.ingestRecordOffset({ i: 0 });
    await s.ingestRecordOffset({ i: 1 });
    const failure = await s.flush().then(() => undefined, (e: unknown) => e);
    expect(failure).toBeDefined();
    expect(o).toBe(0n);
    const closed = await s.close().then(() => "resolved", (e: Error) => `rejected: ${e.message}`);
    expect(closed).toBe("resolved");
    // the failed stream's records are still there for recreateStream
    expect((await s.getUnackedRecords()).length).toBeGreaterThan(0);
  } finally {
    await server.clearFaults();
  }
});

// Official behaviour (option ranges): the official addon opens streams with these values (u32 fields, no
// minimums); compat refuses createStream ("must be a whole number from 10/100/1000 ...").
// Programs and tests that use zero backoff or short timeouts stop working after the switch.
test("option values the official SDK takes open a stream (clamped if need be)", async () => {
  const table = await freshTable(server, "atk_opts");
  for (const o of [{ recoveryBackoffMs: 0 }, { flushTimeoutMs: 50 }, { flushTimeoutMs: 0 }, { serverLackOfAckTimeoutMs: 0 }, { maxInflightRequests: 2.5 }]) {
    const s = await sdk
      .createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, ...o })
      .catch((e: Error) => new Error(`${JSON.stringify(o)}: ${e.message}`));
    expect(s).not.toBeInstanceOf(Error);
    if (s instanceof Error) continue;
    await s.ingestRecordOffset({ o: JSON.stringify(o) });
    await s.flush();
    await s.close();
  }
});

// Official behaviour (DataView record): the official addon takes a DataView over encoded protobuf bytes on a
// proto stream (it stored the row); compat refuses it as "not a plain object".
test("a DataView record on a proto stream is taken as its bytes", async () => {
  const table = await freshTable(server, "atk_dataview");
  const root = protobuf.parse('syntax = "proto2"; message M { optional string s = 1; }').root;
  const M = root.lookupType("M");
  const D = protobuf.parse(`syntax="proto2"; message F { optional string name=1; optional int32 number=3; optional int32 label=4; optional int32 type=5; }
    message DescriptorProto { optional string name=1; repeated F field=2; }`).root.lookupType("DescriptorProto");
  const descriptorProto = Buffer.from(D.encode(D.create({ name: "M", field: [{ name: "s", number: 1, label: 1, type: 9 }] })).finish()).toString("base64");
  const s = await sdk.createStream({ tableName: table, descriptorProto }, ID, SECRET);
  const bytes = M.encode(M.create({ s: "dv" })).finish().slice();
  const r = await s.ingestRecordOffset(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)).then(String, (e: Error) => e.message);
  expect(r).toBe("0");
  await s.flush();
  await s.close();
  expect(server.records(table)).toEqual([{ s: "dv" }]);
});

// Official behaviour (types): a program that type-checks against the official API's shapes (napi-rs
// generated: enums are TS enums, option fields and ArrowField.dataType are `number`, optional
// arguments accept `null`, getHeadersCallback is `(...args: any[]) => any`) fails to type-check
// against compat's exported types.
test("programs typed against the official API's shapes type-check against compat", () => {
  const dir = mkdtempSync(join(tmpdir(), "compat-types-"));
  try {
    const compat = join(import.meta.dir, "..", "src", "compat.ts");
    writeFileSync(
      join(dir, "prog.ts"),
      `import { ZerobusSdk, RecordType, ArrowDataType, IpcCompressionType, type StreamConfigurationOptions, type ArrowField } from ${JSON.stringify(compat)};
const sdk = new ZerobusSdk("https://x.zerobus.example", "https://x.example");
export type JsonOnly = { kind: RecordType.Json };                          // enum member as a type
const rt: number = Number(process.env.RT ?? "0");
export const opts: StreamConfigurationOptions = { recordType: rt };        // recordType?: number
export const s1 = sdk.createStream({ tableName: "a.b.c" }, "id", "secret", null); // options?: ... | null
const token = "t";
const provider = { getHeadersCallback: () => [["authorization", \`Bearer \${token}\`], ["x-databricks-zerobus-table-name", "a.b.c"]] };
export const s2 = sdk.createStream({ tableName: "a.b.c" }, "", "", { recordType: RecordType.Json }, provider); // inferred string[][]
const typeOf: Record<string, number> = { string: ArrowDataType.Utf8 };
export const fields: ArrowField[] = [{ name: "a", dataType: typeOf["string"]! }];   // dataType: number
const compression: number = IpcCompressionType.Zstd;
export const a = sdk.createArrowStream({ tableName: "a.b.c", schemaFields: fields }, "id", "secret", { ipcCompression: compression });
`,
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ESNext", module: "Preserve", moduleResolution: "bundler", strict: true, noEmit: true, skipLibCheck: true,
          allowImportingTsExtensions: true, types: ["bun"], typeRoots: [join(import.meta.dir, "..", "node_modules", "@types")],
        },
        files: ["prog.ts"],
      }),
    );
    const tsc = join(import.meta.dir, "..", "node_modules", "typescript", "bin", "tsc");
    const r = Bun.spawnSync([process.execPath, tsc, "-p", dir], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const errors = (r.stdout.toString() + r.stderr.toString()).split("\n").filter((l) => l.includes("prog.ts("));
    expect(errors).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

// Guards (pass today): call order and offsets under a tight in-flight limit with every ingest
// form and flush/close interleaved without awaiting; records match the official SDK's rows.
test("interleaved ingest forms, flush and close at maxInflightRequests: 1 keep call order", async () => {
  const table = await freshTable(server, "atk_mix");
  await server.addFault({ table, ackDelayMs: 30 });
  try {
    const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, maxInflightRequests: 1 });
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const k = i % 5;
      if (k === 0) ps.push(s.ingestRecord({ i }));
      else if (k === 1) ps.push(s.ingestRecordOffset({ i }));
      else if (k === 2) ps.push(s.ingestRecordsOffset([{ i }, { i: i + 0.5 }]));
      else if (k === 3) ps.push(s.ingestRecords([{ i }]));
      else ps.push(s.flush());
    }
    ps.push(s.close());
    const late = s.ingestRecordOffset({ i: 99 }).then(() => "stored", () => "refused");
    const results = await Promise.all(ps);
    expect(results.filter((r) => typeof r === "bigint")).toEqual(Array.from({ length: 16 }, (_, i) => BigInt(i)));
    expect(await late).toBe("refused");
    const want = Array.from({ length: 20 }, (_, i) => (i % 5 === 4 ? [] : i % 5 === 2 ? [i, i + 0.5] : [i])).flat();
    expect(server.records<{ i: number }>(table).map((r) => r.i)).toEqual(want);
  } finally {
    await server.clearFaults();
  }
});

test("a batch larger than maxInflightRequests is taken (as the official SDK does)", async () => {
  const table = await freshTable(server, "atk_bigbatch");
  const s = await sdk.createStream({ tableName: table }, ID, SECRET, { recordType: RecordType.Json, maxInflightRequests: 2 });
  expect(await s.ingestRecordsOffset([1, 2, 3, 4, 5].map((i) => ({ i })))).toBe(0n);
  expect(await s.ingestRecords([6, 7, 8].map((i) => ({ i })))).toBe(1n);
  await s.flush();
  await s.close();
  expect(server.records(table).length).toBe(8);
});
