#!/usr/bin/env bash
# One device call for the WIP attention kernels of this branch:
#   1. builds the tree and, side by side, two A/B copies of it with one constant flipped
#      (kLazyBlockN = 128: the D = 8 forward as on main; kUseSm90Forward = true: the wgmma
#      forward at D = 64/128);
#   2. the attention tests (the sm90 wgmma forward's own cases apart, since a fault there would
#      end the process), bench-attention with PyTorch beside it, the A/B variants' benches;
#   3. compute-sanitizer memcheck and racecheck, in parallel, on both sanitizer sets.
# Logs go to /tmp/wip_ab, packed into $OUT/wip_ab.tar.gz.   usage: bash scripts/gpu_wip_ab.sh
set -uo pipefail
FINAL_OUT=${OUT:-/tmp}
LOGS=/tmp/wip_ab
BUILD=build/dev
mkdir -p "$LOGS"
trap 'tar czf "$FINAL_OUT/wip_ab.tar.gz" -C /tmp wip_ab' EXIT
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
variant_tree() {  # name, file, sed expression, the constant's name (printed after the edit)
  rm -rf /tmp/v_$1 && mkdir -p /tmp/v_$1 && cp -r $(ls -A | grep -vE '^(build|\.git)$') /tmp/v_$1/
  sed -i "$3" /tmp/v_$1/$2 && grep -n "$4 =" /tmp/v_$1/$2 | head -2
}
variant_tree lazy128 cuda/flash_attention_traits.cuh 's/kLazyBlockN = 64;/kLazyBlockN = 128;/' kLazyBlockN
variant_tree sm90 cuda/flash_attention_sm90.cuh 's/kUseSm90Forward = false;/kUseSm90Forward = true;/' kUseSm90Forward
echo "=== build (tree + 2 variants side by side)"
SECONDS=0
for v in lazy128 sm90; do
  (cd /tmp/v_$v && make -j6 BUILD=build build/bin/bench_attention > "$LOGS/build_$v.log" 2>&1; echo "variant $v build rc=$?") &
done
make -j"$(nproc)" BUILD=$BUILD all $BUILD/bin/tests > "$LOGS/build.log" 2>&1 ||
  { grep -E "error" "$LOGS/build.log" | head -30; exit 1; }
echo "tree built at ${SECONDS}s"; wait; echo "variants built at ${SECONDS}s"
echo "=== attention tests"
OMP_NUM_THREADS=16 timeout 240 $BUILD/bin/tests -tc='*attention*' -tce='*sm90*' > "$LOGS/attn_tests.log" 2>&1
echo "attention tests rc=$?"; grep -E "test cases:|ERROR|FAILED|error" "$LOGS/attn_tests.log" | head -30
OMP_NUM_THREADS=16 timeout 120 $BUILD/bin/tests -tc='*sm90*' > "$LOGS/sm90_tests.log" 2>&1
echo "sm90 tests rc=$?"; grep -E "test cases:|ERROR|FAILED|error" "$LOGS/sm90_tests.log" | head -30
echo "=== bench-attention (at ${SECONDS}s)"
{ $BUILD/bin/bench_attention --json $BUILD/attention_bench.json &&
  python3 scripts/bench_attention_torch.py --ours $BUILD/attention_bench.json \
    --json $LOGS/attention_bench_all.json; } > "$LOGS/bench.log" 2>&1
grep -v Warning "$LOGS/bench.log"
for v in lazy128 sm90; do
  echo "=== A/B variant $v (at ${SECONDS}s)"
  /tmp/v_$v/build/bin/bench_attention > "$LOGS/bench_$v.log" 2>&1; cat "$LOGS/bench_$v.log"
done
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
