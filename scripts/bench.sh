#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md, on a stack of their own.
#
#   scripts/bench.sh                 every scenario at full size (`make bench`);
#                                    rewrites the results section of BENCHMARKS.md
#   scripts/bench.sh SCENARIO...     some of: streams latency writes polling usertasks inbox
#   scripts/bench.sh soak            `make soak`: 10 minutes of mixed load
#   scripts/bench.sh --smoke         every scenario and the soak for seconds, at tiny
#                                    sizes, in debug builds (part of `make test`:
#                                    it shows the tool works, never how fast)
#
# The stack: a PostgreSQL cluster with durable settings (fsync and synchronous_commit
# on) and pg_stat_statements, the engine keeping its data in that cluster (or the
# engine at RAMP_BENCH_CAMUNDA_URL when set), and `ramp serve` in release mode,
# started afresh for each scenario so that memory readings start clean. Results go
# to test-output/bench (JSON, one file per scenario).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
if [ "${1:-}" = --smoke ]; then smoke=true; shift; fi
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  # usertasks before inbox: the inbox scenario leaves 100,000 user tasks in the engine.
  if $smoke; then scenarios=(streams latency writes polling usertasks inbox soak); else scenarios=(streams latency writes polling usertasks inbox); fi
fi
command_line="scripts/bench.sh${*:+ $*}"
$smoke && command_line="scripts/bench.sh --smoke${*:+ $*}"

step() { printf '\n== bench: %s\n' "$*" >&2; }

target_dir=${CARGO_TARGET_DIR:-target}
if $smoke; then
  cargo build --locked -p ramp -p ramp-bench
  bin="$target_dir/debug"
else
  step "building ramp and ramp-bench (release)"
  cargo build --locked --release -p ramp -p ramp-bench
  bin="$target_dir/release"
fi
out=test-output/bench
mkdir -p "$out"
# A scenario's earlier figures give way to this run's; the others' stay, so that a
# partial run (one scenario again) can be reported together with the rest.
for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    streams) rm -f "$out/streams-ramp.json" "$out/streams-bare.json" ;;
    *) rm -f "$out/$scenario.json" ;;
  esac
done
rm -f "$out/serve.log" "$out/bare.log"

export RAMP_BENCH_RUN
RAMP_BENCH_RUN="$(date -u +'%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# Many streams need many sockets on the client and the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

state=$(mktemp -d)
chmod 755 "$state"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/postgres.sh stop "$state/pg" || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "postgres (durable, pg_stat_statements)"
pg_port=$(scripts/free-port.sh)
RAMP_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c max_connections=400 -c fsync=on -c synchronous_commit=on" \
  scripts/postgres.sh start "$state/pg" "$pg_port" durable
admin="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
psql "$admin" -qc "CREATE DATABASE ramp" -c "CREATE DATABASE engine"
psql "host=127.0.0.1 port=$pg_port user=postgres dbname=ramp" -qc "CREATE EXTENSION pg_stat_statements"
export RAMP_DATABASE_URL="host=127.0.0.1 port=$pg_port user=postgres dbname=ramp"
export RAMP_BENCH_DATABASE_URL="$RAMP_DATABASE_URL"
export RAMP_BENCH_PGBENCH
RAMP_BENCH_PGBENCH="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/pgbench"

if [ -n "${RAMP_BENCH_CAMUNDA_URL:-}" ]; then
  export RAMP_CAMUNDA_URL="$RAMP_BENCH_CAMUNDA_URL"
else
  step "engine (data in the same cluster)"
  engine_port=$(scripts/free-port.sh)
  export RAMP_ENGINE_DB_URL="jdbc:postgresql://127.0.0.1:$pg_port/engine"
  export RAMP_ENGINE_DB_USER=postgres RAMP_ENGINE_DB_PASSWORD=""
  # The full JIT and the default collector: the engine at its best, since ramp is
  # compared with it (tests start it with the quick tier only).
  engine_pid=$(RAMP_ENGINE_JAVA_OPTS="-Xmx1g" scripts/engine.sh start "$engine_port" "$state/engine.log")
  pids+=("$engine_pid")
  # The writes scenario stops it for a while (SubmitForm without the engine's work).
  export RAMP_BENCH_ENGINE_PID="$engine_pid"
  export RAMP_CAMUNDA_URL="http://127.0.0.1:$engine_port/engine-rest"
  scripts/engine.sh wait "$RAMP_CAMUNDA_URL" 300 || { tail -n 40 "$state/engine.log" >&2; exit 1; }
fi
"$bin/ramp" deploy --name ramp-bench bench/processes >&2

export RAMP_JWT_SECRET
RAMP_JWT_SECRET=$(openssl rand -hex 32)
grpcurl="$(go env GOPATH)/bin/grpcurl"

