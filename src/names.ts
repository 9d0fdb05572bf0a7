// Spelling help for names a caller got wrong: the edit distance between two names and the
// closest of a set of known names, for "did you mean" in error messages.

/** Levenshtein distance between `a` and `b`, or `limit` if it is `limit` or more. */
export function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let low = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      low = Math.min(low, cur[j]!);
    }
    if (low >= limit) return limit;
    prev = cur;
  }
  return Math.min(prev[b.length]!, limit);
}

/** Compared without case and underscores: `max_inflight_records` matches `maxInflightRecords`. */
const loose = (s: string) => s.toLowerCase().replace(/_/g, "");

/**
 * The known name closest to `key`: the same letters ignoring case and `_`, else the fewest edits,
 * if fewer than 3 (or than a quarter of the name's length plus one, for long names).
 */
export function closest(key: string, known: Iterable<string>): string | undefined {
  const k = loose(key);
  let best: string | undefined;
  let bestD = Math.max(3, (key.length >> 2) + 1);
  for (const name of known) {
    if (loose(name) === k) return name;
    const d = distance(key, name, bestD);
    if (d < bestD) (bestD = d), (best = name);
  }
  return best;
}
