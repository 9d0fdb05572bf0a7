// The `headers` option as a function: asked at every physical stream open, sync or async.
import { afterEach, expect, test } from "bun:test";
import { fixture, TABLE } from "./helpers";
import { ZerobusError } from "../src/index";

const QUICK = { recoveryBackoffMs: 20, recoveryTimeoutMs: 5000, recoveryRetries: 10 } as const;

let f: ReturnType<typeof fixture> | undefined;
afterEach(() => {
  f?.close();
  f = undefined;
});

test("a sync function is called with the table at every physical stream open", async () => {
  f = fixture();
  await f.server.addFault({ failAfterRecords: { records: 20, code: "UNAVAILABLE" }, times: 2 });
  const calls: string[] = [];
  const s = await f.sdk.createStream({
    table: TABLE,
    recordType: "json",
    ...QUICK,
    headers: (table) => {
      calls.push(table);
      return { authorization: `Bearer t${calls.length}` };
    },
  });
  for (let i = 0; i < 100; i++) s.submit({ i });
  await s.flush();
  expect(s.streamsOpened).toBe(3);
  expect(calls).toEqual([TABLE, TABLE, TABLE]);
  await s.close();
  expect(new Set(f.server.records<{ i: number }>(TABLE).map((r) => r.i)).size).toBe(100);
});

test("an async function rotates real tokens: after revocation the next open gets a fresh one", async () => {
  f = fixture({ clientId: "id", clientSecret: "secret" });
  const url = f.server.url;
  let fetched = 0;
  const token = async () => {
    fetched++;
    const r = await fetch(`${url}/oidc/v1/token`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa("id:secret")}`, "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials&scope=all-apis",
    });
    const body = (await r.json()) as { access_token: string };
    return { authorization: `Bearer ${body.access_token}` };
  };
  await f.server.addFault({ failAfterRecords: { records: 2, code: "UNAVAILABLE" } });
  const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...QUICK, headers: token });
  await s.ingest({ n: 1 });
  await f.server.revokeTokens();
  await s.ingest({ n: 2 }); // the stream breaks here and reopens with a new token
  await s.ingest({ n: 3 });
  expect(fetched).toBe(2);
  expect((await f.server.stats()).authRefusals).toBe(0);
  await s.close();
});

test("a function that throws is retried within the budget, then fails with AUTH naming its error", async () => {
  f = fixture();
  let calls = 0;
  const err = await f.sdk
    .createStream({
      table: TABLE,
      recordType: "json",
      ...QUICK,
      recoveryRetries: 2,
      headers: async () => {
        calls++;
        throw new Error("vault unreachable");
      },
    })
    .catch((e) => e);
  expect(err).toBeInstanceOf(ZerobusError);
  expect(err.code).toBe("AUTH");
  expect(err.message).toContain("vault unreachable");
  expect(calls).toBe(3);
});

test("a function that returns something other than an object of strings fails the stream with INVALID_ARGUMENT", async () => {
  f = fixture();
  for (const bad of [42, null, ["a"], { authorization: 5 }]) {
    const err = await f.sdk
      .createStream({ table: TABLE, recordType: "json", ...QUICK, headers: () => bad as unknown as Record<string, string> })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ZerobusError);
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toContain("headers function");
  }
  const both = await f.sdk
    .createStream({ table: TABLE, recordType: "json", clientId: "a", clientSecret: "b", headers: () => ({}) })
    .catch((e) => e);
  expect(both.code).toBe("INVALID_ARGUMENT");
});

test("a sync function is served while submit() blocks for capacity during a reconnect", async () => {
  f = fixture();
  await f.server.addFault({ failAfterRecords: { records: 5, code: "UNAVAILABLE" }, times: 3 });
  let calls = 0;
  const s = await f.sdk.createStream({
    table: TABLE,
    recordType: "json",
    ...QUICK,
    maxInflightRecords: 4,
    submitTimeoutMs: 10_000,
    headers: () => {
      calls++;
      return { authorization: "Bearer x" };
    },
  });
  for (let i = 0; i < 60; i++) s.submit({ i });
  await s.flush();
  expect(calls).toBe(s.streamsOpened);
  expect(s.streamsOpened).toBeGreaterThanOrEqual(2);
  await s.close();
  expect(new Set(f.server.records<{ i: number }>(TABLE).map((r) => r.i)).size).toBe(60);
});
