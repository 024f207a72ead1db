#!/usr/bin/env python3
"""The skill table of `make forecast-check` (docs/results.md) from evaluate's metrics.json files.

For each file (one scored year): per feature, the skill of the forecast against persistence and
against the best naive baseline (1 - MSE_model / MSE_baseline), in z-space and in USD/BTC, then
the bars of the out-of-regime check. Exits 1 when a bar is missed.
"""
import json
import os
import sys

FEATURES = ["open", "high", "low", "close", "volume"]
# Skill against persistence in z-space that each feature must reach (the check's bars).
BARS = {"open": 0.996, "high": 0.45, "low": 0.45, "volume": 0.35, "close": -0.001}


def main(paths):
    failed = []
    print("| year | space | " + " | ".join(f"{f} vs persistence | {f} vs best" for f in FEATURES) + " |")
    print("|---|---|" + "---|---|" * len(FEATURES))
    for path in paths:
        m = json.load(open(path))
        year = os.path.basename(os.path.dirname(path)).replace("eval-", "")
        for space in ("z", "price"):
            skill = m[space]["skill"]
            cells = []
            for f in FEATURES:
                vs_p, vs_b = skill[f]["mse"], skill[f]["mse_vs_best"]
                cells.append(f"{vs_p:+.4f} | {vs_b:+.4f}")
                if vs_b < 0:
                    failed.append(f"{year} {space} {f}: skill {vs_b:+.4f} against the best baseline")
                if space == "z" and vs_p < BARS[f]:
                    failed.append(f"{year} {f}: skill {vs_p:+.4f} against persistence, bar {BARS[f]}")
            print(f"| {year} | {'z-space' if space == 'z' else 'USD/BTC'} | " + " | ".join(cells) + " |")
        print(f"[forecast-check] {year}: {m['forecasts']} forecasts per feature, blend {m['blend']['weights']}",
              file=sys.stderr)
    for f in failed:
        print("[forecast-check] MISSED: " + f)
    print("[forecast-check] " + ("all bars met" if not failed else f"{len(failed)} bars missed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
