// Long randomized run of the Arrow IPC header walker (rust/core/tests/ipc_random/).
//
//   bun scripts/fuzz-ipc.ts [--iters N] [--seed S] [--minutes M] [--jobs J] [--max-failures F]
//
// Builds the test with cargo (release), then runs its `random_mutations_are_rejected_cleanly`
// test with ZEROBUS_FUZZ_SEED / ZEROBUS_FUZZ_ITERS: one run of N cases for seed S, or, with
// --minutes, runs on seeds S, S+1, S+2, ... until the time is up (J at a time; it stops early
// after F failing runs, default 5). Reports the cases run and every failure (its seed, case and
// input bytes; the full output is saved under rust/target/fuzz-ipc/). Exit code 1 if any failed.
//
// A failure reproduces with
//   ZEROBUS_FUZZ_SEED=<seed> ZEROBUS_FUZZ_CASE=<case> cargo test --release -p zerobus-core \
//     --test ipc_random -- --exact random_mutations_are_rejected_cleanly --nocapture

import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const TEST = "random_mutations_are_rejected_cleanly";
const root = resolve(import.meta.dir, "..");
const rustDir = join(root, "rust");
const outDir = join(rustDir, "target", "fuzz-ipc");

function usage(msg?: string): never {
  if (msg) console.error(`fuzz-ipc: ${msg}`);
  console.error("usage: bun scripts/fuzz-ipc.ts [--iters N] [--seed S] [--minutes M] [--jobs J] [--max-failures F]");
  process.exit(2);
}

function parseArgs(argv: string[]) {
  const opts = { iters: 200_000, seed: undefined as bigint | undefined, minutes: undefined as number | undefined, jobs: 1, maxFailures: 5 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? "").split("=", 2);
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case "--iters":
        opts.iters = Number(value());
        if (!Number.isInteger(opts.iters) || opts.iters <= 0) usage("--iters must be a positive integer");
        break;
      case "--seed":
        try {
          opts.seed = BigInt(value()) & 0xffff_ffff_ffff_ffffn;
        } catch {
          usage("--seed must be an integer (decimal or 0x-hex)");
        }
        break;
      case "--minutes":
        opts.minutes = Number(value());
        if (!(opts.minutes > 0)) usage("--minutes must be positive");
        break;
      case "--jobs":
        opts.jobs = Number(value());
        if (!Number.isInteger(opts.jobs) || opts.jobs <= 0) usage("--jobs must be a positive integer");
        break;
      case "--max-failures":
        opts.maxFailures = Number(value());
        if (!Number.isInteger(opts.maxFailures) || opts.maxFailures <= 0) usage("--max-failures must be a positive integer");
        break;
      case "-h":
      case "--help":
        usage();
      default:
        usage(`unknown argument ${argv[i]}`);
    }
  }
  return opts;
}

const hex = (s: bigint) => `0x${s.toString(16)}`;
const nice = Bun.which("nice");
const niced = (cmd: string[]) => (nice ? [nice, "-n", "10", ...cmd] : cmd);

/** Builds the test binary (release, as the suite runs it) and returns its path. */
async function build(): Promise<string> {
  const cmd = niced(["cargo", "test", "--release", "-p", "zerobus-core", "--test", "ipc_random", "--no-run", "--message-format=json-render-diagnostics"]);
  console.log(`fuzz-ipc: building (${cmd.join(" ")})`);
  const proc = Bun.spawn(cmd, { cwd: rustDir, stdout: "pipe", stderr: "inherit" });
  const out = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error("cargo build of the ipc_random test failed");
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const msg = JSON.parse(line);
    if (msg.reason === "compiler-artifact" && msg.target?.name === "ipc_random" && msg.executable) return msg.executable;
  }
  throw new Error("cargo did not report the ipc_random test executable");
}

type Stats = Record<string, number>;
type RunResult = { seed: bigint; ok: boolean; iters: number; seconds: number; stats: Stats; output: string; exit: string };

