"""pandas.read_csv on the same file as `prepare --bench`, for docs/benchmarks.md.

Usage: python3 scripts/bench_data_pandas.py FILE [ENGINE] [REPEAT]
ENGINE is pandas' "c" (the default, what the original run used) or "pyarrow" (multi-threaded).
Prints one line in the format of the C++ reader's, best of REPEAT (default 3) runs.
"""
import os
import sys
import time

import pandas as pd


def main():
    path = sys.argv[1]
    engine = sys.argv[2] if len(sys.argv) > 2 else "c"
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    best = float("inf")
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        df = pd.read_csv(path, engine=engine)
        best = min(best, time.perf_counter() - t0)
        rows = len(df)
    size = os.path.getsize(path)
    cpus = len(os.sched_getaffinity(0))
    print(f"bench-data: pandas {pd.__version__} read_csv(engine={engine!r}) on {cpus} CPU(s) "
          f"{path}: {rows} rows, "
          f"{size / 1e6:.1f} MB on disk, best of {repeat}: {best:.3f} s wall, "
          f"{rows / best / 1e6:.2f} M rows/s")


if __name__ == "__main__":
    main()
