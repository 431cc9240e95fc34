#!/usr/bin/env bash
# tune.sh SBPC — `sbpc tune --quick` (seconds) writes a calibration JSON with
# GEMM rates over shapes (three orientations each), memory and elementwise
# kernel bandwidth, the kernel call overhead, all positive; progress is plain
# "tune:" lines when stderr is not a terminal; with --peak-flops/--peak-bw
# the efficiencies appear and lie in (0, 1]; --model adds the shapes the
# model's layouts produce, and the executor probe's section (the model's
# reference programs run by the executor, two micro-batchings: per-pass
# scales and costs per kernel, idle time per step and micro-batch; the
# attention efficiency its attention kernels measured).
# The calibration changes `sbpc plan`'s prediction
# (SBPC_CALIBRATION as well as --calibration), and the cpu preset without one
# says it is uncalibrated. Then `sbpc tune --plans 3 --calibration` on the
# tiny GPT-2 (one rank: no mpirun needed) with the calibration of `tune
# --quick`, which it extends with the model's probe first (`tune --from`;
# not with a calibration that has it, nor with --no-probe): the report's structure (a row per
# layout with predicted and measured step time and peak memory, the phases,
# the summary and the runs; the calibration's reference layout run again
# for the machine's drift), and its predictions are the calibrated plan's.
# Accuracy goals live in bench/README.md, not here. Under mpirun (when
# available) the calibration gains collectives by group size, and all-to-all
# and ring send/recv bandwidth by group size and placement, which `sbpc sp
# --calibration` reads. The schema
# itself is checked in test_tn_calib.c.
set -u
sbpc=${1:?usage: tune.sh SBPC}
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
src=$(cd "$(dirname "$0")/.." && pwd)
tiny=$src/examples/tiny-gpt2.sbp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset SBPC_CALIBRATION
fail=0
"$sbpc" tune --quick -o "$tmp/c.json" 2>"$tmp/log" || { echo "FAIL: tune exited $?"; cat "$tmp/log"; exit 1; }
grep -q '^tune: gemm 64x64x64 (generic): ' "$tmp/log" || { echo "FAIL: no plain progress lines"; fail=1; }
grep -q $'\r' "$tmp/log" && { echo "FAIL: progress bar on a non-terminal"; fail=1; }
python3 - "$tmp/c.json" <<'PY' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))
assert c["format"] == "sbpc-calibration" and c["version"] == 1
assert 0 < c["kernel_overhead_s"] < 1e-2 and c["workspace_bytes"] == 0
g = c["gemm"]
assert len(g["shapes"]) >= 4 and all(s["flops_per_s"] > 0 and s["seconds"] > 0 and s["seconds_backward"] > 0
                                     and s["from"] == "generic" for s in g["shapes"])
assert g["half_dim"] >= 0 and g["fit_peak_flops_per_s"] > 0 and "eff_max" not in g
m = c["memory"]
assert m["copy_bytes_per_s"] > 0 and m["triad_bytes_per_s"] > 0 and m["kernel_bytes_per_s"] > 0
PY
"$sbpc" tune --quick --peak-flops 1e15 --peak-bw 1e13 -o "$tmp/p.json" 2>/dev/null || { echo "FAIL: tune with peaks"; fail=1; }
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert 0 < c["gemm"]["eff_max"] <= 1 and 0 < c["memory"]["bandwidth_eff"] <= 1' "$tmp/p.json" || { echo "FAIL: efficiencies"; fail=1; }
"$sbpc" tune --quick --model "$tiny" -o "$tmp/m.json" 2>/dev/null || { echo "FAIL: tune --model"; fail=1; }
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); s=[x for x in c["gemm"]["shapes"] if x["from"]=="model"]; assert len(s) >= 3 and c["gemm"]["model"].endswith("tiny-gpt2.sbp")' "$tmp/m.json" || { echo "FAIL: --model shapes"; fail=1; }
python3 - "$tmp/m.json" <<'PY' || { echo "FAIL: --model executor probe"; fail=1; }
import json, sys
c = json.load(open(sys.argv[1]))
e = c["executor"]
assert e["reference"].startswith("dp=1 ") and e["steps"] >= 1 and e["kernels_per_step"] >= 1
assert 0.01 <= c["attention"]["flash_eff"] <= 1  # the reference's attention kernels as measured
assert all(0.01 <= e[k] <= 100 for k in ("forward_scale", "backward_scale", "optimizer_scale"))
assert "dp_comm_scale" not in e  # one rank: no gradient all-reduce
assert e["measured"]["step_s"] > 0 and e["predicted"]["step_s"] > 0
assert all(0 <= e[k] < 1 for k in ("forward_kernel_s", "backward_kernel_s"))
assert 0 <= e["micro_overhead_s"] < 3600 and 0 <= e["step_overhead_s"] < 3600
b = e["second"]  # the same batch in other micro-batches: the second point of the fit
assert b["reference"].startswith("dp=1 ") and b["reference"] != e["reference"] and b["steps"] >= 1
assert b["measured"]["step_s"] > 0 and b["predicted"]["step_s"] > 0
PY
"$sbpc" tune --plans 3 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --plans without a model is bad usage"; fail=1; }
"$sbpc" tune --plans 99 x.sbp 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --plans 99 is bad usage"; fail=1; }
"$sbpc" tune --batch 4 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --batch without --model is bad usage"; fail=1; }
"$sbpc" tune --bogus 2>/dev/null; [ $? = 2 ] || { echo "FAIL: bad option"; fail=1; }

