// Long randomized fault campaigns (test/campaign.ts): runs seeds from --seed on for --minutes (or
// --runs), prints a line per run and every invariant that failed with the run's log, and a
// summary. Exit code 1 if any run failed.
//   bun scripts/campaign.ts [--minutes 60] [--runs N] [--seed 1] [--quiet]
import { resources, startCampaign } from "../test/campaign";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const minutes = arg("minutes", 10);
const maxRuns = arg("runs", Infinity);
let seed = arg("seed", Date.now() % 1_000_000);
const quiet = process.argv.includes("--quiet");

const c = await startCampaign();
const start = performance.now();
const first = seed;
let runs = 0;
let failedRuns = 0;
let records = 0;
let duplicates = 0;
let recoveries = 0;
let streamFailures = 0;
await c.run(seed - 1); // warm-up
const before = resources();
while (runs < maxRuns && performance.now() - start < minutes * 60_000) {
  const r = await c.run(seed);
  runs++;
  records += r.records;
  duplicates += r.duplicates;
  recoveries += r.recoveries;
  if (r.failed) streamFailures++;
  if (r.violations.length > 0) {
    failedRuns++;
    console.log(`FAIL seed ${seed}:\n  ${r.violations.join("\n  ")}\n  log:\n    ${r.log.join("\n    ")}`);
  } else if (!quiet) {
    console.log(`ok seed ${seed} ${r.kind} ops ${r.ops} records ${r.records} duplicates ${r.duplicates} recoveries ${r.recoveries}${r.failed ? " (stream failed)" : ""}`);
  }
  seed++;
}
const after = resources();
c.close();
const hours = (performance.now() - start) / 3_600_000;
console.log(
  `campaign: seeds ${first}..${seed - 1}, ${runs} runs in ${hours.toFixed(2)} h, ${records} records, ${recoveries} recoveries, ` +
    `${duplicates} duplicate rows, ${streamFailures} streams failed (allowed), ${failedRuns} runs broke an invariant; ` +
    `fds ${before.fds} -> ${after.fds}, threads ${before.threads} -> ${after.threads}`,
);
process.exit(failedRuns > 0 ? 1 : 0);
