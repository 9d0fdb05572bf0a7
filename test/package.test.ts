// What users install: the main package and this platform's package, packed with `npm pack` and
// installed into an empty project (nothing else: no source tree, no Rust, no ZEROBUS_* variables).
// Checks: import + ingest into the package's own local server; `bunx zerobus-bun demo`; the CLI's
// help and exit codes; plain `bun build --compile` (no library named: the platform package's is
// embedded) of an app without Arrow while apache-arrow is absent, and of an Arrow app once it is
// installed, each binary run alone in an empty directory; and
// `npm publish --dry-run` of all nine packages. Needs npm and the npm registry (for
// @bufbuild/protobuf and apache-arrow), as installing the SDK does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { localServerExecutable } from "../src/local";
import { libraryPath } from "../src/native";
import { libraryFile, localServerFile, platformTag } from "../src/paths";
import { fixture, TABLE } from "./helpers";
import { bun, packing, root } from "./packing";

const { work, run, ok, pack, project: emptyProject } = packing("zerobus-package-");
const project = emptyProject("project");
const tag = platformTag();
/** The committed files of a platform package (prebuilds/<tag>/); cross-build.ts adds the binaries. */
const PLATFORM_SOURCES = ["index.js", "package.json"];

/** This platform's package as cross-build.ts lays it out (its committed files), with the binaries built from source. */
function platformPackage(): string {
  const dir = join(work, `platform-${tag}`);
  mkdirSync(dir);
  for (const f of PLATFORM_SOURCES) copyFileSync(join(root, "prebuilds", tag, f), join(dir, f));
  copyFileSync(libraryPath, join(dir, libraryFile));
  copyFileSync(localServerExecutable(), join(dir, localServerFile));
  return dir;
}

