#!/usr/bin/env bash
# make forecast-check: the out-of-regime check of docs/results.md, start to end.
#   scripts/forecast_check.sh BUILD CSV CONFIG OUT [--set key=value ...]
# Train on the minutes before 2020-11-01, validate on 2020-11 and 2020-12 (the blend with the
# naive rule is fitted there too), then score 2021 and 2023, which the run never saw, and print
# the skill table with the bars.
set -euo pipefail
build=$1 csv=$2 config=$3 out=$4
shift 4
sets=()
for s in "$@"; do sets+=(--set "$s"); done
mkdir -p "$out"
start=$(date +%s)
"$build/bin/prepare" --csv "$csv" --until 2021-01-01 --split-dates 2020-11-01,2021-01-01 \
  --out "$out/data"
rm -rf "$out/run"
"$build/bin/train" --config "$config" --set data.dir="$out/data" --set trainer.out_dir="$out/run" \
  --set trainer.evaluate=false --set trainer.plots=false --set trainer.progress=plain "${sets[@]}"
trained=$(date +%s)
for year in 2021 2023; do
  "$build/bin/evaluate" --run "$out/run" --data "$csv" --from "$year-01-01" \
    --until "$((year + 1))-01-01" --out "$out/run/eval-$year" --no-plots
done
end=$(date +%s)
echo "[forecast-check] prepare + train $((trained - start)) s, evaluation $((end - trained)) s"
python3 scripts/forecast_summary.py "$out/run/eval-2021/metrics.json" "$out/run/eval-2023/metrics.json"
