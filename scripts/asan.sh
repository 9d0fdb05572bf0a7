#!/usr/bin/env bash
# Runs the Rust tests of the C ABI crate (zerobus-bun-ffi: unit tests + rust/ffi/tests/*.rs) and
# of the core crate (zerobus-core: unit tests + rust/core/tests/*.rs) under AddressSanitizer, on
# Linux x86_64. Doctests are not run (they would need RUSTDOCFLAGS with the same sanitizer).
#
#   scripts/asan.sh                 # ffi + core tests, one cargo invocation (the default)
#   scripts/asan.sh --ffi           # only the ffi crate's tests
#   scripts/asan.sh --core          # only the core crate's tests
#   scripts/asan.sh --bun [FILE..]  # Bun tests against an ASan-built cdylib (see below)
#   scripts/asan.sh --all [FILE..]  # all three
#
# Toolchain: rustup here has no nightly with rust-src, so this uses Debian's rustc-web/cargo-web
# (stable, /usr/bin/rustc, /usr/bin/cargo) with RUSTC_BOOTSTRAP=1 and -Zbuild-std (std sources
# from rust-web-src), so std itself is instrumented too. Debian's rustc ships no sanitizer
# runtime (librustc-stable_rt.asan.a), so a tiny overlay sysroot in the target dir maps that name
# to LLVM's static libclang_rt.asan-x86_64.a from libclang-rt-<N>-dev, N = rustc's LLVM major
# (same LLVM, so same ASan ABI). With --target given, RUSTFLAGS reach only target crates; build
# scripts and proc-macros are built normally for the host.
#
# --bun: builds the cdylib the same way and runs `bun test` with LLVM's *shared* ASan runtime
# (libclang_rt.asan-x86_64.so, same LLVM) in LD_PRELOAD and ZEROBUS_BUN_LIB pointing at it (a
# cdylib does not carry the runtime; without the preload dlopen fails on undefined __asan_*).
# Bun itself is not instrumented: ASan checks the Rust code's accesses, and the heap blocks that
# go through malloc/free (the Rust side's; Bun's own mimalloc heap is not tracked). A canary
# (scripts/asan-bun-canary.ts) first proves the setup catches a use-after-free in the library.
# test/abi.test.ts's C program is linked through a `cc` wrapper that adds that runtime.
# Default files: test/*.test.ts except rust.test.ts (runs a plain cargo build), compile.test.ts
# (bun build --compile embeds the library), typecheck.test.ts (tsc only) and torture.test.ts
# (reruns 5 of the files in a nested `bun test` that keeps the 5 s default timeout, too short
# under ASan; that mode runs as: ZEROBUS_GC_TORTURE=1 scripts/asan.sh --bun test/basic.test.ts ..).
# Leak checking is off there: Bun exits without running LeakSanitizer.
# RUST_TEST_THREADS=1, BUN_TEST_TIMEOUT_MS (60000), ASAN_OPTIONS and BUN_ASAN_OPTIONS pass through.
#
# Idempotent: installs the Debian packages only if missing; builds into rust/target-asan/.
# Exits non-zero if any test fails or ASan reports an error.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET=x86_64-unknown-linux-gnu
TARGET_DIR="$ROOT/rust/target-asan"
JOBS="${ASAN_JOBS:-2}"

want_ffi=0 want_core=0 want_bun=0 bun_files=()
for a in "$@"; do
  case "$a" in
    --ffi) want_ffi=1 ;;
    --core) want_core=1 ;;
    --bun) want_bun=1 ;;
    --all) want_ffi=1 want_core=1 want_bun=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "usage: $0 [--ffi] [--core] [--bun] [--all] [test/FILE.test.ts ...]" >&2; exit 2 ;;
    *) bun_files+=("$a") ;;
  esac
done
[ $((want_ffi + want_core + want_bun)) = 0 ] && want_ffi=1 want_core=1

run() { printf '+ %s\n' "$*" >&2; "$@"; }

