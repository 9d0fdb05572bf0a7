// Where zerobus-bun's native files are: the client library (loaded by src/native.ts) and the
// `zerobus-local` server executable (run by src/local.ts), each place looked and, when a file is
// in none, a message naming them and the fix for the situation (a source checkout, an installed
// package, a `bun build --compile` executable). Nothing here loads either file.
import { suffix } from "bun:ffi";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { platformPackage, platformTags } from "./platforms.js";
import { linuxLibc } from "./libc.js";

/** File name of the native library on this platform. */
export const libraryFile = process.platform === "win32" ? "zerobus_bun.dll" : `libzerobus_bun.${suffix}`;

/** File name of the local server executable on this platform. */
export const localServerFile = process.platform === "win32" ? "zerobus-local.exe" : "zerobus-local";

/** Platform part of the prebuilt package's name (`zerobus-bun-<tag>`): e.g. `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`. */
export function platformTag(): string {
  const libc = process.platform === "linux" ? `-${linuxLibc()}` : "";
  return `${process.platform}-${process.arch}${libc}`;
}

/** A path inside a `bun build --compile` executable (its embedded files). */
export function isEmbedded(path: string): boolean {
  return path.includes("~BUN") || path.includes("$bunfs");
}

/** This code runs inside a `bun build --compile` executable. */
const compiled = isEmbedded(import.meta.dir);

/** The zerobus-bun package's directory (src/..), when not compiled. */
const packageRoot = join(import.meta.dir, "..");

/** A source checkout of zerobus-bun (its Rust sources beside src/), not an installed package. */
const sourceCheckout = !compiled && existsSync(join(packageRoot, "rust", "Cargo.toml"));

/**
 * An embedded file named `<stem><ext>` or, as Bun names the files given to `bun build --compile`,
 * `<stem>-<hash><ext>` (`<stem>-<hash>.` when it has no extension); `except` is skipped.
 */
function embeddedFile(stem: string, ext: string, except?: string): string | undefined {
  const files = (Bun as unknown as { embeddedFiles?: Blob[] }).embeddedFiles ?? [];
  const hashed = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(-[0-9a-z]+)?${ext ? ext.replace(".", "\\.") : "\\.?"}$`);
  for (const f of files) {
    const name = (f as Blob & { name?: string }).name ?? "";
    const path = (process.platform === "win32" ? "B:/~BUN/root/" : "/$bunfs/root/") + name;
    if (hashed.test(name) && path !== except && existsSync(path)) return path;
  }
  return undefined;
}

function embeddedNames(): string {
  const files = ((Bun as unknown as { embeddedFiles?: Blob[] }).embeddedFiles ?? []).map((f) => (f as Blob & { name?: string }).name ?? "?");
  if (!files.length) return "it embeds no file";
  return `it embeds ${files.slice(0, 8).join(", ")}${files.length > 8 ? `, and ${files.length - 8} more` : ""}`;
}

/** The outcome of looking for a file: where it is, or each place looked and what was there. */
class Lookup {
  path: string | undefined;
  readonly looked: string[] = [];

  /** Takes `path` if it exists (inside an executable too: only what it embeds exists). */
  file(path: string, what: string): void {
    if (this.path) return;
    if (existsSync(path)) this.path = path;
    else this.looked.push(`${path} (${what}): no such file`);
  }

  /** Takes `path` when given, else records `nothing` (a place that had nothing, and why). */
  place(nothing: string, path?: string): void {
    if (this.path) return;
    if (path) this.path = path;
    else this.looked.push(nothing);
  }

  /** The not-found message: what was not found, each place looked, then the fix. */
  message(what: string, tag: string, fix: string): string {
    return `zerobus-bun: ${what} not found for ${tag}. Looked in:\n  ${this.looked.join("\n  ")}\n${fix}`;
  }
}

/** Where a file is, or (`path` undefined) the message saying where it was looked for and what to do. */
export interface Found {
  path: string | undefined;
  message: string;
}

/** The platform package's library as a path (a bundle made by `bun build` names it relative to itself). */
function packageLibrary(tag: string) {
  const pkg = platformPackage(tag);
  if (pkg.library && !isAbsolute(pkg.library)) pkg.library = resolve(import.meta.dir, pkg.library);
  return pkg;
}

/** Why a platform package is not there, as a line of the places looked. */
function packageMissing(name: string, tag: string, why: string | undefined): string {
  if (!platformTags.includes(tag)) return `package ${name}: none is published for ${tag} (there are packages for ${platformTags.join(", ")})`;
  return compiled
    ? `package ${name}: not in this executable (it was not installed where the executable was compiled)`
    : `package ${name}: not installed (${why})`;
}

/**
 * What to do when `file` is missing: build it (a source checkout), install the platform package, or
 * inside an executable `compiledFix`; `variable` names it on any platform, prebuilt or not.
 */
function fixFor(tag: string, variable: string, file: string, compiledFix: string): string {
  if (sourceCheckout) return `To fix: build it with \`bun run build:native\` (cargo, into rust/target/release), or set ${variable} to its path.`;
  const name = `zerobus-bun-${tag}`;
  const run = compiled ? " when you run this executable" : "";
  if (!platformTags.includes(tag)) {
    return `To fix: no prebuilt package exists for ${tag}; build ${file} from zerobus-bun's sources (\`bun run build:native\` in a checkout of its repository) and set ${variable} to its path${run}.`;
  }
  if (compiled) return `To fix: ${compiledFix} Or set ${variable} to the path of a ${file} for ${tag}${run}.`;
  // The platform packages have zerobus-bun's version (unknown in a bundle made by `bun build`).
  let version = "";
  try {
    const own = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8"));
    if (own.name === "zerobus-bun") version = `@${own.version}`;
  } catch {
    // no package.json there
  }
  return (
    `To fix: install ${name}${version}, an optional dependency of zerobus-bun that npm and bun install on ${tag} ` +
    `unless optional dependencies are left out (--omit=optional, --no-optional): \`bun add ${name}${version}\` or ` +
    `\`npm install ${name}${version}\`. Or set ${variable} to the path of ${file}.`
  );
}

