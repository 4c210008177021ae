#!/usr/bin/env bash
# Install the Debian packages quorumkv needs to build, test, run and bench,
# but only those missing (dpkg -s), so a prepared machine pays nothing.
set -euo pipefail
pkgs=(
  build-essential pkg-config
  libevent-dev libmsgpack-dev libleveldb-dev libxxhash-dev libinih-dev libsodium-dev
  libcmocka-dev clang libclang-rt-14-dev libedit-dev
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
  # Debian starts the memcached service on 127.0.0.1:11211 when it installs
  # it; we only want the binary (tests and benchmarks start their own on
  # free ports), and node1 of `make run` listens on 11211.
  if [[ " ${missing[*]} " == *" memcached "* ]] && command -v systemctl >/dev/null &&
     systemctl is-active --quiet memcached 2>/dev/null; then
    echo "deps: stopping and disabling Debian's memcached service (port 11211)"
    $SUDO systemctl disable --now memcached >/dev/null 2>&1 || true
  fi
fi