if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "asan.sh: Linux x86_64 only (found $(uname -sm))" >&2
  exit 2
fi

# --- Debian toolchain -------------------------------------------------------------------------
missing() { # prints the packages among "$@" that are not installed
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
apt_updated=0
ensure() {
  local need
  need="$(missing "$@")"
  [ -z "$need" ] && return 0
  if [ "$apt_updated" = 0 ]; then run apt-get update -qq; apt_updated=1; fi
  # shellcheck disable=SC2086
  run env DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get install -y -qq --no-install-recommends $need
}
ensure rustc-web cargo-web rust-web-src

RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
LLVM_MAJOR="$("$RUSTC" -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[ -n "$LLVM_MAJOR" ] || { echo "asan.sh: cannot read the LLVM version of $RUSTC" >&2; exit 1; }
ensure "libclang-rt-$LLVM_MAJOR-dev" "llvm-$LLVM_MAJOR"  # static ASan runtime; llvm-symbolizer
ASAN_A="/usr/lib/llvm-$LLVM_MAJOR/lib/clang/$LLVM_MAJOR/lib/linux/libclang_rt.asan-x86_64.a"
[ -f "$ASAN_A" ] || { echo "asan.sh: $ASAN_A not found" >&2; exit 1; }
SYS_SRC="$("$RUSTC" --print sysroot)/lib/rustlib/src"
[ -d "$SYS_SRC/rust/library" ] || { echo "asan.sh: no std sources at $SYS_SRC/rust/library" >&2; exit 1; }

# --- overlay sysroot: std sources + the sanitizer runtime under the name rustc looks for -------
# (no std rlibs in it: -Zbuild-std builds std and hands it to rustc with --extern)
SYSROOT="$TARGET_DIR/sysroot"
mkdir -p "$SYSROOT/lib/rustlib/$TARGET/lib"
ln -sfn "$SYS_SRC" "$SYSROOT/lib/rustlib/src"
ln -sfn "$ASAN_A" "$SYSROOT/lib/rustlib/$TARGET/lib/librustc-stable_rt.asan.a"

export RUSTC RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_DIR"
export RUSTFLAGS="--sysroot $SYSROOT -Zsanitizer=address -Cforce-frame-pointers=yes -Cdebuginfo=line-tables-only"
# Test binaries: abort on the first error; leak checking is on (a leak fails the run too).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}"
# Symbolized stack traces.
SYMBOLIZER="/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-symbolizer"
[ -x "$SYMBOLIZER" ] && export ASAN_SYMBOLIZER_PATH="$SYMBOLIZER"
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER || true

echo "+ RUSTC_BOOTSTRAP=1 RUSTC=$RUSTC CARGO_TARGET_DIR=$TARGET_DIR RUSTFLAGS='$RUSTFLAGS' ASAN_OPTIONS='$ASAN_OPTIONS'" >&2
CARGO_TEST=(nice -n 10 "$CARGO" test --locked --no-fail-fast -j "$JOBS" -Zbuild-std --target "$TARGET"
  --manifest-path "$ROOT/rust/Cargo.toml")

failed=()
# One invocation for both crates: features are unified once (the ffi crate's dev-dependencies
# widen some of its dependencies' features), so everything is built once; separately, core's own
# feature set would rebuild core and tokio/hyper/tonic (~2.5 min cold).
pkgs=()
[ "$want_ffi" = 1 ] && pkgs+=(-p zerobus-bun-ffi)
[ "$want_core" = 1 ] && pkgs+=(-p zerobus-core)
if [ "${#pkgs[@]}" -gt 0 ]; then
  run "${CARGO_TEST[@]}" "${pkgs[@]}" --tests || failed+=("cargo test ${pkgs[*]}")
fi

if [ "$want_bun" = 1 ]; then
  # test profile and std+test (what `cargo test` builds), so the std and dependencies built for
  # the tests above are reused; plain -Zbuild-std would rebuild all of them (other std features)
  run nice -n 10 "$CARGO" build --locked -j "$JOBS" -Zbuild-std=std,test --target "$TARGET" \
    --manifest-path "$ROOT/rust/Cargo.toml" -p zerobus-bun-ffi --lib --profile test
  LIB="$TARGET_DIR/$TARGET/debug/libzerobus_bun.so"
  ASAN_SO="/usr/lib/llvm-$LLVM_MAJOR/lib/clang/$LLVM_MAJOR/lib/linux/libclang_rt.asan-x86_64.so"
  BUN="$ROOT/node_modules/.bin/bun"
  if [ ! -x "$BUN" ]; then (cd "$ROOT" && run npm ci --no-audit --no-fund); fi
  if [ "${#bun_files[@]}" = 0 ]; then
    for f in "$ROOT"/test/*.test.ts; do
      case "$(basename "$f")" in rust.test.ts|compile.test.ts|typecheck.test.ts|torture.test.ts) continue ;; esac
      bun_files+=("test/$(basename "$f")")
    done
  fi
  # test/abi.test.ts links a C program against the library with plain `cc`: an ASan-built .so
  # leaves __asan_* undefined, so a `cc` first on PATH adds the same shared runtime to links.
  WRAP="$TARGET_DIR/cc-wrapper"
  mkdir -p "$WRAP"
  cat >"$WRAP/cc" <<WRAPPER
#!/usr/bin/env bash
# written by scripts/asan.sh: links with the ASan runtime that the ASan-built libzerobus_bun.so needs
for a in "\$@"; do case "\$a" in -c|-S|-E|-M|-MM) exec /usr/bin/cc "\$@" ;; esac; done
exec /usr/bin/cc "\$@" "$ASAN_SO" -Wl,-rpath,"$(dirname "$ASAN_SO")"
WRAPPER
  chmod +x "$WRAP/cc"
  # The local server the tests start is the plain release build of zerobus-local (a separate
  # process; only the client library is under test here).
  LOCAL_BIN="$ROOT/rust/target/release/zerobus-local"
  if [ ! -x "$LOCAL_BIN" ]; then (cd "$ROOT" && run "$BUN" scripts/build.ts); fi
  bun_env=(env PATH="$WRAP:$PATH" LD_PRELOAD="$ASAN_SO" ZEROBUS_BUN_LIB="$LIB" ZEROBUS_LOCAL_BIN="$LOCAL_BIN" ASAN_OPTIONS="${BUN_ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}")
  # unoptimized + instrumented code is several times slower: bun's 5 s default per-test timeout
  # fails timing-bound tests (test/exit.test.ts) that pass with more time
  BUN_TIMEOUT_MS="${BUN_TEST_TIMEOUT_MS:-60000}"
  canary_log="$TARGET_DIR/asan-bun-canary.log"
  echo "+ ${bun_env[*]} $BUN scripts/asan-bun-canary.ts  (must die with heap-use-after-free)" >&2
  if (cd "$ROOT" && "${bun_env[@]}" "$BUN" scripts/asan-bun-canary.ts) >"$canary_log" 2>&1 \
    || ! grep -q 'ERROR: AddressSanitizer: heap-use-after-free' "$canary_log"; then
    cat "$canary_log" >&2
    echo "asan.sh: the ASan runtime preloaded into Bun did not catch the canary's use-after-free" >&2
    failed+=("bun-canary")
  else
    echo "asan.sh: canary caught: $(grep -m1 'ERROR: AddressSanitizer' "$canary_log")" >&2
    # each file in its own process: an ASan abort then names the file it happened in
    for f in "${bun_files[@]}"; do
      (cd "$ROOT" && run "${bun_env[@]}" "$BUN" test --timeout "$BUN_TIMEOUT_MS" "$f") || failed+=("bun:$f")
    done
  fi
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "asan.sh: FAILED under AddressSanitizer: ${failed[*]}" >&2
  exit 1
fi
echo "asan.sh: all tests passed under AddressSanitizer" >&2
