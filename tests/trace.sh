#!/usr/bin/env bash
# trace.sh SBPC — `sbpc trace` end to end: for every plan in tests/export, the
# trace is valid JSON with a named track per device (<= 64 devices) or per
# stage, "X" slices that never overlap on one track and lane, forward and
# backward slices for every micro-batch, and bubbles; --svg writes an SVG;
# a bad plan exits 1 and bad usage 2. A model is planned first (with the
# calibration) and traced. (The CUnit test test_ex_trace.c checks
# the same on the C side; this one exercises the command line.)
set -u
sbpc=${1:?usage: trace.sh SBPC}
cd "$(dirname "$0")/.." || exit 1
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for plan in tests/export/*.json; do
  name=$(basename "$plan" .json)
  if ! "$sbpc" trace "$plan" -o "$tmp/$name.json" --svg "$tmp/$name.svg" 2>"$tmp/$name.err"; then
    echo "FAIL: sbpc trace $plan: $(cat "$tmp/$name.err")"; fail=1; continue
  fi
  python3 - "$plan" "$tmp/$name.json" <<'PY' || fail=1
import json, sys
from collections import defaultdict
plan = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
ev = t["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
per_device = plan["cluster"]["devices"] <= 64
want = plan["cluster"]["devices"] if per_device else plan["parallel"]["pp"]
assert len(names) == want, f"{sys.argv[1]}: {len(names)} tracks, want {want}"
lanes = defaultdict(list)
for e in ev:
    if e["ph"] == "X":
        assert e["dur"] >= 0 and e["pid"] in names
        lanes[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["cat"], e.get("args", {})))
for k, v in lanes.items():
    v.sort()
    for a, b in zip(v, v[1:]):
        assert b[0] >= a[1] - 1e-6, f"{sys.argv[1]}: overlap on {k}: {a} {b}"
m, vpp = plan["parallel"]["num_micro_batches"], plan["parallel"]["vpp"]
for pid in names:
    comp = lanes[(pid, 0)]
    for cat in ("forward", "backward"):
        mbs = sorted((s[3]["microbatch"], s[3]["chunk"]) for s in comp if s[2] == cat)
        assert mbs == sorted((i, c) for i in range(m) for c in range(vpp)), f"{cat} micro-batches on track {pid}"
    assert any(s[2] == "bubble" for s in comp), f"no bubble on track {pid}"
    if plan["boxing"]:
        assert lanes[(pid, 1)], f"no collectives on track {pid}"
PY
  grep -q '^<svg' "$tmp/$name.svg" && grep -q '</svg>' "$tmp/$name.svg" || { echo "FAIL: $name.svg"; fail=1; }
done
echo '{"format": "sbpc-plan", "version": 2}' >"$tmp/bad.json"
"$sbpc" trace "$tmp/bad.json" -o "$tmp/x.json" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad.json: error: plan version 2" "$tmp/err" || { echo "FAIL: bad plan rc=$rc $(cat "$tmp/err")"; fail=1; }
# A model is planned first, as `sbpc plan` plans it, calibration included:
# the trace equals the one of the plan that `sbpc plan` writes, with
# --calibration or $SBPC_CALIBRATION, and the calibration changes it.
model=examples/tiny-gpt2.sbp calib=tests/data/calib/tiny-gpt2-epyc2.json
"$sbpc" plan $model --cluster cpu:2 --calibration $calib --json "$tmp/p.json" >/dev/null 2>&1 &&
  "$sbpc" trace "$tmp/p.json" -o "$tmp/from-plan.json" 2>/dev/null || { echo "FAIL: plan, then trace"; fail=1; }
"$sbpc" trace $model --cluster cpu:2 --calibration $calib -o "$tmp/from-model.json" 2>"$tmp/err" ||
  { echo "FAIL: trace MODEL: $(cat "$tmp/err")"; fail=1; }
cmp -s "$tmp/from-plan.json" "$tmp/from-model.json" || { echo "FAIL: trace MODEL differs from plan + trace"; fail=1; }
grep -q "tiny-gpt2.sbp: note: planned dp=.*($calib)" "$tmp/err" || { echo "FAIL: no layout line: $(cat "$tmp/err")"; fail=1; }
SBPC_CALIBRATION=$calib "$sbpc" trace $model --cluster cpu:2 -o "$tmp/env.json" 2>/dev/null
cmp -s "$tmp/env.json" "$tmp/from-model.json" || { echo "FAIL: SBPC_CALIBRATION not used by trace"; fail=1; }
"$sbpc" trace $model --cluster cpu:2 -o "$tmp/uncal.json" 2>"$tmp/err"
grep -q "uncalibrated" "$tmp/err" || { echo "FAIL: no uncalibrated note"; fail=1; }
cmp -s "$tmp/uncal.json" "$tmp/from-model.json" && { echo "FAIL: the calibration changed nothing"; fail=1; }
"$sbpc" trace tests/export/gpt2-tiny-cpu8.json --calibration $calib 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "is a plan" "$tmp/err" || { echo "FAIL: plan with --calibration rc=$rc"; fail=1; }
"$sbpc" trace $model --cluster cpu:2 --calibration /nonexistent.json 2>/dev/null; [ $? = 1 ] || { echo "FAIL: bad calibration"; fail=1; }
"$sbpc" trace $model --cluster cpu:2 --fix tp=3 2>/dev/null; [ $? = 3 ] || { echo "FAIL: no layout: exit 3"; fail=1; }
"$sbpc" trace 2>/dev/null; [ $? = 2 ] || { echo "FAIL: usage"; fail=1; }
"$sbpc" trace --bogus tests/export/gpt2-tiny-cpu8.json 2>/dev/null; [ $? = 2 ] || { echo "FAIL: bad option"; fail=1; }
[ $fail = 0 ] && echo "trace: all passed"
exit $fail
