// OAuth token cache and token endpoint failures against the local server's token endpoint
// (which counts requests, can issue short-lived tokens, revoke them and inject failures).
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { fixture, TABLE } from "./helpers";
import { privateCa } from "./net-helpers";
import { ZerobusError, ZerobusSdk } from "../src/index";

const CREDS = { clientId: "sp-id", clientSecret: "sp-secret" } as const;
const QUICK = { recoveryBackoffMs: 20, recoveryTimeoutMs: 5000, recoveryRetries: 10 } as const;

let f: ReturnType<typeof fixture> | undefined;
afterEach(() => {
  f?.close();
  f = undefined;
});

const tokenRequests = async () => (await f!.server.stats()).tokenRequests as number;

describe("token cache", () => {
  test("six reconnects cost one token request; other streams of the table reuse it, another table gets its own", async () => {
    f = fixture({ ...CREDS });
    await f.server.addFault({ failAfterRecords: { records: 5, code: "UNAVAILABLE" }, times: 6 });
    const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
    for (let i = 0; i < 100; i++) s.submit({ i });
    await s.flush();
    expect(s.streamsOpened).toBe(7);
    expect(await tokenRequests()).toBe(1);
    const again = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
    await again.ingest({ i: 100 });
    expect(await tokenRequests()).toBe(1);
    await f.server.addTable("main.default.other");
    const other = await f.sdk.createStream({ table: "main.default.other", recordType: "json", ...CREDS, ...QUICK });
    await other.ingest({ other: true });
    expect(await tokenRequests()).toBe(2);
    await Promise.all([s.close(), again.close(), other.close()]);
    const ids = new Set(f.server.records<{ i: number }>(TABLE).map((r) => r.i));
    expect(ids.size).toBe(101);
  });

  test("a token near its expiry is refreshed before the next stream opens, so the server never sees it expired", async () => {
    f = fixture({ ...CREDS, tokenTtlSecs: 2 });
    // the first physical stream breaks at its second record
    await f.server.addFault({ failAfterRecords: { records: 2, code: "UNAVAILABLE" } });
    const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
    await s.ingest({ n: 1 });
    expect(await tokenRequests()).toBe(1);
    await Bun.sleep(2200); // past the token's lifetime
    await s.ingest({ n: 2 }); // the stream breaks; the next open needs a fresh token
    await s.ingest({ n: 3 });
    expect(s.streamsOpened).toBeGreaterThanOrEqual(2);
    expect(s.state).toBe("open");
    expect(await tokenRequests()).toBe(2);
    expect((await f.server.stats()).authRefusals).toBe(0);
    await s.close();
  });

  test("UNAUTHENTICATED drops the cached token and the open is retried once with a fresh one", async () => {
    f = fixture({ ...CREDS });
    await f.server.addFault({ failAfterRecords: { records: 2, code: "UNAVAILABLE" } });
    const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
    await s.ingest({ n: 1 });
    await f.server.revokeTokens(); // the cached token is still fresh on the client's side
    await s.ingest({ n: 2 }); // the stream breaks; the reopen is refused once, then succeeds with a new token
    await s.ingest({ n: 3 });
    expect(s.state).toBe("open");
    expect(await tokenRequests()).toBe(2);
    expect((await f.server.stats()).authRefusals).toBe(1);
    await s.close();
    expect(f.server.records(TABLE).length).toBeGreaterThanOrEqual(3);
  });
});

test("two streams sharing a revoked token both reconnect (each drops only the token it was refused)", async () => {
  f = fixture({ ...CREDS });
  await f.server.addFault({ failAfterRecords: { records: 2, code: "UNAVAILABLE" }, times: 2 });
  const a = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
  const b = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
  await Promise.all([a.ingest({ s: "a", n: 1 }), b.ingest({ s: "b", n: 1 })]);
  await f.server.revokeTokens();
  // both break at their second record and reopen at about the same time with the revoked token
  await Promise.all([a.ingest({ s: "a", n: 2 }), b.ingest({ s: "b", n: 2 })]);
  await Promise.all([a.ingest({ s: "a", n: 3 }), b.ingest({ s: "b", n: 3 })]);
  expect([a.state, b.state]).toEqual(["open", "open"]);
  expect(await tokenRequests()).toBeLessThanOrEqual(3);
  await Promise.all([a.close(), b.close()]);
});