# The calibration feeds the planner: another prediction, no "uncalibrated" note.
"$sbpc" plan "$tiny" --cluster cpu:1 --json "$tmp/u.json" >/dev/null 2>"$tmp/u.err" || { echo "FAIL: plan"; fail=1; }
grep -q 'uncalibrated' "$tmp/u.err" || { echo "FAIL: the cpu preset without a calibration does not say so"; fail=1; }
"$sbpc" plan "$tiny" --cluster cpu:1 --calibration "$tmp/m.json" --json "$tmp/k.json" >/dev/null 2>"$tmp/k.err" || { echo "FAIL: plan --calibration"; fail=1; }
grep -q 'uncalibrated' "$tmp/k.err" && { echo "FAIL: a calibrated plan says it is uncalibrated"; fail=1; }
SBPC_CALIBRATION="$tmp/m.json" "$sbpc" plan "$tiny" --cluster cpu:1 --json "$tmp/e.json" >/dev/null 2>&1 || { echo "FAIL: plan with SBPC_CALIBRATION"; fail=1; }
python3 - "$tmp/u.json" "$tmp/k.json" "$tmp/e.json" <<'PY' || fail=1
import json, sys
u, k, e = (json.load(open(p)) for p in sys.argv[1:])
t = lambda p: p["predicted"]["step_time_s"]
assert abs(t(u) - t(k)) > 0.01 * t(u), ("the calibration did not change the prediction", t(u), t(k))
assert t(k) == t(e) and e["planner"]["calibration"] == k["planner"]["calibration"]
assert k["train"]["precision"] == "f32"  # the cpu preset computes in fp32, as the executor does
PY

# Autotune by measurement on the tiny GPT-2 with the calibration of `tune
# --quick` (no --model): tune --plans extends it with the model's probe first
# (`tune --from`), plans with that, and says so.
# No --steps: each layout runs as many steps as its prediction fits in 0.25 s (5 to 200).
if timeout 600 "$sbpc" tune --plans 3 "$tiny" --np 1 --all --calibration "$tmp/c.json" \
   >"$tmp/at.out" 2>"$tmp/at.err"; then
  ext=$(sed -n 's/^tune: planning with \(.*\) (pass it as --calibration.*/\1/p' "$tmp/at.err")
  grep -q "^tune: $tmp/c.json has no executor probe of this model (batch 8, seq 32, 1 ranks): probing it" "$tmp/at.err" \
    || { echo "FAIL: tune --plans did not extend a calibration without the model's probe"; fail=1; }
  "$sbpc" plan "$tiny" --cluster cpu:1 --calibration "$ext" --json "$tmp/x.json" >/dev/null 2>&1 || { echo "FAIL: plan with the extended calibration"; fail=1; }
  python3 - "$tmp/at.out" "$tmp/x.json" "$tmp/at.err" "$tmp/u.json" "$ext" "$tmp/c.json" <<'PY' || { cat "$tmp/at.out" "$tmp/at.err"; fail=1; }
import json, math, re, sys
out = open(sys.argv[1]).read().splitlines()
x = json.load(open(sys.argv[2]))
log = open(sys.argv[3]).read()
u = json.load(open(sys.argv[4]))
ext, base = json.load(open(sys.argv[5])), json.load(open(sys.argv[6]))
# the extension: the base's measurements kept, the model's shapes and probe added
assert ext["memory"] == base["memory"] and ext["kernel_overhead_s"] == base["kernel_overhead_s"]
assert any(s["from"] == "model" for s in ext["gemm"]["shapes"]) and "executor" in ext and "executor" not in base
assert ext["executor"]["model"]["global_batch"] == 8 and ext["executor"]["model"]["seq"] == 32
assert re.match(r"#\s+layout\s+predicted s\s+measured s\s+error\s+pred MiB\s+meas MiB\s+error", out[0]), out[0]
rows = [l for l in out[1:4]]
assert all(re.match(r"\d+\s+dp=\d+ tp=\d+ pp=\d+", r) for r in rows), rows
meas = [r for r in rows if re.search(r"[+-]\d+\.\d%\s+[\d.]+\s+[\d.]+\s+[+-]\d+\.\d%$", r)]
assert meas, "no layout measured"
pred1 = float(rows[0].split()[10])
# the calibration's probe ran this model on 1 rank: its reference runs again,
# and the predictions are the extended calibration's plan's scaled by its drift
drift = [re.match(r"machine drift: the calibration's reference \(dp=1,\S+\) ran ([\d.e+-]+) s a step when "
                  r"calibrated, ([\d.e+-]+) s now(?: \(its rounds and those of #(\d), the same program\))? "
                  r"\([+-]\d+\.\d%\): the predictions above are the calibration's "
                  r"scaled by it; unscaled, the step error is mean [\d.]+%, max [\d.]+%$", l) for l in out]
