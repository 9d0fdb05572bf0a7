import { afterAll, beforeAll, expect, test } from "bun:test";
import { fixture, TABLE } from "./helpers";
import { ZerobusError } from "../src/index";

let f: ReturnType<typeof fixture>;
beforeAll(() => {
  f = fixture({ clientId: "sp-id", clientSecret: "sp-secret" });
});
afterAll(() => f.close());

test("OAuth client credentials: token fetched from {unityCatalogUrl}/oidc/v1/token and used on the stream", async () => {
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", clientId: "sp-id", clientSecret: "sp-secret" });
  await s.ingest({ hello: "world" });
  await s.close();
  expect(f.server.records(TABLE)).toEqual([{ hello: "world" }]);
  const stats = await f.server.stats();
  expect(stats.lastUserAgent).toStartWith("zerobus-bun/");
  const details = JSON.parse(stats.lastAuthorizationDetails);
  expect(details).toContainEqual(expect.objectContaining({ object_type: "TABLE", object_full_path: TABLE, privileges: ["SELECT", "MODIFY"] }));
  expect(details).toContainEqual(expect.objectContaining({ object_type: "SCHEMA", object_full_path: "main.default" }));
  expect(details).toContainEqual(expect.objectContaining({ object_type: "CATALOG", object_full_path: "main" }));
});

test("wrong client secret: AUTH error, not retried", async () => {
  const err = await f.sdk
    .createStream({ table: TABLE, recordType: "json", clientId: "sp-id", clientSecret: "wrong" })
    .catch((e) => e);
  expect(err).toBeInstanceOf(ZerobusError);
  expect(err.code).toBe("AUTH");
  expect(err.retryable).toBe(false);
  expect(err.message).toContain("401");
});

test("a bearer token the server did not issue is refused with UNAUTHENTICATED", async () => {
  const err = await f.sdk
    .createStream({ table: TABLE, recordType: "json", headers: { authorization: "Bearer forged" } })
    .catch((e) => e);
  expect(err).toBeInstanceOf(ZerobusError);
  expect(err.code).toBe("AUTH");
});

test("OAuth without unityCatalogUrl is a clear configuration error", async () => {
  const { ZerobusSdk } = await import("../src/index");
  const sdk = new ZerobusSdk({ endpoint: f.server.url });
  const err = await sdk.createStream({ table: TABLE, clientId: "a", clientSecret: "b" }).catch((e) => e);
  expect(err.code).toBe("INVALID_ARGUMENT");
  expect(err.message).toContain("unity_catalog_url");
  sdk.close();
});
