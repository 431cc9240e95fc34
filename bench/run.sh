#!/usr/bin/env bash
# run.sh BUILD_DIR — run every benchmark: bench_* executables, then bench/*.sh
# (except this file and gpu_check.sh). Each prints its own table; the
# full data in ../shared/data is used when present (each bench says so).
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
export SBPC="$build/sbpc" SBPC_SRC="$src" SBPC_SHARED="$src/../shared"
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
rc=0
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || rc=1
done
for s in "$src"/bench/*.sh; do
  case "$(basename "$s")" in run.sh|gpu_check.sh) continue;; esac
  echo "== $(basename "$s")"
  bash "$s" "$build" || rc=1
done
exit $rc
