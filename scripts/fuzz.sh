#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS — run every libFuzzer target in BUILD_DIR/tests/fuzz
# for SECONDS each over its corpus in tests/fuzz/corpus/NAME (new inputs go to a
# scratch folder, so the checked-in corpus is never changed). Exits non-zero on
# the first finding and leaves the crashing input in build dir.
# FUZZ_TIMEOUT (default 10) is libFuzzer's per-input timeout in seconds; raise
# it on a machine loaded by other jobs, where wall-clock time is not CPU time.
# FUZZ_SEED (default 1) fixes libFuzzer's random seed so that the short smoke
# run in `make test` explores the same inputs on every CI run: a red CI means a
# code change, not an unlucky draw. Long campaigns (README, "Tests") pass
# FUZZ_SEED=0, which lets libFuzzer pick a fresh seed each time.
set -eu
build=$1
secs=${2:-20}
src=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  corpus="$src/tests/fuzz/corpus/$name"
  scratch=$(mktemp -d)
  # inputs up to 64 KiB, or the largest seed: libFuzzer truncates a seed to
  # -max_len, and a truncated seed (a program.json is ~70-90 KB) is only a
  # parse error, so the target would never see a valid input
  maxlen=65536
  if [ -d "$corpus" ]; then
    big=$(find "$corpus" -type f -printf '%s\n' | sort -n | tail -1)
    [ -n "$big" ] && [ "$big" -gt "$maxlen" ] && maxlen=$big
  fi
  mkdir -p "$build/fuzz-artifacts"
  echo "fuzz: $name for ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
       -max_len="$maxlen" -artifact_prefix="$build/fuzz-artifacts/$name-" "$scratch" ${corpus:+$([ -d "$corpus" ] && echo "$corpus")} \
       >"$build/fuzz-$name.log" 2>&1; then
    echo "fuzz: $name FAILED (see $build/fuzz-$name.log)"; tail -30 "$build/fuzz-$name.log"; status=1
  else
    grep -E '^(#[0-9]+ *DONE|Done)' "$build/fuzz-$name.log" | tail -1 || true
  fi
  rm -rf "$scratch"
done
exit $status
