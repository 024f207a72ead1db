#!/usr/bin/env bash
# The whole project's check on the GPU machine, in one call (device time is scarce):
#   1. build everything and run `make test` (GPU suites included; they must run, not skip);
#   2. compute-sanitizer memcheck and racecheck on the CUDA suites;
#   3. prepare real data ($BTC_CSV, default .carry/btcusd_1-min_2022-2023.csv.gz: a 2022-2023
#      slice of the Kaggle file copied to the device) and train the seed
#      config end to end on the GPU with both forecast targets (level, delta);
#   4. bench-train: our training step beside PyTorch eager and torch.compile, same session;
#   5. dp: data-parallel on every GPU of the host (dev/dp_check.sh), when there are 2 or more.
# SAN_TC narrows the sanitizer runs to some CUDA test cases (doctest -tc patterns), SAN_EXCLUDE
# leaves some out (-tce patterns); timed cases ("*quickly*") never run under a sanitizer, whose
# slowdown they would report as a failure.
# Logs and the run folders' small files go to $LOGS, packed at the end into $OUT/final.tar.gz
# (the device tool returns at most 8 files).
#   usage: bash dev/gpu_final.sh [steps...]  (steps: test sanitize train bench dp; default all)
set -uo pipefail
FINAL_OUT=${OUT:-/tmp}
OUT=/tmp/gpu_final
mkdir -p "$OUT"
trap 'tar czf "$FINAL_OUT/final.tar.gz" -C /tmp gpu_final' EXIT
BUILD=build/dev
STEPS=${*:-test sanitize train bench dp}
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

echo "=== build"
time make -j"$(nproc)" BUILD=$BUILD all $BUILD/bin/tests > "$OUT/build.log" 2>&1 ||
  { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
grep -c "warning" "$OUT/build.log" | sed 's/^/build warnings: /'

if has test; then
  echo "=== make test"
  time make test BUILD=$BUILD > "$OUT/make_test.log" 2>&1; echo "make test rc=$?"
  grep -E "^\[tests\]|passed, .* failed|test cases:|Status" "$OUT/make_test.log"
  grep -B2 -A8 "ERROR\|FAILED" "$OUT/make_test.log" | head -60
fi

if has sanitize; then
  # NCCL's communicator setup probes kernels built for other GPUs and handles the resulting
  # "no kernel image" API errors itself; memcheck reports those API errors, so the two NCCL
  # cases run separately with API-error reports off (memory errors are still reported).
  # The three runs go in parallel (the sanitizers are CPU-bound; the GPU has room for all).
  echo "=== memcheck and racecheck (CUDA suites), in parallel"
  TC=${SAN_TC:+-tc=$SAN_TC}
  ( timeout ${SAN_TIMEOUT:-420} $SAN --tool memcheck --leak-check no --error-exitcode 3 $BUILD/bin/tests -ts=cuda \
      $TC -tce="*out of memory*,*NCCL*,*DataParallel*,*quickly*${SAN_EXCLUDE:+,$SAN_EXCLUDE}" > "$OUT/memcheck.log" 2>&1
    echo "memcheck rc=$?" >> "$OUT/memcheck.log" ) &
  ( timeout 200 $SAN --tool memcheck --report-api-errors no --leak-check no --error-exitcode 3 \
      $BUILD/bin/tests -ts=cuda -tc='*NCCL*,*DataParallel*' > "$OUT/memcheck_nccl.log" 2>&1
    echo "memcheck (NCCL cases) rc=$?" >> "$OUT/memcheck_nccl.log" ) &
  ( timeout ${SAN_TIMEOUT:-420} $SAN --tool racecheck --error-exitcode 3 $BUILD/bin/tests -ts=cuda \
      $TC -tce="*out of memory*,*large*,*quickly*${SAN_EXCLUDE:+,$SAN_EXCLUDE}" > "$OUT/racecheck.log" 2>&1
    echo "racecheck rc=$?" >> "$OUT/racecheck.log" ) &
  time wait
  for f in memcheck memcheck_nccl racecheck; do
    grep -E "rc=|ERROR SUMMARY|RACECHECK SUMMARY|test cases:" "$OUT/$f.log" | tail -4
  done
fi

if has train || has dp; then
  echo "=== prepare the 2022-2023 slice"
  time $BUILD/bin/prepare --csv "${BTC_CSV:-.carry/btcusd_1-min_2022-2023.csv.gz}" --out /tmp/btc > "$OUT/prepare.log" 2>&1
  tail -4 "$OUT/prepare.log"
fi

if has train; then
  for target in level delta; do
    echo "=== train seed config, target $target"
    time $BUILD/bin/train --config models/configs/btc_seed.json --set data.dir=/tmp/btc \
      --set model.target=$target --set trainer.epochs=${EPOCHS:-20} --set trainer.progress=plain \
      --set trainer.log_every=25 --set trainer.out_dir=/tmp/run_$target > "$OUT/train_$target.log" 2>&1
    echo "train rc=$?"
    grep -vE "^\[train\] step" "$OUT/train_$target.log" | tail -30
    mkdir -p "$OUT/run_$target"
    cp /tmp/run_$target/{metrics.md,metrics.json,config.json} "$OUT/run_$target/" 2>/dev/null
    cp /tmp/run_$target/metrics.jsonl "$OUT/run_$target/" 2>/dev/null
  done
fi

if has bench; then
  echo "=== bench-train"
  $BUILD/bin/bench_train 2>&1 | tee "$OUT/bench_train.log"
  python3 scripts/bench_train_torch.py 2>&1 | grep -v Warning | tee -a "$OUT/bench_train.log"
fi

GPUS=$(nvidia-smi -L | wc -l)
if has dp && [ "$GPUS" -ge 2 ]; then
  echo "=== data-parallel on $GPUS GPUs"
  time LOGS=$OUT/dp bash dev/dp_check.sh $BUILD /tmp/btc "$GPUS" ${DP_STEPS:-300}
fi
