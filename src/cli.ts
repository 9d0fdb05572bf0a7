#!/usr/bin/env bun
// The zerobus-bun command line. Exit codes: 0 success, 1 failure, 2 bad usage.
import { DEMO_USAGE } from "./demo.js";

const USAGE = `zerobus-bun: Bun SDK for Databricks Zerobus ingestion

usage: zerobus-bun <command> [options]

commands:
  demo [--records N] [--batch N]  start a local Zerobus server, ingest N records (default
                                  1,000,000), check the server's table file holds exactly them
  local [options]                 run a local Zerobus server (gRPC + Arrow Flight ingestion, OAuth
                                  token endpoint, JSON-lines files per table) until interrupted
  version                         print the versions and where the native files are
  help [command]                  this text, or a command's options

exit codes: 0 success, 1 failure, 2 bad usage`;

class UsageError extends Error {}

/** `zerobus-bun local`: the zerobus-local executable with the same arguments, in the foreground. */
async function local(args: string[]): Promise<number> {
  const { localServerExecutable } = await import("./local.js");
  const proc = Bun.spawn([localServerExecutable(), ...args], { stdin: "inherit", stdout: "inherit", stderr: "inherit" });
  // Ctrl-C reaches the server directly (same terminal); SIGTERM sent to this process is passed on.
  // The handlers also keep this process alive until the server has finished. (Not forwarded on
  // Windows, where kill() terminates at once instead of letting the server shut down.)
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => {
    if (process.platform !== "win32") proc.kill("SIGTERM");
  });
  return await proc.exited;
}

async function version(): Promise<number> {
  const pkg = (await import("../package.json")).default as { version: string };
  const { lib, libraryPath } = await import("./native.js");
  const { findLocalServer } = await import("./paths.js");
  console.log(`zerobus-bun ${pkg.version} (native library ${lib.zerobus_version()})`);
  console.log(`  library:      ${libraryPath}`);
  console.log(`  local server: ${findLocalServer().path ?? "not found (see zerobus-bun local)"}`);
  console.log(`  bun:          ${Bun.version} ${process.platform}-${process.arch}`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const wantsHelp = rest.includes("--help") || rest.includes("-h");
  try {
    switch (cmd) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        if (cmd === "help" && rest[0]) return main([rest[0], "--help"]);
        console.log(USAGE);
        return 0;
      case "demo": {
        if (wantsHelp) {
          console.log(DEMO_USAGE);
          return 0;
        }
        const { parseDemoArgs, runDemo } = await import("./demo.js");
        try {
          parseDemoArgs(rest);
        } catch (e) {
          throw new UsageError(`${(e as Error).message}\n\n${DEMO_USAGE}`);
        }
        return await runDemo(rest);
      }
      case "local":
        return await local(rest);
      case "version":
      case "--version":
      case "-v":
        return await version();
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
    }
  } catch (e) {
    const known = cmd === "demo" || cmd === "local" || cmd === "version";
    console.error(`zerobus-bun${known ? ` ${cmd}` : ""}: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