serve_pid=""
# ramp reads the engine's user tasks only in the scenario that measures it
# (`start_serve user-tasks`): the others' figures stay those of ramp alone.
start_serve() {
  local port user_tasks=false
  [ "${1:-}" = user-tasks ] && user_tasks=true
  port=$(scripts/free-port.sh)
  RAMP_LISTEN="127.0.0.1:$port" RAMP_STARTABLE_DEFINITIONS=ramp_bench RAMP_USER_TASKS=$user_tasks \
    RAMP_DATABASE_POOL_SIZE=32 RAMP_MAX_STREAMS_PER_USER=8 \
    "$bin/ramp" serve >>"$out/serve.log" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 1 300); do
    "$grpcurl" -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
    sleep 0.2
  done
  export RAMP_BENCH_SERVER="http://127.0.0.1:$port" RAMP_BENCH_SERVER_PID="$serve_pid"
}
stop_serve() {
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
}

# Sizes: full, or the smoke run's.
if $smoke; then
  streams_args=(--streams 300 --connections 2 --settle-secs 1)
  latency_args=(--idle 100 --subscribers 5 --rate 50 --duration-secs 3)
  writes_args=(--clients 2 --duration-secs 3 --users 20 --drain-secs 60)
  polling_args=(--users 50 --interval-secs 1 --rate 10 --duration-secs 3)
  usertasks_args=(--idle 100 --subscribers 5 --tasks 30 --rate 10 --idle-secs 2 --poll-samples 10)
  inbox_args=(--users 10 --per-user 5 --samples 20)
  soak_args=(--duration-secs 10 --warmup-secs 2 --streams 20 --rate 10 --sample-secs 2)
else
  streams_args=(--streams 250000 --connections 64)
  latency_args=(--idle 10000 --subscribers 100 --rate 500 --duration-secs 30)
  writes_args=(--clients 4,8 --duration-secs 20)
  polling_args=(--users 10000 --interval-secs 5 --rate 20 --duration-secs 30)
  usertasks_args=(--idle 10000 --subscribers 100 --tasks 1000 --rate 50)
  inbox_args=(--users 1000 --per-user 100 --samples 1000)
  soak_args=(--duration-secs 600 --warmup-secs 120)
fi

for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    streams)
      step "streams: ramp"
      start_serve
      "$bin/ramp-bench" streams "${streams_args[@]}" --label ramp
      stop_serve
      step "streams: bare tonic (the reference)"
      bare_port=$(scripts/free-port.sh)
      "$bin/ramp-bench" bare-server --listen "127.0.0.1:$bare_port" 2>>"$out/bare.log" &
      bare_pid=$!
      pids+=("$bare_pid")
      sleep 1
      RAMP_BENCH_SERVER="http://127.0.0.1:$bare_port" RAMP_BENCH_SERVER_PID="$bare_pid" \
        "$bin/ramp-bench" streams "${streams_args[@]}" --label bare
      kill "$bare_pid" 2>/dev/null || true
      wait "$bare_pid" 2>/dev/null || true
      ;;
    latency | writes | polling | soak)
      step "$scenario"
      start_serve
      args_name="${scenario}_args[@]"
      "$bin/ramp-bench" "$scenario" "${!args_name}"
      stop_serve
      ;;
    usertasks)
      step "usertasks: the engine's user tasks on ramp's streams"
      start_serve user-tasks
      "$bin/ramp-bench" usertasks "${usertasks_args[@]}"
      stop_serve
      ;;
    inbox)
      step "inbox: ramp against the engine"
      start_serve
      "$bin/ramp-bench" inbox "${inbox_args[@]}"
      stop_serve
      ;;
    *)
      echo "bench: unknown scenario $scenario" >&2
      exit 2
      ;;
  esac
done

# The machine, the versions and the command, above the tables.
header="$out/header.md"
{
  echo "Run $(date -u +'%Y-%m-%d %H:%M UTC') at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) with \`$command_line\`."
  if [ ${#scenarios[@]} -lt 6 ] && ! $smoke; then
    echo "Scenarios run then: ${scenarios[*]}; the others' figures are from the run before (see the JSON in each section)."
  fi
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) memory, Linux $(uname -r)"
  echo "- ramp $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2) ($( $smoke && echo debug || echo release) build), $(rustc --version), tonic $(grep -A1 '^name = "tonic"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "- $(psql "$admin" -tAc 'SELECT version()' | cut -d, -f1), durable (fsync=$(psql "$admin" -tAc 'SHOW fsync'), synchronous_commit=$(psql "$admin" -tAc 'SHOW synchronous_commit'))"
  echo "- engine: $(curl -sf "$RAMP_CAMUNDA_URL/version" || echo unknown)"
  echo "- client and server share the machine's cores"
  echo
} >"$header"
# A full run, or RAMP_BENCH_WRITE=1 (a partial run on top of a full one), rewrites
# the results of BENCHMARKS.md; otherwise the report goes next to the figures.
if $smoke || { [ ${#scenarios[@]} -lt 6 ] && [ "${RAMP_BENCH_WRITE:-0}" != 1 ]; } || [ "${scenarios[*]}" = soak ]; then
  "$bin/ramp-bench" report --header "$header" >"$out/report.md"
  echo "bench: report in $out/report.md" >&2
else
  "$bin/ramp-bench" report --header "$header" --into BENCHMARKS.md
fi
echo "bench: ran ${scenarios[*]}" >&2
