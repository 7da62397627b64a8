#!/usr/bin/env bash
# `make run`: brings up what exists of the system in the foreground — PostgreSQL, the
# engine with the demo process deployed, the test OpenID Connect provider with demo
# accounts, `ramp serve`, `ramp worker` — and stops it all on Ctrl-C.
# State (the database cluster, the engine's data, logs, the token secret) stays in
# .ramp/, which git ignores, so data survives restarts.
set -euo pipefail
cd "$(dirname "$0")/.."

state=.ramp
pg_port=${RAMP_RUN_PG_PORT:-54329}
export RAMP_LISTEN=${RAMP_LISTEN:-127.0.0.1:50051}
target=${CARGO_TARGET_DIR:-target}

engine_port=${RAMP_RUN_ENGINE_PORT:-8080}
oidc_port=${RAMP_RUN_OIDC_PORT:-50052}

scripts/install.sh
mkdir -p "$state/logs"
pids=()
cleanup() {
  # Stopping takes a few seconds: a second Ctrl-C, or the TERM a process-group kill
  # also sends to make, must not cut it short and leave PostgreSQL running.
  trap - EXIT
  trap '' INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Not all are children of this shell (the engine is started detached): poll.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
  scripts/postgres.sh stop "$state/pg"
  echo "run: stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "run: postgres on 127.0.0.1:$pg_port (data in $state/pg)" >&2
scripts/postgres.sh start "$state/pg" "$pg_port" durable
admin="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
for db in ramp engine; do
  if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    psql "$admin" -qc "CREATE DATABASE $db"
  fi
done
export RAMP_DATABASE_URL="host=127.0.0.1 port=$pg_port user=postgres dbname=ramp"

# The engine keeps its data in the same cluster (its own database), so processes
# survive a restart. It starts while ramp builds.
echo "run: engine on 127.0.0.1:$engine_port (log in $state/logs/engine.log)" >&2
export RAMP_ENGINE_DB_URL="jdbc:postgresql://127.0.0.1:$pg_port/engine"
export RAMP_ENGINE_DB_USER=postgres RAMP_ENGINE_DB_PASSWORD=""
pids+=("$(scripts/engine.sh start "$engine_port" "$state/logs/engine.log")")
export RAMP_CAMUNDA_URL="http://127.0.0.1:$engine_port/engine-rest"

echo "run: building ramp" >&2
cargo build --locked --bin ramp
export RAMP_WEB_DIR
RAMP_WEB_DIR=$(scripts/web.sh)
scripts/engine.sh wait "$RAMP_CAMUNDA_URL" 180 || { tail -n 30 "$state/logs/engine.log" >&2; exit 1; }
echo "run: deploying processes/" >&2
"$target/debug/ramp" deploy --name ramp-demo processes

# Tokens: an HS256 secret generated once and kept in the state folder, so that
# `ramp token` run from the repository root mints tokens this stack accepts.
if [ ! -s "$state/jwt-secret" ]; then
  (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n=+/' > "$state/jwt-secret")
fi
export RAMP_AUTH=jwt
export RAMP_JWT_SECRET_FILE="$state/jwt-secret"

# People sign in with an email and a password through the test OpenID Connect
# provider (tests/oidc/provider.mjs): its login page takes the demo accounts below
# (passwords generated once, kept in the state folder). It signs its access tokens
# with the same HS256 secret, so tokens from `ramp token` work alongside.
if [ ! -s "$state/demo-accounts.json" ]; then
  pw() { head -c 9 /dev/urandom | base64 | tr -d '\n=+/'; }
  (umask 077 && printf '[\n  {"email": "ann@example.com", "password": "%s", "name": "Ann (starts processes)"},\n  {"email": "bob@example.com", "password": "%s", "name": "Bob (reviews)"},\n  {"email": "carol@example.com", "password": "%s", "name": "Carol (onboards, group reviewers)", "groups": ["reviewers"]}\n]\n' \
    "$(pw)" "$(pw)" "$(pw)" >"$state/demo-accounts.json")
fi
# Accounts kept from a run before the demo had a user task: Carol joins "reviewers".
node -e 'const fs = require("fs"); const file = process.argv[1]; const accounts = JSON.parse(fs.readFileSync(file, "utf8"));
  const carol = accounts.find((a) => a.email === "carol@example.com");
  if (carol && carol.groups === undefined) { carol.groups = ["reviewers"]; fs.writeFileSync(file, JSON.stringify(accounts, null, 2) + "\n"); }' \
  "$state/demo-accounts.json"
issuer="http://127.0.0.1:$oidc_port"
echo "run: sign-in (OpenID Connect) on $issuer (log in $state/logs/oidc.log)" >&2
: >"$state/logs/oidc.out"
node tests/oidc/provider.mjs --port "$oidc_port" --keys "$state/oidc-keys.json" \
  --accounts "$state/demo-accounts.json" --web-app "http://$RAMP_LISTEN" \
  --hs256-secret-file "$state/jwt-secret" --audience ramp \
  >"$state/logs/oidc.out" 2>"$state/logs/oidc.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q READY "$state/logs/oidc.out" && break; sleep 0.2; done
grep -q READY "$state/logs/oidc.out" || { tail -n 20 "$state/logs/oidc.log" >&2; exit 1; }
# The web UI with its config.json (the provider to sign in at), served from the
# state folder so the build stays as built.
rm -rf "$state/web" && cp -r "$RAMP_WEB_DIR" "$state/web"
printf '{"oidcIssuer": "%s", "oidcClientId": "ramp-web"}\n' "$issuer" >"$state/web/config.json"
RAMP_WEB_DIR="$(pwd)/$state/web"
export RAMP_STARTABLE_DEFINITIONS=${RAMP_STARTABLE_DEFINITIONS:-VOE}
export RAMP_CORS_ORIGINS=${RAMP_CORS_ORIGINS:-http://$RAMP_LISTEN}

"$target/debug/ramp" serve &
serve_pid=$!
pids+=("$serve_pid")

grpcurl="$(go env GOPATH)/bin/grpcurl"
for _ in $(seq 1 100); do
  if "$grpcurl" -plaintext "$RAMP_LISTEN" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'; then
    break
  fi
  sleep 0.2
done

# The worker turns send tasks into forms, with a token of its own, for the longest
# lifetime the server accepts (RAMP_JWT_MAX_TTL_SECS, 24 h by default).
RAMP_TOKEN=$("$target/debug/ramp" token --email worker@ramp.local --role ramp-worker --ttl 24h) \
  RAMP_SERVER="http://$RAMP_LISTEN" "$target/debug/ramp" worker &
pids+=($!)

cat >&2 <<MSG

  ramp is up.
    open:                  http://$RAMP_LISTEN/   and sign in: "Sign in with OpenID Connect", then one of
$(node -e 'for (const a of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(`                             ${a.email.padEnd(20)} password ${a.password}`)' "$state/demo-accounts.json")
                           (accounts in $state/demo-accounts.json; developers may paste a token instead)
    API (gRPC, gRPC-web):  $RAMP_LISTEN
    try:                   $grpcurl -plaintext $RAMP_LISTEN list
    a token:               $target/debug/ramp token --email you@example.com
    with it:               $grpcurl -plaintext -H "authorization: Bearer \$($target/debug/ramp token --email you@example.com)" \\
                             -d '{"definition_key":"VOE","business_key":"you@example.com"}' \\
                             $RAMP_LISTEN ramp.v1.ProcessService/StartProcess
    engine (REST):         $RAMP_CAMUNDA_URL   (VOE deployed from processes/)
    worker:                ramp worker on topic submit_form
    database:              $RAMP_DATABASE_URL
  Ctrl-C stops everything.

MSG
wait "$serve_pid"
