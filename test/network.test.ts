// Corporate networks: private CAs (caCertificates, SSL_CERT_FILE), HTTP CONNECT proxies (option and
// environment, no_proxy, proxy credentials), the user agent's application name.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Table, vectorFromArray, Int32, Utf8 } from "apache-arrow";
import { startLocalServer, ZerobusError, ZerobusSdk, type LocalServer } from "../src/index";
import { privateCa, startConnectProxy, type ConnectProxy } from "./net-helpers";
import { FAST, TABLE } from "./helpers";

let ca: ReturnType<typeof privateCa>;
let tls: LocalServer;
let plain: LocalServer;
let proxy: ConnectProxy;
const dirs: string[] = [];

function server(opts: Parameters<typeof startLocalServer>[0] = {}): LocalServer {
  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-net-"));
  dirs.push(dataDir);
  return startLocalServer({ tables: [TABLE], fsync: false, autoCreateTables: true, ...opts, dataDir });
}

beforeAll(async () => {
  ca = privateCa();
  tls = server({ tlsCertPem: ca.certPem, tlsKeyPem: ca.keyPem, clientId: "sp", clientSecret: "secret" });
  plain = server();
  proxy = await startConnectProxy();
});

afterAll(() => {
  proxy.close();
  tls.stop();
  plain.stop();
  for (const d of [...dirs, ca.dir]) rmSync(d, { recursive: true, force: true });
});

/** The error of creating an SDK with the `proxy` option `url` (undefined if it was accepted). */
function proxyRefusal(url: string): ZerobusError {
  try {
    new ZerobusSdk({ endpoint: plain.url, proxy: url }).close();
  } catch (e) {
    return e as ZerobusError;
  }
  return undefined as unknown as ZerobusError;
}

/** Runs test/fixtures/env-client.ts with `env` added to a clean environment (async: the proxy runs in this event loop). */
async function envClient(env: Record<string, string>, endpoint: string, table: string, n = 10, oauth = false) {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(https?|grpc|no|all)_proxy$/i.test(k) && !/^SSL_CERT_(FILE|DIR)$/.test(k)) base[k] = v;
  }
  const args = ["run", join(import.meta.dir, "fixtures", "env-client.ts"), endpoint, table, String(n)];
  if (oauth) args.push("sp", "secret");
  // scripts/verify-prebuilds.ts sets ZEROBUS_TEST_BUN when Bun runs under an emulator
  const bun: string[] = process.env.ZEROBUS_TEST_BUN ? JSON.parse(process.env.ZEROBUS_TEST_BUN) : [process.execPath];
  const p = Bun.spawn([...bun, ...args], { env: { ...base, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  const out = stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(out) as { ok: boolean; code?: string; message?: string };
  } catch {
    throw new Error(`env-client printed ${JSON.stringify(out)}; stderr: ${stderr}`);
  }
}

describe("TLS trust", () => {
  test("a private CA given as caCertificates is trusted for the endpoint and the token endpoint", async () => {
    const sdk = new ZerobusSdk({ endpoint: tls.url, unityCatalogUrl: tls.url, caCertificates: readFileSync(ca.caPem, "utf8") });
    const s = await sdk.createStream({ table: "main.default.ca_option", recordType: "json", clientId: "sp", clientSecret: "secret" });
    await s.ingest({ over: "tls" });
    await s.close();
    expect(tls.records("main.default.ca_option")).toEqual([{ over: "tls" }]);
    sdk.close();
  });

  test("caCertificates as bytes works too; text that holds no certificate is refused", () => {
    expect(() => new ZerobusSdk({ endpoint: tls.url, caCertificates: readFileSync(ca.caPem) })).not.toThrow();
    for (const bad of ["not a pem", "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"]) {
      let err: unknown;
      try {
        new ZerobusSdk({ endpoint: tls.url, caCertificates: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ZerobusError);
      expect((err as ZerobusError).code).toBe("INVALID_ARGUMENT");
      expect((err as ZerobusError).message).toContain("caCertificates");
    }
  });

  test("the operating system's store: a CA named by SSL_CERT_FILE is trusted, without it the certificate is refused", async () => {
    expect(await envClient({ SSL_CERT_FILE: ca.caPem }, tls.url, "main.default.ssl_cert_file", 10, true)).toEqual({ ok: true });
    expect(tls.records("main.default.ssl_cert_file")).toHaveLength(10);
    const refused = await envClient({}, tls.url, "main.default.untrusted", 1, true);
    expect(refused.ok).toBe(false);
    expect(refused.message).toContain("certificate");
  }, 60_000);
});

describe("large records over TLS (sent from the caller's memory, encrypted once)", () => {
  test("JSON records of 1 KB to 300 KB and Arrow batches of 400 KB land exactly once, in order, across a forced replay", async () => {
    const sdk = new ZerobusSdk({ endpoint: tls.url, unityCatalogUrl: tls.url, caCertificates: readFileSync(ca.caPem, "utf8") });
    const auth = { clientId: "sp", clientSecret: "secret", recoveryBackoffMs: 50, recoveryTimeoutMs: 5000 };
    const json = "main.default.tls_large";
    await tls.addTable(json);
    await tls.addFault({ table: json, dropAfterRecords: 25 });
    const s = await sdk.createStream({ table: json, recordType: "json", ...auth });
    // sizes on both sides of the zero-copy threshold (64 KiB); each array used in place
    const sizes = Array.from({ length: 60 }, (_, i) => [1000, 70_000, 300_000][i % 3]!);
    const acks = sizes.map((n, i) => s.ingest(new TextEncoder().encode(JSON.stringify({ i, pad: String.fromCharCode(97 + (i % 26)).repeat(n) }))));
    await Promise.all(acks);
    expect(s.stats().streamsOpened).toBeGreaterThanOrEqual(2);
    await s.close();
    const got = tls.records<{ i: number; pad: string }>(json);
    expect(got.map((r) => r.i)).toEqual(sizes.map((_, i) => i));
    expect(got.every((r) => r.pad.length === sizes[r.i] && r.pad === String.fromCharCode(97 + (r.i % 26)).repeat(sizes[r.i]!))).toBe(true);

    const arrow = "main.default.tls_large_arrow";
    await tls.addTable(arrow);
    await tls.addFault({ table: arrow, dropAfterRecords: 3 });
    const batch = (from: number) =>
      new Table({
        id: vectorFromArray(Array.from({ length: 1000 }, (_, k) => from + k), new Int32()),
        name: vectorFromArray(Array.from({ length: 1000 }, (_, k) => `${from + k}`.padEnd(400, ".")), new Utf8()),
      });
    const a = await sdk.createArrowStream({ table: arrow, schema: batch(0).schema, ...auth });
    await Promise.all(Array.from({ length: 8 }, (_, b) => a.ingestBatch(batch(b * 1000))));
    expect(a.stats().streamsOpened).toBeGreaterThanOrEqual(2);
    await a.close();
    const rows = tls.records<{ id: number; name: string }>(arrow);
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 8000 }, (_, k) => k));
    expect(rows.every((r) => r.name === `${r.id}`.padEnd(400, "."))).toBe(true);
    sdk.close();
  });
});

