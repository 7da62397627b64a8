#!/usr/bin/env bash
# Builds the container images from the repository, with no registry to pull from:
#
#   ramp:TAG           the static (musl) release binary, the web UI and CA certificates,
#                      FROM scratch, as a non-root user (deploy/images/ramp)
#   ramp-engine:TAG    the development engine (dev/camunda) on a Debian JRE root file
#                      system made by mmdebstrap (deploy/images/engine)
#   ramp-postgres:TAG  PostgreSQL from Debian's packages, for local stacks and tests
#                      only (deploy/images/postgres)
#
#   scripts/images.sh [TAG]      TAG defaults to the version in Cargo.toml
#
# Prints the tag. `make release` and scripts/podman-test.sh call it. What can be kept
# is kept outside the clone: the root file systems under ~/.cache/ramp/rootfs (one per
# suite and package list), the web UI under ~/.cache/ramp/web (one per content of its
# sources), the engine's jar (scripts/engine.sh); podman's layer cache does the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'images: %s\n' "$*" >&2; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tag=${1:-$version}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ramp
target=${CARGO_TARGET_DIR:-target}
musl=x86_64-unknown-linux-musl
suite=bookworm
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# A root file system of Debian's packages, made once per suite and package list and
# imported as localhost/ramp-rootfs-NAME:HASH. Prints the image's name.
rootfs() {
  local name=$1 packages=$2 hash tar image
  # Keyed by the suite, the packages and how they are made (this function's text).
  # (update-alternatives needs man1 even though no manual page is installed.)
  hash=$(printf '%s %s %s' "$suite" "$packages" "$(declare -f rootfs)" | sha256sum | cut -c1-16)
  tar="$cache/rootfs/$name-$hash.tar"
  image="localhost/ramp-rootfs-$name:$hash"
  if [ ! -f "$tar" ]; then
    log "mmdebstrap $name ($packages)"
    local started=$SECONDS
    mkdir -p "$cache/rootfs"
    nice -n 19 mmdebstrap --quiet --format=tar --variant=essential --include="$packages" \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --setup-hook='mkdir -p "$1"/usr/share/man/man1' \
      --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
      "$suite" "$tar.tmp" >&2
    mv "$tar.tmp" "$tar"
    log "$name root file system made in $((SECONDS - started)) s"
  fi
  if ! podman image exists "$image"; then
    podman import --quiet "$tar" "$image" >/dev/null
  fi
  echo "$image"
}

# The web UI, built once per content of its sources (and of the contracts it is
# generated from).
web_ui() {
  local hash dir
  # (web/src/gen is generated from proto/ by the build itself.)
  hash=$(find web/src web/public web/package.json web/package-lock.json web/angular.json \
    web/tsconfig.json web/tsconfig.app.json web/buf.gen.yaml proto -path web/src/gen -prune -o -type f -print0 \
    | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
  dir="$cache/web/$hash"
  if [ ! -d "$dir" ]; then
    local built
    built=$(nice -n 19 scripts/web.sh)
    mkdir -p "$cache/web"
    rm -rf "$dir.tmp" && cp -r "$built" "$dir.tmp" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

started=$SECONDS
log "ramp $tag: static binary ($musl, release)"
CARGO_PROFILE_RELEASE_STRIP=symbols \
  nice -n 19 cargo build --locked --release --target "$musl" --bin ramp
mkdir -p "$stage/ramp"
cp deploy/images/ramp/* "$stage/ramp/"
cp "$target/$musl/release/ramp" "$stage/ramp/ramp"
cp -r "$(web_ui)" "$stage/ramp/web"
cp /etc/ssl/certs/ca-certificates.crt "$stage/ramp/"
podman build --quiet --tag "localhost/ramp:$tag" "$stage/ramp" >/dev/null
log "ramp:$tag built"

log "ramp-engine $tag"
mkdir -p "$stage/engine"
cp deploy/images/engine/* "$stage/engine/"
cp "$(scripts/engine.sh jar)" "$stage/engine/ramp-engine.jar"
podman build --quiet --build-arg BASE="$(rootfs jre 'openjdk-17-jre-headless')" \
  --tag "localhost/ramp-engine:$tag" "$stage/engine" >/dev/null
log "ramp-engine:$tag built"

log "ramp-postgres $tag"
podman build --quiet --build-arg BASE="$(rootfs postgres 'postgresql-15')" \
  --tag "localhost/ramp-postgres:$tag" deploy/images/postgres >/dev/null
log "ramp-postgres:$tag built"

for image in ramp ramp-engine ramp-postgres; do
  log "$(podman image inspect --format "{{.Size}}" "localhost/$image:$tag" | awk -v i="$image:$tag" '{printf "%-24s %6.1f MB", i, $1 / 1e6}')"
done
log "built in $((SECONDS - started)) s"
echo "$tag"
