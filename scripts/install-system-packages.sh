#!/usr/bin/env bash
# Install the Debian packages the local target runs (Mosquitto, PostgreSQL 15, Prometheus, Node.js), what
# builds and runs the container images (Podman, runc, mmdebstrap) unless INDMLOPS_SKIP_IMAGES=1, and what builds and
# runs the single-node Kubernetes cluster (`indmlops cluster`: Go, etcd, containerd, runc, CNI plugins) unless
# INDMLOPS_SKIP_CLUSTER=1.
# Idempotent: does nothing (and needs no network) when everything is already there. Needs root.
set -euo pipefail

need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_passwd >/dev/null || need+=(mosquitto)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v ss >/dev/null || need+=(iproute2)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Headless Chromium renders reports/conformance.html in tests/plugin/test_conformance_browser.py.
command -v chromium >/dev/null || need+=(chromium)
# Container images (tests/images, scripts/build-images.sh): Podman unless a Docker engine answers; runc because
# Debian's Podman defaults to crun, which fails on setrlimit here; uidmap, slirp4netns and fuse-overlayfs for
# Podman as a normal user; mmdebstrap makes the local Debian base image (no image registry is reachable).
if [ "${INDMLOPS_SKIP_IMAGES:-0}" = 0 ]; then
  if ! { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }; then
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    command -v newuidmap >/dev/null || need+=(uidmap)
    command -v slirp4netns >/dev/null || need+=(slirp4netns)
    command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
  fi
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
fi
# The cluster (scripts/build-kubernetes.sh, indmlops cluster up): Kubernetes 1.20 from Debian's source package,
# built with Debian's Go 1.19 and Debian's reflect2 1.0.2; the runtime is Debian's etcd, containerd, runc and CNI.
if [ "${INDMLOPS_SKIP_CLUSTER:-0}" = 0 ]; then
  command -v go >/dev/null || need+=(golang-go)
  command -v rsync >/dev/null || need+=(rsync)
  command -v make >/dev/null || need+=(make)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  [ -f /usr/share/gocode/src/github.com/modern-go/reflect2/reflect2.go ] || need+=(golang-github-modern-go-reflect2-dev)
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  command -v iptables >/dev/null || need+=(iptables)
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] \
    || need+=(containernetworking-plugins)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing: ${need[*]}" >&2
  echo "run as root: sudo $0   (or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi

mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "system packages: installing ${pkgs[*]}"
# Debian starts a freshly installed daemon at once (Mosquitto on 1883, PostgreSQL on 5432, Prometheus on
# 9090, etcd on 2379, containerd), which would take the ports the local target uses or run beside the cluster's. policy-rc.d forbids that during this install only.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
echo "system packages: done"
