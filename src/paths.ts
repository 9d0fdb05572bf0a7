// Where zerobus-bun's native files are: the client library (loaded by src/native.ts) and the
// `zerobus-local` server executable (run by src/local.ts). Nothing here loads either.
import { suffix } from "bun:ffi";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { linuxLibc } from "./libc";

/** File name of the native library on this platform. */
export const libraryFile = process.platform === "win32" ? "zerobus_bun.dll" : `libzerobus_bun.${suffix}`;

/** File name of the local server executable on this platform. */
export const localServerFile = process.platform === "win32" ? "zerobus-local.exe" : "zerobus-local";

/** Platform part of the prebuilt package's name (`zerobus-bun-<tag>`): e.g. `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`. */
export function platformTag(): string {
  const libc = process.platform === "linux" ? `-${linuxLibc()}` : "";
  return `${process.platform}-${process.arch}${libc}`;
}

/** Inside a `bun build --compile` executable, embedded files live here. */
export function isEmbedded(path: string): boolean {
  return path.includes("~BUN") || path.includes("$bunfs");
}

/**
 * The library embedded in a `bun build --compile` executable, if any: pass it to `bun build` as an
 * extra entry point (`bun build --compile app.ts path/to/libzerobus_bun.so`) and it is found here.
 */
export function embeddedLibrary(): string | undefined {
  const files = (Bun as unknown as { embeddedFiles?: Blob[] }).embeddedFiles ?? [];
  const stem = libraryFile.replace(/\.[^.]+$/, "");
  const ext = libraryFile.slice(stem.length);
  for (const f of files) {
    const name = (f as Blob & { name?: string }).name ?? "";
    // Bun adds a content hash to embedded names: libzerobus_bun-<hash>.so
    if (name.startsWith(stem) && name.endsWith(ext)) {
      return (process.platform === "win32" ? "B:/~BUN/root/" : "/$bunfs/root/") + name;
    }
  }
  return undefined;
}

/** Directory of the installed platform package, if any. */
function platformPackageDir(): string | undefined {
  try {
    return dirname(createRequire(import.meta.url).resolve(`zerobus-bun-${platformTag()}/package.json`));
  } catch {
    return undefined; // not installed
  }
}

/** Where the native library is looked for, in order. */
export function libraryCandidates(): string[] {
  const out: string[] = [];
  if (process.env.ZEROBUS_BUN_LIB) out.push(process.env.ZEROBUS_BUN_LIB);
  const embedded = embeddedLibrary();
  if (embedded) out.push(embedded);
  const pkg = platformPackageDir();
  if (pkg) out.push(join(pkg, libraryFile));
  // In a source checkout the local cargo build wins over prebuilds/ (which may be older).
  const root = join(import.meta.dir, "..");
  out.push(join(root, "rust", "target", "release", libraryFile));
  out.push(join(root, "prebuilds", platformTag(), libraryFile));
  return out;
}

/**
 * Where the `zerobus-local` executable is looked for, in order: ZEROBUS_LOCAL_BIN, then beside
 * each place the library is looked for (the platform package, a cargo build, prebuilds/).
 */
export function localServerCandidates(): string[] {
  const out: string[] = [];
  if (process.env.ZEROBUS_LOCAL_BIN) out.push(process.env.ZEROBUS_LOCAL_BIN);
  for (const lib of libraryCandidates()) if (!isEmbedded(lib)) out.push(join(dirname(lib), localServerFile));
  return [...new Set(out)];
}

/** The first candidate that exists (embedded files always do), or undefined. */
export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((p) => isEmbedded(p) || existsSync(p));
}
