#!/usr/bin/env bash
# Builds the s2s images with podman or Docker, whichever works here (docs/deploy.md, "Building the
# images"). Base images are build arguments; where they cannot be pulled (no image registry
# reachable) the Debian stand-ins of scripts/stand_in_bases.sh are used instead, and it says so.
#
#   bash scripts/build_images.sh                    # serve serve-gpu train bundle
#   bash scripts/build_images.sh serve bundle       # only these
#
# Settings (environment):
#   ENGINE=docker|podman     default: a Docker daemon that answers, else podman (installed if need be)
#   PYTHON_IMAGE=...         base of serve, serve-gpu and train [the Dockerfiles' ARG default]
#   BUSYBOX_IMAGE=...        base of the bundle image [bundle.Dockerfile's ARG default]
#   TAG=0.1.0                tag of s2s-serve, s2s-serve-gpu, s2s-train
#   BUNDLES=s2s/bundles      the bundle image's content (<name>/<version>/ trees); BUNDLE_TAG=dates-1
#   TORCH_INDEX_URL=...      the train image's torch index [train.Dockerfile's default, the CPU wheels]
#   TORCH_WHEELS=DIR         podman only: a directory holding the torch wheel, served to the build as a
#                            file index (used by itself when the default index cannot be reached and
#                            pip's find-links here hold the wheel)
# Prints one line per image: name, seconds to build, size.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER_DIR="$ROOT/deploy/docker"
cd "$ROOT"

log() { echo "build_images: $*" >&2; }

if [ -z "${ENGINE:-}" ]; then
  ENGINE=$(bash scripts/install_container_engine.sh) || { log "no container engine runs here"; exit 1; }
