#!/usr/bin/env bash
# Install the Debian packages quorumkv needs to build, test, run and bench,
# but only those missing (dpkg -s), so a prepared machine pays nothing.
set -euo pipefail
pkgs=(
  build-essential pkg-config
  libevent-dev libmsgpack-dev libleveldb-dev libxxhash-dev libinih-dev
  libcmocka-dev clang libclang-rt-14-dev
  python3 python3-pytest python3-pymemcache
  memcached libmemcached-tools
  iproute2 procps
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
