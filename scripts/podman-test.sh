#!/usr/bin/env bash
# The images and the Kubernetes manifests, run for real: builds the images
# (scripts/images.sh), plays deploy/kubernetes/local with `podman kube play` (two
# `ramp serve` replicas, the worker, PostgreSQL and the engine, all on the host's
# network at 127.0.0.1), runs the demo through both replicas with grpcurl, kills one
# replica and sees the other serve, and removes everything again, also on failure.
# Prints `podman: N passed, N failed`. Skipped, with the reason, only where podman
# cannot run a container at all.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'podman-test: %s\n' "$*" >&2; }
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok      %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$*"; }
check() { # check NAME COMMAND...: one result per check
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}

grpcurl=${GRPCURL:-$(go env GOPATH)/bin/grpcurl}
kustomize=${KUSTOMIZE:-$(go env GOPATH)/bin/kustomize}
overlay=deploy/kubernetes/local
# Fixed, as the overlay names them, and below Linux's ephemeral range (32768 and up
# by default): a port in that range can be held at any moment by the client end of
# some other connection (it happened: the engine's port was a PostgreSQL client's).
pg_port=24432 engine_port=24080 a=127.0.0.1:24051 b=127.0.0.1:24052
started=$SECONDS

if ! command -v podman >/dev/null; then
  echo "podman-test: skipped: podman is not installed (scripts/install.sh installs it)"
  exit 0
fi

state=$(mktemp -d)
# Debian's podman 4.3 on this kind of machine: runc (crun fails on hybrid cgroups),
# and limits no higher than the host's (podman's defaults would raise them).
cat >"$state/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Sn):$(ulimit -Sn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$state/containers.conf

played=""
summarised=""
teardown() {
  local status=$?
  if [ -z "$summarised" ]; then
    echo "podman-test: stopped early (exit status $status)" >&2
    echo "podman: $passed passed, $((failed + 1)) failed"
  fi
  if [ -n "$played" ]; then
    if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
      for c in $(podman ps -a --format '{{.Names}}' | grep -E '^(ramp|postgres|engine)-' || true); do
        case "$c" in *-infra) continue ;; esac
        printf '\n--- %s\n' "$c" >&2
        podman logs --tail 25 "$c" >&2 2>&1 || true
      done
    fi
    podman kube down "$state/play.yaml" >/dev/null 2>&1 || true
    # What kube down left (it stops at a pod that is gone already): the overlay's pods.
    podman pod ps --format '{{.Name}}' | grep -E '^(ramp-serve|ramp-serve-b|ramp-worker|postgres|engine)-pod-[0-9]+$' \
      | xargs -r podman pod rm -f >/dev/null 2>&1 || true
  fi
  podman secret rm ramp-secrets >/dev/null 2>&1 || true
  rm -f "$overlay/secrets.env"
  rm -rf "$state"
}
trap teardown EXIT
trap 'exit 143' INT TERM

