#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh machine, and nothing that
# is already there: Debian packages (PostgreSQL), Rust components, npm tools (buf),
# grpcurl and mailpit (Go). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install: %s\n' "$*" >&2; }

apt_packages=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_packages+=(postgresql); fi
command -v python3 >/dev/null || apt_packages+=(python3)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v curl >/dev/null || apt_packages+=(curl)
command -v java >/dev/null || apt_packages+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || apt_packages+=(maven)
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
# The images and the podman test (scripts/images.sh, scripts/podman-test.sh): podman
# with runc and catatonit (its pods' pause process), mmdebstrap for the Debian root
# file systems, musl-gcc for the static binary's C parts, the CA certificates put
# into the ramp image.
command -v podman >/dev/null || apt_packages+=(podman)
command -v runc >/dev/null || apt_packages+=(runc)
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || apt_packages+=(catatonit)
command -v mmdebstrap >/dev/null || apt_packages+=(mmdebstrap)
command -v musl-gcc >/dev/null || apt_packages+=(musl-tools)
[ -f /etc/ssl/certs/ca-certificates.crt ] || apt_packages+=(ca-certificates)
if [ ${#apt_packages[@]} -gt 0 ]; then
  log "apt: ${apt_packages[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
# Debian starts a cluster of its own on install; ramp runs its own, so stop that one.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r v c; do
    pg_ctlcluster "$v" "$c" stop || true
  done
fi

if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" \
      || { log "rustup: $component"; rustup component add "$component"; }
  done
  # The static binary of the ramp image.
  rustup target list --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl$' \
    || { log "rustup: target x86_64-unknown-linux-musl"; rustup target add x86_64-unknown-linux-musl; }
fi

# cargo fuzz (scripts/fuzz.sh), from crates.io.
if command -v cargo >/dev/null && ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo: cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# npm projects of the repository's own, each installed from its lockfile.
npm_ci() {
  local dir=$1 marker=$2
  if [ ! -e "$dir/node_modules/$marker" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm: $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci tools .bin/buf
npm_ci tests/oidc oidc-provider
npm_ci tests/browser playwright-core

# The Python worker's venv (set up once; again when its requirements change).
examples/python-worker/run.sh --help >/dev/null

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/grpcurl" ]; then
  log "go: grpcurl"
  go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest
fi
# Mailpit: the SMTP server the notification tests run (tests/api/notify.rs).
if [ ! -x "$gobin/mailpit" ]; then
  log "go: mailpit"
  go install github.com/axllent/mailpit@v1.33.1
fi
# kustomize: renders deploy/kubernetes/local for the podman test.
if [ ! -x "$gobin/kustomize" ]; then
  log "go: kustomize"
  go install sigs.k8s.io/kustomize/kustomize/v5@v5.6.0
fi
