// Packing the package as it is published and installing it as users do, for the tests of what
// users install (package.test.ts, user-types.test.ts): a temporary directory, an environment
// without the source tree's ZEROBUS_* overrides and with `bun` on PATH, `npm pack` of a package
// directory into it, and commands that must succeed.
import { expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";

/** The source tree's root. */
export const root = join(import.meta.dir, "..");
export const bun = process.execPath;

export interface Packing {
  /** The temporary directory: tarballs and projects go here. */
  work: string;
  /** The environment every command runs with. */
  env: Record<string, string | undefined>;
  /** Runs `cmd` in `cwd`: its exit code and its stdout + stderr. */
  run(cmd: string[], cwd: string, timeout?: number): { code: number | null; out: string };
  /** Runs `cmd` in `cwd`, expecting exit code 0 (the output is printed otherwise); returns its output. */
  ok(cmd: string[], cwd: string): string;
  /** `npm pack` of a package directory (its prepack script included) into `work`; the tarball's path. */
  pack(dir: string): string;
  /** An empty ES-module project `work/<name>` with nothing installed. */
  project(name: string): string;
}

/** This process's environment without the ZEROBUS_* variables (the source tree's overrides), plus `extra`. */
export function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("ZEROBUS_")) env[k] = v;
  return { ...env, ...extra };
}

/** `npm pack` of a package directory (its prepack script included) into `out`; the tarball's path. Throws with npm's output if it fails. */
export function npmPack(dir: string, out: string): string {
  // The prepack script runs bun: this one, first on PATH.
  const env = userEnv({ PATH: `${dirname(bun)}${delimiter}${process.env.PATH ?? ""}` });
  const r = Bun.spawnSync(["npm", "pack", "--silent", "--pack-destination", out], { cwd: dir, env, stdout: "pipe", stderr: "pipe", timeout: 240_000 });
  if (r.exitCode !== 0) throw new Error(`npm pack (in ${dir}) exited ${r.exitCode}:\n${r.stdout}${r.stderr}`);
  return join(out, r.stdout.toString().trim().split("\n").pop()!.trim());
}

export function packing(prefix: string): Packing {
  const work = mkdtempSync(join(tmpdir(), prefix));
  // Without the source tree's overrides (the installed packages must stand alone), and with
  // `bun` on PATH, as for anyone who runs bunx (the CLI's shebang is `#!/usr/bin/env bun`).
  const binDir = join(work, "bin");
  mkdirSync(binDir);
  symlinkSync(bun, join(binDir, process.platform === "win32" ? "bun.exe" : "bun"));
  const env: Record<string, string | undefined> = userEnv({ PATH: `${binDir}${delimiter}${process.env.PATH ?? ""}` });

  function run(cmd: string[], cwd: string, timeout = 240_000): { code: number | null; out: string } {
    const r = Bun.spawnSync(cmd, { cwd, env, stdout: "pipe", stderr: "pipe", timeout });
    return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
  }

  function ok(cmd: string[], cwd: string): string {
    const r = run(cmd, cwd);
    if (r.code !== 0) console.error(`${cmd.join(" ")} (in ${cwd}) exited ${r.code}:\n${r.out}`);
    expect(r.code).toBe(0);
    return r.out;
  }

  function pack(dir: string): string {
    const file = npmPack(dir, work);
    expect(existsSync(file)).toBe(true);
    return file;
  }

  function project(name: string): string {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `zerobus-${name}`, private: true, type: "module" }, null, 2));
    return dir;
  }

  return { work, env, run, ok, pack, project };
}
