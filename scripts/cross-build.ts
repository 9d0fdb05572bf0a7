#!/usr/bin/env bun
// Cross-builds the native library (rust/ffi, cdylib `zerobus_bun`) and the local server executable
// (rust/local, `zerobus-local`) for the eight prebuilt platforms with the `dist` profile (fat LTO) and
// writes prebuilds/<platform>/{<library>, zerobus-local[.exe], package.json, index.js}.
//
//   bun scripts/cross-build.ts                          # all eight platforms
//   bun scripts/cross-build.ts --targets linux-arm64-gnu,win32-x64
//   bun scripts/cross-build.ts --out /tmp/prebuilds     # somewhere else than prebuilds/
//   bun scripts/cross-build.ts --list                   # platforms, triples and tools found
//   bun scripts/cross-build.ts --ref HEAD               # build a git revision (exported to
//                                                       # rust/target-cross/src/<sha>), not the work tree
//
// Toolchain (see prebuilds/README.md):
//   - rustc/cargo: a toolchain whose std is installed for the target is used as is; otherwise std is
//     built from rust-src with `-Zbuild-std` (RUSTC_BOOTSTRAP=1). By default the Debian `rustc-web`
//     toolchain (/usr/bin/rustc + rust-web-src) is preferred when present, because rustup cannot add
//     targets on this machine. Override with ZEROBUS_CROSS_RUSTC / ZEROBUS_CROSS_CARGO.
//   - linker and C compiler (ring): zig through cargo-zigbuild (`pip install ziglang cargo-zigbuild`).
//     Linux -gnu targets are linked against glibc 2.17 so they load on old distributions; -musl
//     targets against zig's musl, the library dynamically (Bun on Alpine is), zerobus-local
//     statically (see MUSL below).
//     macOS: MACOSX_DEPLOYMENT_TARGET is Rust's default minimum (10.12 x86_64, 11.0 arm64); without it
//     zig targets the newest macOS.
//     win32-x64 uses Debian's mingw-w64 gcc when installed (apt-get install gcc-mingw-w64-x86-64):
//     Debian's rustc adds `-lssp_nonshared -lssp` to every x86_64-pc-windows-gnu link (Debian patch
//     d-rustc-windows-ssp), which zig cannot resolve; mingw-w64 gcc ships those libraries.
//   - CARGO_TARGET_DIR defaults to rust/target-cross (never the lock of rust/target).
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, copyFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");

export interface Platform {
  /** prebuilds/<tag>, package zerobus-bun-<tag>; `${process.platform}-${process.arch}` (+ `-gnu`/`-musl` on linux). */
  tag: string;
  triple: string;
  /** What cargo-zigbuild gets as --target (a glibc version may be appended). */
  zigTarget: string;
  file: string;
  os: string;
  cpu: string;
  libc?: string;
  /** Debian mingw-w64 gcc (linker and C compiler) preferred over zig when installed (see the header comment). */
  mingw?: string;
  /** Extra environment of the build (e.g. the minimum macOS version). */
  env?: Record<string, string>;
  /** rustc flags for this target only (std included when it is built with -Zbuild-std). */
  rustflags?: string[];
  /** C flags for this target's C code (ring, zstd). */
  cflags?: string[];
  /** Pass a module-definition file listing the header's functions to the linker (see below). */
  defFile?: boolean;
  /** rustc flags for zerobus-local's final crate only (every dependency is shared with the library). */
  exeFlags?: string[];
}

// Exported symbols. rustc gives the linker the list of a cdylib's exports, but cargo-zigbuild
// drops it for two of the zig-linked targets, which then export every global symbol (6,000+ Rust
// symbols, found by scripts/verify-prebuilds.ts):
// - macOS: `-Wl,-exported_symbols_list` is filtered out, so Rust symbols are given hidden
//   visibility (`-Zdefault-visibility=hidden`; the #[no_mangle] C ABI stays default) and so is
//   the C code (`-fvisibility=hidden`);
// - win32-arm64: rustc's `list.def` is filtered out, so our own .def (EXPORTS = the header's
//   functions) goes to the linker as an input file.
const HIDDEN = { rustflags: ["-Zdefault-visibility=hidden"], cflags: ["-fvisibility=hidden"] };

