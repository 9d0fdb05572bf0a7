#!/usr/bin/env bash
# Regenerates the checked-in C header from rust/ffi/src (needs `cargo install cbindgen`).
set -euo pipefail
cd "$(dirname "$0")/../rust/ffi"
cbindgen --config cbindgen.toml --crate zerobus-bun-ffi --output include/zerobus_bun.h . 2> >(grep -v '^WARN: Skip' >&2)
