// Where the native library and zerobus-local are found outside `bun build --compile` executables
// (those are test/compile.test.ts), and what the SDK says when they are not: in a user's project
// (with and without its platform package), in a source checkout without a cargo build, on a
// platform without a package; a source checkout's cargo build comes before an installed package;
// a bundle made by `bun build` (not compiled) loads the library it copied beside itself. Also: src/platforms.ts has a line for each platform package, and
// prebuilds/<tag>/ holds what scripts/cross-build.ts writes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLATFORMS, platformPackageSources } from "../scripts/cross-build";
import { libraryPath } from "../src/native";
import { libraryFile, localServerFile, platformTag } from "../src/paths";
import { platformTags } from "../src/platforms";
import { ok, platformManifest, root, sh, userEnv, userProject, type UserProject } from "./user-project";

const tag = platformTag();
const TIMEOUT = { timeout: 120_000 };
const APP = `import { libraryPath } from "zerobus-bun";\nconsole.log("library", libraryPath);\n`;
const LOCAL = `import { startLocalServer } from "zerobus-bun";\nstartLocalServer().stop();\n`;

/** A directory holding only a copy of the library: ZEROBUS_BUN_LIB with no zerobus-local beside it. */
const lone = mkdtempSync(join(tmpdir(), "zerobus-lone-lib-"));
const loneLib = join(lone, libraryFile);
copyFileSync(libraryPath, loneLib);
afterAll(() => rmSync(lone, { recursive: true, force: true }));

test("src/platforms.ts lists each platform package and requires it behind a test of its OS and CPU", () => {
  const src = readFileSync(join(root, "src", "platforms.ts"), "utf8");
  const lines = [...src.matchAll(/process\.platform === "(\w+)" && process\.arch === "(\w+)" && tag === "([\w-]+)"\) mod = require\("zerobus-bun-([\w-]+)"\);/g)];
  const optional = Object.keys(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).optionalDependencies).sort();
  expect(lines.map((m) => `zerobus-bun-${m[3]}`).sort()).toEqual(optional);
  expect([...platformTags].sort()).toEqual(lines.map((m) => m[3]!).sort());
  for (const [, os, cpu, t, pkg] of lines) {
    expect(pkg).toBe(t!);
    const manifest = platformManifest(t!);
    expect(manifest.name).toBe(`zerobus-bun-${t}`);
    expect([manifest.os, manifest.cpu]).toEqual([[os!], [cpu!]]);
  }
  // One `require` per line, all in one `try` (the bundler accepts an unresolvable one only there).
  expect(src.match(/require\(/g)!.length).toBe(lines.length);
});

test("prebuilds/<tag>/ holds the package.json and index.js that scripts/cross-build.ts writes", () => {
  for (const p of PLATFORMS) {
    for (const [name, text] of Object.entries(platformPackageSources(p))) expect(readFileSync(join(root, "prebuilds", p.tag, name), "utf8")).toBe(text);
    expect(platformManifest(p.tag).files).toContain("index.js");
  }
});

