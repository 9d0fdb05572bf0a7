#!/usr/bin/env bun
// zerobus-bun command line: `zerobus-bun local` runs a local Zerobus server; `zerobus-bun demo`
// ingests records into one and checks the result.
import { startLocalServer, type LocalServerOptions } from "./local";
import { libraryPath } from "./native";

const USAGE = `usage:
  zerobus-bun local [--host H] [--port N] [--data-dir DIR] [--table catalog.schema.table]...
                    [--auto-create-tables] [--no-fsync] [--discard] [--tls-cert PEM --tls-key PEM]
                    [--client-id ID --client-secret SECRET] [--max-record-bytes N]
      Runs a local Zerobus server (gRPC ingestion, OAuth token endpoint, JSON-lines files per table)
      until interrupted.
  zerobus-bun demo [--records N] [--batch N]
      Starts a local server, ingests N records (default 1,000,000) and checks the table file.
  zerobus-bun version`;

export function parseLocalArgs(args: string[]): LocalServerOptions {
  const o: LocalServerOptions = { port: 50051, tables: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const num = () => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} needs a non-negative integer`);
      return v;
    };
    switch (flag) {
      case "--host": o.host = value(); break;
      case "--port": o.port = num(); break;
      case "--data-dir": o.dataDir = value(); break;
      case "--table": o.tables!.push(value()); break;
      case "--auto-create-tables": o.autoCreateTables = true; break;
      case "--no-fsync": o.fsync = false; break;
      case "--discard": o.discard = true; break;
      case "--tls-cert": o.tlsCertPem = value(); break;
      case "--tls-key": o.tlsKeyPem = value(); break;
      case "--client-id": o.clientId = value(); break;
      case "--client-secret": o.clientSecret = value(); break;
      case "--max-record-bytes": o.maxRecordBytes = num(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "local") {
    let opts: LocalServerOptions;
    try {
      opts = parseLocalArgs(rest);
    } catch (e) {
      console.error(`zerobus-bun local: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    const server = startLocalServer(opts);
    console.log(`zerobus-bun local server listening on ${server.url} (data in ${server.dataDir})`);
    await new Promise<void>((resolve) => {
      process.on("SIGINT", resolve);
      process.on("SIGTERM", resolve);
    });
    server.stop();
    return 0;
  }
  if (cmd === "demo") {
    const { runDemo } = await import("../scripts/demo");
    return runDemo(rest);
  }
  if (cmd === "version" || cmd === "--version") {
    const { lib } = await import("./native");
    console.log(`zerobus-bun ${lib.zerobus_version()} (${libraryPath})`);
    return 0;
  }
  console.error(USAGE);
  return cmd === undefined || cmd === "--help" || cmd === "-h" ? 0 : 2;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
