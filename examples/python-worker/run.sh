#!/usr/bin/env bash
# Runs the Python worker from any folder: keeps a venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/ramp/python-worker-venv, made again when it is
# missing or requirements.txt changed, then execs worker.py with the arguments given.
#
#   RAMP_CAMUNDA_URL=... RAMP_SERVER=... RAMP_TOKEN=... examples/python-worker/run.sh [--topic ...]
#
# PYTHON picks the interpreter (default python3; 3.10 or newer).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ramp
venv=$cache/python-worker-venv
stamp=$venv/.requirements.sha256

mkdir -p "$cache"
want=$( (cat "$here/requirements.txt"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)

ready() {
  [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

if ! ready; then
  # One setup at a time when several workers start together.
  exec 9>"$cache/python-worker-venv.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if ! ready; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "run.sh: $python is older than Python 3.10" >&2
      exit 1
    fi
    echo "run.sh: setting up $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    echo "$want" >"$stamp"
  fi
  exec 9>&-
fi

exec "$venv/bin/python" "$here/worker.py" "$@"
