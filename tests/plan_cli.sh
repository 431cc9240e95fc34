#!/usr/bin/env bash
# plan_cli.sh SBPC — `sbpc plan` end to end: GPT-3 175B on dgx-a100:128 gives
# a plan with TP inside a node and memory under 80 GB, a JSON plan with every
# field of docs/plan-format.md; --fix is honoured; no-fit exits 3 with the
# smallest memory; bad usage exits 2. GPT-2 small with batch 8 on the mixed
# cluster: no empty pipeline stage, fewer devices used and said so.
set -u
sbpc=${1:?usage: plan_cli.sh SBPC}
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src" || exit 1
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
[ -f examples/gpt3-175b.sbp ] || { echo "examples/gpt3-175b.sbp missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:128 --json "$tmp/p.json" >"$tmp/out" 2>"$tmp/err"
check '[ $? -eq 0 ]' "plan of gpt3-175b exits 0 ($(cat "$tmp/err"))"
check 'grep -q "^layout:" "$tmp/out" && grep -q "^memory:" "$tmp/out" && grep -q "^runner-up:" "$tmp/out"' "report sections"
j="$tmp/p.json"
check '[ "$(jq -r .format "$j")" = sbpc-plan ] && [ "$(jq .version "$j")" = 1 ]' "format and version"
for f in model.name model.params model.layers cluster.devices cluster.nodes parallel.dp parallel.tp parallel.pp \
         parallel.sp parallel.vpp parallel.micro_batch parallel.num_micro_batches parallel.recompute parallel.zero \
         predicted.step_time_s predicted.tokens_per_s predicted.model_tflops_per_device \
         predicted.hardware_tflops_per_device predicted.mfu predicted.memory_per_device_bytes \
         predicted.breakdown planner.candidates planner.solve_time_s; do
  check "[ \"\$(jq \".$f != null\" \"$j\")\" = true ]" "field $f"
done
check '[ "$(jq ".stages[0] | has(\"devices\") and has(\"layers\")" "$j")" = true ]' "stages fields"
check '[ "$(jq ".ops[0] | has(\"name\") and has(\"block\") and has(\"sbp\") and has(\"devices\")" "$j")" = true ]' "ops fields"
check '[ "$(jq "[.boxing[] | has(\"op\") and has(\"from\") and has(\"to\") and has(\"collective\") and has(\"bytes\")] | all" "$j")" = true ]' "boxing fields"
check '[ "$(jq ".parallel.tp <= 8" "$j")" = true ]' "TP inside a node"
check '[ "$(jq ".mesh.axes[3] == \"tp\"" "$j")" = true ]' "tp is the innermost mesh axis"
check '[ "$(jq ".predicted.memory_per_device_bytes < 80e9" "$j")" = true ]' "memory within 80 GB"
check '[ "$(jq ".parallel.dp * .parallel.tp * .parallel.pp * .parallel.sp" "$j")" = 1024 ]' "dp*tp*pp*sp = devices"
check '[ "$(jq "[.stages[].devices | length] | add" "$j")" = 1024 ]' "stages cover the devices"

check '[ "$(jq -c "[.model.hidden, .model.heads, .model.ffn, .model.vocab, .model.seq]" "$j")" = "[12288,96,49152,50257,2048]" ]' "model dims read off the graph"
check '[ "$(jq "[.ops[].name] | (length == (unique | length)) and (index(\"h.0.attn.c_attn\") != null)" "$j")" = true ]' "op names unique, module-named"
check '[ "$(jq "[.ops[] | (.inputs | length) == (.in_sbp | length)] | all" "$j")" = true ]' "ops[].inputs"
check '[ "$(jq ".predicted.breakdown | ((.tp_comm_s + .sp_comm_s + .pp_comm_s + .dp_comm_s) - .exposed_comm_s) | fabs < 1e-6" "$j")" = true ]' "comm breakdown sums"
check '[ "$(jq ".cluster.devices_used" "$j")" = 1024 ]' "devices_used = all"

# GPT-2 small, batch 8, on 64 A100 + 128 V100: no empty stage; fewer
# devices are faster and the plan says so
"$sbpc" plan examples/gpt2.sbp --cluster examples/mixed-cluster.sbp --json "$tmp/m.json" >"$tmp/out" 2>"$tmp/err"
check '[ $? -eq 0 ]' "plan of gpt2 on the mixed cluster exits 0 ($(cat "$tmp/err"))"
m="$tmp/m.json"
check '[ "$(jq "[.stages[] | .layers[1] >= .layers[0]] | all" "$m")" = true ]' "mixed: every stage holds a layer"
check '[ "$(jq ".cluster.devices_used < 192 and .cluster.devices_used == .parallel.dp * .parallel.tp * .parallel.pp * .parallel.sp" "$m")" = true ]' "mixed: devices_used"
check '[ "$(jq "([.stages[].devices | length] | add) == (.cluster.ranks_used | length)" "$m")" = true ]' "mixed: stages cover ranks_used"
check '[ "$(jq ".parallel.tp <= 8" "$m")" = true ]' "mixed: TP inside a node"
check 'grep -q "^devices: .* of 192 used" "$tmp/out"' "mixed: the report says devices are left idle"
"$sbpc" plan examples/gpt2.sbp --cluster examples/mixed-cluster.sbp --fix devices=192 --json "$tmp/m2.json" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ "$(jq "(.cluster.devices_used == 192) and ([.stages[] | .layers[1] >= .layers[0]] | all)" "$tmp/m2.json")" = true ]' "mixed: --fix devices=192 uses all, no empty stage"

