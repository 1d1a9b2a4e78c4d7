#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The short fuzzing run for CI: replays fuzz/regressions/ and runs every
# libFuzzer target for FUZZ_SECONDS (default 20) seconds; TAP output,
# exit 1 on a crash.  Needs clang with libFuzzer (Debian: clang).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
exec "$top/bench/fuzz" --ci --seconds "${FUZZ_SECONDS:-20}" "$@"