// musl: Rust links musl targets statically by default (`crt-static`), where it refuses to make a
// cdylib at all, and Bun on musl (Alpine) is dynamically linked: every crate is built with
// `-crt-static`, so the library needs musl's libc.so (which musl's loader resolves to itself).
// zerobus-local's final crate alone gets `+crt-static`: the `#[link]`s of std's libc and unwind
// crates are chosen by the final link, so it is a static executable over the same dependencies.
// `-Clink-self-contained=no`: rustc would name its own crt objects (rcrt1.o, crti.o), which a
// -Zbuild-std sysroot does not have; zig adds musl's.
const MUSL = { libc: "musl", rustflags: ["-Ctarget-feature=-crt-static"], exeFlags: ["-Ctarget-feature=+crt-static", "-Clink-self-contained=no"] };

export const PLATFORMS: Platform[] = [
  { tag: "linux-x64-gnu", triple: "x86_64-unknown-linux-gnu", zigTarget: "x86_64-unknown-linux-gnu.2.17", file: "libzerobus_bun.so", os: "linux", cpu: "x64", libc: "glibc" },
  { tag: "linux-arm64-gnu", triple: "aarch64-unknown-linux-gnu", zigTarget: "aarch64-unknown-linux-gnu.2.17", file: "libzerobus_bun.so", os: "linux", cpu: "arm64", libc: "glibc" },
  { tag: "linux-x64-musl", triple: "x86_64-unknown-linux-musl", zigTarget: "x86_64-unknown-linux-musl", file: "libzerobus_bun.so", os: "linux", cpu: "x64", ...MUSL },
  { tag: "linux-arm64-musl", triple: "aarch64-unknown-linux-musl", zigTarget: "aarch64-unknown-linux-musl", file: "libzerobus_bun.so", os: "linux", cpu: "arm64", ...MUSL },
  { tag: "darwin-x64", triple: "x86_64-apple-darwin", zigTarget: "x86_64-apple-darwin", file: "libzerobus_bun.dylib", os: "darwin", cpu: "x64", env: { MACOSX_DEPLOYMENT_TARGET: "10.12" }, ...HIDDEN },
  { tag: "darwin-arm64", triple: "aarch64-apple-darwin", zigTarget: "aarch64-apple-darwin", file: "libzerobus_bun.dylib", os: "darwin", cpu: "arm64", env: { MACOSX_DEPLOYMENT_TARGET: "11.0" }, ...HIDDEN },
  { tag: "win32-x64", triple: "x86_64-pc-windows-gnu", zigTarget: "x86_64-pc-windows-gnu", file: "zerobus_bun.dll", os: "win32", cpu: "x64", mingw: "x86_64-w64-mingw32" },
  { tag: "win32-arm64", triple: "aarch64-pc-windows-gnullvm", zigTarget: "aarch64-pc-windows-gnullvm", file: "zerobus_bun.dll", os: "win32", cpu: "arm64", defFile: true },
];

