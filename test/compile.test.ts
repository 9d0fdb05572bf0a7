// `bun build --compile` gives one executable that ingests with no file beside it and no ZEROBUS_*
// variable, run alone in an empty directory:
// - in a user's project (zerobus-bun and its platform package installed), the plain command: the
//   platform package's library is embedded without naming it; cross-compiling (`--target`, same
//   OS, other CPU, that platform's package installed too) embeds only the target's library; the
//   local server is embedded when passed as one more entry point, and startLocalServer runs it;
// - in this source checkout, scripts/compile.ts embeds the library the tests use;
// - where nothing was embedded, the executable says where it looked and what to do (and never
//   takes a path inside the executable for a file it does not hold).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { libraryPath } from "../src/native";
import { libraryFile, localServerFile, platformTag } from "../src/paths";
import { fixture, TABLE } from "./helpers";
import { ok, otherCpuTag, root, sh, userEnv, userProject, type UserProject } from "./user-project";

const tag = platformTag();
const other = otherCpuTag();
const MARKER = "\0zerobus-bun test: the other CPU's package\0";
const TIMEOUT = { timeout: 300_000 };

// Ingests `count` records into `table` at `endpoint` (or into a local server it starts, with
// `local`), printing which library it loaded and what the executable embeds.
const APP = `import { ZerobusSdk, libraryPath, platformTag, startLocalServer } from "zerobus-bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [mode, arg1, arg2, count = "300"] = process.argv.slice(2);
const embedded = Bun.embeddedFiles.map((f) => \`\${(f as Blob & { name: string }).name}:\${f.size}\`);
console.log(\`library \${libraryPath} for \${platformTag()}; embedded \${JSON.stringify(embedded)}\`);
let endpoint = arg1!;
let table = arg2!;
let server: ReturnType<typeof startLocalServer> | undefined;
const dataDir = mkdtempSync(join(tmpdir(), "zb-app-"));
if (mode === "local") {
  table = "a.b.c";
  server = startLocalServer({ dataDir, tables: [table], fsync: false });
  endpoint = server.url;
}
const sdk = new ZerobusSdk({ endpoint });
const stream = await sdk.createStream({ table, recordType: "json", headers: { authorization: "Bearer app" } });
const n = Number(count);
for (let i = 0; i < n; i++) stream.submit({ i, from: "user-app" });
await stream.close();
sdk.close();
if (server) {
  console.log(\`local server holds \${server.records(table).length} rows\`);
  server.stop();
}
rmSync(dataDir, { recursive: true, force: true });
console.log(\`ingested \${n} records\`);
`;

/** Copies `exe` alone into an empty directory and runs it there with a user's environment and its own TMPDIR. */
function runAlone(exe: string, args: string[], tmp?: string): { code: number | null; out: string; stdout: string } {
  const alone = mkdtempSync(join(tmpdir(), "zerobus-alone-"));
  try {
    copyFileSync(exe, join(alone, basename(exe)));
    const r = sh([join(alone, basename(exe)), ...args], alone, userEnv(tmp ? { TMPDIR: tmp } : {}));
    expect(readdirSync(alone)).toEqual([basename(exe)]);
    return r;
  } finally {
    rmSync(alone, { recursive: true, force: true });
  }
}

function expectOk(r: { code: number | null; out: string }): void {
  if (r.code !== 0) console.error(r.out);
  expect(r.code).toBe(0);
}