describe("a user's project", () => {
  let project: UserProject;
  let bare: UserProject;
  beforeAll(() => {
    project = userProject([tag]);
    bare = userProject([]);
    for (const p of [project, bare]) {
      p.write("app.ts", APP);
      p.write("local.ts", LOCAL);
    }
  }, 300_000);
  afterAll(() => {
    project.remove();
    bare.remove();
  });

  test("the library and zerobus-local come from the platform package", () => {
    const out = ok([process.execPath, "app.ts"], project.dir);
    expect(out).toBe(`library ${join(project.dir, "node_modules", `zerobus-bun-${tag}`, libraryFile)}\n`);
    ok([process.execPath, "local.ts"], project.dir);
    const version = ok([process.execPath, join("node_modules", "zerobus-bun", "src", "cli.ts"), "version"], project.dir);
    expect(version).toContain(`local server: ${join(project.dir, "node_modules", `zerobus-bun-${tag}`, localServerFile)}`);
  }, TIMEOUT);

  test("without the platform package: each place looked, and how to install it", () => {
    const r = sh([process.execPath, "app.ts"], bare.dir, userEnv({ ZEROBUS_BUN_LIB: "/nonexistent/dir/lib" }));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(
      `zerobus-bun: native library not found for ${tag}. Looked in:\n` +
        `  /nonexistent/dir/lib (ZEROBUS_BUN_LIB): no such file\n` +
        `  package zerobus-bun-${tag}: not installed (Cannot find module 'zerobus-bun-${tag}'`,
    );
    expect(r.out).toContain(`To fix: install zerobus-bun-${tag}@0.1.0, an optional dependency of zerobus-bun`);
    expect(r.out).toContain(`\`bun add zerobus-bun-${tag}@0.1.0\``);
    expect(r.out).toContain("Or set ZEROBUS_BUN_LIB to the path of");
    expect(r.out).not.toContain("build:native");
    expect(r.out).not.toContain("rust/target");

    const l = sh([process.execPath, "local.ts"], bare.dir, userEnv({ ZEROBUS_BUN_LIB: loneLib }));
    expect(l.code).not.toBe(0);
    expect(l.out).toContain(
      `zerobus-bun: the zerobus-local executable was not found for ${tag}. Looked in:\n` +
        "  ZEROBUS_LOCAL_BIN: not set\n" +
        `  ${join(lone, localServerFile)} (beside ZEROBUS_BUN_LIB): no such file\n` +
        `  package zerobus-bun-${tag}: not installed`,
    );
    expect(l.out).toContain(`To fix: install zerobus-bun-${tag}@0.1.0`);
    expect(l.out).toContain("Or set ZEROBUS_LOCAL_BIN to the path of");
    expect(l.out).not.toContain("build:native");
  }, TIMEOUT);

  test("a platform without a package: build from the sources", () => {
    const code = `import { findLibrary, findLocalServer } from "./node_modules/zerobus-bun/src/paths.ts";
console.log(findLibrary("freebsd-x64").message + "\\n---\\n" + findLocalServer("freebsd-x64").message);`;
    const out = ok([process.execPath, bare.write("other.ts", code)], bare.dir);
    expect(out).toContain("zerobus-bun: native library not found for freebsd-x64. Looked in:\n  ZEROBUS_BUN_LIB: not set\n  package zerobus-bun-freebsd-x64: none is published for freebsd-x64 (there are packages for ");
    expect(out).toContain("To fix: no prebuilt package exists for freebsd-x64; build libzerobus_bun.");
    expect(out).toContain("(`bun run build:native` in a checkout of its repository) and set ZEROBUS_LOCAL_BIN to its path.");
  }, TIMEOUT);

  test("a bundle made by `bun build --target=bun` loads the library copied beside it", () => {
    const out = join(project.dir, "out");
    ok([process.execPath, "build", "--target=bun", "app.ts", "--outdir", out], project.dir);
    const files = readdirSync(out);
    expect(files.filter((f) => f.startsWith("libzerobus_bun"))).toHaveLength(1);
    const elsewhere = mkdtempSync(join(tmpdir(), "zerobus-elsewhere-"));
    try {
      expect(ok([process.execPath, join(out, "app.js")], elsewhere)).toMatch(new RegExp(`^library ${out}/libzerobus_bun-\\w+\\.\\w+\\n$`));
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  }, TIMEOUT);
});

test("a source checkout: its cargo build first; without one, its build directories and `bun run build:native`", () => {
  // The checkout's TypeScript and Rust manifest, without rust/target.
  const checkout = mkdtempSync(join(tmpdir(), "zerobus-checkout-"));
  try {
    cpSync(join(root, "src"), join(checkout, "src"), { recursive: true });
    copyFileSync(join(root, "package.json"), join(checkout, "package.json"));
    mkdirSync(join(checkout, "rust"));
    copyFileSync(join(root, "rust", "Cargo.toml"), join(checkout, "rust", "Cargo.toml"));
    mkdirSync(join(checkout, "node_modules"));
    symlinkSync(join(root, "node_modules", "@bufbuild"), join(checkout, "node_modules", "@bufbuild"));
    writeFileSync(join(checkout, "app.ts"), APP.replace('"zerobus-bun"', '"./src/index.ts"'));
    const r = sh([process.execPath, "app.ts"], checkout);
    expect(r.code).not.toBe(0);
    // The cargo build of the checkout's sources first, prebuilds/ last.
    expect(r.out).toContain(
      `zerobus-bun: native library not found for ${tag}. Looked in:\n` +
        "  ZEROBUS_BUN_LIB: not set\n" +
        `  ${join(checkout, "rust", "target", "release", libraryFile)} (cargo build): no such file\n` +
        `  package zerobus-bun-${tag}: not installed (Cannot find module 'zerobus-bun-${tag}'`,
    );
    expect(r.out).toContain(`  ${join(checkout, "prebuilds", tag, libraryFile)} (scripts/cross-build.ts output): no such file\nTo fix:`);
    expect(r.out).toContain("To fix: build it with `bun run build:native` (cargo, into rust/target/release), or set ZEROBUS_BUN_LIB to its path.");

    const l = sh([process.execPath, join("src", "cli.ts"), "local"], checkout, userEnv({ ZEROBUS_BUN_LIB: loneLib }));
    expect(l.code).toBe(1);
    expect(l.out).toContain(`the zerobus-local executable was not found for ${tag}. Looked in:\n  ZEROBUS_LOCAL_BIN: not set\n`);
    expect(l.out).toContain(`  ${join(checkout, "rust", "target", "release", localServerFile)} (cargo build): no such file\n`);
    expect(l.out).toContain("To fix: build it with `bun run build:native` (cargo, into rust/target/release), or set ZEROBUS_LOCAL_BIN to its path.");

    // With the platform package installed too, the cargo build of the checkout's sources still comes first.
    const pkg = join(checkout, "node_modules", `zerobus-bun-${tag}`);
    mkdirSync(pkg);
    for (const f of ["package.json", "index.js"]) copyFileSync(join(root, "prebuilds", tag, f), join(pkg, f));
    copyFileSync(libraryPath, join(pkg, libraryFile));
    expect(ok([process.execPath, "app.ts"], checkout)).toBe(`library ${join(pkg, libraryFile)}\n`);
    mkdirSync(join(checkout, "rust", "target", "release"), { recursive: true });
    copyFileSync(libraryPath, join(checkout, "rust", "target", "release", libraryFile));
    expect(ok([process.execPath, "app.ts"], checkout)).toBe(`library ${join(checkout, "rust", "target", "release", libraryFile)}\n`);
  } finally {
    rmSync(checkout, { recursive: true, force: true });
  }
}, TIMEOUT);
