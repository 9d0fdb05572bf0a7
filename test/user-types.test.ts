// What a user's TypeScript makes of the installed package: the packed tarball installed into an
// empty project, and `tsc --noEmit` over small apps that use the public API, under the strictest
// settings users have (strict, exactOptionalPropertyTypes, noPropertyAccessFromIndexSignature,
// noUncheckedIndexedAccess, verbatimModuleSyntax, unused names refused, skipLibCheck false), with
// `module: NodeNext` (lib ES2022) and with `moduleResolution: bundler` (lib ESNext). First with
// nothing else installed (no @types/bun, no @types/node, no apache-arrow), then with @types/bun
// and apache-arrow. Each app has `@ts-expect-error` lines, which fail if the package's types
// were lost (`any`). Needs npm and the npm registry, as installing the SDK does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bun, packing, root } from "./packing";

const { work, run, ok, pack, project: emptyProject } = packing("zerobus-types-");
const project = emptyProject("project");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

const STRICTEST = {
  strict: true,
  exactOptionalPropertyTypes: true,
  noPropertyAccessFromIndexSignature: true,
  noUncheckedIndexedAccess: true,
  verbatimModuleSyntax: true,
  noImplicitOverride: true,
  noImplicitReturns: true,
  noFallthroughCasesInSwitch: true,
  noUnusedLocals: true,
  noUnusedParameters: true,
  allowUnreachableCode: false,
  skipLibCheck: false,
  noEmit: true,
};
const SETUPS = {
  nodenext: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", lib: ["ES2022"] },
  bundler: { module: "ESNext", moduleResolution: "bundler", target: "ESNext", lib: ["ESNext"] },
};

