// The C library detection that picks linux-<arch>-gnu or linux-<arch>-musl (src/libc.ts): it agrees
// with the loader Bun's executable names, under glibc Bun and under Bun's musl build alike
// (scripts/verify-prebuilds.ts runs this file under the musl build).
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { elfInterpreter, linuxLibc } from "../src/libc";
import { platformTag } from "../src/paths";

test.if(process.platform === "linux")("the libc of the platform tag is the one Bun's loader belongs to", () => {
  const interp = elfInterpreter(process.execPath);
  expect(interp).toMatch(/ld-linux|ld-musl|musl/);
  const want = /musl/.test(interp!) ? "musl" : "gnu";
  expect(linuxLibc()).toBe(want);
  expect(platformTag()).toBe(`linux-${process.arch}-${want}`);
  // glibc Bun reports its glibc version; Bun's musl build reports none
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  expect(typeof header.glibcVersionRuntime === "string").toBe(want === "gnu");
});

test("elfInterpreter: undefined for what is not a dynamically linked ELF executable", () => {
  const f = join(tmpdir(), `zerobus-libc-${process.pid}.txt`);
  writeFileSync(f, "not an ELF file at all, but long enough to read a header from it.........");
  expect(elfInterpreter(f)).toBeUndefined();
  expect(elfInterpreter(join(tmpdir(), "does-not-exist-zerobus"))).toBeUndefined();
});
