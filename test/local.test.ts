// startLocalServer runs the zerobus-local executable as a child process: it must start or fail
// with the reason, stop when asked, never keep the parent alive, and end with the parent.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalServer } from "../src/index";
import { hasEnded, localServerExecutable } from "../src/local";

const alive = (pid: number) => !hasEnded(pid);

test("the server is the zerobus-local executable, in its own process", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-"));
  const server = startLocalServer({ dataDir: dir, tables: ["a.b.c"] });
  try {
    expect(server.pid).toBeGreaterThan(0);
    expect(server.pid).not.toBe(process.pid);
    expect(alive(server.pid)).toBe(true);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await server.stats()).toHaveProperty("committedRecords");
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  // stop() returns once the server has finished: its port no longer answers.
  await expect(fetch(`${server.url}/control/stats`)).rejects.toThrow();
  server.stop(); // twice is fine
});

test("a server that cannot start throws its reason", () => {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-"));
  const first = startLocalServer({ dataDir: dir });
  try {
    const port = Number(new URL(first.url).port);
    expect(() => startLocalServer({ dataDir: dir, port })).toThrow(/cannot start local server .*cannot bind 127\.0\.0\.1:\d+/);
    expect(() => startLocalServer({ dataDir: dir, tlsCertPem: join(dir, "none.pem") })).toThrow("tlsCertPem and tlsKeyPem must be set together");
    // Options that do not even parse are reported too (not a timeout).
    expect(() => startLocalServer({ dataDir: dir, port: 70_000 })).toThrow(/--config: .*70000/);
  } finally {
    first.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an interrupt (Ctrl-C reaches the whole process group) leaves the server to its parent", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-"));
  const server = startLocalServer({ dataDir: dir });
  try {
    process.kill(server.pid, "SIGINT");
    for (let i = 0; i < 5; i++) {
      Bun.sleepSync(50);
      expect(alive(server.pid)).toBe(true);
      expect(await server.stats()).toHaveProperty("committedRecords");
    }
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const until = Date.now() + 30_000;
  while (alive(server.pid) && Date.now() < until) Bun.sleepSync(20);
  expect(alive(server.pid)).toBe(false);
});

test("a script that never stops its server still exits, and the server ends with it", () => {
  const dir = mkdtempSync(join(tmpdir(), "zerobus-local-"));
  try {
    const script = join(dir, "leaves-server.ts");
    writeFileSync(
      script,
      `import { startLocalServer } from ${JSON.stringify(join(import.meta.dir, "..", "src", "index"))};
const s = startLocalServer({ dataDir: ${JSON.stringify(dir)} });
console.log(s.pid);
`,
    );
    const r = Bun.spawnSync([process.execPath, script], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    expect(r.exitCode).toBe(0); // not kept alive by the child (a timeout would kill it: exit code null)
    const pid = Number(r.stdout.toString().trim());
    expect(pid).toBeGreaterThan(0);
    // Its standard input closed with the parent: it shuts down (within its 5 s drain at most).
    const until = Date.now() + 30_000;
    while (alive(pid) && Date.now() < until) Bun.sleepSync(20);
    expect(alive(pid)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the executable is found and reports bad flags with exit code 2", () => {
  const r = Bun.spawnSync([localServerExecutable(), "--bogus"], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("unknown argument: --bogus");
});
