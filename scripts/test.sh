#!/usr/bin/env bash
# Everything `make test` runs: installs what is missing, lints the contracts and the
# code, starts one throwaway PostgreSQL cluster and one process engine on it for the
# whole run, and runs every test against them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "install"
scripts/install.sh

state=$(mktemp -d)
# The database server runs as the postgres user when this runs as root: it must
# reach its folder.
chmod 755 "$state"
engine_pid=""
cleanup() {
  [ -z "$engine_pid" ] || kill "$engine_pid" 2>/dev/null || true
  scripts/postgres.sh stop "$state/pg" || true
  rm -rf "$state"
}
trap cleanup EXIT

# One throwaway cluster for the run: ramp's test databases and the engine's own
# (database `engine`), so the engine stores what it stores as `make run` has it do —
# on PostgreSQL, where a String variable stops at 4,000 characters (H2 differs).
step "postgres (throwaway)"
port=$(scripts/free-port.sh)
scripts/postgres.sh start "$state/pg" "$port" throwaway
echo "listening on 127.0.0.1:$port"
export RAMP_TEST_DATABASE_URL="host=127.0.0.1 port=$port user=postgres dbname=postgres"
psql "$RAMP_TEST_DATABASE_URL" -qc "CREATE DATABASE engine"

# The engine takes a while to start: start it first, wait for it before the tests.
step "engine (${RAMP_ENGINE:-camunda}, on PostgreSQL)"
engine_port=$(scripts/free-port.sh)
engine_pid=$(RAMP_ENGINE_DB_URL="jdbc:postgresql://127.0.0.1:$port/engine" \
  RAMP_ENGINE_DB_USER=postgres RAMP_ENGINE_DB_PASSWORD="" \
  scripts/engine.sh start "$engine_port" "$state/engine.log")
export RAMP_TEST_CAMUNDA_URL="http://127.0.0.1:$engine_port/engine-rest"

step "buf lint"
tools/node_modules/.bin/buf lint
# Never break a released field: compare the contracts with the last commit of main
# (or, on main itself, with the commit before).
branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo "")
against=main
[ "$branch" = main ] && against=HEAD~1
if git cat-file -e "$against:proto/ramp/v1/process_service.proto" 2>/dev/null; then
  step "buf breaking (against $against)"
  tools/node_modules/.bin/buf breaking --against ".git#ref=$(git rev-parse "$against"),subdir=."
fi

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

GRPCURL="$(go env GOPATH)/bin/grpcurl"
MAILPIT="$(go env GOPATH)/bin/mailpit"
export GRPCURL MAILPIT

scripts/engine.sh wait "$RAMP_TEST_CAMUNDA_URL" 180 || { tail -n 40 "$state/engine.log" >&2; exit 1; }

step "cargo test"
cargo test --locked --workspace --lib --bins --tests

# A short run of each fuzz target: what a longer run finds is in RELIABILITY.md.
# RAMP_FUZZ_SECONDS=0 skips it (the first build of the instrumented crates is long).
fuzz_seconds=${RAMP_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
  step "fuzz ($fuzz_seconds s per target)"
  scripts/fuzz.sh "$fuzz_seconds"
fi

step "bench smoke (the load tool runs; no figure is judged)"
RAMP_BENCH_CAMUNDA_URL="$RAMP_TEST_CAMUNDA_URL" scripts/bench.sh --smoke

step "browser tests"
scripts/browser-test.sh

step "podman: the images and the Kubernetes manifests"
scripts/podman-test.sh