describe("token endpoint failures", () => {
  test("503 and 429 are retried with backoff", async () => {
    f = fixture({ ...CREDS });
    await f.server.addTokenFaults([503, 429]);
    const s = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK });
    await s.ingest({ ok: true });
    await s.close();
    expect(await tokenRequests()).toBe(3);
  });

  test("400, 401 and 403 fail at once with AUTH and the endpoint's message", async () => {
    for (const status of [400, 401, 403]) {
      f = fixture({ ...CREDS });
      await f.server.addTokenFaults([status]);
      const err = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK }).catch((e) => e);
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.code).toBe("AUTH");
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(String(status));
      expect(err.message).toContain("injected token fault");
      expect(await tokenRequests()).toBe(1);
      f.close();
      f = undefined;
    }
  });

  test("retries of a failing token endpoint stay within recoveryRetries", async () => {
    f = fixture({ ...CREDS });
    await f.server.addTokenFaults(Array(20).fill(503));
    const err = await f.sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK, recoveryRetries: 2 }).catch((e) => e);
    expect(err.code).toBe("AUTH");
    expect(err.message).toContain("503");
    expect(await tokenRequests()).toBe(3);
  });
});

describe("token endpoints that misbehave", () => {
  test("an endless response body is read no further than 256 KiB, and the open fails saying so", async () => {
    f = fixture();
    let served = 0;
    const endless = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () =>
        new Response(
          new ReadableStream({
            pull(c) {
              served += 65536;
              c.enqueue(new Uint8Array(65536).fill(32));
            },
          }),
          { headers: { "content-type": "application/json" } },
        ),
    });
    try {
      const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: `http://127.0.0.1:${endless.port}` });
      const err = await sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK, recoveryRetries: 1 }).catch((e) => e);
      sdk.close();
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.code).toBe("TRANSPORT");
      expect(err.message).toContain("more than 256 KiB");
      // What the endpoint could push is bounded by the socket buffers, not by the open timeout.
      expect(served).toBeLessThan(256 << 20);
    } finally {
      endless.stop(true);
    }
  });

  test("an error answer with a body over the limit is judged by its status: 401 fails at once with AUTH", async () => {
    f = fixture();
    const refuse = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("denied ".repeat(50_000), { status: 401 }) });
    try {
      const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: `http://127.0.0.1:${refuse.port}` });
      const err = await sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK }).catch((e) => e);
      sdk.close();
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.code).toBe("AUTH");
      expect(err.retryable).toBe(false);
      expect(err.message).toContain("401");
      expect(err.message).toContain("denied");
    } finally {
      refuse.stop(true);
    }
  });

  test("a certificate for another host on the token endpoint fails at once, without retries", async () => {
    f = fixture();
    const ca = privateCa("DNS:wrong.example");
    const tls = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(ca.certPem, "utf8"), key: readFileSync(ca.keyPem, "utf8") },
      fetch: () => Response.json({ access_token: "t", expires_in: 3600 }),
    });
    try {
      const sdk = new ZerobusSdk({ endpoint: f.server.url, unityCatalogUrl: `https://127.0.0.1:${tls.port}`, caCertificates: readFileSync(ca.caPem, "utf8") });
      const err = await sdk.createStream({ table: TABLE, recordType: "json", ...CREDS, ...QUICK }).catch((e) => e);
      sdk.close();
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.retryable).toBe(false);
      expect(err.message).toContain("TLS certificate problem");
      expect(err.message).toContain("wrong.example");
      expect(err.message).not.toContain("gave up");
    } finally {
      tls.stop(true);
      rmSync(ca.dir, { recursive: true, force: true });
    }
  });
});
