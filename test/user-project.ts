// A user's project in a temporary directory, as an install leaves it but without the registry:
// zerobus-bun and platform packages packed with `npm pack` (so only their `files` go in) and
// unpacked into node_modules/<name>, @bufbuild/protobuf copied from this checkout's node_modules.
// A platform package is prebuilds/<tag>/'s committed files plus this machine's binaries (the ones
// the tests run: ZEROBUS_BUN_LIB / ZEROBUS_LOCAL_BIN or the cargo build). Also: the environment a
// user's process has (no ZEROBUS_* variables) and the platform tags beside this one.
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localServerExecutable } from "../src/local";
import { libraryPath } from "../src/native";
import { libraryFile, localServerFile, platformTag } from "../src/paths";
import { npmPack, root, userEnv } from "./packing";

export { root, userEnv };

export function sh(cmd: string[], cwd: string, env: Record<string, string> = userEnv()): { code: number | null; out: string; stdout: string } {
  const r = Bun.spawnSync(cmd, { cwd, env, stdout: "pipe", stderr: "pipe", timeout: 240_000 });
  const stdout = r.stdout.toString();
  return { code: r.exitCode, out: stdout + r.stderr.toString(), stdout };
}

export function ok(cmd: string[], cwd: string, env?: Record<string, string>): string {
  const r = sh(cmd, cwd, env);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} (in ${cwd}) exited ${r.code}:\n${r.out}`);
  return r.stdout;
}

/** The package.json of prebuilds/<tag>/. */
export function platformManifest(tag: string): { name: string; os: string[]; cpu: string[]; files: string[] } {
  return JSON.parse(readFileSync(join(root, "prebuilds", tag, "package.json"), "utf8"));
}

/** A platform of the same OS and another CPU (one this machine's Bun can stand in for), if any. */
export function otherCpuTag(): string | undefined {
  const tag = platformTag();
  const libc = tag.slice(`${process.platform}-${process.arch}`.length);
  return readdirSync(join(root, "prebuilds"), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== tag && d.name.endsWith(libc))
    .map((d) => d.name)
    .find((t) => platformManifest(t).os.includes(process.platform));
}

/** Unpacks a tarball from `npm pack` into `project`/node_modules/<its name>. */
function unpack(tarball: string, project: string): void {
  const tmp = mkdtempSync(join(project, ".unpack-"));
  ok(["tar", "xzf", tarball, "-C", tmp], project);
  const name = JSON.parse(readFileSync(join(tmp, "package", "package.json"), "utf8")).name as string;
  mkdirSync(join(project, "node_modules"), { recursive: true });
  renameSync(join(tmp, "package"), join(project, "node_modules", name));
  rmSync(tmp, { recursive: true, force: true });
}

export interface UserProject {
  dir: string;
  /** Writes a file of the project. */
  write(name: string, text: string): string;
  remove(): void;
}

/**
 * A project with zerobus-bun installed and the platform packages `tags` (each holding this
 * machine's binaries; `marked` ones get `marker` appended to their library, which still loads,
 * so that a test can tell which package's library an executable holds).
 */
export function userProject(tags: string[], opts: { marked?: string[]; marker?: string } = {}): UserProject {
  const work = mkdtempSync(join(tmpdir(), "zerobus-user-"));
  const dir = join(work, "project");
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "zerobus-app", private: true, type: "module" }, null, 2));
  unpack(npmPack(root, work), dir);
  cpSync(join(root, "node_modules", "@bufbuild", "protobuf"), join(dir, "node_modules", "@bufbuild", "protobuf"), { recursive: true, dereference: true });
  for (const tag of tags) {
    const src = join(root, "prebuilds", tag);
    const pkg = join(work, `platform-${tag}`);
    mkdirSync(pkg);
    for (const f of readdirSync(src)) if (f !== libraryFile && f !== localServerFile) copyFileSync(join(src, f), join(pkg, f));
    copyFileSync(libraryPath, join(pkg, libraryFile));
    if (opts.marked?.includes(tag)) writeFileSync(join(pkg, libraryFile), opts.marker ?? "", { flag: "a" });
    copyFileSync(localServerExecutable(), join(pkg, localServerFile));
    unpack(npmPack(pkg, work), dir);
  }
  return {
    dir,
    write(name, text) {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    },
    remove() {
      rmSync(work, { recursive: true, force: true });
    },
  };
}
