// Test infrastructure for network features: a private CA with a server certificate, and an HTTP
// CONNECT proxy that records the tunnels it opened.
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A private CA and a certificate signed by it (files in a temp dir), for 127.0.0.1 and localhost
 * unless `names` (a subjectAltName value) says otherwise.
 */
export function privateCa(names = "IP:127.0.0.1,DNS:localhost"): { dir: string; caPem: string; certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-ca-"));
  const f = (n: string) => join(dir, n);
  writeFileSync(f("ext.cnf"), `subjectAltName=${names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  const run = (args: string[]) => {
    const r = Bun.spawnSync(["openssl", ...args], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(["req", "-x509", ...ec, "-days", "2", "-subj", "/CN=zerobus-bun test CA", "-keyout", f("ca.key"), "-out", f("ca.pem"),
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  run(["req", ...ec, "-subj", "/CN=localhost", "-keyout", f("key.pem"), "-out", f("srv.csr")]);
  run(["x509", "-req", "-in", f("srv.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2",
    "-out", f("cert.pem"), "-extfile", f("ext.cnf")]);
  return { dir, caPem: f("ca.pem"), certPem: f("cert.pem"), keyPem: f("key.pem") };
}

export interface ConnectProxy {
  url: string;
  port: number;
  /** `host:port` of every tunnel opened, in order. */
  tunnels: string[];
  /** Proxy-Authorization headers received. */
  authorizations: (string | undefined)[];
  close(): void;
}

/** An HTTP CONNECT proxy on 127.0.0.1; with `credentials` ("user:password") it demands them (407). */
export async function startConnectProxy(credentials?: string): Promise<ConnectProxy> {
  const tunnels: string[] = [];
  const authorizations: (string | undefined)[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      client.pause();
      const lines = head.subarray(0, end).toString("latin1").split("\r\n");
      const rest = head.subarray(end + 4);
      const [method, target] = (lines[0] ?? "").split(" ");
      const auth = lines.find((l) => l.toLowerCase().startsWith("proxy-authorization:"))?.slice(20).trim();
      authorizations.push(auth);
      if (method !== "CONNECT" || !target) {
        client.end("HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
      }
      if (credentials && auth !== `Basic ${Buffer.from(credentials).toString("base64")}`) {
        client.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n\r\n");
        return;
      }
      const i = target.lastIndexOf(":");
      const upstream = connect(Number(target.slice(i + 1)), target.slice(0, i).replace(/^\[|\]$/g, ""), () => {
        tunnels.push(target);
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (rest.length) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      upstream.on("close", () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
      client.on("close", () => upstream.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tunnels,
    authorizations,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
