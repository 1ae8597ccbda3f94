#!/usr/bin/env bash
# Installs the Debian packages AutoBot needs to build, run, test and benchmark.
# Idempotent: when every package is present it does nothing and says so.
# Usage: scripts/install-deps.sh [build|test|bench]   (default: test)
set -eu
set -o pipefail

build_pkgs=(
  build-essential pkg-config meson ninja-build
  libmicrohttpd-dev libhiredis-dev libcurl4-openssl-dev libcurl3-gnutls libyaml-dev
  libjansson-dev libutf8proc-dev redis-server libstemmer-dev libmd4c-dev
  libgumbo-dev libpoppler-glib-dev zstd libzstd-dev
)
test_pkgs=(libcriterion-dev clang libclang-rt-14-dev curl iproute2 procps psmisc valgrind python3 python3-pytest python3-numpy
  openssh-server openssh-client systemd)
bench_pkgs=(wrk nginx-light python3-fastapi python3-uvicorn python3-redis hyperfine python3-hnswlib)

want=("${build_pkgs[@]}")
case "${1:-test}" in
  build) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 64 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
