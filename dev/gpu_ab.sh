#!/usr/bin/env bash
# One device call for attention kernel work: build, the attention tests, bench-attention with
# PyTorch beside it, A/B variants of the tree, compute-sanitizer on the sanitizer sets.
#   usage: bash dev/gpu_ab.sh [VARIANTS_FILE]      (default: dev/ab_variants.txt)
# Each line of VARIANTS_FILE (# starts a comment) is   name | file | sed expression | shapes
# (shapes: B,H,T,D,p separated by spaces): the variant is a copy of the tree (the carried data
# left out) with the sed edit applied to one file, built beside the tree (bench_attention only)
# and timed at those shapes, our kernels only; the tree's own numbers at the same shapes come
# from the main bench of the same run. A file field @DIR (sed expression -) takes the tree in
# DIR instead, e.g. an earlier commit's `git archive` unpacked beside the tree on the device. The
# sm90 (wgmma) cases run apart from the others: a fault there would end the process. Logs go to
# /tmp/ab, packed into $OUT/ab.tar.gz.
#   SKIP_SAN=1      no compute-sanitizer step
#   NCU_SHAPES="B,H,T,D,p ..."   Nsight Compute on the tree's D = 8 kernels at those shapes
#                   (issue and pipe utilization, stalls), printed to the log
set -uo pipefail
FINAL_OUT=${OUT:-/tmp}
LOGS=/tmp/ab
BUILD=build/dev
SPEC=${1:-dev/ab_variants.txt}
mkdir -p "$LOGS"
trap 'tar czf "$FINAL_OUT/ab.tar.gz" -C /tmp ab' EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
trim() { sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<< "$1"; }  # (xargs would eat backslashes)
names=() shapes=()
while IFS='|' read -r name file expr shp; do
  name=$(trim "$name"); [[ -z "$name" || "$name" == \#* ]] && continue
  file=$(trim "$file"); expr=$(trim "$expr")
  rm -rf /tmp/v_$name && mkdir -p /tmp/v_$name
  if [[ "$file" == @* ]]; then
    [[ -d "${file#@}" ]] || { echo "variant $name: no tree ${file#@}"; continue; }
    cp -r "${file#@}"/. /tmp/v_$name/ && echo "variant $name: the tree ${file#@}"
  else
    cp -r $(ls -A | grep -vE "^(build|\.git|${CARRY_DIR:-.carry})$") /tmp/v_$name/
    sed -i "$expr" /tmp/v_$name/$file
    if diff -q "$file" /tmp/v_$name/$file > /dev/null; then echo "variant $name: the edit changed nothing"; continue; fi
    echo "variant $name: $(diff "$file" /tmp/v_$name/$file | grep '^>' | head -2 | xargs)"
  fi
  names+=("$name") shapes+=("$shp")
done < <(grep -v '^\s*#' "$SPEC" 2>/dev/null)
echo "=== build (tree + ${#names[@]} variants side by side)"
SECONDS=0
for v in "${names[@]}"; do
  (cd /tmp/v_$v && make -j4 BUILD=build build/bin/bench_attention > "$LOGS/build_$v.log" 2>&1; echo "variant $v build rc=$?") &
done
make -j"$(nproc)" BUILD=$BUILD all $BUILD/bin/tests > "$LOGS/build.log" 2>&1 ||
  { grep -E "error" "$LOGS/build.log" | head -30; exit 1; }
echo "tree built at ${SECONDS}s"; wait; echo "variants built at ${SECONDS}s"
echo "=== attention tests"
OMP_NUM_THREADS=16 timeout 240 $BUILD/bin/tests -tc='*attention*,*Philox*' -tce='*sm90*' > "$LOGS/attn_tests.log" 2>&1
echo "attention tests rc=$?"; grep -E "test cases:|ERROR|FAILED|error" "$LOGS/attn_tests.log" | head -30
OMP_NUM_THREADS=16 timeout 120 $BUILD/bin/tests -tc='*sm90*' > "$LOGS/sm90_tests.log" 2>&1
echo "sm90 tests rc=$?"; grep -E "test cases:|ERROR|FAILED|error" "$LOGS/sm90_tests.log" | head -30
echo "=== bench-attention (at ${SECONDS}s)"
{ $BUILD/bin/bench_attention --json $BUILD/attention_bench.json &&
  python3 scripts/bench_attention_torch.py --ours $BUILD/attention_bench.json \
    --json $LOGS/attention_bench_all.json; } > "$LOGS/bench.log" 2>&1
grep -v Warning "$LOGS/bench.log"
for i in "${!names[@]}"; do
  v=${names[$i]}; args=$(for s in ${shapes[$i]}; do echo "--shape $s"; done | xargs)
  echo "=== A/B variant $v (at ${SECONDS}s)"
  /tmp/v_$v/build/bin/bench_attention $args > "$LOGS/bench_$v.log" 2>&1; grep -v "^FlashAttention" "$LOGS/bench_$v.log"
done
if [[ -n "${NCU_SHAPES:-}" ]]; then
  echo "=== Nsight Compute (at ${SECONDS}s)"
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  metrics=smsp__issue_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
  metrics+=,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
  metrics+=,sm__inst_executed_pipe_fmaheavy.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active
  metrics+=,sm__inst_executed_pipe_uniform.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
  metrics+=,smsp__inst_executed.sum,smsp__warps_active.avg.per_cycle_active,gpu__time_duration.sum
  metrics+=,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio  # stall reasons
  # bench_attention --iters 1 runs each timed call 6 times (5 warm-up): the forward's third
  # launch; the 13th dK/dV launch is the first of the single pass (after the deterministic ones).
  for s in $NCU_SHAPES; do
    for k in "flash_fwd_kernel_lazy 2" "flash_bwd_kv_kernel 12"; do
      set -- $k
      timeout 120 "$NCU" --kernel-name regex:"$1" --launch-skip "$2" --launch-count 1 \
        --section WarpStateStats --metrics "$metrics" $BUILD/bin/bench_attention --shape "$s" \
        --iters 1 > "$LOGS/ncu_${1}_$s.log" 2>&1
      echo "--- ncu $1 $s (rc=$?)"
      grep -E 'flash_|Stall|stall|pct|per_cycle|inst_executed|duration|Warp Cycles|Issued' \
        "$LOGS/ncu_${1}_$s.log" | grep -v '^==PROF==' | grep -vE ' 0(\.0+)?$' | head -60
    done
  done
fi
[[ -n "${SKIP_SAN:-}" ]] && { echo "done at ${SECONDS}s (no sanitizer)"; exit 0; }
echo "=== compute-sanitizer (at ${SECONDS}s)"
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
  timeout ${SAN_TIMEOUT:-200} "$SAN" --tool $tool --error-exitcode 9 $BUILD/bin/tests \
    -tc='*sanitizer set*' > "$LOGS/san_$tool.log" 2>&1 &
done
wait
for tool in memcheck racecheck; do
  echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test cases:' "$LOGS/san_$tool.log" | tail -2 | xargs)"
done
echo "done at ${SECONDS}s"
