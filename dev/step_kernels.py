#!/usr/bin/env python3
"""One training step's kernels, from Nsight Compute's CSV: which kernels a step runs, how often,
and how long each takes alone.

The profile-table (trainer.profile_steps) times the framework's NVTX ranges; this reads the
kernels inside them, including cuBLASLt's own (its epilogue kernels, split-K reductions). Make
the CSV on the GPU machine with bench_train at one batch size, skipping the warm-up steps:

    ncu --launch-skip 3000 --launch-count 600 --metrics gpu__time_duration.sum --csv \\
        build/bin/bench_train 32 > ncu.csv
    python3 dev/step_kernels.py ncu.csv [--top N] [--marker adamw_kernel]

A step is the kernels between two launches of the optimizer's kernel (--marker), so the window
must hold two of them. Nsight Compute runs each kernel alone, with its caches flushed first: the
times are each kernel's own cost, and their sum exceeds the step's wall time, where kernels
overlap their neighbours' tails and find their inputs in L2.
"""
import argparse
import collections
import csv
import io
import re
import sys


def read_rows(path):
    """The CSV's kernel rows (ncu prints its own log lines before the header)."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"{path}: no Nsight Compute CSV header (a line starting with \"ID\")")
    rows = []
    for r in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        scale = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(
            r["Metric Unit"], None)
        if scale is None:
            sys.exit(f"{path}: unexpected time unit {r['Metric Unit']!r}")
        rows.append((r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * scale))
    return rows


def short_name(name):
    """The kernel's name without its argument list, return type and namespaces."""
    name = re.sub(r"\(.*", "", name)
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\b(mt|cuda|fa|cublasLt)::(<unnamed>::)?", "", name)
    return name.replace("<unnamed>::", "")


def one_step(rows, marker):
    """The kernels after the first marker, up to and including the second."""
    at = [i for i, (n, _) in enumerate(rows) if marker in n]
    if len(at) < 2:
        sys.exit(f"the window holds {len(at)} launch(es) of {marker!r}; a step needs two "
                 "(widen --launch-count, or pick another --marker)")
    return rows[at[0] + 1:at[1] + 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--marker", default="adamw_kernel",
                    help="a kernel launched once a step (default: the optimizer's)")
    ap.add_argument("--top", type=int, default=25, help="rows to print (default 25)")
    args = ap.parse_args()

    step = one_step(read_rows(args.csv), args.marker)
    total = sum(t for _, t in step)
    by_name = collections.OrderedDict()
    for name, t in step:
        calls, time = by_name.get(short_name(name), (0, 0.0))
        by_name[short_name(name)] = (calls + 1, time + t)
    small = [t for _, t in step if t < 10.0]
    print(f"one step: {len(step)} kernels, {total / 1e3:.3f} ms summed (each timed alone); "
          f"{len(small)} under 10 us ({sum(small) / 1e3:.3f} ms)")
    print(f"{'kernel':<72} {'calls':>5} {'total us':>10} {'us/call':>9} {'%':>6}")
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1][1])
    for name, (calls, t) in ranked[:args.top]:
        print(f"{name[:72]:<72} {calls:>5} {t:>10.1f} {t / calls:>9.1f} {100 * t / total:>6.1f}")
    if len(ranked) > args.top:
        rest = sum(t for _, (_, t) in ranked[args.top:])
        print(f"{'(' + str(len(ranked) - args.top) + ' more kernels)':<72} {'':>5} {rest:>10.1f}")


if __name__ == "__main__":
    main()
