#!/usr/bin/env bash
# rt_adaptive.sh BUILD_DIR — step time of `sbpc run --adaptive-sp` against
# every static SP degree on CPU ranks, for long-tailed batches (issue 17,
# item 5). A sanity check that the executed assignment is as fast relative
# to static SP as the solver predicts, not a GPU claim.
#
# Model: the tiny GPT-2 with a 512-row position table and hidden 128 (4
# heads, 2 layers). Documents: the lengths of the shared long-tailed file
# (../shared/data/lengths/synthetic-lognormal.txt when present, else a
# log-normal of the same shape drawn here) divided by DIV (default 32) and
# clipped to [2, MAX], for each MAX in MAXLEN (default "512 128": the long
# tail, where only groups of 512 / C ranks hold the longest document, and
# the tail cut at 128 tokens, where every degree holds every document);
# random ids, EOS 0; samples of S = 512 tokens, batch GB (default 4) samples
# a step, so every run of a corpus trains the same documents.
# For each world N in RANKS (default "2 4"; 4 oversubscribes the 2 cores):
# one program (sbpc plan --fix sp=N, compile --packed --adaptive-sp --micro
# 16), run adaptive and with --sp-degree G for every G dividing N (the
# solver's static layout, through the same executor); STEPS steps (default
# 8), the first warm-up, REPS times (default 3) round robin over the
# layouts. Per layout: the solver's predicted step time (median over the
# timed steps) and the measured one (the runtime's "step_s", from the
# assignment's broadcast to the loss: the median over the runs of each
# run's median over its timed steps), and the ratio
# x / adaptive of both, and the solver's median CPU seconds per batch. Two
# adaptive rows: "adaptive" solves the next batch before the step, outside
# its measured time (SBPC_SP_SOLVE=inline: the executed assignment alone),
# "adaptive, thread" beside the step on rank 0's thread, as `sbpc run` does
# (on these oversubscribed cores the thread takes CPU from the ranks; on
# GPU ranks the host cores are idle). The predicted times are the solver's on the
# `cpu:N` preset (not calibrated to this machine), so only the ratios
# compare. A degree whose groups cannot hold the longest
# document is "n/a" (the run is refused, exit 1). One OpenBLAS and one
# runtime thread per rank.
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
SBPC=$(cd "$build" && pwd)/sbpc
STEPS=${STEPS:-8} REPS=${REPS:-3} GB=${GB:-4} DIV=${DIV:-32} RANKS=${RANKS:-"2 4"} MAXLEN=${MAXLEN:-"512 128"}
shared=${SBPC_SHARED:-$src/../shared}/data/lengths/synthetic-lognormal.txt
[ -x "$SBPC" ] || { echo "rt_adaptive: no $SBPC"; exit 1; }
command -v mpirun > /dev/null || { echo "rt_adaptive: no mpirun; skipped"; exit 0; }
cd "$src"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 SBPC_THREADS=1 SBPC_WORKERS=1
sed 's/P = 32, H = 64/P = 512, H = 128/' examples/tiny-gpt2.sbp > "$T/gpt.sbp"
echo "model: tiny GPT-2, hidden 128, 4 heads, 2 layers; samples of 512 tokens, $GB a step; $STEPS steps, the first warm-up"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# median FIELD LOG: the median of FIELD over the steps after the first
median() { python3 -c "
import json, statistics
v = [json.loads(l)['$1'] for l in open('$2')][1:]
print('%.4f' % statistics.median(v) if v else 'n/a')"; }
for n in $RANKS; do
  "$SBPC" plan "$T/gpt.sbp" --cluster cpu:$n --batch "$GB" --seq 512 --precision fp32 \
    --fix "sp=$n,dp=1,tp=1,pp=1,zero=0,recompute=none" --json "$T/p$n.json" > /dev/null 2>&1 || { echo "plan sp=$n failed"; exit 1; }
  "$SBPC" compile "$T/gpt.sbp" --plan "$T/p$n.json" --packed --adaptive-sp --micro 16 -o "$T/d$n" > /dev/null ||
    { echo "compile sp=$n failed"; exit 1; }
done
for mx in $MAXLEN; do
python3 - "$shared" "$DIV" "$T/docs.bin" "$mx" <<'EOF' || exit 1
import os, random, struct, sys
path, div, out, mx = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
random.seed(17)
if os.path.exists(path):
    L = [int(x) for x in open(path) if x.strip() and not x.startswith("#")]
    src = path
else:
    L = [int(random.lognormvariate(6.4, 1.4)) + 32 for _ in range(4000)]
    src = "log-normal(6.4, 1.4) drawn here"
toks, lens = [], []
for l in L:
    n = max(2, min(mx, round(l / div)))
    toks += [random.randint(1, 511) for _ in range(n - 1)] + [0]
    lens.append(n)
    if len(toks) > 40 * 513 * 4: break
open(out, "wb").write(struct.pack("<%di" % len(toks), *toks))
lens.sort()
print("\n## documents: %d from %s / %g, clipped to [2, %d]: median %d, p90 %d, max %d tokens" %
      (len(lens), src, div, mx, lens[len(lens) // 2], lens[len(lens) * 9 // 10], lens[-1]))
EOF
for n in $RANKS; do
  echo
  echo "$n ranks ($((512 / n)) tokens per rank and micro-batch):"
  cfgs="i t"
  for g in $(seq 1 $n); do [ $((n % g)) -eq 0 ] && cfgs="$cfgs $g"; done
  for rep in $(seq 1 "$REPS"); do # round robin, so load changes touch every layout alike
    for g in $cfgs; do
      flag="--sp-degree $g" mode=thread
      [ $g = i ] && flag=--adaptive-sp mode=inline
      [ $g = t ] && flag=--adaptive-sp
      SBPC_SP_SOLVE=$mode mpirun --oversubscribe -np $n -x OPENBLAS_NUM_THREADS -x SBPC_THREADS -x SBPC_WORKERS \
        -x SBPC_SP_SOLVE "$SBPC" run "$T/d$n" $flag --data "$T/docs.bin" --eos 0 --steps "$STEPS" --quiet \
        --log "$T/l$n-$g-$rep.jsonl" > "$T/o$n-$g.out" 2>&1 || rm -f "$T/l$n-$g-$rep.jsonl"
    done
  done
  printf "| %-17s | %-9s | %-9s | %-11s | %-11s | %-9s | %s\n" layout "predicted" "measured" "pred. x/ad." \
    "meas. x/ad." "solve CPU" "groups (step 2)"
  for g in $cfgs; do
    name="static sp=$g"
    [ $g = i ] && name="adaptive"
    [ $g = t ] && name="adaptive, thread"
    if [ -f "$T/l$n-$g-1.jsonl" ]; then
      p=$(median predicted_s "$T/l$n-$g-1.jsonl") c=$(median solve_s "$T/l$n-$g-1.jsonl")
      m=$(python3 -c "
import json, statistics, sys
runs = [[json.loads(l)['step_s'] for l in open(f)][1:] for f in sys.argv[1:]]
print('%.4f' % statistics.median(statistics.median(r) for r in runs))" "$T"/l$n-$g-*.jsonl)
      gr=$(sed -n '2s/.*"groups": "\([^"]*\)".*/\1/p' "$T/l$n-$g-1.jsonl")
      [ $g = i ] && pa=$p ma=$m
      rp=$(python3 -c "print('%.2f' % ($p / $pa))") rm=$(python3 -c "print('%.2f' % ($m / $ma))")
      printf "| %-17s | %-9s | %-9s | %-11s | %-11s | %-9s | %s\n" "$name" "$p" "$m" "$rp" "$rm" "$c" "$gr"
    else
      printf "| %-17s | n/a: %s\n" "$name" "$(grep -m1 -o 'error: .*' "$T/o$n-$g.out")"
    fi
  done
done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