/** Function names declared in the C header (comments stripped). */
export function headerFunctions(headerPath = join(root, "rust", "ffi", "include", "zerobus_bun.h")): string[] {
  const src = readFileSync(headerPath, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "");
  const names = new Set<string>();
  for (const m of src.matchAll(/\b(zerobus_[a-z0-9_]+)\s*\(/g)) names.add(m[1]!);
  return [...names].sort();
}

export function mainVersion(): string {
  return JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
}

/** The package.json of a platform package (also committed under prebuilds/<tag>/). */
export function platformPackageJson(p: Platform, version = mainVersion()): string {
  const pkg: Record<string, unknown> = {
    name: `zerobus-bun-${p.tag}`,
    version,
    description: `Prebuilt native library of zerobus-bun for ${p.tag} (${p.triple})`,
    license: "Apache-2.0",
    os: [p.os],
    cpu: [p.cpu],
  };
  if (p.libc) pkg.libc = [p.libc];
  pkg.type = "module";
  pkg.main = "index.js";
  pkg.files = ["index.js", p.file, localServerFile(p)];
  pkg.preferUnplugged = true;
  return JSON.stringify(pkg, null, 2) + "\n";
}

/**
 * The index.js of a platform package (also committed under prebuilds/<tag>/): what zerobus-bun's
 * src/platforms.ts requires to find the library, and what makes `bun build --compile` embed it.
 */
export function platformPackageIndex(p: Platform): string {
  return `// zerobus-bun's native library for ${p.tag} (${p.triple}). \`library\` is its path. Imported
// \`with { type: "file" }\`, the library is also embedded by \`bun build --compile\` in the executable
// of an app that uses zerobus-bun, and \`library\` is then its path inside the executable.
// ${localServerFile(p)}, beside it, is not imported: an executable holds it only when given to bun build.
import library from "./${p.file}" with { type: "file" };

export { library };
`;
}

/** The committed files of a platform package, by name (the binaries come from the build). */
export function platformPackageSources(p: Platform): Record<string, string> {
  return { "package.json": platformPackageJson(p), "index.js": platformPackageIndex(p) };
}

/** The local server executable's file name on a platform. */
export function localServerFile(p: Platform): string {
  return p.os === "win32" ? "zerobus-local.exe" : "zerobus-local";
}

function which(cmd: string): string | null {
  return Bun.which(cmd);
}

function run(cmd: string[], env?: Record<string, string>): { ok: boolean; out: string } {
  try {
    const r = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    return { ok: r.exitCode === 0, out: (r.stdout.toString() + r.stderr.toString()).trim() };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

interface Toolchain {
  rustc: string;
  cargo: string;
  version: string;
  sysroot: string;
  hasRustSrc: boolean;
}

function findToolchain(): Toolchain {
  const candidates: Array<[string, string]> = [];
  if (process.env.ZEROBUS_CROSS_RUSTC) {
    candidates.push([process.env.ZEROBUS_CROSS_RUSTC, process.env.ZEROBUS_CROSS_CARGO ?? "cargo"]);
  }
  candidates.push(["/usr/bin/rustc", "/usr/bin/cargo"]); // Debian rustc-web (+ rust-web-src)
  const r = which("rustc"), c = which("cargo");
  if (r && c) candidates.push([r, c]);
  for (const [rustc, cargo] of candidates) {
    if (!existsSync(rustc) || !(existsSync(cargo) || which(cargo))) continue;
    const v = run([rustc, "-V"]);
    const s = run([rustc, "--print", "sysroot"]);
    if (!v.ok || !s.ok) continue;
    const hasRustSrc = existsSync(join(s.out, "lib", "rustlib", "src", "rust", "library", "std", "Cargo.toml"));
    return { rustc, cargo: existsSync(cargo) ? cargo : which(cargo)!, version: v.out, sysroot: s.out, hasRustSrc };
  }
  throw new Error("no Rust toolchain found (install rustc-web cargo-web rust-web-src, or rustup)");
}

/** True when the toolchain has a prebuilt std for `triple` (then no -Zbuild-std is needed). */
function hasStd(tc: Toolchain, triple: string): boolean {
  const r = run([tc.rustc, "--print", "target-libdir", "--target", triple]);
  if (!r.ok || !existsSync(r.out)) return false;
  return readdirSync(r.out).some((f) => f.startsWith("libstd-") && f.endsWith(".rlib"));
}

function findZigbuild(): string | null {
  return process.env.ZEROBUS_CROSS_ZIGBUILD ?? which("cargo-zigbuild");
}

function hasZig(): boolean {
  if (which("zig")) return true;
  for (const py of ["python3", "python"]) {
    const p = which(py);
    if (p && run([p, "-m", "ziglang", "version"]).ok) return true;
  }
  return false;
}

function fmtTime(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function fmtSize(n: number): string {
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export interface BuildResult {
  tag: string;
  ok: boolean;
  seconds: number;
  size?: number;
  path?: string;
  log: string;
  error?: string;
}

/** Exports `ref` (git archive) to <targetDir>/src/<sha> (once) and returns that directory. */
export function exportRef(ref: string, targetDir: string): string {
  const sha = run(["git", "-C", root, "rev-parse", "--verify", `${ref}^{commit}`]);
  if (!sha.ok) throw new Error(`git rev-parse ${ref}: ${sha.out}`);
  const dir = join(targetDir, "src", sha.out.slice(0, 12));
  if (!existsSync(join(dir, "rust", "Cargo.toml"))) {
    mkdirSync(dir, { recursive: true });
    const r = Bun.spawnSync(["sh", "-c", `git -C '${root}' archive '${sha.out}' | tar -x -C '${dir}'`], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`git archive ${ref}: ${r.stderr.toString()}`);
  }
  // the tests of that revision run with this checkout's node_modules
  if (!existsSync(join(dir, "node_modules")) && existsSync(join(root, "node_modules"))) symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  return dir;
}

async function buildOne(p: Platform, tc: Toolchain, zigbuild: string, targetDir: string, outDir: string, verbose: boolean, src: string): Promise<BuildResult> {
  const started = Date.now();
  const logDir = join(targetDir, "logs");
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${p.tag}.log`);
  const buildStd = !hasStd(tc, p.triple);
  if (buildStd && !tc.hasRustSrc) {
    return { tag: p.tag, ok: false, seconds: 0, log: logPath, error: `${tc.rustc} has no std for ${p.triple} and no rust-src to build it (apt-get install rust-web-src)` };
  }
  // cargo-zigbuild runs `cargo` from PATH: put the chosen cargo/rustc first.
  const toolbin = join(targetDir, ".toolbin");
  mkdirSync(toolbin, { recursive: true });
  for (const [name, target] of [["cargo", tc.cargo], ["rustc", tc.rustc]] as const) {
    const link = join(toolbin, name);
    rmSync(link, { force: true });
    symlinkSync(target, link);
  }
  const mingwGcc = p.mingw ? which(`${p.mingw}-gcc`) : null;
  // `cargo rustc --crate-type cdylib`: the ffi crate is also an rlib (for its Rust tests), and a
  // lib built as both gets no LTO; with mingw that left a 23 MB DLL (8 MB with LTO).
  const manifest = ["--manifest-path", join(src, "rust", "Cargo.toml"), "--profile", "dist"];
  const tool = mingwGcc ? [tc.cargo] : [zigbuild];
  const target = ["--target", mingwGcc ? p.triple : p.zigTarget, ...(buildStd ? ["-Zbuild-std=std,panic_abort"] : [])];
  const libArgs = [...tool, "rustc", "-p", "zerobus-bun-ffi", "--lib", "--crate-type", "cdylib", ...manifest, ...target];
  const exeArgs = p.exeFlags
    ? [...tool, "rustc", "-p", "zerobus-local", "--bin", "zerobus-local", ...manifest, ...target, "--", ...p.exeFlags]
    : [...tool, "build", "-p", "zerobus-local", "--bin", "zerobus-local", ...manifest, ...target];
  const env: Record<string, string> = {
    PATH: `${toolbin}:${process.env.PATH}`,
    RUSTC: tc.rustc,
    CARGO_TARGET_DIR: targetDir,
    CARGO_TERM_COLOR: "never",
    CARGO_TERM_PROGRESS_WHEN: "never",
    ...p.env,
  };
  const rustflags = [...(p.rustflags ?? [])];
  const tripleEnv = p.triple.replace(/-/g, "_");
  if (rustflags.some((f) => f.startsWith("-Z"))) env.RUSTC_BOOTSTRAP = "1";
  // The export list is the library's only (the executable has none of those functions): given to
  // the final rustc call alone, so both builds share the same RUSTFLAGS and every other crate.
  if (p.defFile) {
    const def = join(targetDir, `${p.tag}-exports.def`);
    const fns = headerFunctions(join(src, "rust", "ffi", "include", "zerobus_bun.h"));
    writeFileSync(def, `LIBRARY zerobus_bun\nEXPORTS\n${fns.map((f) => `  ${f}\n`).join("")}`);
    libArgs.push("--", `-Clink-arg=${def}`);
  }
  const flagsEnv = (flags: string[]) => (flags.length ? { [`CARGO_TARGET_${tripleEnv.toUpperCase()}_RUSTFLAGS`]: flags.join(" ") } : {});
  if (p.cflags) env[`CFLAGS_${tripleEnv}`] = p.cflags.join(" ");
  if (buildStd) env.RUSTC_BOOTSTRAP = "1";
  if (mingwGcc) {
    const t = p.triple.replace(/-/g, "_");
    env[`CARGO_TARGET_${t.toUpperCase()}_LINKER`] = mingwGcc;
    env[`CC_${t}`] = mingwGcc;
    env[`AR_${t}`] = which(`${p.mingw}-ar`) ?? `${p.mingw}-ar`;
  }
  const how = mingwGcc ? `cargo build --target ${p.triple} (linker and CC: ${mingwGcc})` : `cargo-zigbuild --target ${p.zigTarget}`;
  console.log(`  ${how}${buildStd ? " -Zbuild-std (std built from rust-src)" : ""}; log: ${logPath}`);
  if (rustflags.length || p.cflags) console.log(`  rustflags: ${rustflags.join(" ") || "-"}; cflags: ${p.cflags?.join(" ") ?? "-"}`);

  // The workspace's own crates always rebuild. Builds of different revisions (--ref exports them
  // to different directories) share their fingerprints, and cargo judged a crate of a new export
  // fresh by the files of an older one: it linked a library from stale sources.
  const fingerprints = join(targetDir, p.triple, "dist", ".fingerprint");
  if (existsSync(fingerprints)) {
    for (const d of readdirSync(fingerprints)) if (/^zerobus-(core|bun-ffi|local|proto)-/.test(d)) rmSync(join(fingerprints, d), { recursive: true, force: true });
  }

  const log: string[] = [];
  let compiled = 0;
  let lastCrate = "";
  const ticker = setInterval(() => {
    console.log(`  ... ${fmtTime(Date.now() - started)}: ${compiled} crates compiled${lastCrate ? ` (last: ${lastCrate})` : ""}`);
  }, 20_000);
  const cargo = async (args: string[], extraEnv: Record<string, string>): Promise<number> => {
    const proc = Bun.spawn(args, { env: { ...process.env, ...env, ...extraEnv }, stdout: "pipe", stderr: "pipe" });
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of stream) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          log.push(line);
          const m = /^\s*Compiling (\S+ v\S+)/.exec(line);
          if (m) {
            compiled++;
            lastCrate = m[1]!;
          }
          if (verbose) console.log(`  | ${line}`);
          else if (/^(error|warning: unused)|^\s*(Finished)/.test(line)) console.log(`  ${line.trim()}`);
        }
      }
      if (buf) log.push(buf);
    };
    await Promise.all([pump(proc.stdout), pump(proc.stderr)]);
    return proc.exited;
  };
  let code = await cargo(libArgs, flagsEnv(rustflags));
  if (code === 0) code = await cargo(exeArgs, flagsEnv(rustflags));
  clearInterval(ticker);
  writeFileSync(logPath, log.join("\n") + "\n");
  const seconds = (Date.now() - started) / 1000;
  if (code !== 0) {
    const tail = log.filter((l) => /error/i.test(l)).slice(0, 8).join("\n    ");
    return { tag: p.tag, ok: false, seconds, log: logPath, error: `${mingwGcc ? "cargo" : "cargo-zigbuild"} exited ${code}\n    ${tail}` };
  }
  const built = join(targetDir, p.triple, "dist", p.file);
  const builtExe = join(targetDir, p.triple, "dist", localServerFile(p));
  for (const f of [built, builtExe]) if (!existsSync(f)) return { tag: p.tag, ok: false, seconds, log: logPath, error: `${f} not found after the build` };
  const dest = join(outDir, p.tag);
  mkdirSync(dest, { recursive: true });
  copyFileSync(built, join(dest, p.file));
  copyFileSync(builtExe, join(dest, localServerFile(p)));
  for (const [name, text] of Object.entries(platformPackageSources(p))) writeFileSync(join(dest, name), text);
  const size = statSync(join(dest, p.file)).size;
  return { tag: p.tag, ok: true, seconds, size, path: join(dest, p.file), log: logPath };
}

function parseArgs(argv: string[]) {
  const o = { targets: [] as string[], out: join(root, "prebuilds"), targetDir: process.env.CARGO_TARGET_DIR_CROSS ?? join(root, "rust", "target-cross"), list: false, verbose: false, keepGoing: true, ref: "" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const eq = a.indexOf("=");
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i]!;
    };
    if (a.startsWith("--targets") || a === "-t") o.targets = val().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith("--out")) o.out = resolve(val());
    else if (a.startsWith("--target-dir")) o.targetDir = resolve(val());
    else if (a.startsWith("--ref")) o.ref = val();
    else if (a === "--list") o.list = true;
    else if (a === "--verbose" || a === "-v") o.verbose = true;
    else if (a === "--fail-fast") o.keepGoing = false;
    else if (a === "--help" || a === "-h") {
      console.log("usage: bun scripts/cross-build.ts [--targets tag|triple,...] [--out DIR] [--target-dir DIR] [--ref GIT-REF] [--verbose] [--fail-fast] [--list]");
      console.log(`platforms: ${PLATFORMS.map((p) => p.tag).join(", ")}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const selected = opts.targets.length
    ? opts.targets.map((t) => {
        const p = PLATFORMS.find((x) => x.tag === t || x.triple === t);
        if (!p) throw new Error(`unknown target ${t} (one of ${PLATFORMS.map((x) => x.tag).join(", ")})`);
        return p;
      })
    : PLATFORMS;

  const tc = findToolchain();
  const zigbuild = findZigbuild();
  console.log(`toolchain: ${tc.version} (${tc.rustc}, cargo ${tc.cargo}), rust-src: ${tc.hasRustSrc ? "yes" : "no"}`);
  console.log(`linker:    cargo-zigbuild ${zigbuild ?? "NOT FOUND"}, zig ${hasZig() ? "found" : "NOT FOUND"}`);
  const src = opts.ref ? exportRef(opts.ref, opts.targetDir) : root;
  console.log(`sources: ${opts.ref ? `${opts.ref} exported to ${src}` : `${src} (work tree)`}`);
  console.log(`target dir: ${opts.targetDir}; output: ${opts.out}`);
  if (opts.list) {
    for (const p of PLATFORMS) console.log(`  ${p.tag.padEnd(16)} ${p.triple.padEnd(28)} ${p.file.padEnd(22)} std: ${hasStd(tc, p.triple) ? "prebuilt" : tc.hasRustSrc ? "-Zbuild-std" : "MISSING"}`);
    return;
  }
  if (!zigbuild || !hasZig()) {
    console.error("cargo-zigbuild and zig are needed: pip install ziglang cargo-zigbuild");
    process.exit(2);
  }
  mkdirSync(opts.targetDir, { recursive: true });

  const results: BuildResult[] = [];
  const t0 = Date.now();
  for (const [i, p] of selected.entries()) {
    console.log(`[${i + 1}/${selected.length}] ${p.tag} (${p.triple})`);
    const r = await buildOne(p, tc, zigbuild, opts.targetDir, opts.out, opts.verbose, src);
    results.push(r);
    if (r.ok) console.log(`  OK ${r.path} ${fmtSize(r.size!)} in ${fmtTime(r.seconds * 1000)}`);
    else {
      console.log(`  FAILED after ${fmtTime(r.seconds * 1000)}: ${r.error}\n  full log: ${r.log}`);
      if (!opts.keepGoing) break;
    }
  }
  console.log(`\nsummary (${fmtTime(Date.now() - t0)}):`);
  for (const r of results) console.log(`  ${r.ok ? "OK    " : "FAILED"} ${r.tag.padEnd(16)} ${r.ok ? `${fmtSize(r.size!).padStart(10)}  ${fmtTime(r.seconds * 1000).padStart(6)}` : r.error?.split("\n")[0]}`);
  if (results.some((r) => !r.ok) || results.length < selected.length) process.exit(1);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`cross-build: ${(e as Error).message}`);
    process.exit(2);
  });
}