async function runSeed(exe: string, seed: bigint, iters: number): Promise<RunResult> {
  const started = performance.now();
  const proc = Bun.spawn(niced([exe, "--exact", TEST, "--nocapture", "--test-threads=1"]), {
    cwd: rustDir,
    env: { ...process.env, ZEROBUS_FUZZ_SEED: hex(seed), ZEROBUS_FUZZ_ITERS: String(iters), RUST_BACKTRACE: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  // A run that hangs (an endless loop in the walker) is a failure too.
  const limitMs = 60_000 + iters / 2;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill();
  }, limitMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  const output = stdout + stderr;
  // "ipc fuzz: seed=0x.. iters=N elapsed=..s Stats { cases: N, schema_ok: .., ... }"
  const summary = /ipc fuzz: seed=\S+ iters=(\d+) elapsed=\S+ Stats \{([^}]*)\}/.exec(output);
  const stats: Stats = {};
  for (const [, key, n] of summary?.[2]?.matchAll(/(\w+): (\d+)/g) ?? []) if (key) stats[key] = Number(n);
  const ok = code === 0 && summary !== null && /test result: ok\. 1 passed/.test(output);
  const exit = timedOut
    ? `killed after ${limitMs / 1000}s (hang?)`
    : proc.signalCode
      ? `signal ${proc.signalCode}`
      : `exit ${code}`;
  return { seed, ok, iters: stats.cases ?? 0, seconds, stats, output, exit };
}

/** The failure block the test prints (seed, case, input), or the tail of the output. */
function failureText(r: RunResult): string {
  const i = r.output.indexOf("IPC fuzz failure");
  if (i >= 0) {
    const block = r.output.slice(i).split("\n").slice(0, 3).join("\n");
    return block.length > 4000 ? `${block.slice(0, 4000)}...` : block;
  }
  // A crash (e.g. a stack overflow aborts the process): ZEROBUS_FUZZ_TRACE=1 prints each case
  // before it runs, so the last one printed is the culprit.
  return (
    `${r.exit}; rerun with ZEROBUS_FUZZ_TRACE=1 to see the case that crashed. Last output:\n` +
    r.output.trim().split("\n").slice(-15).join("\n")
  );
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const firstSeed = opts.seed ?? BigInt(Date.now()) * 1_000_003n & 0xffff_ffff_ffff_ffffn;
  const exe = await build();
  mkdirSync(outDir, { recursive: true });

  const deadline = opts.minutes === undefined ? undefined : Date.now() + opts.minutes * 60_000;
  const started = Date.now();
  const totals: Stats = {};
  const failures: RunResult[] = [];
  let runs = 0;
  let iterations = 0;
  let nextSeed = firstSeed;
  let stop = false;
  process.on("SIGINT", () => {
    if (stop) process.exit(130);
    stop = true;
    console.log("\nfuzz-ipc: interrupted, finishing the runs in progress (Ctrl-C again to quit)");
  });

  const more = () => !stop && failures.length < opts.maxFailures && (deadline === undefined ? runs + inFlight === 0 : Date.now() < deadline);
  let inFlight = 0;
  async function worker() {
    while (more()) {
      const seed = nextSeed;
      nextSeed = (nextSeed + 1n) & 0xffff_ffff_ffff_ffffn;
      inFlight++;
      const r = await runSeed(exe, seed, opts.iters);
      inFlight--;
      runs++;
      iterations += r.iters;
      for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
      const line = `seed ${hex(seed)}: ${r.iters} cases in ${r.seconds.toFixed(1)}s`;
      if (r.ok) {
        console.log(`fuzz-ipc: ${line} ok (total ${iterations} cases, ${runs} runs)`);
      } else {
        failures.push(r);
        const file = join(outDir, `failure-${hex(seed)}.log`);
        writeFileSync(file, r.output);
        console.log(`fuzz-ipc: ${line} FAILED (${r.exit}), output saved to ${file}\n${failureText(r)}`);
      }
    }
  }
  await Promise.all(Array.from({ length: opts.jobs }, worker));

  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(
    `\nfuzz-ipc: ${runs} runs, ${iterations} cases in ${minutes} min, seeds ${hex(firstSeed)}..${hex((nextSeed - 1n) & 0xffff_ffff_ffff_ffffn)}, ${opts.iters} cases per run`,
  );
  if (Object.keys(totals).length) {
    console.log(`fuzz-ipc: totals ${Object.entries(totals).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  }
  if (failures.length === 0) {
    console.log("fuzz-ipc: no failure");
    return;
  }
  console.log(`fuzz-ipc: ${failures.length} failing run(s):`);
  for (const f of failures) {
    const c = /IPC fuzz failure.*\ncase: #(\d+)/.exec(f.output)?.[1];
    console.log(
      `  seed ${hex(f.seed)} (${f.exit}): ZEROBUS_FUZZ_SEED=${hex(f.seed)}${c ? ` ZEROBUS_FUZZ_CASE=${c}` : ""} ` +
        `cargo test --release -p zerobus-core --test ipc_random -- --exact ${TEST} --nocapture`,
    );
  }
  process.exitCode = 1;
}

await main();
