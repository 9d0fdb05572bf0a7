import { expect, test } from "bun:test";
import { lib } from "../src/native";
import { drainReleased, hold, heldCount, sink } from "../src/memory";

// Releases tokens through this realm's sink, where the library's releases go.
const release = (token: number) => lib.zerobus_sink_push(sink, token);

test("held buffers are freed when their tokens are released, in any order", () => {
  const before = heldCount();
  const tokens = Array.from({ length: 10_000 }, (_, i) => hold(new Uint8Array(1 + (i % 7))));
  expect(heldCount()).toBe(before + 10_000);
  for (let i = tokens.length - 1; i >= 0; i -= 2) release(tokens[i]!);
  drainReleased();
  expect(heldCount()).toBe(before + 5_000);
  for (let i = 0; i < tokens.length; i += 2) release(tokens[i]!);
  drainReleased();
  expect(heldCount()).toBe(before);
});

test("an old token that is never released does not stop the rest from being freed", () => {
  const before = heldCount();
  const stuck = hold("stuck");
  for (let round = 0; round < 3; round++) {
    const tokens = Array.from({ length: 700_000 }, () => hold(1));
    for (const t of tokens) release(t);
    drainReleased();
  }
  expect(heldCount()).toBe(before + 1);
  release(stuck);
  drainReleased();
  expect(heldCount()).toBe(before);
});
