#!/usr/bin/env bash
# Build the project's container images (images/<name>/Dockerfile: simulator, inference, mlflow, probe) without an
# image registry. `indmlops images build` runs this script; it needs nothing but bash and a container engine.
#
#   scripts/build-images.sh [--engine docker|podman] [--base IMAGE | --rebuild-base] [--tag TAG]
#                           [--context DIR] [--base-only] [NAME...]
#
# Engine: Docker when `docker info` answers, otherwise Podman (Debian's 4.3 runs builds and containers only
# with `--runtime runc` and explicit nofile/nproc ulimits: crun and the default limits fail on setrlimit here).
#
# Base: every Dockerfile starts `ARG BASE_IMAGE=python:3.11.14-slim-bookworm`. Where no registry answers, this
# script makes a local base instead: Debian bookworm (minbase) with python3 (3.11), venv and CA certificates,
# built by mmdebstrap from the Debian mirror and imported as localhost/indmlops-base:bookworm-<recipe hash>.
# The tag is a hash of the recipe, so the base is reused until the recipe changes; --rebuild-base refreshes it
# (security updates), --base IMAGE uses another (e.g. python:3.11.14-slim-bookworm where a registry answers).
#
# Network: pip inside the builds needs PyPI, so builds run with --network host (the engines' own bridge/slirp
# networking is not set up on every machine, and host networking uses the host's resolver and routes as they
# are). The host's CA bundle is passed as a build secret (`--secret id=ca-bundle`): pip in the build then
# trusts what the host trusts (e.g. a TLS-inspecting proxy's CA), and the bundle lands in no image layer.
# Downloads are kept in a build cache mount (/root/.cache/pip), so rebuilds download nothing again.
#
# Exit status: 0 all built; 1 a build failed (the failing step is printed last); 2 usage; 3 no engine or tool.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_IMAGES=(simulator inference mlflow probe)
engine=${INDMLOPS_ENGINE:-}
base=""
rebuild_base=0
base_only=0
tag=${INDMLOPS_IMAGE_TAG:-dev}
context=.
names=()

usage() { sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "build-images: $*" >&2; }
die() { say "error: $2"; exit "$1"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=${2:?}; shift 2 ;;
    --base) base=${2:?}; shift 2 ;;
    --rebuild-base) rebuild_base=1; shift ;;
    --base-only) base_only=1; shift ;;
    --tag) tag=${2:?}; shift 2 ;;
    --context) context=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *) names+=("$1"); shift ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${ALL_IMAGES[@]}")
[ -n "$base" ] && [ "$rebuild_base" = 1 ] && die 2 "--base and --rebuild-base exclude each other"
for n in "${names[@]}"; do
  [ -f "$context/images/$n/Dockerfile" ] || die 2 "no Dockerfile $context/images/$n/Dockerfile (images: ${ALL_IMAGES[*]})"
done

# ---- engine -----------------------------------------------------------------------------------------------
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  else
    die 3 "no container engine: no Docker engine answers and podman is not installed (Debian: apt-get install podman runc, or sudo scripts/install-system-packages.sh)"
  fi
fi
case "$engine" in
  docker) build=(docker build) ;;
  # 1024 open files and processes: enough for pip and the services' smoke runs, and within this machine's
  # hard limits (the defaults podman asks for are not).
  podman) build=(podman build --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024) ;;
  *) die 2 "--engine $engine: expected docker or podman" ;;
esac
command -v "$engine" >/dev/null || die 3 "--engine $engine: $engine is not installed"
say "engine: $engine ($("$engine" --version 2>/dev/null | head -1))"

