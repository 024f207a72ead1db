#!/usr/bin/env bash
# The machine code of every attention kernel, for checking that a refactor left it unchanged
# (no GPU needed: nvcc alone). Builds the cubin of each cuda/attention_exact.cu and
# cuda/flash_attention_*.cu with the Makefile's flags (sm_90, or sm_90a for *_sm90.cu), and
# writes OUT/all.sec: one line per kernel section (dev/cubin_sections.py), sorted, so that a
# kernel that moved to another file still compares.
#   usage: bash dev/attention_cubins.sh OUT
#   e.g.   bash dev/attention_cubins.sh /tmp/before; (edit); bash dev/attention_cubins.sh /tmp/after
#          diff /tmp/before/all.sec /tmp/after/all.sec && echo "machine code unchanged"
# With cuobjdump at hand, `cuobjdump -sass OUT/x.cubin` shows the instructions themselves.
set -euo pipefail
OUT=${1:?output folder}
NVCC=${NVCC:-nvcc}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
FLAGS=(-I. -DFMT_HEADER_ONLY -DMT_WITH_CUDA -O3 -lineinfo -std=c++17 --expt-relaxed-constexpr
       -Xcompiler -Wall,-Wextra -Wno-deprecated-gpu-targets)
for f in cuda/attention_exact.cu cuda/flash_attention_*.cu; do
  case $f in
    *_sm90.cu) arch=-gencode=arch=compute_90a,code=sm_90a ;;
    *) arch=-gencode=arch=compute_90,code=sm_90 ;;
  esac
  $NVCC "${FLAGS[@]}" "$arch" -cubin "$f" -o "$OUT/$(basename "$f" .cu).cubin" &
  while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do sleep 0.5; done
done
wait
for c in "$OUT"/*.cubin; do
  python3 "$(dirname "$0")/cubin_sections.py" "$c" | grep -v '^\.nv\.shared\.reserved'
done | sort > "$OUT/all.sec"
echo "$(grep -c '^\.text\.' "$OUT/all.sec") kernels (and their internal subroutines) in $OUT/all.sec"