describe("HTTP CONNECT proxies", () => {
  test("the proxy option tunnels the gRPC stream", async () => {
    const before = proxy.tunnels.length;
    const sdk = new ZerobusSdk({ endpoint: plain.url, proxy: proxy.url });
    const s = await sdk.createStream({ table: "main.default.via_option", recordType: "json", ...FAST });
    await s.ingest({ via: "proxy" });
    await s.close();
    expect(plain.records("main.default.via_option")).toEqual([{ via: "proxy" }]);
    expect(proxy.tunnels.slice(before)).toContain(new URL(plain.url).host);
    sdk.close();
  });

  test("TLS inside the tunnel, and the token request through the proxy too", async () => {
    const before = proxy.tunnels.length;
    const sdk = new ZerobusSdk({ endpoint: tls.url, unityCatalogUrl: tls.url, proxy: proxy.url, caCertificates: readFileSync(ca.caPem, "utf8") });
    const s = await sdk.createStream({ table: "main.default.tls_tunnel", recordType: "json", clientId: "sp", clientSecret: "secret" });
    await s.ingest({ tls: "tunnel" });
    await s.close();
    expect(tls.records("main.default.tls_tunnel")).toEqual([{ tls: "tunnel" }]);
    // one tunnel for the token request, one for the gRPC stream
    const host = new URL(tls.url).host;
    expect(proxy.tunnels.slice(before).filter((t) => t === host).length).toBeGreaterThanOrEqual(2);
    sdk.close();
  });

  test("https_proxy / http_proxy / grpc_proxy from the environment; no_proxy bypasses", async () => {
    let before = proxy.tunnels.length;
    expect(await envClient({ http_proxy: proxy.url }, plain.url, "main.default.env_http", 5)).toEqual({ ok: true });
    expect(proxy.tunnels.length).toBeGreaterThan(before);
    before = proxy.tunnels.length;
    expect(await envClient({ grpc_proxy: proxy.url }, plain.url, "main.default.env_grpc", 5)).toEqual({ ok: true });
    expect(proxy.tunnels.length).toBeGreaterThan(before);
    before = proxy.tunnels.length;
    expect(await envClient({ HTTPS_PROXY: proxy.url, SSL_CERT_FILE: ca.caPem }, tls.url, "main.default.env_https", 5, true)).toEqual({ ok: true });
    expect(proxy.tunnels.length).toBeGreaterThan(before);
    before = proxy.tunnels.length;
    for (const noProxy of ["127.0.0.1", "*", "localhost,127.0.0.0/8"]) {
      expect(await envClient({ http_proxy: proxy.url, no_proxy: noProxy }, plain.url, "main.default.env_bypass", 1)).toEqual({ ok: true });
    }
    expect(proxy.tunnels.length).toBe(before);
    // an unreachable proxy in the environment is used (and fails) unless bypassed
    const dead = await envClient({ http_proxy: "http://127.0.0.1:1" }, plain.url, "main.default.env_dead", 1);
    expect(dead.ok).toBe(false);
    expect(dead.message).toContain("proxy 127.0.0.1:1");
    expect(await envClient({ http_proxy: "http://127.0.0.1:1", NO_PROXY: "127.0.0.1" }, plain.url, "main.default.env_dead", 1)).toEqual({ ok: true });
    // a proxy variable that cannot be used is refused when the SDK is created, naming it, never its password
    const socks = await envClient({ http_proxy: "socks5://bob:hunter2@127.0.0.1:1080" }, plain.url, "main.default.env_socks", 1);
    expect(socks.ok).toBe(false);
    expect(socks.code).toBe("INVALID_ARGUMENT");
    expect(socks.message).toContain("http_proxy");
    expect(socks.message).toContain("bob:***@");
    expect(socks.message).not.toContain("hunter2");
  }, 120_000);

  test("proxy: false ignores the environment; a bad proxy URL is refused up front", async () => {
    const env = { http_proxy: "http://127.0.0.1:1", ZEROBUS_TEST_PROXY_OFF: "1" };
    expect(await envClient(env, plain.url, "main.default.proxy_off", 1)).toEqual({ ok: true });
    for (const bad of ["https://proxy:1", "socks5://proxy:1080", "http://:1"]) expect(proxyRefusal(bad).code).toBe("INVALID_ARGUMENT");
    expect(() => new ZerobusSdk({ endpoint: plain.url, proxy: 3 as unknown as string })).toThrow("proxy");
  }, 60_000);

  test("a proxy that wants credentials: 407 named clearly; user:password in the URL works", async () => {
    const locked = await startConnectProxy("alice:s3cr:et");
    try {
      const none = new ZerobusSdk({ endpoint: plain.url, proxy: locked.url });
      const err = await none
        .createStream({ table: TABLE, recordType: "json", ...FAST, recoveryRetries: 0 })
        .catch((e) => e);
      expect(err).toBeInstanceOf(ZerobusError);
      expect(err.message).toContain("407");
      none.close();
      const ok = new ZerobusSdk({ endpoint: plain.url, proxy: `http://alice:s3cr%3Aet@127.0.0.1:${locked.port}` });
      const s = await ok.createStream({ table: "main.default.proxy_auth", recordType: "json", ...FAST });
      await s.ingest({ authed: true });
      await s.close();
      expect(plain.records("main.default.proxy_auth")).toEqual([{ authed: true }]);
      ok.close();
    } finally {
      locked.close();
    }
  });

  test("a password holding unencoded / # ? works, and no message shows it (option and environment)", async () => {
    const locked = await startConnectProxy("alice:pa/ss#9?Q");
    try {
      const url = `http://alice:pa/ss#9?Q@127.0.0.1:${locked.port}`;
      const ok = new ZerobusSdk({ endpoint: plain.url, proxy: url });
      const s = await ok.createStream({ table: "main.default.proxy_slash", recordType: "json", ...FAST });
      await s.ingest({ authed: true });
      await s.close();
      ok.close();
      expect(plain.records("main.default.proxy_slash")).toEqual([{ authed: true }]);
      // Wrong shapes are refused without the password: as the option and from the environment.
      for (const bad of [`https://alice:pa/ss#9?Q@127.0.0.1:1`, `http://alice:pa/ss#9?Q@127.0.0.1:port`, `http://alice:pa/ss#9?Q@`]) {
        const err = proxyRefusal(bad);
        expect(err.code).toBe("INVALID_ARGUMENT");
        expect(err.message).toContain("alice:***@");
        expect(err.message).not.toContain("9?Q");
        const env = await envClient({ http_proxy: bad }, plain.url, "main.default.env_slash", 1);
        expect(env.ok).toBe(false);
        expect(env.message).toContain("http_proxy");
        expect(env.message).not.toContain("9?Q");
      }
    } finally {
      locked.close();
    }
  });

  test("no_proxy matches an IP host against IP and CIDR entries only (.0.0.1 does not name 127.0.0.1)", async () => {
    for (const noProxy of [".0.0.1", "*.0.0.1", "0.0.1"]) {
      const r = await envClient({ http_proxy: "http://127.0.0.1:1", no_proxy: noProxy }, plain.url, "main.default.env_ipmatch", 1);
      expect(r.ok).toBe(false);
      expect(r.message).toContain("proxy 127.0.0.1:1");
    }
  }, 60_000);
});

test("applicationName is appended to the user agent; a bad one is refused", async () => {
  const sdk = new ZerobusSdk({ endpoint: plain.url, applicationName: "orders-pipeline/2.1" });
  const s = await sdk.createStream({ table: "main.default.ua", recordType: "json", ...FAST });
  await s.ingest({ a: 1 });
  await s.close();
  const stats = await plain.stats();
  expect(stats.lastUserAgent).toMatch(/^zerobus-bun\/\S+ .*orders-pipeline\/2\.1/);
  sdk.close();
  expect(() => new ZerobusSdk({ endpoint: plain.url, applicationName: "bad\nname" })).toThrow("applicationName");
});
