// The gRPC call as the SDK makes it (rust/core/src/stream/call.rs, its own request body on tonic's
// channel), seen by a plain HTTP/2 server: the request headers, a trailers-only error, and a
// response in a compression the client never asked for.
import { afterAll, beforeAll, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { ZerobusSdk } from "../src/index";

type Respond = (stream: http2.ServerHttp2Stream) => void;
let respond: Respond = () => {};
const seen: http2.IncomingHttpHeaders[] = [];
const server = http2.createServer();
server.on("stream", (stream, headers) => {
  seen.push(headers);
  respond(stream as http2.ServerHttp2Stream);
});
let endpoint = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

const open = (sdk: ZerobusSdk, headers: Record<string, string>) =>
  sdk.createStream({ table: "main.default.t", recordType: "json", headers, recoveryTimeoutMs: 3000, recoveryRetries: 0 });

test("headers as tonic sends them (a caller's user-agent kept before ours); a trailers-only error is the error", async () => {
  respond = (s) => s.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "7", "grpc-message": "not%20yours" }, { endStream: true });
  const sdk = new ZerobusSdk({ endpoint });
  const err = await open(sdk, { authorization: "Bearer t", "user-agent": "my-gateway/1" }).catch((e) => e);
  sdk.close();
  expect(err.message).toContain("not yours");
  const h = seen.at(-1)!;
  expect(h[":method"]).toBe("POST");
  expect(h[":path"]).toBe("/databricks.zerobus.Zerobus/EphemeralStream");
  expect(h["te"]).toBe("trailers");
  expect(h["content-type"]).toBe("application/grpc");
  expect(h["authorization"]).toBe("Bearer t");
  expect(h["x-databricks-zerobus-table-name"]).toBe("main.default.t");
  expect(h["user-agent"]).toMatch(/^my-gateway\/1 zerobus-bun\/\S+/);
});

test("a response in a compression the client did not offer is refused, saying so", async () => {
  respond = (s) => s.respond({ ":status": 200, "content-type": "application/grpc", "grpc-encoding": "gzip" });
  const sdk = new ZerobusSdk({ endpoint });
  const err = await open(sdk, { authorization: "Bearer t" }).catch((e) => e);
  sdk.close();
  expect(err.message).toContain('compressed its response ("gzip")');
});
