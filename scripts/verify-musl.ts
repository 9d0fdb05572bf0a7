// The musl runtime that scripts/verify-prebuilds.ts runs the linux-*-musl packages' tests with, on
// a glibc (Debian) machine: Bun's own musl build, the musl loader and the C++ runtime Bun needs,
// assembled under rust/target-cross/musl/ from registry packages (fetched once, then reused):
//
//   Bun          npm `@oven/bun-linux-x64-musl` / `@oven/bun-linux-aarch64-musl` (the version running)
//   musl         Debian's `musl` package, from a suite with musl >= 1.2.4 (trixie: 1.2.5): Bun uses
//                DT_RELR relocations, which bookworm's musl 1.2.3 does not apply (Bun segfaults at
//                start). Downloaded with apt-get and a private sources list (nothing installed).
//   libstdc++    Bun for musl needs libstdc++.so.6 (and libgcc_s), which Alpine has and Debian does
//                not build for musl: taken from numpy's musllinux wheel (PyPI), which bundles both.
//
// On the host's own CPU: a copy of Bun whose ELF interpreter and RUNPATH point into that sysroot
// (patchelf), so it runs natively and process.execPath is Bun. arm64 on an x64 host:
// `qemu-aarch64 -L <sysroot>` with Bun as it is.
// installedIngest(): the SDK and the musl package laid out as npm installs them, no ZEROBUS_*
// variables: the package's library and zerobus-local are found by themselves.
// Set ZEROBUS_MUSL_SYSROOT_X64 / ZEROBUS_MUSL_SYSROOT_ARM64 to use an existing sysroot (with
// lib/ld-musl-<arch>.so.1, libstdc++.so.6 and libgcc_s.so.1 on its search path) instead.
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const crossDir = join(resolve(import.meta.dir, ".."), "rust", "target-cross");
const MUSL_SUITE = "trixie";

interface Arch {
  /** Debian architecture, npm package arch, wheel arch, musl arch. */
  deb: string;
  npm: string;
  wheel: string;
  musl: string;
}
const ARCHES: Record<string, Arch> = {
  x64: { deb: "amd64", npm: "x64", wheel: "x86_64", musl: "x86_64" },
  arm64: { deb: "arm64", npm: "aarch64", wheel: "aarch64", musl: "aarch64" },
};