/**
 * Where the native library is: $ZEROBUS_BUN_LIB; inside an executable, a library given to
 * `bun build --compile` as an entry point; in a source checkout, its cargo build; the platform
 * package (embedded in an executable); in a source checkout, prebuilds/<tag>/.
 */
export function findLibrary(tag = platformTag()): Found {
  const l = new Lookup();
  const env = process.env["ZEROBUS_BUN_LIB"];
  if (env) l.file(resolve(env), "ZEROBUS_BUN_LIB");
  else l.place("ZEROBUS_BUN_LIB: not set");
  const pkg = packageLibrary(tag);
  const stem = libraryFile.replace(/\.[^.]+$/, "");
  const ext = libraryFile.slice(stem.length);
  if (compiled) {
    // A library given to `bun build --compile` as one more entry point (scripts/compile.ts does that).
    const extra = embeddedFile(stem, ext, pkg.library);
    l.place(`files embedded in this executable: no ${stem}*${ext} (${embeddedNames()})`, extra);
  }
  // In a source checkout, the cargo build of its sources wins over the package and prebuilds/ (either may be older).
  if (sourceCheckout) l.file(join(packageRoot, "rust", "target", "release", libraryFile), "cargo build");
  if (pkg.library) l.file(pkg.library, `package ${pkg.name}`);
  else l.place(packageMissing(pkg.name, tag, pkg.missing));
  if (sourceCheckout) l.file(join(packageRoot, "prebuilds", tag, libraryFile), "scripts/cross-build.ts output");
  if (l.path) return { path: l.path, message: "" };
  const fix = fixFor(
    tag,
    "ZEROBUS_BUN_LIB",
    libraryFile,
    `install zerobus-bun-${tag} in the project you compile (an optional dependency of zerobus-bun, which npm and bun install ` +
      "unless optional dependencies are left out) and run `bun build --compile` again: it embeds the package's library. " +
      "Or give a library to `bun build --compile` as one more entry point (in a source checkout of zerobus-bun, " +
      "`bun scripts/compile.ts <entry> --outfile <file>` does that).",
  );
  return { path: undefined, message: l.message("native library", tag, fix) };
}

/**
 * Where the `zerobus-local` executable is: $ZEROBUS_LOCAL_BIN, then beside ZEROBUS_BUN_LIB; inside
 * an executable, a `zerobus-local` it embeds (only when given to `bun build --compile`: nothing
 * imports it, so that executables do not carry it unasked); elsewhere beside each library looked
 * for (a source checkout's cargo build, the platform package, prebuilds/<tag>/).
 */
export function findLocalServer(tag = platformTag()): Found {
  const l = new Lookup();
  const env = process.env["ZEROBUS_LOCAL_BIN"];
  if (env) l.file(resolve(env), "ZEROBUS_LOCAL_BIN");
  else l.place("ZEROBUS_LOCAL_BIN: not set");
  const lib = process.env["ZEROBUS_BUN_LIB"];
  if (lib && !isEmbedded(lib)) l.file(join(dirname(resolve(lib)), localServerFile), "beside ZEROBUS_BUN_LIB");
  const ext = process.platform === "win32" ? ".exe" : "";
  if (compiled) {
    const stem = localServerFile.slice(0, localServerFile.length - ext.length);
    l.place(`files embedded in this executable: no ${localServerFile} (${embeddedNames()})`, embeddedFile(stem, ext));
  } else {
    if (sourceCheckout) l.file(join(packageRoot, "rust", "target", "release", localServerFile), "cargo build");
    const pkg = packageLibrary(tag);
    if (pkg.library) l.file(join(dirname(pkg.library), localServerFile), `package ${pkg.name}`);
    else l.place(packageMissing(pkg.name, tag, pkg.missing));
    if (sourceCheckout) l.file(join(packageRoot, "prebuilds", tag, localServerFile), "scripts/cross-build.ts output");
  }
  if (l.path) return { path: l.path, message: "" };
  const fix = fixFor(
    tag,
    "ZEROBUS_LOCAL_BIN",
    localServerFile,
    "executables hold the local server only when asked: give it to `bun build --compile` as one more entry point, in the " +
      `project where zerobus-bun-${tag} is installed: \`bun build --compile <entry> node_modules/zerobus-bun-${tag}/${localServerFile} ` +
      "--outfile <file>` (startLocalServer then copies it to a temporary directory and runs it there).",
  );
  return { path: undefined, message: l.message("the zerobus-local executable was", tag, fix) };
}