/** The public API as an application uses it, without Bun's or Node's own APIs. */
const APP = `import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  InvalidArgumentError,
  LocalServer,
  StreamFailedError,
  ZerobusArrowStream,
  ZerobusError,
  ZerobusSdk,
  ZerobusStream,
  libraryPath,
  platformTag,
  startLocalServer,
  type ArrowBatch,
  type CreateArrowStreamOptions,
  type CreateStreamOptions,
  type ErrorCode,
  type ExitSignal,
  type Fault,
  type FlushOnExitOptions,
  type HeadersFunction,
  type JsonObject,
  type JsonRecord,
  type LocalServerOptions,
  type LogEvent,
  type LogLevel,
  type RecordType,
  type StreamOptions,
  type StreamState,
  type StreamStats,
  type UnackedRecord,
  type ZerobusSdkOptions,
} from "zerobus-bun";

interface Order {
  id: number;
  item: string;
}

export async function app(clientSecret: string | undefined): Promise<string[]> {
  const out: string[] = [libraryPath, platformTag()];
  const local: LocalServerOptions = { tables: ["a.b.c"], fsync: false };
  await using server: LocalServer = startLocalServer(local);
  const fault: Fault = { times: 1, dropAfterRecords: 10 };
  await server.addFault(fault);
  const logs: LogEvent[] = [];
  const level: LogLevel = "info";
  const options: ZerobusSdkOptions = { endpoint: server.url, unityCatalogUrl: server.url, logger: (e) => logs.push(e), logLevel: level };
  using sdk = new ZerobusSdk(options);
  const signals: ExitSignal[] = ["SIGINT", "SIGTERM"];
  const exit: FlushOnExitOptions = { signals, timeoutMs: 1000 };
  const removeHandlers: () => void = sdk.flushOnExit(exit);
  removeHandlers();
  // @ts-expect-error an option the SDK does not have
  new ZerobusSdk({ endpoint: server.url, endpont: server.url });

  const tuning: StreamOptions = { maxInflightRecords: 1000, recovery: true };
  const headers: HeadersFunction = async (table) => ({ authorization: \`Bearer \${table}\` });
  await using orders = await sdk.createStream<Order>({ table: "a.b.c", recordType: "json", headers, ...tuning });
  const offset: number = await orders.ingest({ id: 1, item: "a" });
  orders.submit({ id: 2, item: "b" });
  // @ts-expect-error a field Order does not have
  orders.submit({ id: 3, item: "c", extra: true });
  const state: StreamState = orders.state;
  const stats: StreamStats = orders.stats();
  const code: ErrorCode | undefined = stats.lastError?.code;
  const unacked: UnackedRecord[] = orders.unackedRecords();
  out.push(\`\${offset} \${state} \${code ?? "-"} \${unacked[0]?.records.length ?? 0}\`);

  const jsonOptions: CreateStreamOptions = { table: "a.b.c", recordType: "json" satisfies RecordType, clientId: "id", ...(clientSecret === undefined ? {} : { clientSecret }) };
  const json: ZerobusStream<unknown> = sdk.openStream(jsonOptions);
  const text: JsonRecord = '{"n":1}';
  const object: JsonObject = { n: 2 };
  json.submit(text);
  json.submit(object);
  await json.close();

  const stamps = await sdk.createStream({ table: "a.b.c", schema: TimestampSchema });
  stamps.submit(create(TimestampSchema, { seconds: 1n }));
  stamps.submit({ seconds: 2n, nanos: 3 });
  // @ts-expect-error the init shape of an int64 is a bigint
  stamps.submit({ seconds: "x" });

  const bytes = await sdk.createStream({ table: "a.b.c", recordType: "proto", descriptor: new Uint8Array(0) });
  bytes.submit(new Uint8Array([8, 1]));
  // @ts-expect-error without a schema a proto stream takes bytes only
  bytes.submit({ id: 1 });

  const arrowOptions: CreateArrowStreamOptions = { table: "a.b.c", schema: new Uint8Array(0), compression: "zstd" };
  const arrow: ZerobusArrowStream = await sdk.createArrowStream(arrowOptions);
  const batch: ArrowBatch = new Uint8Array(0);
  await arrow.ingestBatch(batch);

  // @ts-expect-error streams come from createStream
  new ZerobusStream();
  // @ts-expect-error local servers come from startLocalServer
  new LocalServer();
  try {
    await orders.flush();
  } catch (e) {
    if (e instanceof StreamFailedError || e instanceof InvalidArgumentError) out.push(e.code);
    else if (e instanceof ZerobusError && e.retryable) out.push(e.message);
    else throw e;
  }
  return out;
}
`;

/** Arrow streams with apache-arrow's Tables and Schemas. */
const ARROW_APP = `import { tableFromArrays, type Schema } from "apache-arrow";
import type { ArrowBatch, ZerobusSdk } from "zerobus-bun";

export async function arrowApp(sdk: ZerobusSdk): Promise<number> {
  const table = tableFromArrays({ id: Int32Array.from([1, 2]), name: ["a", "b"] });
  const schema: Schema = table.schema;
  await using stream = await sdk.createArrowStream({ table: "a.b.c", schema });
  stream.submitBatch(table.batches[0]!);
  // @ts-expect-error a string is not a batch
  stream.submitBatch("x");
  // @ts-expect-error a number is not a schema
  await sdk.createArrowStream({ table: "a.b.c", schema: 5 });
  const batch: ArrowBatch = table;
  return stream.ingestBatch(batch);
}
`;