beforeAll(() => {
  const main = pack(root);
  const platform = pack(platformPackage());
  ok(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", main, platform], project);
}, 900_000); // two packs and an install, each allowed 240 s by run() (bun's default hook timeout is 5 s)

afterAll(() => rmSync(work, { recursive: true, force: true }));

const TIMEOUT = { timeout: 300_000 };

test("the packed packages hold what users need, and nothing of the source tree", () => {
  const pkg = join(project, "node_modules", "zerobus-bun");
  expect(readdirSync(pkg).sort()).toEqual(["README.md", "dist", "package.json", "proto", "src"]);
  expect(existsSync(join(pkg, "src", "demo.ts"))).toBe(true);
  // Declarations, made by the prepack script (user-types.test.ts checks what TypeScript makes of them).
  expect(existsSync(join(pkg, "dist", "index.d.ts"))).toBe(true);
  const plat = join(project, "node_modules", `zerobus-bun-${tag}`);
  expect(readdirSync(plat).sort()).toEqual([...PLATFORM_SOURCES, libraryFile, localServerFile].sort());
  // apache-arrow is an optional peer dependency: not installed with the SDK.
  expect(existsSync(join(project, "node_modules", "apache-arrow"))).toBe(false);
  const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
  expect(manifest.peerDependenciesMeta?.["apache-arrow"]?.optional).toBe(true);
});

test("import and ingest into the package's local server", () => {
  writeFileSync(
    join(project, "ingest.ts"),
    `import { startLocalServer, ZerobusSdk, libraryPath } from "zerobus-bun";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
const server = startLocalServer({ dataDir: mkdtempSync(join(tmpdir(), "zb-pkg-")), tables: ["a.b.c"], fsync: false });
const sdk = new ZerobusSdk({ endpoint: server.url, unityCatalogUrl: server.url });
const stream = await sdk.createStream({ table: "a.b.c", recordType: "json", clientId: "id", clientSecret: "secret" });
for (let i = 0; i < 1000; i++) stream.submit({ i });
await stream.close();
sdk.close();
const rows = server.records("a.b.c");
server.stop();
console.log(\`\${rows.length} rows, last \${JSON.stringify(rows.at(-1))}, library \${libraryPath}\`);
`,
  );
  const out = ok([bun, "ingest.ts"], project);
  expect(out).toContain('1000 rows, last {"i":999}');
  expect(out).toContain(join("node_modules", `zerobus-bun-${tag}`, libraryFile));
}, TIMEOUT);

test("bunx zerobus-bun demo, --help and exit codes", () => {
  const out = ok([bun, "x", "zerobus-bun", "demo", "--records", "20000"], project);
  expect(out).toContain("verified:");
  expect(out).toContain("exactly the 20,000 records");
  expect(ok([bun, "x", "zerobus-bun", "--help"], project)).toContain("usage: zerobus-bun <command>");
  expect(ok([bun, "x", "zerobus-bun", "local", "--help"], project)).toContain("--data-dir");
  const version = ok([bun, "x", "zerobus-bun", "version"], project);
  expect(version).toContain(join("node_modules", `zerobus-bun-${tag}`, localServerFile));
  const bad = run([bun, "x", "zerobus-bun", "bogus"], project);
  expect(bad.code).toBe(2);
  expect(bad.out).toContain('unknown command "bogus"');
  const badFlag = run([bun, "x", "zerobus-bun", "demo", "--records", "x"], project);
  expect(badFlag.code).toBe(2);
  expect(badFlag.out).toContain("--records needs a positive integer");
}, TIMEOUT);

/** Compiles `entry` with the plain command (the platform package's library is embedded); runs it alone in an empty directory. */
function compileAndRun(entry: string, args: string[]): string {
  const exe = join(work, basename(entry, ".ts"));
  ok([bun, "build", "--compile", entry, "--outfile", exe], project);
  const alone = mkdtempSync(join(work, "alone-"));
  copyFileSync(exe, join(alone, basename(exe)));
  const out = ok([join(alone, basename(exe)), ...args], alone);
  expect(readdirSync(alone)).toEqual([basename(exe)]);
  return out;
}

test("bun build --compile of an app without Arrow, apache-arrow absent", () => {
  expect(existsSync(join(project, "node_modules", "apache-arrow"))).toBe(false);
  writeFileSync(
    join(project, "plain-app.ts"),
    `import { ZerobusSdk, libraryPath } from "zerobus-bun";
const [endpoint, table] = process.argv.slice(2);
const sdk = new ZerobusSdk({ endpoint: endpoint! });
const stream = await sdk.createStream({ table: table!, recordType: "json", headers: { authorization: "Bearer app" } });
for (let i = 0; i < 300; i++) stream.submit({ i, from: "plain-app" });
await stream.close();
// Arrow APIs without apache-arrow: a clear error naming the package.
try {
  await sdk.createArrowStream({ table: table!, schema: { fields: [] } as any, headers: { authorization: "Bearer app" } });
} catch (e) {
  console.log("arrow error:", (e as Error).message);
}
sdk.close();
console.log(\`ingested 300 records (\${libraryPath})\`);
`,
  );
  const f = fixture();
  try {
    const out = compileAndRun(join(project, "plain-app.ts"), [f.server.url, TABLE]);
    expect(out).toContain("ingested 300 records (/$bunfs");
    expect(out).toContain("arrow error: an apache-arrow Schema needs the apache-arrow package installed");
    expect(f.server.records(TABLE).length).toBe(300);
  } finally {
    f.close();
  }
}, TIMEOUT);

test("bun build --compile of an Arrow app, apache-arrow installed", () => {
  const version = JSON.parse(readFileSync(join(root, "node_modules", "apache-arrow", "package.json"), "utf8")).version;
  ok(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", `apache-arrow@${version}`], project);
  writeFileSync(
    join(project, "arrow-app.ts"),
    `import { ZerobusSdk } from "zerobus-bun";
import { tableFromArrays } from "apache-arrow";
const [endpoint, table] = process.argv.slice(2);
const sdk = new ZerobusSdk({ endpoint: endpoint! });
const t = tableFromArrays({ id: Int32Array.from({ length: 200 }, (_, i) => i), name: Array.from({ length: 200 }, (_, i) => "n" + i) });
const stream = await sdk.createArrowStream({ table: table!, schema: t.schema, headers: { authorization: "Bearer app" } });
await stream.ingestBatch(t);
await stream.close();
sdk.close();
console.log("ingested 200 rows from an apache-arrow Table");
`,
  );
  const f = fixture();
  try {
    const out = compileAndRun(join(project, "arrow-app.ts"), [f.server.url, TABLE]);
    expect(out).toContain("ingested 200 rows");
    const rows = f.server.records(TABLE);
    expect(rows.length).toBe(200);
    expect(rows[199]).toEqual({ id: 199, name: "n199" });
  } finally {
    f.close();
  }
}, TIMEOUT);

test("npm publish --dry-run passes for all nine packages", () => {
  const dirs = [root, ...readdirSync(join(root, "prebuilds"), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(root, "prebuilds", d.name))];
  expect(dirs.length).toBe(9);
  for (const dir of dirs) {
    // A copy, so that the host's package can hold its binaries as when it is published.
    const copy = join(work, "publish", basename(dir));
    mkdirSync(copy, { recursive: true });
    if (dir === root) {
      // dist/ as the pack in beforeAll built it; the copy has no scripts/, so prepack is not run again.
      for (const f of ["package.json", "README.md", "src", "dist", "proto"]) cpSync(join(root, f), join(copy, f), { recursive: true });
    } else {
      cpSync(dir, copy, { recursive: true });
      if (basename(dir) === tag) for (const f of [libraryFile, localServerFile]) copyFileSync(join(project, "node_modules", `zerobus-bun-${tag}`, f), join(copy, f));
    }
    const out = ok(["npm", "publish", "--dry-run", "--json", "--loglevel=error", ...(dir === root ? ["--ignore-scripts"] : [])], copy);
    const name = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name as string;
    const report = JSON.parse(out.slice(out.indexOf("{")))[name];
    expect(report?.name).toBe(name);
    const files = (report.files as { path: string }[]).map((f) => f.path);
    if (dir === root) expect(files).toEqual(expect.arrayContaining(["src/cli.ts", "dist/index.d.ts"]));
    // The other platforms' binaries come from scripts/cross-build.ts (checked by verify-prebuilds).
    if (basename(dir) === tag) expect(files.sort()).toEqual([...PLATFORM_SOURCES, libraryFile, localServerFile].sort());
  }
}, TIMEOUT);
