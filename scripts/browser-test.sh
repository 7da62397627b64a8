#!/usr/bin/env bash
# The browser tests: the whole stack as `make run` starts it — on the run's
# PostgreSQL cluster and engine (from scripts/test.sh) — with the built web UI, then
# playwright-core driving Debian's Chromium through tests/browser.
#
#   RAMP_TEST_DATABASE_URL=... RAMP_TEST_CAMUNDA_URL=... scripts/browser-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
ramp="$target/debug/ramp"

web_dir=$(scripts/web.sh)
out=$(pwd)/test-output/browser
rm -rf "$out" && mkdir -p "$out"

# A database of its own on the run's cluster.
db="ramp_browser_$$"
psql "$RAMP_TEST_DATABASE_URL" -qc "CREATE DATABASE $db"
port=$(scripts/free-port.sh)
secret="browser-tests-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

export RAMP_CAMUNDA_URL=$RAMP_TEST_CAMUNDA_URL
export RAMP_JWT_SECRET=$secret
# A deployment name of this run's own: the engine is shared, and other tests may have
# deployed VOE since (without its forms); an unchanged deployment under a name seen
# before would be filtered out and leave theirs the latest version.
"$ramp" deploy --name "ramp-browser-$$" processes >/dev/null
# Models drawn as teams draw them (tests/browser/models/README.md).
"$ramp" deploy --name "ramp-browser-models-$$" tests/browser/models >/dev/null

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "${tmp:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

RAMP_LISTEN=127.0.0.1:$port RAMP_DATABASE_URL="$RAMP_TEST_DATABASE_URL dbname=$db" \
  RAMP_WEB_DIR=$web_dir RAMP_STARTABLE_DEFINITIONS=VOE,Approval RAMP_LOG=warn \
  "$ramp" serve 2>"$out/serve.log" &
pids+=($!)

grpcurl="$(go env GOPATH)/bin/grpcurl"
for _ in $(seq 1 100); do
  "$grpcurl" -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
  sleep 0.2
done
RAMP_SERVER=http://127.0.0.1:$port RAMP_TOKEN=$("$ramp" token --email worker@ramp.test --role ramp-worker) \
  RAMP_WORKER_LONG_POLL_MS=1000 RAMP_LOG=warn "$ramp" worker 2>"$out/worker.log" &
pids+=($!)

# A second ramp, signing users in through the test OpenID Connect provider.
tmp=$(mktemp -d)
oidc_port=$(scripts/free-port.sh)
oidc_ui_port=$(scripts/free-port.sh)
# Demo accounts, as `make run` has them: an email and a password each.
oidc_password="pw-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# (an email of this run's own: the engine is shared with earlier runs)
oidc_email="demo-ann-$$@example.com"
# (and a group of its own: the provider puts the account's groups in its tokens)
oidc_group="demo-group-$$"
printf '[{"email": "%s", "password": "%s", "name": "Ann Demo", "groups": ["%s"]}]\n' \
  "$oidc_email" "$oidc_password" "$oidc_group" >"$tmp/accounts.json"
node tests/oidc/provider.mjs --port "$oidc_port" --keys "$tmp/keys.json" --accounts "$tmp/accounts.json" \
  --web-app "http://127.0.0.1:$oidc_ui_port" >"$tmp/oidc.out" 2>"$out/oidc.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q READY "$tmp/oidc.out" && break; sleep 0.2; done
issuer="http://127.0.0.1:$oidc_port"
cp -r "$web_dir" "$tmp/web"
printf '{"oidcIssuer": "%s", "oidcClientId": "ramp-web"}\n' "$issuer" >"$tmp/web/config.json"
psql "$RAMP_TEST_DATABASE_URL" -qc "CREATE DATABASE ${db}_oidc"
env -u RAMP_JWT_SECRET RAMP_LISTEN=127.0.0.1:$oidc_ui_port RAMP_DATABASE_URL="$RAMP_TEST_DATABASE_URL dbname=${db}_oidc" \
  RAMP_WEB_DIR="$tmp/web" RAMP_STARTABLE_DEFINITIONS=VOE RAMP_LOG=warn \
  RAMP_JWT_JWKS_URL="$issuer/jwks" RAMP_JWT_ISSUER="$issuer" RAMP_JWT_AUDIENCE=urn:ramp \
  "$ramp" serve 2>"$out/serve-oidc.log" &
pids+=($!)
for _ in $(seq 1 100); do
  "$grpcurl" -plaintext "127.0.0.1:$oidc_ui_port" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
  sleep 0.2
done
export RAMP_OIDC_UI_URL=http://127.0.0.1:$oidc_ui_port
export DEMO_OIDC_EMAIL=$oidc_email DEMO_OIDC_PASSWORD=$oidc_password DEMO_OIDC_GROUP=$oidc_group

export RAMP_UI_URL=http://127.0.0.1:$port
export RAMP_BIN=$ramp
export RAMP_TEST_OUTPUT=$out
cd tests/browser
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout
