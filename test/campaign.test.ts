// A short randomized fault campaign (test/campaign.ts) with fixed seeds: random calls against
// random network and server faults, checked by invariants after every run. scripts/campaign.ts
// runs long campaigns.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { resources, startCampaign, type Campaign } from "./campaign";

let c: Campaign;
beforeAll(async () => {
  c = await startCampaign();
});
afterAll(() => c.close());

const SEEDS = Array.from({ length: 12 }, (_, i) => 1000 + i);

test(
  `campaign: ${SEEDS.length} seeded runs hold every invariant; file descriptors and threads come back`,
  async () => {
    await c.run(999); // warm-up: the runtime's threads and the first connections
    const before = resources();
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const res = await c.run(seed);
      if (res.violations.length > 0) failures.push(`seed ${seed}: ${res.violations.join("; ")}\n  ${res.log.join("\n  ")}`);
    }
    Bun.gc(true);
    await Bun.sleep(500);
    const after = resources();
    expect(failures).toEqual([]);
    // The runtime keeps its threads; each run's connections and streams are gone.
    expect(after.threads).toBeLessThanOrEqual(before.threads + 2);
    expect(after.fds).toBeLessThanOrEqual(before.fds + 8);
  },
  600_000,
);
