#!/usr/bin/env bash
# The data layer's one GPU-machine run: build only what data/ needs with CUDA (the full tree's
# kernels would cost minutes of device time), run the data and gather tests (CUDA ones
# included), then `make bench-data` on a carried slice of the real file, gz and unpacked.
#
#   run: bash dev/gpu_data.sh        (SLICE_DIR: a folder with a .csv.gz slice of the real data,
#        default .carry/data; and build/gpu_data/bin when the
#        binaries were built beforehand on another x86-64 machine: no -march, so they travel)
set -uo pipefail
B=build/gpu_data
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p $B/obj $B/bin
COMMON="-I. -DFMT_HEADER_ONLY -DMT_WITH_CUDA"
CXXF="$COMMON -isystem $CUDA_HOME/include -O2 -std=c++17 -Wall -Wextra -fopenmp"
NVF="$COMMON -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 --expt-relaxed-constexpr"
cpp=(tensor/*.cpp cuda/*.cpp data/text_input.cpp data/csv_reader.cpp data/clean.cpp
     data/transform.cpp data/windows.cpp data/prepared.cpp data/loader.cpp data/synthetic.cpp
     tests/main.cpp tests/test_util.cpp tests/test_data_*.cpp apps/prepare.cpp)
cu=(cuda/runtime.cu cuda/allocator.cu cuda/tensor_kernels.cu cuda/gather_windows.cu)
build() {
t0=$(date +%s)
{
  for f in "${cpp[@]}"; do
    extra=""
    case $f in tests/*) extra="-DMT_NO_SHORT_CHECK" ;; esac  # CHECK is doctest's there
    echo "g++ $CXXF $extra -c $f -o $B/obj/$(echo "$f" | tr / _).o"
  done
  for f in "${cu[@]}"; do echo "$CUDA_HOME/bin/nvcc $NVF -c $f -o $B/obj/$(echo "$f" | tr / _).o"; done
} | xargs -P "${JOBS:-16}" -I{} sh -c '{}' || { echo "gpu_data: build failed"; exit 1; }
LIBS="-L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcublasLt -lcudart -lz -fopenmp -lpthread"
objs=$(ls $B/obj/*.o | grep -v apps_prepare)
g++ -o $B/bin/tests $objs $LIBS || exit 1
g++ -o $B/bin/prepare $(ls $B/obj/*.o | grep -v tests_) $LIBS || exit 1
echo "gpu_data: built in $(( $(date +%s) - t0 )) s"
}
if [ -x $B/bin/tests ] && [ -x $B/bin/prepare ] && $B/bin/tests -ltc >/dev/null 2>&1; then
  echo "gpu_data: using the carried binaries in $B/bin"
else
  build
fi
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
$B/bin/tests -tc='*data*,*gather_windows*'
slice=$(ls "${SLICE_DIR:-.carry/data}"/*.csv.gz 2>/dev/null | head -1)
if [ -n "$slice" ]; then
  zcat "$slice" > /tmp/slice.csv
  # -o: the binaries above are up to date; make must not rebuild the whole library.
  make --no-print-directory bench-data BUILD=$B -o $B/bin/prepare -o $B/.deps-ok \
    BENCH_CSV="$slice /tmp/slice.csv"
else
  echo "gpu_data: no slice in ${SLICE_DIR:-.carry/data}: bench skipped"
fi
