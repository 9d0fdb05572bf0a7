// `bun build --compile` of an app gives one executable that ingests with no other file beside it.
import { expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixture, TABLE } from "./helpers";

test(
  "single-file executable ingests against the local server",
  () => {
    const root = join(import.meta.dir, "..");
    const build = mkdtempSync(join(tmpdir(), "zerobus-compile-"));
    const run = mkdtempSync(join(tmpdir(), "zerobus-compiled-run-"));
    const f = fixture();
    try {
      const exe = join(build, "ingest-app");
      const b = Bun.spawnSync(
        [process.execPath, join(root, "scripts", "compile.ts"), join(import.meta.dir, "fixtures", "compiled-app.ts"), "--outfile", exe],
        { stdout: "pipe", stderr: "pipe" },
      );
      if (b.exitCode !== 0) console.error(b.stdout.toString(), b.stderr.toString());
      expect(b.exitCode).toBe(0);
      // Alone in an empty directory, without the source tree or ZEROBUS_BUN_LIB.
      copyFileSync(exe, join(run, "ingest-app"));
      const env = { ...process.env };
      delete env.ZEROBUS_BUN_LIB;
      const r = Bun.spawnSync([join(run, "ingest-app"), f.server.url, TABLE, "500"], { cwd: run, env, stdout: "pipe", stderr: "pipe" });
      const out = r.stdout.toString();
      if (r.exitCode !== 0) console.error(out, r.stderr.toString());
      expect(r.exitCode).toBe(0);
      expect(out).toContain("ingested 500 records");
      expect(out).toContain("$bunfs");
      expect(readdirSync(run)).toEqual(["ingest-app"]);
      const rows = f.server.records(TABLE);
      expect(rows.length).toBe(500);
      expect(rows[499]).toEqual({ i: 499, from: "compiled-app" });
    } finally {
      f.close();
      rmSync(build, { recursive: true, force: true });
      rmSync(run, { recursive: true, force: true });
    }
  },
  { timeout: 120_000 },
);
