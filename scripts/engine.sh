#!/usr/bin/env bash
# The process engine of `make run` and `make test`: dev/camunda built by Maven.
#
#   scripts/engine.sh jar                  builds the engine if needed; prints the jar
#   scripts/engine.sh start PORT LOGFILE   starts it in the background; prints its PID
#   scripts/engine.sh wait URL [SECONDS]   waits until URL/version answers
#
# RAMP_ENGINE=camunda (default) or operaton picks the engine. The engine keeps its
# data in H2 in memory unless RAMP_ENGINE_DB_URL (JDBC) says otherwise. Built jars are
# kept outside the clone, one per engine and per content of dev/camunda, so that
# fresh clones on one machine build each once.
set -euo pipefail
cd "$(dirname "$0")/.."

flavor=${RAMP_ENGINE:-camunda}
case "$flavor" in camunda | operaton) ;; *) echo "engine.sh: RAMP_ENGINE must be camunda or operaton" >&2; exit 2 ;; esac
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ramp/engine

jar() {
  local hash jar
  hash=$(find dev/camunda/pom.xml dev/camunda/src -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
  jar="$cache/$flavor-$hash.jar"
  if [ ! -f "$jar" ]; then
    echo "engine: building $flavor (Maven)" >&2
    local started=$SECONDS
    mvn -q -B -f dev/camunda/pom.xml -P"$flavor" -DskipTests package >&2
    mkdir -p "$cache"
    cp dev/camunda/target/ramp-engine.jar "$jar.tmp" && mv "$jar.tmp" "$jar"
    echo "engine: built in $((SECONDS - started)) s" >&2
  fi
  echo "$jar"
}

case "${1:-}" in
  jar)
    jar
    ;;
  start)
    port=${2:?missing PORT}
    log=${3:?missing LOGFILE}
    jar=$(jar)
    # A small heap and the quick JIT tier: the engine starts in seconds on 2 cores.
    # Benchmarks, which compare ramp with the engine, give it the full JIT instead
    # (RAMP_ENGINE_JAVA_OPTS).
    # shellcheck disable=SC2086
    PORT=$port nohup java ${RAMP_ENGINE_JAVA_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx768m} -jar "$jar" >"$log" 2>&1 &
    echo $!
    ;;
  wait)
    url=${2:?missing URL}
    limit=${3:-180}
    started=$SECONDS
    until curl -sf "$url/version" >/dev/null 2>&1; do
      if [ $((SECONDS - started)) -ge "$limit" ]; then
        echo "engine: not ready within $limit s at $url" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "engine: ready at $url after $((SECONDS - started)) s ($(curl -sf "$url/version"))" >&2
    ;;
  *)
    echo "usage: engine.sh jar | start PORT LOGFILE | wait URL [SECONDS]" >&2
    exit 2
    ;;
esac