# ---- base -------------------------------------------------------------------------------------------------
mirror=${INDMLOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${INDMLOPS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# merged-usr hook: /bin -> /usr/bin without installing the usrmerge package (and the ~45 MB of perl it pulls).
# Docs, man pages and translations are left out; copyright files are kept.
recipe=(mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
        --dpkgopt='path-exclude=/usr/share/info/*'
        bookworm)
sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main")
recipe_hash=$(printf '%s\n' "${recipe[@]}" "${sources[@]}" | sha256sum | cut -c1-12)

image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }
image_mb() { "$engine" image inspect --format '{{.Size}}' "$1" | awk '{printf "%d", $1 / 1000000}'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

make_base() {
  local ref=$1 tmp t0
  command -v mmdebstrap >/dev/null ||
    die 3 "mmdebstrap is needed to make the local base $ref (Debian: apt-get install mmdebstrap), or pass --base IMAGE"
  [ "$(id -u)" -eq 0 ] || command -v unshare >/dev/null || die 3 "mmdebstrap needs root or unshare"
  tmp=$(mktemp -d /var/tmp/indmlops-base.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  say "base: making $ref with mmdebstrap from $mirror (Debian bookworm minbase + python3, venv, CA certificates)"
  t0=$(now)
  "${recipe[@]}" "$tmp/rootfs.tar" "${sources[@]}" > "$tmp/mmdebstrap.log" 2>&1 ||
    { tail -20 "$tmp/mmdebstrap.log" >&2; die 1 "mmdebstrap failed (log above)"; }
  "$engine" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    --message "indmlops local base: ${recipe[*]}" "$tmp/rootfs.tar" "$ref" >/dev/null
  rm -rf "$tmp"
  trap - EXIT
  say "base: $ref made in $(since "$t0") s ($(image_mb "$ref") MB)"
}

if [ -z "$base" ]; then
  base=localhost/indmlops-base:bookworm-$recipe_hash
  if [ "$rebuild_base" = 1 ] && image_exists "$base"; then
    "$engine" rmi --force "$base" >/dev/null
  fi
  if image_exists "$base"; then
    say "base: $base present (recipe unchanged; --rebuild-base to refresh it)"
  else
    make_base "$base"
  fi
fi
echo "base $base"
[ "$base_only" = 1 ] && exit 0

# ---- builds -----------------------------------------------------------------------------------------------
secret=()
ca=${INDMLOPS_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] && secret=(--secret "id=ca-bundle,src=$ca")

log=$(mktemp /var/tmp/indmlops-build.XXXXXX)
trap 'rm -f "$log"' EXIT
summary=()
for n in "${names[@]}"; do
  ref=localhost/indmlops-$n:$tag
  say "building $ref from images/$n/Dockerfile (BASE_IMAGE=$base)"
  old=$("$engine" image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  t0=$(now)
  set +e
  "${build[@]}" --network host "${secret[@]}" --build-arg "BASE_IMAGE=$base" \
    -f "$context/images/$n/Dockerfile" -t "$ref" "$context" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    # Podman names the step ("error building at STEP \"RUN ...\""), BuildKit the process ("failed to solve:
    # process \"/bin/sh -c ...\""); the last STEP header is where Podman stopped.
    step=$(grep -E '^(\[[0-9]+/[0-9]+\] )?STEP [0-9]+/[0-9]+: ' "$log" | tail -1 || true)
    err=$(grep -E 'error building at STEP|failed to solve|^Error:|^ERROR' "$log" | tail -1 || true)
    say "FAILED: images/$n/Dockerfile (exit $rc)"
    [ -n "$step" ] && say "  failing step: $step"
    [ -n "$err" ] && say "  error: $err"
    exit 1
  fi
  secs=$(since "$t0")
  # Also the tag the Kubernetes manifests use: the project version, or MLflow's for the MLflow image.
  # Both read where they are set once: MLflow's pin in pyproject.toml's `tracking` extra, the project's version in
  # src/indmlops/__init__.py.
  if [ "$n" = mlflow ]; then
    version=$(python3 "$context/scripts/requirements.py" tracking | sed -n 's/^mlflow==//p' | head -1)
  else
    version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$context/src/indmlops/__init__.py" | head -1)
  fi
  [ -n "$version" ] || die 1 "images/$n: no version to tag it with (pyproject.toml's tracking extra pins mlflow==X; src/indmlops/__init__.py sets __version__)"
  "$engine" tag "$ref" "localhost/indmlops-$n:$version"
  # The image this build replaced: its runtime layer (the whole venv) would otherwise stay on disk as <none>,
  # a few hundred MB per source change. The builder stages' cache is left alone. Kept if tagged otherwise.
  new=$("$engine" image inspect --format '{{.Id}}' "$ref")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then "$engine" rmi "$old" >/dev/null 2>&1 || true; fi
  summary+=("$(printf '%-10s %-40s %8s s %6s MB  (also :%s)' "$n" "$ref" "$secs" "$(image_mb "$ref")" "$version")")
done
say "done:"
printf '  %s\n' "${summary[@]}" >&2
for n in "${names[@]}"; do echo "image localhost/indmlops-$n:$tag"; done
