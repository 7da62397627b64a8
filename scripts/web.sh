#!/usr/bin/env bash
# Builds the web UI (web/) into web/dist/browser, installing its packages from the
# lockfile when they changed. Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/../web"
# form-js pulls in a package that reports usage from installs and builds: not here.
export IBM_TELEMETRY_DISABLED=true
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "web: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
echo "web: building" >&2
npm run build --silent >&2
echo "$(pwd)/dist/browser"
