#!/usr/bin/env bash
# tune.sh SBPC — `sbpc tune --quick` (seconds) writes a calibration JSON with
# GEMM rates over shapes, memory bandwidth and the kernel call overhead, all
# positive; progress is plain "tune:" lines when stderr is not a terminal;
# with --peak-flops/--peak-bw the efficiencies appear and lie in (0, 1];
# --plans (autotune by measurement) is refused while `sbpc run` is missing.
# Under mpirun (when available) the calibration gains collective bandwidth by
# group size, and all-to-all and ring send/recv bandwidth by group size and
# placement, which `sbpc sp --calibration` reads. The schema itself is checked
# in test_ex_calib.c.
set -u
sbpc=${1:?usage: tune.sh SBPC}
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
"$sbpc" tune --quick -o "$tmp/c.json" 2>"$tmp/log" || { echo "FAIL: tune exited $?"; cat "$tmp/log"; exit 1; }
grep -q '^tune: gemm 64x64x64: ' "$tmp/log" || { echo "FAIL: no plain progress lines"; fail=1; }
grep -q $'\r' "$tmp/log" && { echo "FAIL: progress bar on a non-terminal"; fail=1; }
python3 - "$tmp/c.json" <<'PY' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))
assert c["format"] == "sbpc-calibration" and c["version"] == 1
assert 0 < c["kernel_overhead_s"] < 1e-2
g = c["gemm"]
assert len(g["shapes"]) >= 4 and all(s["flops_per_s"] > 0 and s["seconds"] > 0 for s in g["shapes"])
assert g["half_dim"] >= 0 and g["fit_peak_flops_per_s"] > 0 and "eff_max" not in g
assert c["memory"]["copy_bytes_per_s"] > 0 and c["memory"]["triad_bytes_per_s"] > 0
PY
"$sbpc" tune --quick --peak-flops 1e15 --peak-bw 1e13 -o "$tmp/p.json" 2>/dev/null || { echo "FAIL: tune with peaks"; fail=1; }
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert 0 < c["gemm"]["eff_max"] <= 1 and 0 < c["memory"]["bandwidth_eff"] <= 1' "$tmp/p.json" || { echo "FAIL: efficiencies"; fail=1; }
"$sbpc" tune --plans 3 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --plans without a model is bad usage"; fail=1; }
"$sbpc" tune --plans 99 x.sbp 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --plans 99 is bad usage"; fail=1; }
# Autotune by measurement on the tiny GPT-2 (one rank: no mpirun needed).
src=$(cd "$(dirname "$0")/.." && pwd)
if "$sbpc" plan "$src/examples/tiny-gpt2.sbp" --cluster cpu:1 >/dev/null 2>&1; then
  if timeout 300 "$sbpc" tune --plans 2 "$src/examples/tiny-gpt2.sbp" --np 1 --steps 3 >"$tmp/at.out" 2>"$tmp/at.err"; then
    grep -q 'predicted s.*measured s' "$tmp/at.out" && grep -q '^fastest measured: #[12] ' "$tmp/at.out" &&
      grep -q 'prediction error [0-9.]*%' "$tmp/at.out" || { echo "FAIL: autotune report"; cat "$tmp/at.out"; fail=1; }
  else echo "FAIL: sbpc tune --plans 2 exited $?"; cat "$tmp/at.err"; fail=1; fi
else echo "note: sbpc plan cannot plan the tiny GPT-2 here; --plans not checked"; fi
"$sbpc" tune --bogus 2>/dev/null; [ $? = 2 ] || { echo "FAIL: bad option"; fail=1; }
if command -v mpirun >/dev/null 2>&1; then
  if timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$sbpc" tune --quick -o "$tmp/m.json" >/dev/null 2>"$tmp/mlog"; then
    if grep -q "built without MPI" "$tmp/mlog"; then echo "note: this build has no MPI for tune"
    else python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); b=c["collectives"]["by_group_size"]; assert c["ranks"]==2 and b[0]["n"]==2 and b[0]["bus_bw"]>0' "$tmp/m.json" || { echo "FAIL: mpirun collectives"; fail=1; }
      # sequence parallelism: all-to-all and ring send/recv of the two ranks (one node: intra), read by sbpc sp
      python3 -c 'import json,sys; co=json.load(open(sys.argv[1]))["collectives"]; assert all(co[k][0]["n"]==2 and co[k][0]["placement"]=="intra" and co[k][0]["bus_bw"]>0 for k in ("all_to_all","send_recv"))' "$tmp/m.json" || { echo "FAIL: mpirun all-to-all / send_recv"; fail=1; }
      "$sbpc" sp "$src/examples/gpt2.sbp" --cluster dgx-a100:1 --lengths "$src/tests/data/lengths/lognormal-2000.txt" --batch 16 --calibration "$tmp/m.json" >/dev/null || { echo "FAIL: sbpc sp --calibration with the tuned file"; fail=1; }
    fi
  else echo "note: mpirun -np 2 could not run here; collectives not checked"; fi
fi
[ $fail = 0 ] && echo "tune: all passed"
exit $fail
