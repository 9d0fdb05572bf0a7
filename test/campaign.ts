// A randomized fault campaign, in the manner of FoundationDB's simulation and Jepsen: each run
// drives one stream (JSON or Arrow) with a seeded random sequence of API calls (ingest, batches,
// submit, flush, waits, close, recreate) while a TCP relay (test/relay.ts) and the local server
// inject random faults (dead and black-holed connections, slow links, latency, resets,
// half-closes; dropped streams, server errors, close signals, slow, lost, withheld, bogus and
// backwards acks). After every run it checks invariants:
//   - every record whose promise resolved (or that a successful flush, wait or close covered) is
//     stored, intact;
//   - nothing is stored that was not ingested, nor anything ingested after close() began;
//   - duplicates appear only when the stream recovered, and are counted;
//   - every call settles: nothing is left pending once close() settles, and close() settles
//     within its budget (flushTimeoutMs, plus slack for the machine);
//   - every rejection is a typed ZerobusError;
//   - the caller's buffers come back (none held once the run's streams are closed).
// The sequence of calls is a function of the seed; the network's timing is not, so a failure is
// reported with its seed and the log of what the run did. test/campaign.test.ts runs a short
// campaign in `bun test`; scripts/campaign.ts runs long ones.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int32, Table, tableFromIPC, Utf8, vectorFromArray } from "apache-arrow";
import { startLocalServer, ZerobusError, ZerobusSdk, type Fault, type LocalServer, type ZerobusStream } from "../src/index";
import { heldCount } from "../src/memory";
import { startRelay, type Relay, type RelayFault } from "./relay";

/** A small, fast, seedable PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RunResult {
  seed: number;
  kind: "json" | "arrow";
  ops: number;
  records: number;
  stored: number;
  duplicates: number;
  recoveries: number;
  failed: boolean;
  /** Invariants that did not hold (empty: the run passed). */
  violations: string[];
  log: string[];
}

export interface Campaign {
  server: LocalServer;
  relay: Relay;
  run(seed: number): Promise<RunResult>;
  close(): void;
}

/** What the campaign knows about one record. */
interface Rec {
  n: number;
  /** resolved: its promise resolved (or a successful flush/wait/close covered it). */
  state: "pending" | "resolved" | "rejected" | "refused";
  /** Taken by a stream (not refused at the call). */
  taken: boolean;
  /** Ingested after close() began: must never be stored. */
  afterClose: boolean;
  /** The stream (0: first, 1: recreated) and its logical offset, when known. */
  stream: number;
  offset: number;
  /** Carried to a recreated stream (it was unacknowledged when its stream failed). */
  carried: boolean;
}

/** The pad of record `n`: its length and characters follow from n, so a stored row shows whether it is intact. */
function pad(n: number): string {
  const len = (n * 7919) % 97;
  return String.fromCharCode(97 + (n % 26)).repeat(len) + `:${n}`;
}

/** A large pad for some records, so that byte records go zero-copy (over 1 KiB; some over 64 KiB). */
function bigPad(n: number, size: number): string {
  return `${n}:`.padEnd(size, String.fromCharCode(65 + (n % 26)));
}

const enc = new TextEncoder();
const RETRYABLE_CODES = ["UNAVAILABLE", "INTERNAL", "ABORTED", "RESOURCE_EXHAUSTED", "UNKNOWN"];
const FATAL_CODES = ["INVALID_ARGUMENT", "FAILED_PRECONDITION", "PERMISSION_DENIED", "NOT_FOUND"];

/** Counts this process's open file descriptors and threads (Linux). */
export function resources(): { fds: number; threads: number } {
  try {
    const fds = readdirSync("/proc/self/fd").length;
    const threads = Number(/Threads:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0);
    return { fds, threads };
  } catch {
    return { fds: 0, threads: 0 };
  }
}

