#!/usr/bin/env bash
# Stand-ins for the base images that cannot be pulled where no image registry is reachable, made
# from Debian's packages alone (../shared/guides/CONTAINERS.md). Each is built once and kept in the
# engine's store; a later call reuses it unless this script's recipe changed.
#
#   bash scripts/stand_in_bases.sh python|busybox|prometheus ...   # prints each image's name
#
# python      Debian 12's Python 3.11 (debootstrap minbase), for docker.io/library/python:3.11-slim
# busybox     Debian's static busybox alone, for docker.io/library/busybox
# prometheus  the python stand-in plus Debian's prometheus 2.42 and wget, for docker.io/prom/prometheus
#
# What a stand-in proves and what it does not: the s2s Dockerfiles' own steps, the installed
# packages, the entrypoint, user, read-only root, health check, signals, ports and compose wiring
# are the real ones; the base layer is not the official image (Python 3.11.2 in /usr/bin instead
# of 3.11.14 in /usr/local/bin; Prometheus 2.42 instead of 2.55).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${ENGINE:-}" ]; then
  ENGINE=$(bash "$ROOT/scripts/install_container_engine.sh") || { echo "stand_in_bases: no container engine" >&2; exit 1; }
fi
PROMETHEUS_RECIPE="$ROOT/scripts/stand-in/prometheus.Dockerfile"
# A change to this script or the Prometheus recipe rebuilds the stand-ins.
RECIPE="$(cat "${BASH_SOURCE[0]}" "$PROMETHEUS_RECIPE" | sha256sum | cut -c1-12)"
PYTHON_STAND_IN=localhost/s2s-stand-in/python:3.11-bookworm
BUSYBOX_STAND_IN=localhost/s2s-stand-in/busybox:bookworm
PROMETHEUS_STAND_IN=localhost/s2s-stand-in/prometheus:2.42-bookworm

log() { echo "stand_in_bases: $*" >&2; }

quietly() {  # run a command, showing its output only when it fails
  local out
  out=$("$@" 2>&1) || { echo "$out" | tail -30 >&2; return 1; }
}

current() {  # the image exists and was made by this recipe
  [ "$("$ENGINE" image inspect --format '{{index .Config.Labels "s2s.stand-in.recipe"}}' "$1" 2>/dev/null)" = "$RECIPE" ]
}

debian_mirror() {  # the mirror apt already uses here (deb822 or one-line sources), else Debian's own
  local uri
  uri=$(grep -h -m1 -E '^URIs: .*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)
  [ -n "$uri" ] || uri=$(grep -h -m1 -E '^deb .*/debian/? bookworm' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

import_rootfs() {  # import_rootfs DIR IMAGE CHANGE...: the directory's tree as a one-layer image
  local dir=$1 image=$2
  shift 2
  local changes=(--change "LABEL s2s.stand-in.recipe=$RECIPE")
  for change in "$@"; do changes+=(--change "$change"); done
  tar --numeric-owner -C "$dir" -c . >"$dir.tar"
  quietly "$ENGINE" import "${changes[@]}" "$dir.tar" "$image"
  rm -f "$dir.tar"
}

build_python() {
  local rootfs
  rootfs=$(mktemp -d /tmp/s2s-stand-in-python.XXXXXX)
  log "debootstrap bookworm with python3 from $(debian_mirror) (about 2 minutes, once)"
  # python-is-python3: the official image's `python`; python3-venv brings ensurepip's pip wheel.
  quietly debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)"
  # What the official slim image also leaves out: package caches, docs, man pages, translations.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  import_rootfs "$rootfs" "$PYTHON_STAND_IN" 'ENV LANG=C.UTF-8' 'CMD ["python3"]'
  rm -rf "$rootfs"
}

build_busybox() {
  local rootfs
  rootfs=$(mktemp -d /tmp/s2s-stand-in-busybox.XXXXXX)
  # busybox-static (installed with the engine) is one static binary: copy it with one link per
  # applet, as the official image has.
  local busybox
  busybox=$(command -v busybox)
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  import_rootfs "$rootfs" "$BUSYBOX_STAND_IN" 'ENV PATH=/bin' 'CMD ["sh"]'
  rm -rf "$rootfs"
}

build_prometheus() {
  ensure python >/dev/null
  log "building $PROMETHEUS_STAND_IN from Debian's prometheus package"
  local format=()
  [ "$ENGINE" = podman ] && format=(--format docker)  # keeps the HEALTHCHECK and labels
  quietly "$ENGINE" build "${format[@]}" --network host --label "s2s.stand-in.recipe=$RECIPE" \
    --build-arg "BASE_IMAGE=$PYTHON_STAND_IN" -t "$PROMETHEUS_STAND_IN" \
    -f "$PROMETHEUS_RECIPE" "$(dirname "$PROMETHEUS_RECIPE")"
}

ensure() {
  local name=$1 image
  case "$name" in
    python) image=$PYTHON_STAND_IN ;;
    busybox) image=$BUSYBOX_STAND_IN ;;
    prometheus) image=$PROMETHEUS_STAND_IN ;;
    *) log "unknown stand-in '$name' (python, busybox, prometheus)"; exit 2 ;;
  esac
  if ! current "$image"; then
    local start=$SECONDS old
    old=$("$ENGINE" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    "build_$name"
    log "$image built in $((SECONDS - start)) s"
    # The previous recipe's image, untagged now: drop it unless something still uses it.
    [ -z "$old" ] || "$ENGINE" rmi "$old" >/dev/null 2>&1 || true
  fi
  echo "$image"
}

[ $# -gt 0 ] || { log "usage: $0 python|busybox|prometheus ..."; exit 2; }
for name in "$@"; do ensure "$name"; done
