// The official Databricks SDK's napi addon (1.3.0, linux-x64 only), installed on demand into
// scripts/bench/.deps, outside the project's dependencies: the bench's baseline and the
// reference the compat tests compare zerobus-bun/compat with.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export const OFFICIAL = "@databricks/zerobus-ingest-sdk-linux-x64-gnu@1.3.0";
const deps = join(import.meta.dir, "bench", ".deps");
const addon = join(deps, "node_modules", "@databricks", "zerobus-ingest-sdk-linux-x64-gnu", "zerobus-ingest-sdk.linux-x64-gnu.node");

/** Path of the addon, installing it first if needed; undefined on other platforms or if npm fails. */
export function officialAddon(log: (m: string) => void = console.error): string | undefined {
  if (process.platform !== "linux" || process.arch !== "x64") return undefined;
  if (existsSync(addon)) return addon;
  log(`installing ${OFFICIAL} into ${deps} ...`);
  mkdirSync(deps, { recursive: true });
  const r = Bun.spawnSync(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", deps, OFFICIAL], { stdout: "inherit", stderr: "inherit" });
  return r.exitCode === 0 && existsSync(addon) ? addon : undefined;
}
