#!/usr/bin/env bun
// `bun run demo` in a source checkout: builds the native files from source (unless
// ZEROBUS_BUN_LIB is set), then runs the demo (src/demo.ts) with the given flags.
import { buildNative } from "./build";
import { DEMO_USAGE, parseDemoArgs, runDemo } from "../src/demo";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(DEMO_USAGE);
  process.exit(0);
}
try {
  parseDemoArgs(args);
  if (!process.env.ZEROBUS_BUN_LIB) {
    const built = buildNative({ quiet: true });
    process.env.ZEROBUS_LOCAL_BIN ??= built.localServer;
  }
  process.exit(await runDemo(args));
} catch (e) {
  console.error(`demo: ${(e as Error).message}`);
  process.exit(1);
}
