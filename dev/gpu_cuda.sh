#!/usr/bin/env bash
# The CUDA backend's check on the GPU machine: build the test binary, run the CUDA suites, then
# compute-sanitizer memcheck and racecheck on them. Logs go to $OUT (when set) and stdout.
#   usage: bash dev/gpu_cuda.sh [doctest filter args, e.g. -tc='*rmsnorm*']
set -uo pipefail
export CPATH=${CPATH:-}
OUT=${OUT:-/tmp/gpu_cuda}
mkdir -p "$OUT"
BUILD=build/dev
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# The CUDA suites in a driver of their own: a half-finished test file elsewhere in the tree
# must not keep this check from running (the full bin/tests is built too, when it compiles).
MINE="main test_util test_cuda_runtime test_cuda_ops test_cuda_optim test_cuda_model"
OBJS=$(for t in $MINE; do echo $BUILD/obj/tests/$t.o; done)
time make -j16 -k BUILD=$BUILD $BUILD/libminitensor.a $OBJS > "$OUT/build.log" 2>&1
make -j16 -k BUILD=$BUILD $BUILD/bin/tests $BUILD/bin/bench_cuda > "$OUT/build_all.log" 2>&1 ||
  { echo "(some targets did not build:)"; grep -E "error" "$OUT/build_all.log" | head -5; }
grep -E "error|warning: " "$OUT/build.log" | grep -v "^make" | head -40
CUDA_HOME=$(dirname $(dirname $(command -v nvcc || echo /usr/local/cuda/bin/nvcc)))
g++ -fopenmp $OBJS $BUILD/libminitensor.a -L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 \
  -lcublasLt -lcudart -lz -lpthread -o $BUILD/bin/cuda_tests || { echo "LINK FAILED"; exit 1; }
echo "=== CUDA suites"
time $BUILD/bin/cuda_tests -ts=cuda "$@" 2>&1 | tee "$OUT/tests.log" | tail -60
echo "=== CPU optim tests"
$BUILD/bin/cuda_tests -tc='adamw*,clip*' 2>&1 | tail -3
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
echo "=== memcheck"
time timeout 200 $SAN --tool memcheck --leak-check no --error-exitcode 3 $BUILD/bin/cuda_tests -ts=cuda \
  -tce='*out of memory*' "$@" > "$OUT/memcheck.log" 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test cases" "$OUT/memcheck.log" | tail -3
echo "=== racecheck"
time timeout 150 $SAN --tool racecheck --error-exitcode 3 $BUILD/bin/cuda_tests -ts=cuda \
  -tc='*softmax*,*RMSNorm*,*losses*,*AdamW*,*unary*' "$@" > "$OUT/racecheck.log" 2>&1
echo "racecheck rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test cases" "$OUT/racecheck.log" | tail -3
if [ "${RUN_BENCH:-1}" = 1 ] && [ -x $BUILD/bin/bench_cuda ]; then
  echo "=== bench_cuda"
  $BUILD/bin/bench_cuda 2>&1 | tee "$OUT/bench.log"
fi
if [ "${RUN_ALL:-1}" = 1 ] && [ -x $BUILD/bin/tests ]; then
  echo "=== the whole test binary (make test)"
  timeout 240 $BUILD/bin/tests 2>&1 | tail -25 | tee "$OUT/all_tests.log"
fi