"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:128 --fix tp=8,pp=8,recompute=full --json "$tmp/f.json" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ "$(jq "[.parallel.tp, .parallel.pp, .parallel.recompute]" -c "$tmp/f.json")" = "[8,8,\"full\"]" ]' "--fix honoured"

"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:1 >"$tmp/out" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 3 ]' "no fit exits 3 (got $rc)"
check 'grep -q "smallest any candidate needs" "$tmp/err"' "no-fit message names the smallest memory"

# issue 13 item 9: --fix obeys the search's constraints (tp divides the heads)
"$sbpc" plan examples/tiny-gpt2.sbp --cluster cpu:3 --batch 12 --seq 32 --fix tp=3 >"$tmp/out" 2>"$tmp/err"
rc=$?
check '[ $rc -eq 3 ]' "--fix tp=3 on 4 heads exits 3 (got $rc)"
check 'grep -q "tp=3: tp must divide the 4 attention heads" "$tmp/err"' "--fix tp=3 names the knob and why"
# issue 13 item 8: small devices (this machine's memory / 64 each) still fit a tiny model
"$sbpc" plan examples/tiny-gpt2.sbp --cluster cpu:64 --batch 64 --seq 32 >/dev/null 2>"$tmp/err"
rc=$?
check '[ $rc -eq 0 ]' "tiny model on cpu:64 fits (got $rc: $(cat "$tmp/err"))"
# the runtime profile: the preset's default, --runtime, in the JSON; vpp=3
"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-h100:64 --fix tp=8,pp=8,vpp=3 --json "$tmp/h.json" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ "$(jq -c "[.runtime.profile, .runtime.attention, .parallel.vpp]" "$tmp/h.json")" = "[\"stack-2024\",\"flash\",3]" ]' "dgx-h100 defaults to stack-2024; vpp=3"
check '[ "$(jq "[.stages[].num_layers % 3 == 0] | all" "$tmp/h.json")" = true ]' "vpp=3: every stage holds a multiple of 3 layers"
"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-h100:64 --runtime megatron-2021 --json "$tmp/h2.json" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ "$(jq -c "[.runtime.profile, .runtime.sequence_parallel, .parallel.zero]" "$tmp/h2.json")" = "[\"megatron-2021\",false,0]" ]' "--runtime megatron-2021"
"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-h100:64 --runtime megatron-1999 >/dev/null 2>&1
check '[ $? -eq 2 ]' "unknown --runtime exits 2"

"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:128 --fix tp=banana >/dev/null 2>&1
check '[ $? -eq 2 ]' "bad --fix exits 2"
"$sbpc" plan >/dev/null 2>&1
check '[ $? -eq 2 ]' "missing model exits 2"
"$sbpc" plan examples/gpt3-175b.sbp --cluster dgx-a100:128 --calibration /nonexistent.json >/dev/null 2>&1
check '[ $? -eq 1 ]' "missing calibration exits 1"
exit $fail