/** A program written for the official SDK's API, importing zerobus-bun/compat. */
const COMPAT_APP = `import { ZerobusSdk, RecordType, ArrowDataType, IpcCompressionType, ZerobusError, type StreamConfigurationOptions, type TableProperties, type ArrowTableProperties } from "zerobus-bun/compat";

export async function compatApp(): Promise<string[]> {
  const sdk = new ZerobusSdk("https://1.zerobus.example.com", "https://example.com");
  const table: TableProperties = { tableName: "a.b.c" };
  const options: StreamConfigurationOptions = { recordType: RecordType.Json, maxInflightRequests: 100, recovery: true };
  const stream = await sdk.createStream(table, "id", "secret", options, { getHeadersCallback: async () => [["authorization", "Bearer t"]] });
  const offset: bigint = await stream.ingestRecordOffset({ device_name: "s", temp: 1 });
  const batch: bigint | null = await stream.ingestRecordsOffset(['{"a":1}', { a: 2 }]);
  await stream.waitForOffset(batch ?? offset);
  const unacked = (await stream.getUnackedRecords()).map((b) => b.toString("utf8"));
  await stream.close();
  const arrowTable: ArrowTableProperties = { tableName: "a.b.c", schemaFields: [{ name: "n", dataType: ArrowDataType.Int64, nullable: true }] };
  const arrow = await sdk.createArrowStream(arrowTable, "id", "secret", { maxInflightBatches: 10, ipcCompression: IpcCompressionType.Zstd });
  const closed: boolean = arrow.isClosed;
  // @ts-expect-error an offset is a bigint
  const wrong: number = await arrow.ingestBatch(new Uint8Array(0));
  try {
    await arrow.close();
  } catch (e) {
    if (e instanceof ZerobusError && e.isRetryable) unacked.push(String(closed), String(wrong));
  }
  return unacked;
}
`;

/** Bun's and Node's types beside the package's. */
const BUN_APP = `import { ZerobusSdk } from "zerobus-bun";

export function bunApp(): ZerobusSdk {
  const sdk = new ZerobusSdk({ endpoint: Bun.env["ZEROBUS_ENDPOINT"] ?? "http://localhost:1" });
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGHUP"];
  sdk.flushOnExit({ signals });
  return sdk;
}
`;

/** `tsc -p` over `files` with a setup's settings: the config's name, tsc's exit code and its output (none when it passes). */
function check(setup: keyof typeof SETUPS, files: string[]): string {
  const config = `tsconfig.${setup}.json`;
  writeFileSync(join(project, config), JSON.stringify({ compilerOptions: { ...SETUPS[setup], ...STRICTEST }, files }, null, 2));
  const r = run([bun, tsc, "-p", config], project);
  return `${config} exit ${r.code}\n${r.out.trim()}`.trim();
}

beforeAll(() => {
  const tarball = pack(root);
  ok(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--omit=optional", tarball], project);
  writeFileSync(join(project, "app.ts"), APP);
  writeFileSync(join(project, "arrow-app.ts"), ARROW_APP);
  writeFileSync(join(project, "bun-app.ts"), BUN_APP);
  writeFileSync(join(project, "compat-app.ts"), COMPAT_APP);
}, 600_000); // a pack and an install, each allowed 240 s by run() (bun's default hook timeout is 5 s)

afterAll(() => rmSync(work, { recursive: true, force: true }), 60_000); // node_modules with @types/bun and apache-arrow

const TIMEOUT = { timeout: 300_000 };

test("strict project without @types/bun, @types/node or apache-arrow: NodeNext and bundler", () => {
  expect(existsSync(join(project, "node_modules", "@types"))).toBe(false);
  expect(existsSync(join(project, "node_modules", "apache-arrow"))).toBe(false);
  const files = ["app.ts", "compat-app.ts"];
  expect([check("nodenext", files), check("bundler", files)]).toEqual(["tsconfig.nodenext.json exit 0", "tsconfig.bundler.json exit 0"]);
}, TIMEOUT);

test("strict project with @types/bun and apache-arrow: NodeNext and bundler", () => {
  const version = (name: string) => JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version as string;
  ok(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--omit=optional", `@types/bun@${version("@types/bun")}`, `apache-arrow@${version("apache-arrow")}`], project);
  const files = ["app.ts", "arrow-app.ts", "bun-app.ts", "compat-app.ts"];
  expect([check("nodenext", files), check("bundler", files)]).toEqual(["tsconfig.nodenext.json exit 0", "tsconfig.bundler.json exit 0"]);
}, TIMEOUT);
