#!/usr/bin/env bash
# The data benchmark behind `make bench-data`: our reader and, when python3 has pandas,
# pandas.read_csv on the same file, in the same run, one after the other.
#
#   scripts/bench_data.sh build/bin/prepare FILE [FILE...]
set -euo pipefail
prepare=$1
shift
if [ $# -eq 0 ]; then
  echo "bench-data: no CSV to read: set BENCH_CSV=file (a Kaggle-layout minute CSV, .csv or .csv.gz)" >&2
  exit 1
fi
echo "bench-data: $(nproc) CPUs here; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for f in "$@"; do
  # One core, as the issue's target states it: the reader is single-threaded anyway.
  taskset -c 0 "$prepare" --bench "$f" --repeat 3
  if python3 -c 'import pandas' 2>/dev/null; then
    taskset -c 0 python3 "$(dirname "$0")/bench_data_pandas.py" "$f" c
    if python3 -c 'import pyarrow' 2>/dev/null; then
      taskset -c 0 python3 "$(dirname "$0")/bench_data_pandas.py" "$f" pyarrow
      python3 "$(dirname "$0")/bench_data_pandas.py" "$f" pyarrow  # every core
    fi
  else
    echo "bench-data: pandas is not installed here: the pandas.read_csv figure is skipped"
  fi
done
