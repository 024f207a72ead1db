#!/usr/bin/env bash
# Measurement run for the attention work (one device call): build, our kernels and PyTorch's
# SDPA at the benchmark shapes, Nsight Compute on the three D = 8 kernels (fwd, dK/dV, dQ), the
# exponential unit's rate (dev/mufu_rate.cu, with its SASS), and optionally the seed
# training + bench-train (gpu_final.sh train bench). Logs under $OUT.
#   usage: bash dev/gpu_probe.sh [mufu] [bench] [attn-tests] [ncu] [final-steps...]
# final steps (test sanitize train bench-train dp) run through dev/gpu_final.sh.
set -uo pipefail
FINAL_OUT=${OUT:-/tmp}
OUT=/tmp/probe
mkdir -p "$OUT"
trap 'tar czf "$FINAL_OUT/probe.tar.gz" -C /tmp probe' EXIT
BUILD=build/dev
STEPS=${*:-bench ncu mufu}
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader
echo "=== build"
time make -j"$(nproc)" BUILD=$BUILD all $BUILD/bin/tests > "$OUT/build.log" 2>&1 ||
  { grep -E "error" "$OUT/build.log" | head -30; exit 1; }
if has mufu; then
  echo "=== exponential unit"
  nvcc -arch=sm_90a -O3 dev/mufu_rate.cu -o /tmp/mufu_rate && /tmp/mufu_rate | tee "$OUT/mufu.log"
  cuobjdump -sass /tmp/mufu_rate | grep -oE "MUFU\.[A-Z0-9_.]+|F2FP[A-Z0-9_.]*|HADD2[A-Z0-9_.]*|HFMA2[A-Z0-9_.]*" | sort | uniq -c
fi
if has bench; then
  echo "=== bench-attention"
  { $BUILD/bin/bench_attention --json $BUILD/attention_bench.json &&
    python3 scripts/bench_attention_torch.py --ours $BUILD/attention_bench.json \
      --json $OUT/attention_bench_all.json; } > "$OUT/bench.log" 2>&1
  grep -v Warning "$OUT/bench.log"
fi
if has attn-tests; then
  echo "=== attention tests (CUDA) + compute-sanitizer on the sanitizer set"
  OMP_NUM_THREADS=16 timeout 300 $BUILD/bin/tests -tc='*attention*' > "$OUT/attn_tests.log" 2>&1
  echo "attention tests rc=$?"; grep -E "test cases:|ERROR|FAILED|error" "$OUT/attn_tests.log" | head -30
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in memcheck racecheck; do
    timeout 150 "$SAN" --tool $tool --error-exitcode 9 $BUILD/bin/tests -tc='*sanitizer set*' \
      > "$OUT/sanitizer_$tool.log" 2>&1
    echo "compute-sanitizer $tool: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)"
  done
fi
if has ncu; then
  # kernel-regex@B,H,T,D,p: the first launch of the kernel at that shape (full set + SASS counts).
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  for item in ${NCU_ITEMS:-flash_fwd@32,8,2048,8,0 flash_bwd_kv@32,8,2048,8,0}; do
    k=${item%@*}; shape=${item#*@}; tag=$(echo "$k-$shape" | tr ',.' '__')
    echo "=== ncu $k at $shape"
    timeout 150 $NCU -k regex:$k -c 1 --set full --import-source no -o "$OUT/ncu_$tag" \
      $BUILD/bin/bench_attention --shape $shape --iters 1 > "$OUT/ncu_$tag.txt" 2>&1
    $NCU --import "$OUT/ncu_$tag.ncu-rep" --page details --print-units base > "$OUT/ncu_$tag.details" 2>&1
    $NCU --import "$OUT/ncu_$tag.ncu-rep" --page raw --print-units base > "$OUT/ncu_$tag.raw" 2>&1
    $NCU --import "$OUT/ncu_$tag.ncu-rep" --page source --print-source sass --csv > "$OUT/ncu_$tag.sass.csv" 2>&1
    rm -f "$OUT/ncu_$tag.ncu-rep"
    grep -E "Duration|Issue Slots Busy|Executed Ipc Active|Warp Cycles Per Issued|Achieved Occupancy|Registers Per|No Eligible|Theoretical Occupancy" "$OUT/ncu_$tag.details" | head -12
    grep -E "smsp__inst_executed.sum |inst_executed_pipe_[a-z_]+\.avg\.pct_of_peak_sustained_active" "$OUT/ncu_$tag.raw" | awk '$NF+0 > 1.0' | head -12
  done
fi
FINAL=$(for w in $STEPS; do case $w in test|sanitize|train|dp) echo $w ;; bench-train) echo bench ;; esac; done | xargs)
if [ -n "$FINAL" ]; then OUT=$FINAL_OUT bash dev/gpu_final.sh $FINAL; fi
