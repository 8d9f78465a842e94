#!/usr/bin/env bash
# Makes a container engine usable for scripts/build_images.sh and the image tests
# (tests/deploy/test_image_*.py): a working Docker is kept as it is; otherwise podman is installed
# from Debian's packages and configured the way ../shared/guides/CONTAINERS.md records for these
# machines. Idempotent: about a second when everything is in place.
#
#   bash scripts/install_container_engine.sh      # prints the engine to use (docker or podman)
#
# Exit 0 with the engine's name on stdout; exit 1 with the reason on stderr when none can be made
# to work (no root, no apt, no user namespaces...): the image tests then skip, except in CI.
set -euo pipefail

log() { echo "install_container_engine: $*" >&2; }

# Debian packages: the engine, runc (crun 1.8 refuses this machine's hybrid cgroups), rootfs tools
# and debootstrap for the stand-in bases, podman-compose for tests/deploy/test_compose_up.py, and
# the CNI dnsname plugin: without it (a podman Recommends, which --no-install-recommends drops) a
# compose network has no DNS, and Prometheus cannot resolve the service name "s2s".
PACKAGES=(podman buildah runc fuse-overlayfs slirp4netns uidmap debootstrap podman-compose busybox-static
          golang-github-containernetworking-plugin-dnsname)
DNSNAME=/usr/lib/cni/dnsname
CONF=/etc/containers/containers.conf.d/50-s2s.conf

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

engine_works() { "$1" info >/dev/null 2>&1; }

# A Docker client with no daemon behind it is common (these machines ship one): only a daemon
# that answers counts.
if command -v docker >/dev/null && engine_works docker && [ -z "${S2S_FORCE_PODMAN:-}" ]; then
  echo docker
  exit 0
fi

missing=()
for tool in podman buildah runc debootstrap podman-compose busybox; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x "$DNSNAME" ] || missing+=("$DNSNAME")
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "no working docker and no apt-get to install podman"; exit 1; }
  log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
  as_root apt-get update -qq || { log "apt-get update failed (root or sudo -n needed)"; exit 1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" >/dev/null || { log "apt-get install failed"; exit 1; }
fi

# The defaults fail here: crun rejects hybrid cgroups, there is no systemd for cgroups or the
# journal, and podman's default rlimits exceed what even root may set in this sandbox.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
wanted=$(cat <<EOF
# Written by s2s scripts/install_container_engine.sh (see ../shared/guides/CONTAINERS.md).
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
EOF
)
if [ "$(cat "$CONF" 2>/dev/null)" != "$wanted" ]; then
  log "writing $CONF"
  as_root mkdir -p "$(dirname "$CONF")" && printf '%s\n' "$wanted" | as_root tee "$CONF" >/dev/null \
    || { log "cannot write $CONF"; exit 1; }
fi

if ! engine_works podman; then
  log "podman is installed but does not run: $(podman info 2>&1 | tail -1)"
  exit 1
fi
echo podman