describe("a user's project", () => {
  let project: UserProject;
  let app: string;
  beforeAll(() => {
    // The other CPU's package is installed too: a build for this machine must leave it out.
    project = userProject(other ? [tag, other] : [tag], { marked: other ? [other] : [], marker: MARKER });
    app = project.write("app.ts", APP);
  }, 300_000);
  afterAll(() => project.remove());

  test("plain `bun build --compile app.ts` embeds this platform's library", () => {
    const exe = join(project.dir, "app");
    ok([process.execPath, "build", "--compile", app, "--outfile", exe], project.dir);
    const f = fixture();
    try {
      const r = runAlone(exe, ["remote", f.server.url, TABLE]);
      expectOk(r);
      expect(r.stdout).toContain(`library /$bunfs/root/libzerobus_bun-`);
      expect(r.stdout).toContain(`for ${tag};`);
      // Only this platform's library, unmarked.
      const embedded = JSON.parse(r.stdout.match(/embedded (\[.*\])/)![1]!) as string[];
      expect(embedded).toEqual([expect.stringMatching(new RegExp(`^libzerobus_bun-\\w+\\.\\w+:${statSync(libraryPath).size}$`))]);
      expect(r.stdout).toContain("ingested 300 records");
      expect(f.server.records(TABLE).length).toBe(300);
      expect(f.server.records(TABLE)[299]).toEqual({ i: 299, from: "user-app" });
    } finally {
      f.close();
    }
  }, TIMEOUT);

  test.if(!!other)("`--target` of another CPU embeds that platform's package only", () => {
    const cpu = other!.split("-")[1]!;
    const exe = join(project.dir, "app-cross");
    const target = `bun-${process.platform === "win32" ? "windows" : process.platform}-${cpu}`;
    // This machine's Bun stands in for the target's (no download): the executable runs here and
    // takes itself for the target (process.platform and process.arch are the target's).
    ok([process.execPath, "build", "--compile", `--target=${target}`, `--compile-executable-path=${process.execPath}`, app, "--outfile", exe], project.dir);
    const f = fixture();
    try {
      const r = runAlone(exe, ["remote", f.server.url, TABLE, "50"]);
      expectOk(r);
      expect(r.stdout).toContain(`for ${other};`);
      const embedded = JSON.parse(r.stdout.match(/embedded (\[.*\])/)![1]!) as string[];
      expect(embedded).toEqual([expect.stringMatching(new RegExp(`:${statSync(libraryPath).size + MARKER.length}$`))]);
      expect(f.server.records(TABLE).length).toBe(50);
    } finally {
      f.close();
    }
  }, TIMEOUT);

  test("the local server, passed as one more entry point, is embedded and runs", () => {
    const exe = join(project.dir, "app-local");
    ok([process.execPath, "build", "--compile", app, join("node_modules", `zerobus-bun-${tag}`, localServerFile), "--outfile", exe], project.dir);
    const tmp = mkdtempSync(join(tmpdir(), "zerobus-app-tmp-"));
    try {
      const r = runAlone(exe, ["local", "", "", "200"], tmp);
      expectOk(r);
      expect(r.stdout).toContain("local server holds 200 rows");
      // The server was written to a directory of its own under TMPDIR, removed at exit.
      expect(readdirSync(tmp).filter((n) => n.startsWith("zerobus-local"))).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, TIMEOUT);

  test("without it, startLocalServer says how to embed it", () => {
    const exe = join(project.dir, "app-nolocal");
    ok([process.execPath, "build", "--compile", app, "--outfile", exe], project.dir);
    const r = runAlone(exe, ["local"]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`zerobus-bun: the zerobus-local executable was not found for ${tag}. Looked in:`);
    expect(r.out).toContain("ZEROBUS_LOCAL_BIN: not set");
    expect(r.out).toContain(`files embedded in this executable: no ${localServerFile}`);
    expect(r.out).toContain(`bun build --compile <entry> node_modules/zerobus-bun-${tag}/${localServerFile} --outfile <file>`);
    expect(r.out).not.toContain("build:native");
    expect(r.out).not.toMatch(/Looked in:\n\S/); // never an empty list
  }, TIMEOUT);

  test("without the platform package, the executable says where it looked and what to do", () => {
    const bare = userProject([]);
    try {
      const entry = bare.write("app.ts", APP);
      const exe = join(bare.dir, "app");
      ok([process.execPath, "build", "--compile", entry, "--outfile", exe], bare.dir);
      const r = runAlone(exe, ["remote", "http://127.0.0.1:1", TABLE]);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain(`zerobus-bun: native library not found for ${tag}. Looked in:`);
      expect(r.out).toContain("ZEROBUS_BUN_LIB: not set");
      expect(r.out).toContain(`package zerobus-bun-${tag}: not in this executable`);
      expect(r.out).toContain(`files embedded in this executable: no ${libraryFile.replace(/\.\w+$/, "")}`);
      expect(r.out).toContain(`install zerobus-bun-${tag}`);
      expect(r.out).not.toContain("Failed to open library");
      expect(r.out).not.toContain("build:native");
    } finally {
      bare.remove();
    }
  }, TIMEOUT);
});

describe("this source checkout", () => {
  const work = mkdtempSync(join(tmpdir(), "zerobus-compile-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const entry = join(import.meta.dir, "fixtures", "compiled-app.ts");

  test("scripts/compile.ts embeds the library", () => {
    const exe = join(work, "ingest-app");
    // The library the tests use, as scripts/compile.ts finds it (ZEROBUS_BUN_LIB or the cargo build).
    ok([process.execPath, join(root, "scripts", "compile.ts"), entry, "--outfile", exe], root, userEnv({ ZEROBUS_BUN_LIB: libraryPath }));
    const f = fixture();
    try {
      const r = runAlone(exe, [f.server.url, TABLE, "500"]);
      expectOk(r);
      expect(r.stdout).toContain("ingested 500 records (native library: /$bunfs/root/");
      const rows = f.server.records(TABLE);
      expect(rows.length).toBe(500);
      expect(rows[499]).toEqual({ i: 499, from: "compiled-app" });
    } finally {
      f.close();
    }
  }, TIMEOUT);

  test("plain `bun build --compile` embeds nothing here, and the executable says so", () => {
    const exe = join(work, "plain-app");
    ok([process.execPath, "build", "--compile", entry, "--outfile", exe], root);
    const r = runAlone(exe, ["http://127.0.0.1:1", TABLE]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`zerobus-bun: native library not found for ${tag}. Looked in:`);
    expect(r.out).not.toContain("Failed to open library");
    expect(r.out).not.toContain("/$bunfs/rust/");
    expect(r.out).toContain("scripts/compile.ts");
  }, TIMEOUT);
});
