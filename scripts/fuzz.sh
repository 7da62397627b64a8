#!/usr/bin/env bash
# ramp's fuzz targets (fuzz/: cargo fuzz, libFuzzer, AddressSanitizer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   runs each target (default: all) for
#                                           SECONDS (default 25)
#
# Targets: variables (Struct/JSON <-> engine variables), schema_validation (data
# against a Camunda Form), cursor (stream cursors from clients).
#
# It runs on the stable toolchain: cargo fuzz needs compiler flags that only nightly
# accepts (-Zsanitizer), and RUSTC_BOOTSTRAP=1 lets stable accept them, so no nightly
# toolchain has to be downloaded. Seeds are in fuzz/seeds (kept in git); what the
# fuzzer finds goes to fuzz/corpus, and crashing inputs to fuzz/artifacts (both
# git-ignored). A crash fails the run and prints the input's path; replay it with
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-25}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(variables schema_validation cursor)

export RUSTC_BOOTSTRAP=1
# Instrumented builds of their own, beside (never over) the normal ones.
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/ramp/target}/fuzz"

cargo fuzz build --target-dir "$target_dir"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "fuzz: $target for $seconds s"
  # -timeout: an input that takes over 10 s counts as a hang (a failure).
  log=$(mktemp)
  status=0
  cargo fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -artifact_prefix="artifacts/$target/" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    rm -f "$log"
    echo "fuzz: $target failed (exit $status)" >&2
    exit "$status"
  fi
  rm -f "$log"
done
