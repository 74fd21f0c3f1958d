#!/usr/bin/env bash
# Installs the Debian 12 packages strata needs to build, test and benchmark.
# Idempotent and non-interactive: only missing packages are installed, and
# `apt-get update` runs only when something is missing.
#
#   scripts/deps.sh            build + test packages
#   scripts/deps.sh bench      also the benchmark tools (wrk, nginx, haproxy)
set -euo pipefail

pkgs=(
  gcc clang make pkg-config ca-certificates
  libuv1-dev node-llhttp libjansson-dev libyaml-dev libsqlite3-dev
  libcmocka-dev libclang-rt-14-dev libjwt-dev libssl-dev
  python3 curl valgrind prometheus wrk
)
if [ "${1:-}" = bench ]; then
  pkgs+=(wrk nginx-light util-linux haproxy)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# Installing a server package must never start its system service here.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
