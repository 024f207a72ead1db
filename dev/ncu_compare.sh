#!/usr/bin/env bash
# Nsight Compute on one kernel of several trees side by side (one device call): each tree's
# bench_attention is built, then the kernel's first single-pass launch at each shape is profiled
# for time, instructions, issue and pipe use, shared-memory traffic and the stall reasons.
#   usage: bash dev/ncu_compare.sh [TREE ...]     (default: this tree and $BASE_TREE)
#   KERNEL=regex (default flash_bwd_kv_kernel)   SKIP=launches to skip (default 12: bench_attention
#   --iters 1 runs the deterministic backward's 6 launches of the dK/dV kernel first)
#   SHAPES="B,H,T,D,p ..." (default the seed shape without and with dropout)
set -uo pipefail
if [[ $# -gt 0 ]]; then TREES=("$@"); else TREES=(. "${BASE_TREE:-.carry/base}"); fi
KERNEL=${KERNEL:-flash_bwd_kv_kernel} SKIP=${SKIP:-12}
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
SECONDS=0
for t in "${TREES[@]}"; do
  (cd "$t" && make -j8 BUILD=build build/bin/bench_attention > /tmp/ncu_build_$$_${t//\//_}.log 2>&1
   echo "built $t rc=$? at ${SECONDS}s") &
done
wait
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
m=gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active
m+=,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active
m+=,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
m+=,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
m+=,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_shared_st.sum,smsp__inst_executed_op_ldsm.sum
m+=,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum
m+=,l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed
m+=,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,sm__warps_active.avg.pct_of_peak_sustained_active
m+=,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio
for s in ${SHAPES:-32,8,2048,8,0 32,8,2048,8,0.05}; do
  for t in "${TREES[@]}"; do
    timeout 100 "$NCU" --kernel-name regex:"$KERNEL" --launch-skip "$SKIP" --launch-count 1 \
      --metrics "$m" "$t"/build/bin/bench_attention --shape "$s" --iters 1 > /tmp/ncu_$$.log 2>&1
    echo "--- $t $s (rc=$?) at ${SECONDS}s"
    grep -E 'pct|inst_executed|duration|wavefronts|conflicts|stalled' /tmp/ncu_$$.log |
      grep -v '^==PROF==' | grep -vE ' 0(\.0+)?$' |
      sed -E 's/ +/ /g; s/smsp__average_warps_issue_stalled_/stall_/; s/_per_issue_active.ratio//'
  done
done
echo "done at ${SECONDS}s"