function sh(cmd: string[], cwd?: string, timeoutMs = 10 * 60_000): { ok: boolean; out: string } {
  try {
    const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
    return { ok: r.exitCode === 0, out: (r.stdout.toString() + r.stderr.toString()).trim() };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

/** Debian's musl (>= 1.2.4) for `a`, unpacked into <dir>/sysroot; returns the sysroot or why not. */
function muslSysroot(a: Arch, dir: string): { root?: string; why: string } {
  const root = join(dir, "sysroot");
  const loader = join(root, "lib", `ld-musl-${a.musl}.so.1`);
  if (existsSync(loader)) return { root, why: "cached" };
  if (!Bun.which("apt-get") || !Bun.which("dpkg-deb")) return { why: "apt-get/dpkg-deb not found (a Debian machine is needed)" };
  const apt = join(crossDir, "musl", "apt");
  for (const d of ["lists/partial", "cache/archives/partial", "deb"]) mkdirSync(join(apt, d), { recursive: true });
  writeFileSync(join(apt, "sources.list"), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg arch=amd64,arm64] http://deb.debian.org/debian ${MUSL_SUITE} main\n`);
  writeFileSync(join(apt, "status"), "");
  const opts = [
    `Dir::Etc::SourceList=${join(apt, "sources.list")}`, "Dir::Etc::SourceParts=-", `Dir::State::Lists=${join(apt, "lists")}`,
    `Dir::Cache=${join(apt, "cache")}`, `Dir::State::status=${join(apt, "status")}`, "APT::Architectures::=amd64", "APT::Architectures::=arm64",
    "APT::Sandbox::User=root",
  ].flatMap((o) => ["-o", o]);
  if (!existsSync(join(apt, "updated"))) {
    console.log(`  ... apt-get update (Debian ${MUSL_SUITE}, private lists in ${apt})`);
    const u = sh(["apt-get", ...opts, "update"]);
    if (!u.ok) return { why: `apt-get update (${MUSL_SUITE}) failed: ${u.out.slice(-400)}` };
    writeFileSync(join(apt, "updated"), "");
  }
  const debDir = join(apt, "deb");
  const d = sh(["apt-get", ...opts, "download", `musl:${a.deb}`], debDir);
  const deb = readdirSync(debDir).find((f) => f.startsWith("musl_") && f.endsWith(`_${a.deb}.deb`));
  if (!deb) return { why: `apt-get download musl:${a.deb} (${MUSL_SUITE}) failed: ${d.out.slice(-400)}` };
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const x = sh(["dpkg-deb", "-x", join(debDir, deb), root]);
  if (!x.ok) return { why: `dpkg-deb -x ${deb}: ${x.out}` };
  // Debian's package is merged-/usr: the loader is usr/lib/ld-musl-<arch>.so.1; /lib is where
  // ELF interpreters name it (qemu -L resolves it inside the sysroot).
  if (!existsSync(join(root, "lib"))) symlinkSync("usr/lib", join(root, "lib"));
  return existsSync(loader) ? { root, why: `Debian ${deb}` } : { why: `${deb} has no ld-musl-${a.musl}.so.1` };
}

/** libstdc++.so.6 and libgcc_s.so.1 for musl, into the sysroot's library directory. */
function cxxRuntime(a: Arch, root: string): { ok: boolean; why: string } {
  const libDir = join(root, "usr", "lib", `${a.musl}-linux-musl`);
  if (existsSync(join(libDir, "libstdc++.so.6")) && existsSync(join(libDir, "libgcc_s.so.1"))) return { ok: true, why: "cached" };
  const py = Bun.which("python3");
  if (!py) return { ok: false, why: "python3 (pip) not found: libstdc++ for musl comes from a musllinux wheel" };
  const wheels = join(crossDir, "musl", "wheels", a.wheel);
  mkdirSync(wheels, { recursive: true });
  let whl = readdirSync(wheels).find((f) => f.endsWith(".whl"));
  if (!whl) {
    console.log(`  ... pip download numpy (musllinux_1_2_${a.wheel} wheel: its libstdc++ and libgcc_s)`);
    const r = sh([py, "-m", "pip", "download", "numpy", "--only-binary=:all:", "--platform", `musllinux_1_2_${a.wheel}`, "--python-version", "3.12", "--no-deps", "-q", "-d", wheels]);
    whl = readdirSync(wheels).find((f) => f.endsWith(".whl"));
    if (!whl) return { ok: false, why: `pip download numpy (musllinux_1_2_${a.wheel}) failed: ${r.out.slice(-400)}` };
  }
  // auditwheel renamed them (libstdc++-<hash>.so.6.0.N needs libgcc_s-<hash>.so.1): both names kept.
  const script = `import zipfile,sys,os,re
z=zipfile.ZipFile(sys.argv[1]); d=sys.argv[2]
for n in z.namelist():
  b=os.path.basename(n)
  if re.match(r"lib(stdc\\+\\+|gcc_s)-[0-9a-f]+\\.so", b):
    open(os.path.join(d,b),"wb").write(z.read(n))
    if b.startswith("libstdc++"): open(os.path.join(d,"libstdc++.so.6"),"wb").write(z.read(n))
    else: open(os.path.join(d,"libgcc_s.so.1"),"wb").write(z.read(n))
`;
  mkdirSync(libDir, { recursive: true });
  const r = sh([py, "-c", script, join(wheels, whl), libDir]);
  const ok = r.ok && existsSync(join(libDir, "libstdc++.so.6")) && existsSync(join(libDir, "libgcc_s.so.1"));
  return { ok, why: ok ? `from ${whl}` : `no libstdc++/libgcc_s in ${whl}: ${r.out.slice(-300)}` };
}

/** Bun's musl build for `a` (npm pack), the running Bun's version. */
function bunMusl(a: Arch): { bin?: string; why: string } {
  const dir = join(crossDir, "tools", `bun-linux-${a.npm}-musl-${Bun.version}`);
  const bin = join(dir, "package", "bin", "bun");
  if (existsSync(bin)) return { bin, why: "cached" };
  const npm = Bun.which("npm");
  if (!npm) return { why: "npm not found" };
  mkdirSync(dir, { recursive: true });
  const pkg = `@oven/bun-linux-${a.npm}-musl@${Bun.version}`;
  console.log(`  ... npm pack ${pkg}`);
  const r = sh([npm, "pack", pkg], dir, 5 * 60_000);
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (!r.ok || !tgz) return { why: `npm pack ${pkg} failed: ${r.out.slice(-300)}` };
  sh(["tar", "xzf", tgz], dir);
  return existsSync(bin) ? { bin, why: pkg } : { why: `${pkg} has no bin/bun` };
}

export interface MuslRuntime {
  /** How to run Bun for musl (argv prefix), and the argv prefix that runs any musl executable. */
  bun: string[];
  exec: string[];
  label: string;
  detail: string;
}

/** A way to run Bun for musl on `cpu` here, or why there is none. */
export function muslRuntime(cpu: string): MuslRuntime | { skip: string } {
  const a = ARCHES[cpu];
  if (!a || process.platform !== "linux") return { skip: `no musl runtime for ${process.platform}-${cpu} here` };
  const envRoot = process.env[`ZEROBUS_MUSL_SYSROOT_${cpu.toUpperCase()}`];
  const dir = join(crossDir, "musl", a.deb);
  const sys = envRoot ? { root: envRoot, why: `ZEROBUS_MUSL_SYSROOT_${cpu.toUpperCase()}` } : muslSysroot(a, dir);
  if (!sys.root) return { skip: sys.why };
  const cxx = envRoot ? { ok: true, why: "from the sysroot" } : cxxRuntime(a, sys.root);
  if (!cxx.ok) return { skip: cxx.why };
  const bun = bunMusl(a);
  if (!bun.bin) return { skip: bun.why };
  const detail = `Bun ${Bun.version} for musl (${bun.why}), musl loader ${sys.why}, libstdc++ ${cxx.why}`;
  if (cpu === process.arch) {
    const patchelf = Bun.which("patchelf");
    if (!patchelf) return { skip: "patchelf not found (apt-get install patchelf): Bun's interpreter must point at musl >= 1.2.4" };
    const patched = join(dir, "bun");
    if (!existsSync(patched)) {
      copyFileSync(bun.bin, patched);
      chmodSync(patched, 0o755);
      const r = sh([patchelf, "--set-interpreter", join(sys.root, "lib", `ld-musl-${a.musl}.so.1`), "--set-rpath", join(sys.root, "usr", "lib", `${a.musl}-linux-musl`), patched]);
      if (!r.ok) {
        rmSync(patched, { force: true });
        return { skip: `patchelf failed: ${r.out}` };
      }
    }
    return { bun: [patched], exec: [], label: `musl bun ${cpu} (Debian musl loader)`, detail: `${detail}; ${patched}: interpreter and RUNPATH set into ${sys.root}` };
  }
  if (cpu === "arm64") {
    const qemu = Bun.which("qemu-aarch64") ?? Bun.which("qemu-aarch64-static");
    if (!qemu) return { skip: "qemu-aarch64 not found (apt-get install qemu-user)" };
    return { bun: [qemu, "-L", sys.root, bun.bin], exec: [qemu, "-L", sys.root], label: "qemu-aarch64 + musl bun arm64", detail };
  }
  return { skip: `cannot run ${cpu} here` };
}

/** platformTag() under Bun for musl, then installedIngest() (needs the package's zerobus-local runnable here). */
export function muslChecks(rt: MuslRuntime, repo: string, pkgDir: string, tag: string): Array<{ name: string; status: "PASS" | "FAIL" | "SKIP"; detail: string }> {
  const paths = JSON.stringify(join(repo, "src", "paths.ts"));
  const r = Bun.spawnSync([...rt.bun, "-e", `const m = await import(${paths}); console.log(m.platformTag(), process.versions.bun)`], { stdout: "pipe", stderr: "pipe", timeout: 5 * 60_000 });
  const out = (r.stdout.toString() + r.stderr.toString()).trim();
  const line = out.split("\n").pop() ?? "";
  const checks = [{ name: `platformTag (${rt.label})`, status: r.exitCode === 0 && line.startsWith(`${tag} `) ? "PASS" : "FAIL", detail: `${line || out.slice(-300)} (want ${tag})` } as const];
  if (rt.exec.length) return [...checks, { name: "installed package", status: "SKIP", detail: `its zerobus-local is for ${tag} and the SDK starts it directly (the tests start it through qemu)` }];
  const app = installedIngest(rt, repo, pkgDir, tag);
  return [...checks, { name: "installed package", status: app.ok ? "PASS" : "FAIL", detail: app.detail }];
}

/**
 * An app in an empty project, with zerobus-bun and `zerobus-bun-<tag>` laid out in node_modules as
 * npm installs them and no ZEROBUS_* variable: under Bun for musl it must find the musl package's
 * library and zerobus-local by itself, and ingest 1000 JSON records into that server.
 */
export function installedIngest(rt: MuslRuntime, repo: string, pkgDir: string, tag: string): { ok: boolean; detail: string } {
  const project = mkdtempSync(join(tmpdir(), "zerobus-musl-app-"));
  try {
    const nm = join(project, "node_modules");
    for (const f of ["package.json", "src", "proto"]) cpSync(join(repo, f), join(nm, "zerobus-bun", f), { recursive: true });
    for (const f of readdirSync(pkgDir)) cpSync(join(pkgDir, f), join(nm, `zerobus-bun-${tag}`, f));
    symlinkSync(join(repo, "node_modules", "@bufbuild"), join(nm, "@bufbuild"));
    writeFileSync(
      join(project, "ingest.ts"),
      `import { startLocalServer, ZerobusSdk, libraryPath, platformTag } from "zerobus-bun";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
const server = startLocalServer({ dataDir: mkdtempSync(join(tmpdir(), "zb-musl-")), tables: ["a.b.c"], fsync: false });
const sdk = new ZerobusSdk({ endpoint: server.url, unityCatalogUrl: server.url });
const stream = await sdk.createStream({ table: "a.b.c", recordType: "json", clientId: "id", clientSecret: "secret" });
for (let i = 0; i < 1000; i++) stream.submit({ i });
await stream.close();
sdk.close();
const rows = server.records("a.b.c");
server.stop();
console.log(\`\${platformTag()}: \${rows.length} rows, last \${JSON.stringify(rows.at(-1))}, library \${libraryPath}\`);
`,
    );
    const env: Record<string, string | undefined> = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith("ZEROBUS_")) delete env[k];
    const r = Bun.spawnSync([...rt.bun, "ingest.ts"], { cwd: project, env, stdout: "pipe", stderr: "pipe", timeout: 5 * 60_000 });
    const out = (r.stdout.toString() + r.stderr.toString()).trim();
    const want = `${tag}: 1000 rows, last {"i":999}, library ${join(nm, `zerobus-bun-${tag}`)}`;
    return { ok: r.exitCode === 0 && out.includes(want), detail: out.split("\n").slice(-6).join(" | ") };
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}