drift = [m for m in drift if m]
assert drift, out
then, now = float(drift[0].group(1)), float(drift[0].group(2))
if drift[0].group(3):  # a layout is the reference's program: the fastest of both
    twin = out[int(drift[0].group(3))].split()
    assert now <= float(twin[11]) * (1 + 1e-3), (now, twin)
cal1 = x["predicted"]["step_time_s"]
assert abs(pred1 - cal1 * now / then) <= 2e-3 * pred1 + 1e-9, (pred1, cal1, now, then)
# the calibration changed the plan's prediction
assert abs(cal1 - u["predicted"]["step_time_s"]) > 0.01 * cal1, (cal1, u["predicted"]["step_time_s"])
steps = int(re.search(r"tune: measuring layout 1 of 3 \((\d+) steps\)", log).group(1))
assert abs(steps - min(200, max(5, math.ceil(0.25 / cal1)))) <= 1, (steps, cal1)
i = out.index(next(l for l in out if l.startswith("phases of one step")))
assert all(p in out[i + 1] for p in ("forward", "backward", "optimizer", "exposed comm", "bubble"))
assert len(out[i + 2].split("/")) == 6
assert any(l.startswith("fastest measured: #") for l in out)
assert any(re.match(r"prediction error over \d+ layouts: step time mean [\d.]+%", l) for l in out)
assert any(re.match(r"runs: [1-3] of 3 layouts run with the executor \(\d saved\)", l) for l in out)
PY
  rm -rf "$(sed -n 's/^tune: plans, logs and traces in //p' "$tmp/at.err")"
else echo "FAIL: sbpc tune --plans 3 exited $?"; cat "$tmp/at.err"; fail=1; fi
# A calibration with this model's probe (--model) is used as it is; --no-probe
# uses one without.
for c in m c; do
  flag=; [ $c = c ] && flag=--no-probe
  "$sbpc" tune --plans 1 "$tiny" --np 1 --steps 2 --rounds 1 $flag --calibration "$tmp/$c.json" >/dev/null 2>"$tmp/np.err" \
    || { echo "FAIL: tune --plans 1 ($c.json $flag)"; cat "$tmp/np.err"; fail=1; }
  grep -q "probing it" "$tmp/np.err" && { echo "FAIL: tune --plans probed with $c.json $flag"; fail=1; }
  rm -rf "$(sed -n 's/^tune: plans, logs and traces in //p' "$tmp/np.err")"
done
"$sbpc" tune --from "$tmp/c.json" 2>/dev/null; [ $? = 2 ] || { echo "FAIL: --from without --model is bad usage"; fail=1; }
echo '{"format":"sbpc-calibration","gemm":[]}' >"$tmp/bad.json"
"$sbpc" tune --from "$tmp/bad.json" --model "$tiny" -o "$tmp/o.json" 2>"$tmp/bad.err"; [ $? = 1 ] && grep -q "'gemm' must be an object" "$tmp/bad.err" \
  || { echo "FAIL: --from a bad calibration is bad input, named"; fail=1; }

if command -v mpirun >/dev/null 2>&1; then
  if timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$sbpc" tune --quick -o "$tmp/mp.json" >/dev/null 2>"$tmp/mlog"; then
    if grep -q "built without MPI" "$tmp/mlog"; then echo "note: this build has no MPI for tune"
    else python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); b=c["collectives"]["by_group_size"]; assert c["ranks"]==2 and b[0]["n"]==2 and b[0]["bus_bw"]>0 and b[0]["alpha_s"] >= b[0]["alpha_tight_s"] > 0' "$tmp/mp.json" || { echo "FAIL: mpirun collectives"; fail=1; }
      # sequence parallelism: all-to-all and ring send/recv of the two ranks (one node: intra), read by sbpc sp
      python3 -c 'import json,sys; co=json.load(open(sys.argv[1]))["collectives"]; assert all(co[k][0]["n"]==2 and co[k][0]["placement"]=="intra" and co[k][0]["bus_bw"]>0 for k in ("all_to_all","send_recv"))' "$tmp/mp.json" || { echo "FAIL: mpirun all-to-all / send_recv"; fail=1; }
      "$sbpc" sp "$src/examples/gpt2.sbp" --cluster dgx-a100:1 --lengths "$src/tests/data/lengths/lognormal-2000.txt" --batch 16 --calibration "$tmp/mp.json" >/dev/null || { echo "FAIL: sbpc sp --calibration with the tuned file"; fail=1; }
    fi
  else echo "note: mpirun -np 2 could not run here; collectives not checked"; fi
fi
[ $fail = 0 ] && echo "tune: all passed"
exit $fail
