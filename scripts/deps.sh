#!/usr/bin/env bash
# Installs the Debian 12 packages sbpc needs, only those missing, so a second
# run costs one dpkg query. Needs root (or sudo) the first time.
# `deps.sh test` also installs what only the test suite needs: python3-torch
# (Debian's PyTorch, for the reference tests that compare sbpc's losses with
# PyTorch's; without it they would be skipped).
set -eu
pkgs="build-essential cmake pkg-config flex bison libglpk-dev llvm-dev clang
      libclang-rt-dev libcunit1-dev libopenmpi-dev openmpi-bin libopenblas-dev
      libcjson-dev python3 jq bc"
[ "${1:-}" = test ] && pkgs="$pkgs python3-torch"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "sbpc: installing:$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
