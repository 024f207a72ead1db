#!/usr/bin/env bash
# One device call for the WIP attention kernels of this branch (none has run on a GPU yet):
#   1. build, the attention tests (the sm90 wgmma forward's own cases included: they call its
#      launcher directly) and compute-sanitizer on the sanitizer sets;
#   2. bench-attention (ours + PyTorch) as the branch stands: D = 8 lazy forward with 64-key
#      tiles, the dK/dV kernel's small-tile copier, the mma.sync forward at D = 64/128;
#   3. the A/B variants, each in a copy of the tree with one constant flipped, our kernels only:
#      kLazyBlockN = 128 (the D = 8 forward as on main), kUseSm90Forward = true (the wgmma
#      forward at D = 64/128).
# Logs go to /tmp/wip_ab, packed into $OUT/wip_ab.tar.gz.   usage: bash scripts/gpu_wip_ab.sh
set -uo pipefail
FINAL_OUT=${OUT:-/tmp}
LOGS=/tmp/wip_ab
mkdir -p "$LOGS"
trap 'tar czf "$FINAL_OUT/wip_ab.tar.gz" -C /tmp wip_ab' EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
OUT=$LOGS bash scripts/gpu_probe.sh attn-tests bench > "$LOGS/probe.log" 2>&1
grep -vE "Warning|^ +return" "$LOGS/probe.log" | tail -45
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
  timeout 150 "$SAN" --tool $tool --error-exitcode 9 build/dev/bin/tests -tc='*sm90*sanitizer set*' \
    > "$LOGS/sm90_$tool.log" 2>&1
  echo "sm90 $tool: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/sm90_$tool.log" | tail -1)"
done
variant() {  # name, file, sed expression, the constant's name (printed after the edit)
  rm -rf /tmp/v_$1 && mkdir -p /tmp/v_$1 && cp -r $(ls -A | grep -vE '^(build|\.git)$') /tmp/v_$1/
  sed -i "$3" /tmp/v_$1/$2 && grep -n "$4 =" /tmp/v_$1/$2 | head -2
  (cd /tmp/v_$1 && make -j"$(nproc)" BUILD=build build/bin/bench_attention > "$LOGS/build_$1.log" 2>&1 &&
    build/bin/bench_attention 2>&1 | tee "$LOGS/bench_$1.log")
}
echo "=== A/B: D = 8 forward with 128-key tiles (main's kernel)"
variant lazy128 cuda/flash_attention_traits.cuh 's/kLazyBlockN = 64;/kLazyBlockN = 128;/' kLazyBlockN
echo "=== A/B: wgmma forward at D = 64/128"
variant sm90 cuda/flash_attention_sm90.cuh 's/kUseSm90Forward = false;/kUseSm90Forward = true;/' kUseSm90Forward
