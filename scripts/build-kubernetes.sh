#!/usr/bin/env bash
# Build the Kubernetes server binaries a single-node cluster here needs, from Debian bookworm's `kubernetes` source
# package with Debian's Go: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, and the
# pod sandbox ("pause") binary. `indmlops cluster up` runs this script; nothing is downloaded but Debian's source.
#
#   scripts/build-kubernetes.sh [--cache DIR] [--print-dir] [--rebuild]
#
# The binaries land in DIR/kubernetes/<recipe>/bin (default DIR: $INDMLOPS_CACHE_DIR, else /var/cache/indmlops as
# root, else ~/.cache/indmlops), outside the clone. <recipe> is a hash of this script and the source package's
# version: the build runs once and again only when either changes. It takes 5 min on two quiet cores (measured
# 2026-11-30: 303 s, kube-apiserver 210 s of it) and up to half an hour on busy ones; the binaries take 400 MB.
#
# The source comes through apt with a private sources list (deb-src of bookworm) and private lists, so the host's
# apt configuration is not touched. Before building, the vendored modern-go/reflect2 1.0.1 (it crashes under
# Go 1.19: kube-apiserver dies on any YAML request) is replaced by Debian's 1.0.2.
#
# Exit status: 0 built (or already built; --print-dir then prints the bin directory); 1 the build failed (the
# log's last lines are printed); 2 usage; 3 a tool or package is missing (each one is named with its package).
set -euo pipefail

RECIPE_VERSION=1   # raise when the steps below change in a way the script's own hash would not show
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2

cache=${INDMLOPS_CACHE_DIR:-}
print_dir=0
rebuild=0
usage() { sed -n '6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "build-kubernetes: $*" >&2; }
die() { say "error: $2"; exit "$1"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=${2:?}; shift 2 ;;
    --print-dir) print_dir=1; shift ;;
    --rebuild) rebuild=1; shift ;;
    -h|--help) usage ;;
    *) say "unknown argument $1"; usage ;;
  esac
done
if [ -z "$cache" ]; then
  if [ "$(id -u)" -eq 0 ]; then cache=/var/cache/indmlops; else cache=${XDG_CACHE_HOME:-$HOME/.cache}/indmlops; fi
fi

# ---- tools: each missing one is named with the Debian package that has it ------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (apt-get install $2)"); }
need go golang-go
need make make
need rsync rsync
need gcc gcc
need dpkg-source dpkg-dev
need apt-get apt
need xz xz-utils
[ -f "$REFLECT2/reflect2.go" ] || missing+=("$REFLECT2 (apt-get install golang-github-modern-go-reflect2-dev)")
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do say "missing: $m"; done
  die 3 "cannot build Kubernetes without the above; scripts/install-system-packages.sh installs them"
fi

root=$cache/kubernetes
mkdir -p "$root"
apt_dir=$root/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian bookworm main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1"
          -o "APT::Sandbox::User=$(id -un)")

# The package's version is part of the recipe: ask apt for it (a fresh index at most once a day).
if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Sources*' -mtime -1 2>/dev/null | head -1)" ]; then
  say "reading Debian's source index (deb.debian.org, bookworm)"
  apt-get "${apt_opts[@]}" update -qq >/dev/null 2>"$root/apt-update.log" \
    || { tail -5 "$root/apt-update.log" >&2; die 1 "apt-get update of the private deb-src list failed"; }
fi
version=$(apt-get "${apt_opts[@]}" source --print-uris kubernetes 2>/dev/null \
  | awk '$2 ~ /^kubernetes_.*\.dsc$/ {sub(/\.dsc$/, "", $2); print $2; exit}')
[ -n "$version" ] || die 1 "Debian bookworm offers no source package 'kubernetes' (apt-get source --print-uris)"
key=$( { cat "$0"; echo "$RECIPE_VERSION $version $(go version)"; } | sha256sum | cut -c1-16)
out=$root/$key
bin=$out/bin

done_already() {
  [ -f "$out/built" ] || return 1
  for c in "${COMPONENTS[@]}" pause; do [ -x "$bin/$c" ] || return 1; done
}
if [ "$rebuild" = 0 ] && done_already; then
  say "cached: $bin ($version)"
  [ "$print_dir" = 1 ] && echo "$bin"
  exit 0
fi

start=$(date +%s)
work=$out/work
rm -rf "$work" "$bin"
mkdir -p "$work" "$bin"
log=$out/build.log
: > "$log"
say "building Kubernetes server binaries from $version into $bin"
say "this takes 5-30 min on two cores, once per recipe; log: $log"

say "[1/4] source package"
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only kubernetes >>"$log" 2>&1) \
  || { tail -5 "$log" >&2; die 1 "could not download the kubernetes source package"; }
(cd "$work" && dpkg-source -x kubernetes_*.dsc src >>"$log" 2>&1) \
  || { tail -5 "$log" >&2; die 1 "dpkg-source could not unpack the kubernetes source package"; }

say "[2/4] vendored reflect2 -> Debian's $(basename "$(readlink -f "$REFLECT2")") (Go 1.19 safe)"
rm -rf "$work/src/vendor/github.com/modern-go/reflect2"
mkdir -p "$work/src/vendor/github.com/modern-go/reflect2"
find -L "$REFLECT2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
  -exec cp -L {} "$work/src/vendor/github.com/modern-go/reflect2/" \;

say "[3/4] go build: ${COMPONENTS[*]} (progress in $log)"
export GOPATH=$work/gopath GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off
export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=debian-bookworm
export CGO_ENABLED=0 HOME=$work/home
mkdir -p "$HOME"
for c in "${COMPONENTS[@]}"; do
  t0=$(date +%s)
  if ! (cd "$work/src" && make WHAT="cmd/$c" >>"$log" 2>&1); then
    tail -20 "$log" >&2
    die 1 "building $c failed (full log: $log)"
  fi
  cp "$work/src/_output/bin/$c" "$bin/$c"
  say "  $c built in $(( $(date +%s) - t0 )) s"
done

say "[4/4] pause (the pod sandbox), gcc -static"
gcc -Os -Wall -static -DVERSION=v3.4-indmlops -o "$bin/pause" "$work/src/build/pause/linux/pause.c" >>"$log" 2>&1 \
  || { tail -5 "$log" >&2; die 1 "building pause failed"; }
strip "$bin/pause" 2>/dev/null || true

echo "$version" > "$out/built"
rm -rf "$work"
say "built in $(( $(date +%s) - start )) s: $bin"
[ "$print_dir" = 1 ] && echo "$bin"
exit 0