fi
TAG="${TAG:-0.1.0}"
BUNDLES="${BUNDLES:-s2s/bundles}"
BUNDLE_TAG="${BUNDLE_TAG:-dates-1}"
TORCH_VERSION=2.13.0  # = the train extra's pin in pyproject.toml
work=$(mktemp -d /tmp/s2s-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

arg_default() {  # arg_default DOCKERFILE NAME: the ARG's default in the Dockerfile
  sed -n "s/^ARG $2=//p" "$DOCKER_DIR/$1"
}

# base IMAGE: the image itself when it is here or can be pulled, else the named stand-in.
base() {
  local image=$1 stand_in=$2
  if "$ENGINE" image inspect "$image" >/dev/null 2>&1 || "$ENGINE" pull -q "$image" >/dev/null 2>&1; then
    echo "$image"
    return
  fi
  log "cannot pull $image (no registry reachable?): building on a stand-in made from Debian's packages"
  log "  (the Dockerfile's own steps are real, the base layer is not; docs/deploy.md)"
  bash scripts/stand_in_bases.sh "$stand_in"
}

# What a build step run by podman needs here: pip inside a RUN step reaches the index through a
# TLS proxy whose CA is in this host's bundle. Mounted for the build only, never baked in.
engine_flags=()
if [ "$ENGINE" = podman ]; then
  engine_flags+=(--format docker)  # OCI drops HEALTHCHECK
  host_ca="${HOST_CA-/etc/ssl/certs/ca-certificates.crt}"
  if [ -n "$host_ca" ] && [ -f "$host_ca" ]; then
    printf '[global]\ncert = /run/host-ca.pem\n' >"$work/pip.conf"
    engine_flags+=(-v "$host_ca:/run/host-ca.pem:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
  fi
fi

# The image a tag pointed to before a rebuild, and with podman the build stages that earlier runs
# left untagged: a store that builds on every CI run would otherwise grow by an image (GBs for the
# GPU one) each time. Docker keeps its build cache apart, so only the replaced image goes there.
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
forget_replaced() {
  local name=$1 previous=$2
  if [ -n "$previous" ] && [ "$previous" != "$("$ENGINE" image inspect --format '{{.Id}}' "$name")" ]; then
    "$ENGINE" rmi "$previous" >/dev/null 2>&1 || true  # still used by a container: keep it
  fi
  # Only what is older than this run: the layers this build reused have children and stay.
  [ "$ENGINE" != podman ] || "$ENGINE" image prune -f --filter "until=$STARTED" >/dev/null 2>&1 || true
}

# build NAME DOCKERFILE CONTEXT [EXTRA FLAGS...]: build, then report the time and size.
build() {
  local name=$1 dockerfile=$2 context=$3
  shift 3
  local flags=("${engine_flags[@]}" --network host -t "$name" -f "$DOCKER_DIR/$dockerfile" "$@")
  # BuildKit reads <Dockerfile>.dockerignore by itself; podman is told.
  if [ "$ENGINE" = podman ] && [ -f "$DOCKER_DIR/$dockerfile.dockerignore" ]; then
    flags+=(--ignorefile "$DOCKER_DIR/$dockerfile.dockerignore")
  fi
  local start=$SECONDS previous
  previous=$("$ENGINE" image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)
  log "building $name ($dockerfile, $ENGINE)"
  if ! DOCKER_BUILDKIT=1 "$ENGINE" build "${flags[@]}" "$context" >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    log "building $name failed"
    exit 1
  fi
  forget_replaced "$name" "$previous"
  local size
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$name")
  printf '%-28s %4d s  %5d MB\n' "$name" $((SECONDS - start)) $((size / 1000000))
}

# The train image's torch: the CPU wheel index, or where that cannot be reached, a local wheel.
torch_flags() {
  local index="${TORCH_INDEX_URL:-$(arg_default train.Dockerfile TORCH_INDEX_URL)}"
  local wheels="${TORCH_WHEELS:-}"
  if [ -z "$wheels" ] && [ -z "${TORCH_INDEX_URL:-}" ] && ! curl -fsS -o /dev/null --max-time 20 "$index/torch/" 2>/dev/null; then
    wheels=$(dirname "$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-"$TORCH_VERSION"+cpu-cp311-*.whl 2>/dev/null | head -1)")
    [ "$wheels" != . ] || { log "$index unreachable and no local torch wheel: set TORCH_INDEX_URL"; exit 1; }
    log "$index unreachable: serving torch from $wheels to the build"
  fi
  if [ -z "$wheels" ]; then
    echo "--build-arg=TORCH_INDEX_URL=$index"
    return
  fi
  [ "$ENGINE" = podman ] || { log "TORCH_WHEELS needs podman (build-time mounts)"; exit 1; }
  # A PEP 503 index of the wheels, both mounted read-only into the build.
  mkdir -p "$work/torch-index/torch"
  for wheel in "$wheels"/torch-*.whl; do
    local file
    file=$(basename "$wheel")
    echo "<a href=\"file:///run/torch-wheels/${file//+/%2B}\">$file</a>" >>"$work/torch-index/torch/index.html"
  done
  echo "-v=$wheels:/run/torch-wheels:ro"
  echo "-v=$work/torch-index:/run/torch-index:ro"
  echo "--build-arg=TORCH_INDEX_URL=file:///run/torch-index"
}

images=("$@")
[ ${#images[@]} -gt 0 ] || images=(serve serve-gpu train bundle)
for image in "${images[@]}"; do
  case "$image" in
    serve | serve-gpu | train)
      python_image="${PYTHON_IMAGE:-}"
      [ -n "$python_image" ] || python_image=$(base "$(arg_default "$image.Dockerfile" PYTHON_IMAGE)" python)
      extra=(--build-arg "PYTHON_IMAGE=$python_image")
      if [ "$image" = train ]; then
        torch_flags >"$work/torch.flags"
        mapfile -t -O ${#extra[@]} extra <"$work/torch.flags"
      fi
      build "s2s-$image:$TAG" "$image.Dockerfile" . "${extra[@]}"
      ;;
    bundle)
      busybox_image="${BUSYBOX_IMAGE:-}"
      [ -n "$busybox_image" ] || busybox_image=$(base "$(arg_default bundle.Dockerfile BUSYBOX_IMAGE)" busybox)
      build "s2s-bundle:$BUNDLE_TAG" bundle.Dockerfile "$BUNDLES" --build-arg "BUSYBOX_IMAGE=$busybox_image"
      ;;
    *)
      log "unknown image '$image' (serve, serve-gpu, train, bundle)"
      exit 2
      ;;
  esac
done
