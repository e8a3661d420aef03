#!/usr/bin/env bash
# Make sure a container runtime is there: Docker when its daemon answers, else podman (installed from
# Debian packages when we are root on Debian). The harness itself starts podman's Docker API service.
set -euo pipefail

if command -v docker >/dev/null 2>&1 && env -u DOCKER_HOST docker info >/dev/null 2>&1; then
  echo "container runtime: docker"
  exit 0
fi

if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing podman, runc, debootstrap from Debian packages..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap uidmap >/dev/null
  elif ! command -v podman >/dev/null 2>&1; then
    echo "error: no container runtime: start Docker, or install podman (apt-get install podman runc debootstrap)" >&2
    exit 1
  fi
fi

# podman on kernels like CI's: crun fails on the cgroup mode and rlimits; runc with no default ulimits works.
conf=/etc/containers/containers.conf
if [ "$(id -u)" = 0 ] && [ ! -f "$conf" ]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > "$conf"
  echo "wrote $conf (runc, no default ulimits)"
fi
echo "container runtime: podman $(podman --version | awk '{print $3}')"