# The addresses of the overlay must be free: a test never shares them.
for port in $pg_port $engine_port ${a##*:} ${b##*:}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "podman-test: 127.0.0.1:$port is in use; the local overlay needs it" >&2
    exit 1
  fi
done

images_started=$SECONDS
tag=$(scripts/images.sh)
log "images built in $((SECONDS - images_started)) s"
if [ "$(grep -c "newTag: $tag\$" "$overlay/kustomization.yaml")" != 3 ]; then
  echo "podman-test: $overlay/kustomization.yaml must tag its three images $tag (the version)" >&2
  exit 1
fi

# `podman run` of the ramp image, on the host's network: the one-off commands.
ramp() { podman run --rm --network host "$@"; }

# Can podman run a container here at all? (The image itself is checked below.)
if ! probe=$(ramp "localhost/ramp:$tag" --version 2>&1); then
  if grep -qiE 'oci|runc|crun|cgroup|permission denied|rlimit' <<<"$probe"; then
    echo "podman-test: skipped: podman cannot run a container here: $probe"
    summarised=yes
    exit 0
  fi
  not_ok "ramp --version in the image: $probe"
  summarised=yes
  echo "podman: $passed passed, $failed failed"
  exit 1
fi
check "ramp --version in the image says the version and the commit ($probe)" \
  grep -qE "^ramp $tag \\(commit [0-9a-f]{12}\\)$" <<<"$probe"

# The Secret: the local overlay generates it from secrets.env.
jwt_secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n=+/')
worker_token=$(ramp -e RAMP_JWT_SECRET="$jwt_secret" "localhost/ramp:$tag" \
  token --email worker@ramp.local --role ramp-worker --ttl 24h)
cat >"$overlay/secrets.env" <<ENV
RAMP_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/ramp
RAMP_JWT_SECRET=$jwt_secret
RAMP_TOKEN=$worker_token
ENV
"$kustomize" build "$overlay" >"$state/stack.yaml"
# Podman 4.3 stores a played Secret in a form its own pods cannot read (podman issue
# 17071): the test creates it as a podman secret (a JSON object of base64 values)
# and plays the rest.
python3 - "$state/stack.yaml" "$state/play.yaml" "$state/secret.json" <<'PY'
import json, sys
docs = open(sys.argv[1]).read().split("\n---\n")
secret = [d for d in docs if "\nkind: Secret\n" in "\n" + d]
assert len(secret) == 1, "one Secret"
# Its data: "  KEY: base64", or "  KEY: |" and the base64 on the lines below.
data, inside, key = {}, False, None
for line in secret[0].splitlines():
    if line == "data:":
        inside = True
    elif inside and line.startswith("    ") and key:
        data[key] += line.strip()
    elif inside and line.startswith("  "):
        key, value = line.strip().split(":", 1)
        data[key] = value.strip().lstrip("|")
    else:
        inside = False
open(sys.argv[2], "w").write("\n---\n".join(d for d in docs if d not in secret))
json.dump(data, open(sys.argv[3], "w"))
PY
podman secret rm ramp-secrets >/dev/null 2>&1 || true
podman secret create ramp-secrets "$state/secret.json" >/dev/null

log "podman kube play $overlay"
played=yes
podman kube play "$state/play.yaml" >/dev/null

# The migrations Job (podman 4.3 plays no Jobs): the same container, run once.
database_url="postgres://postgres@127.0.0.1:$pg_port/ramp"
for _ in $(seq 1 60); do
  (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null && break
  sleep 1
done
migrated=no
for _ in $(seq 1 10); do
  ramp -e RAMP_DATABASE_URL="$database_url" "localhost/ramp:$tag" migrate >/dev/null 2>&1 && { migrated=yes; break; }
  sleep 2
done
check "ramp migrate (the Job) against the stack's PostgreSQL" test "$migrated" = yes

engine_url="http://127.0.0.1:$engine_port/engine-rest"
check "the engine answers" scripts/engine.sh wait "$engine_url" 240

ready() { # ready ADDRESS: /readyz says 200 within a minute
  for _ in $(seq 1 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz")" = 200 ] && return 0
    sleep 0.5
  done
  return 1
}
check "replica a is ready ($a/readyz)" ready "$a"
check "replica b is ready ($b/readyz)" ready "$b"
check "replica a serves the web UI" sh -c "curl -sf http://$a/ | grep -q '<ramp-root'"

check "ramp deploy of processes/ (from the image)" \
  ramp -v "$PWD/processes:/processes:ro" -e RAMP_CAMUNDA_URL="$engine_url" "localhost/ramp:$tag" \
  deploy --name ramp-demo /processes

token() { ramp -e RAMP_JWT_SECRET="$jwt_secret" "localhost/ramp:$tag" token --email "$1"; }
ann=ann-$RANDOM@example.com
reviewer=reviewer-$RANDOM@example.com
ann_token=$(token "$ann")
call() { # call ADDRESS METHOD JSON
  "$grpcurl" -plaintext -max-time 20 -H "authorization: Bearer $ann_token" -d "$3" "$1" "ramp.v1.$2"
}

# Ann's inbox on replica b, open before the start on replica a.
"$grpcurl" -plaintext -max-time 120 -H "authorization: Bearer $ann_token" -d '{}' \
  "$b" ramp.v1.FormService/PendingForms >"$state/stream.json" 2>&1 &
stream_pid=$!
sleep 1

started_process() {
  call "$a" ProcessService/StartProcess "{\"definition_key\":\"VOE\",\"business_key\":\"$ann\"}" | grep -q PROCESS_STATE_ACTIVE
}
check "StartProcess on replica a" started_process

form_id=""
for _ in $(seq 1 120); do
  form_id=$(call "$a" FormService/ListFormTasks '{}' 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(next((f["id"] for f in d.get("formTasks", []) if f.get("formName") == "company_details"), ""))' 2>/dev/null || true)
  [ -n "$form_id" ] && break
  sleep 0.5
done
check "the worker made the form company_details (ListFormTasks on replica a)" test -n "$form_id"
check "the form came on Ann's PendingForms stream on replica b" \
  sh -c "for _ in \$(seq 1 20); do grep -q company_details '$state/stream.json' && exit 0; sleep 0.5; done; exit 1"

answers=$(printf '{"id":"%s","request_id":"podman-test-%s","data":{"companyName":"Acme Components","country":"DE","vatNumber":"DE123456789","contactEmail":"contact@acme.example","annualSpend":250000,"supplierType":"critical","criticalityReason":"Sole supplier of the main controller board.","handlesPersonalData":false,"acceptsCodeOfConduct":true,"reviewerEmail":"%s"}}' \
  "$form_id" "$RANDOM" "$reviewer")
submitted() { call "$a" FormService/SubmitForm "$answers" >/dev/null; }
check "SubmitForm on replica a" submitted

delivered() {
  for _ in $(seq 1 120); do
    call "$b" FormService/GetFormTask "{\"id\":\"$form_id\"}" 2>/dev/null | grep -q DELIVERY_STATE_DELIVERED && return 0
    sleep 0.5
  done
  return 1
}
check "the answer was delivered to the engine (GetFormTask on replica b)" delivered

# One replica goes; the other serves on.
podman pod kill ramp-serve-pod-0 >/dev/null
podman pod rm -f ramp-serve-pod-0 >/dev/null
check "replica a is gone" sh -c "! curl -s -o /dev/null http://$a/livez"
check "replica b is healthy" sh -c "'$grpcurl' -plaintext $b grpc.health.v1.Health/Check | grep -q SERVING"
next_form() {
  for _ in $(seq 1 120); do
    call "$b" FormService/ListFormTasks '{}' 2>/dev/null | grep -q risk_assessment && return 0
    sleep 0.5
  done
  return 1
}
check "replica b lists the next form, risk_assessment" next_form
kill "$stream_pid" 2>/dev/null || true

log "done in $((SECONDS - started)) s"
summarised=yes
echo "podman: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