export async function startCampaign(): Promise<Campaign> {
  const dataDir = mkdtempSync(join(tmpdir(), "zerobus-campaign-"));
  const server = startLocalServer({ fsync: false, autoCreateTables: true, dataDir });
  const relay = await startRelay(server.url);
  return {
    server,
    relay,
    run: (seed) => runOnce(server, relay, seed),
    close() {
      relay.close();
      server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function runOnce(server: LocalServer, relay: Relay, seed: number): Promise<RunResult> {
  const r = rng(seed);
  // Decisions taken only when something happened (a stream failed) draw from their own
  // generator, so the rest of the sequence of calls stays a function of the seed.
  const onFailure = rng(seed ^ 0x5bd1e995);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const log: string[] = [];
  const t0 = performance.now();
  const note = (s: string) => log.push(`${((performance.now() - t0) / 1000).toFixed(2)} ${s}`);
  const violations: string[] = [];
  const kind: "json" | "arrow" = r() < 0.25 ? "arrow" : "json";
  const table = `main.default.c${seed >>> 0}_${Date.now() % 100000}`;
  await server.clearFaults();
  await relay.set({ up: {}, down: {}, scope: "all" });

  const opts = {
    headers: { authorization: "Bearer campaign" },
    serverLackOfAckTimeoutMs: int(1000, 3000),
    recoveryRetries: int(2, 6),
    recoveryBackoffMs: int(10, 200),
    recoveryTimeoutMs: int(1000, 3000),
    flushTimeoutMs: int(4000, 10000),
    submitTimeoutMs: int(2000, 5000),
    maxInflightRecords: pick([20, 200, 5000, 1_000_000]),
    maxInflightBytes: pick([256 * 1024, 4 << 20, 256 << 20]),
    zeroCopy: r() < 0.5,
  };
  note(`seed ${seed} ${kind} table ${table} ${JSON.stringify(opts)}`);
  const direct = r() < 0.1; // a few runs without the relay
  const sdk = new ZerobusSdk({ endpoint: direct ? server.url : relay.url });
  const recs: Rec[] = [];
  const promises: Promise<unknown>[] = [];
  let closing = false;
  let streamNo = 0;
  let recoveries = 0;
  let ops = 0;

  const arrowTable = (rs: Rec[]) =>
    new Table({ n: vectorFromArray(rs.map((x) => x.n), new Int32()), pad: vectorFromArray(rs.map((x) => pad(x.n)), new Utf8()) });
  // An Arrow stream is driven through its inner stream (the same calls, batches as records).
  type Any = ZerobusStream<any>;
  const open = async (): Promise<Any> => {
    if (kind === "arrow") return (await sdk.createArrowStream({ table, schema: arrowTable([]).schema, ...opts })).inner;
    return sdk.createStream({ table, recordType: "json", ...opts });
  };

  const typed = (e: unknown, what: string) => {
    if (!(e instanceof ZerobusError)) violations.push(`${what} rejected with a non-ZerobusError: ${String(e)}`);
  };

  let s: Any;
  try {
    s = await open();
  } catch (e) {
    typed(e, "createStream");
    note(`createStream failed: ${String(e)}`);
    sdk.close();
    return { seed, kind, ops, records: 0, stored: 0, duplicates: 0, recoveries, failed: true, violations, log };
  }

  const newRecs = (k: number): Rec[] => {
    const out: Rec[] = [];
    for (let i = 0; i < k; i++) {
      const rec: Rec = { n: recs.length, state: "pending", taken: false, afterClose: closing, stream: streamNo, offset: -1, carried: false };
      recs.push(rec);
      out.push(rec);
    }
    return out;
  };
  const json = (rec: Rec, form: number): unknown => {
    const row = { n: rec.n, pad: pad(rec.n) };
    if (form === 0) return row;
    if (form === 1) return JSON.stringify(row);
    const bytes =
      form === 2
        ? enc.encode(JSON.stringify(row)) // small bytes: copied
        : enc.encode(JSON.stringify({ n: rec.n, pad: bigPad(rec.n, form === 3 ? 4000 : 70_000) })); // in place with zeroCopy
    given.push(bytes);
    return bytes;
  };

  /**
   * Without zeroCopy the caller may do anything to its arrays once a call returned: after each
   * call they are overwritten, or their buffers transferred away (the stored records must not change).
   */
  const given: Uint8Array[] = [];
  const abuse = () => {
    if (opts.zeroCopy) return void (given.length = 0);
    for (const a of given.splice(0)) {
      if (a.byteLength === 0) continue;
      if (onFailure() < 0.5) a.fill(0x20);
      else void (a.buffer as ArrayBuffer).transfer();
    }
  };

  /** Marks records resolved/rejected when `p` settles. */
  const track = (p: Promise<number>, rs: Rec[]) => {
    for (const x of rs) x.taken = true;
    const q = p.then(
      (offset) => {
        for (const x of rs) {
          x.state = "resolved";
          x.offset = offset;
        }
      },
      (e) => {
        typed(e, "ingest");
        for (const x of rs) x.state = x.state === "pending" ? "rejected" : x.state;
      },
    );
    promises.push(q);
  };
  const refuse = (rs: Rec[], e: unknown) => {
    typed(e, "a call");
    for (const x of rs) {
      x.state = "refused";
      x.taken = false;
    }
  };
  /** Records submitted (no promise) on the current stream, by offset: a flush or wait resolves them. */
  const submitted: { rec: Rec; offset: number; stream: number }[] = [];
  const resolveUpTo = (offset: number, stream: number) => {
    for (const x of submitted) if (x.stream === stream && x.offset <= offset && x.rec.state === "pending") x.rec.state = "resolved";
  };

  const steps = int(15, 45);
  for (let step = 0; step < steps; step++) {
    ops++;
    const op = r();
    try {
      if (op < 0.3) {
        // a burst of single ingests
        const k = int(1, 300);
        const form = kind === "arrow" ? 0 : pick([0, 0, 1, 2, 3, 4]);
        for (const rec of newRecs(k)) {
          if (kind === "arrow") track(s.ingest(arrowTable([rec])), [rec]);
          else track(s.ingest(json(rec, form) as any), [rec]), abuse();
        }
        note(`ingest x${k} form ${form}`);
      } else if (op < 0.42) {
        const k = int(1, 500);
        const rs = newRecs(k);
        if (kind === "arrow") track(s.ingest(arrowTable(rs)), rs);
        else {
          const form = pick([0, 1, 2, 3]);
          track(s.ingestBatch(rs.map((x) => json(x, form)) as any), rs);
          abuse();
        }
        note(`batch of ${k}`);
      } else if (op < 0.52) {
        // submit: blocks for capacity (at most submitTimeoutMs)
        const k = int(1, 200);
        const rs = newRecs(k);
        for (const rec of rs) {
          if (kind === "arrow") {
            const o = s.submit(arrowTable([rec]));
            rec.taken = true;
            submitted.push({ rec, offset: o, stream: streamNo });
          } else {
            const o = s.submit(json(rec, pick([0, 2, 3])) as any);
            rec.taken = true;
            submitted.push({ rec, offset: o, stream: streamNo });
            abuse();
          }
        }
        note(`submit x${k}`);
      } else if (op < 0.6) {
        const last = s.lastOffset;
        note(`flush (last ${last})`);
        await s.flush();
        resolveUpTo(last, streamNo);
        note("flushed");
      } else if (op < 0.64) {
        const last = s.lastOffset;
        if (last >= 0) {
          const o = int(0, last);
          await s.waitForOffset(o);
          resolveUpTo(o, streamNo);
          note(`waited for ${o}`);
        }
      } else if (op < 0.78) {
        const f = networkFault(r, pick, int);
        if (f === "reset") await relay.reset();
        else await relay.set(f);
        note(`network fault ${JSON.stringify(f)}`);
      } else if (op < 0.84) {
        await relay.set({ up: {}, down: {}, scope: "all" });
        note("network healed");
      } else if (op < 0.92) {
        const f = serverFault(r, pick, int);
        await server.addFault({ table, ...f });
        note(`server fault ${JSON.stringify(f)}`);
      } else {
        const ms = int(0, 300);
        await Bun.sleep(ms);
        note(`slept ${ms} ms`);
      }
    } catch (e) {
      typed(e, "an operation");
      note(`operation failed: ${e instanceof Error ? e.message : String(e)}`);
      // A submit refused for capacity (TIMEOUT) or a failed stream: the records of this step that
      // no stream took are marked refused; taken ones settle with their stream.
      for (const x of recs) if (x.state === "pending" && !x.taken) refuse([x], e);
    }
    if (s.state === "failed") {
      recoveries += Math.max(0, s.stats().streamsOpened - 1);
      note(`stream failed: ${s.error?.message}`);
      // Recreate it once: the new stream queues what the failed one had not acknowledged.
      if (streamNo === 0 && onFailure() < 0.7) {
        try {
          const unacked = s.unackedRecords();
          s = await sdk.recreateStream(s);
          streamNo++;
          // What the new stream queued first: those records must land if it closes cleanly.
          for (const u of unacked) {
            for (const bytes of u.records) {
              const ns = kind === "arrow" ? [...tableFromIPC(bytes).getChild("n")!].map(Number) : [JSON.parse(new TextDecoder().decode(bytes)).n as number];
              for (const n of ns) {
                const rec = recs[n];
                if (rec) {
                  rec.carried = true;
                  rec.stream = streamNo;
                }
              }
            }
          }
          recoveries++; // a replay of what was not acknowledged, as a recovery is
          note(`recreated with ${unacked.length} requests`);
          continue;
        } catch (e) {
          typed(e, "recreateStream");
          note(`recreate failed: ${String(e)}`);
        }
      }
      break;
    }
  }

  // Heal, then close: close() must stop intake at once and settle within its budget.
  await relay.set({ up: {}, down: {}, scope: "all" });
  await server.clearFaults();
  const last = s.lastOffset;
  closing = true;
  note(`close (last ${last})`);
  // close() is held to flushTimeoutMs; the slack is for a loaded machine.
  const budget = opts.flushTimeoutMs + 5_000;
  let closeOk = false;
  const closed = s.close().then(
    () => (closeOk = true),
    (e) => {
      typed(e, "close");
      note(`close failed: ${e instanceof Error ? e.message : String(e)}`);
    },
  );
  // Intake stops at once: a record offered now is refused, and must never be stored.
  const late = newRecs(1);
  try {
    if (kind === "arrow") track(s.ingest(arrowTable(late)), late);
    else track(s.ingest(json(late[0]!, 0) as any), late);
  } catch (e) {
    refuse(late, e);
  }
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  const hung = await Promise.race([
    closed.then(() => false),
    new Promise<boolean>((res) => (watchdog = setTimeout(() => res(true), budget))),
  ]);
  clearTimeout(watchdog);
  if (hung) violations.push(`close() did not settle within ${budget} ms`);
  if (closeOk) resolveUpTo(last, streamNo);
  const stats = s.stats();
  recoveries += Math.max(0, stats.streamsOpened - 1);
  const failed = s.state === "failed";
  sdk.close();

  // Nothing may still be pending once close() settled.
  await Promise.race([Promise.all(promises), Bun.sleep(2000)]);
  const pending = recs.filter((x) => x.state === "pending" && x.taken && !submitted.some((y) => y.rec === x));
  if (!hung && pending.length > 0) violations.push(`${pending.length} ingest promises still pending after close() settled (first: ${pending[0]!.n})`);
  if (late[0]!.state === "resolved") violations.push("a record ingested after close() began was acknowledged");

  // What the table holds.
  const rows = server.records<{ n: number; pad: string }>(table);
  const count = new Map<number, number>();
  for (const row of rows) {
    const rec = recs[row.n];
    if (!rec) {
      violations.push(`stored row n=${row.n} was never ingested`);
      continue;
    }
    const want = row.pad === pad(row.n) || row.pad === bigPad(row.n, 4000) || row.pad === bigPad(row.n, 70_000);
    if (!want) violations.push(`stored row n=${row.n} is corrupt: pad ${JSON.stringify(row.pad.slice(0, 40))}`);
    if (rec.afterClose || rec.state === "refused") violations.push(`stored row n=${row.n} was refused at the call (${rec.afterClose ? "after close() began" : "refused"})`);
    count.set(row.n, (count.get(row.n) ?? 0) + 1);
  }
  let duplicates = 0;
  for (const c of count.values()) duplicates += c - 1;
  if (duplicates > 0 && recoveries === 0) violations.push(`${duplicates} duplicate rows without any recovery`);
  const lost = recs.filter((x) => x.state === "resolved" && !count.has(x.n));
  if (lost.length > 0) violations.push(`${lost.length} acknowledged records not stored (first: n=${lost[0]!.n})`);
  if (closeOk) {
    // Everything the closed stream took (and did not reject), and everything carried to it.
    const unstored = recs.filter(
      (x) => (x.carried || (x.taken && x.state !== "refused" && x.state !== "rejected")) && x.stream === streamNo && !x.afterClose && !count.has(x.n),
    );
    if (unstored.length > 0) violations.push(`close() succeeded but ${unstored.length} records its stream took are not stored (first: n=${unstored[0]!.n})`);
  }

  // The caller's buffers come back once the streams are gone.
  for (let i = 0; i < 50 && heldCount() > 0; i++) {
    Bun.gc(true);
    await Bun.sleep(20);
  }
  if (heldCount() > 0) violations.push(`${heldCount()} caller buffers still held after the run`);
  note(`done: ${recs.length} records, ${rows.length} rows, ${duplicates} duplicates, ${recoveries} recoveries${failed ? ", failed" : ""}`);
  return { seed, kind, ops, records: recs.length, stored: count.size, duplicates, recoveries, failed, violations, log };
}

function networkFault(r: () => number, pick: <T>(xs: readonly T[]) => T, int: (a: number, b: number) => number): RelayFault | "reset" {
  const which = pick(["stall", "blackhole", "slow", "latency", "reset", "half-close", "one-way"] as const);
  switch (which) {
    case "stall":
      return { up: { mode: "stall" }, down: { mode: "stall" } };
    case "blackhole":
      return { up: { mode: "blackhole" }, down: { mode: "blackhole" } };
    case "slow": {
      const rate = pick([100_000, 300_000, 1_000_000]);
      return { up: { bytesPerSecond: rate }, down: { bytesPerSecond: rate }, scope: r() < 0.5 ? "all" : "current" };
    }
    case "latency":
      return { up: { latencyMs: int(10, 300) }, down: { latencyMs: int(10, 300) }, scope: "all" };
    case "reset":
      return "reset";
    case "half-close":
      return { up: { mode: "close" } };
    case "one-way":
      return r() < 0.5 ? { down: { mode: "stall" } } : { up: { mode: "stall" } };
  }
}

function serverFault(r: () => number, pick: <T>(xs: readonly T[]) => T, int: (a: number, b: number) => number): Fault {
  const which = pick(["drop", "fail", "close", "delay", "lose", "withhold", "beyond", "backwards", "before", "create", "rows"] as const);
  switch (which) {
    case "drop":
      return { dropAfterRecords: int(1, 2000) };
    case "fail":
      // Mostly retryable; sometimes a status that fails the stream (then it may be recreated).
      return { failAfterRecords: { records: int(1, 2000), code: pick(r() < 0.8 ? RETRYABLE_CODES : FATAL_CODES), message: "campaign" } };
    case "close":
      return { closeSignalAfterRecords: { records: int(1, 2000), durationMs: int(50, 1000) } };
    case "delay":
      return { ackDelayMs: int(10, 400) };
    case "lose":
      return { loseAcks: true, dropAfterRecords: int(1, 2000) };
    case "withhold":
      return { withholdAcks: true };
    case "beyond":
      return { ackBeyond: { records: int(1, 500), offset: int(1, 1e9) }, ackDelayMs: 20 };
    case "backwards":
      return { ackBackwards: true };
    case "before":
      return { ackBeforeCreate: true };
    case "rows": // Arrow: ack_up_to_records behind ack_up_to_offset
      return { rowsBehind: true };
    case "create":
      return { failCreate: { code: "UNAVAILABLE", message: "campaign" }, times: int(1, 2) };
  }
}
