#!/usr/bin/env bash
# Data-parallel training on the GPUs of one host, checked end to end (docs/distributed.md):
#   1. equivalence: the seed model without dropout, 1 GPU at batch 2B against N GPUs at batch B
#      each (the same global batch, the same windows): the logged loss curves are compared;
#      the ranks' weights are checked identical every 10 steps (an Error otherwise);
#   2. resume: an N-GPU run stopped at step 30 is resumed on 1 GPU at batch 2B and compared with
#      the 1-GPU run of step 1;
#   3. throughput: the seed config (batch 32 per GPU, dropout 0.05) on 1 and on N GPUs, tokens/s
#      and the scaling efficiency tok/s(N) / (N x tok/s(1)).
#   usage: bash dev/dp_check.sh BUILD_DIR PREPARED_DATA_DIR [N=2] [STEPS=300]
# Logs go to $LOGS (default /tmp/dp_check); a summary is printed at the end.
set -uo pipefail
BUILD=${1:?build dir}
DATA=${2:?prepared data dir}
N=${3:-2}
STEPS=${4:-300}
LOGS=${LOGS:-/tmp/dp_check}
mkdir -p "$LOGS"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on these machines
TRAIN="$BUILD/bin/train --config models/configs/btc_seed.json --set data.dir=$DATA
  --set trainer.progress=plain --set trainer.evaluate=false --set trainer.plots=false
  --set trainer.log_every=10 --set trainer.epochs=1000 --set trainer.val_batches=2"
EQ="--set model.attn_dropout=0 --set trainer.dp_check_every=10"

run() {  # name, then train's extra arguments
  local name=$1
  shift
  rm -rf "/tmp/dp_$name"
  echo "=== $name: $*"
  timeout 120 $TRAIN --set trainer.out_dir=/tmp/dp_$name "$@" > "$LOGS/$name.log" 2>&1
  echo "rc=$?"
  grep -E "^\[dist\]|error|stopped|differ" "$LOGS/$name.log" | head -8
  cp "/tmp/dp_$name/metrics.jsonl" "$LOGS/$name.metrics.jsonl" 2>/dev/null
}

run eq1 $EQ --set trainer.batch_size=64 --set trainer.max_steps=60
run eqN $EQ --set trainer.devices=$N --set trainer.batch_size=$((64 / N)) --set trainer.max_steps=60
run resN $EQ --set trainer.devices=$N --set trainer.batch_size=$((64 / N)) --set trainer.max_steps=30
echo "=== resume the $N-GPU run on 1 GPU"
timeout 120 $BUILD/bin/train --resume /tmp/dp_resN --set trainer.devices=1 \
  --set trainer.batch_size=64 --set trainer.max_steps=60 > "$LOGS/res1.log" 2>&1
echo "rc=$?"
grep -E "checkpoint was written|resuming|stopped|error" "$LOGS/res1.log" | head -5
cp /tmp/dp_resN/metrics.jsonl "$LOGS/res1.metrics.jsonl" 2>/dev/null
run speed1 --set trainer.max_steps=$STEPS
run speedN --set trainer.devices=$N --set trainer.max_steps=$STEPS

python3 - "$LOGS" "$N" <<'EOF'
import json, statistics, sys
logs, n = sys.argv[1], int(sys.argv[2])
def train(name):
    try:
        return [r for r in map(json.loads, open(f"{logs}/{name}.metrics.jsonl")) if r["kind"] == "train"]
    except OSError:
        return []
def curve(name):
    return {r["step"]: r["loss"] for r in train(name)}
def compare(a, b, label):
    ca, cb = curve(a), curve(b)
    common = sorted(set(ca) & set(cb))
    if not common:
        print(f"{label}: no common logged steps"); return
    rel = max(abs(ca[s] - cb[s]) / abs(ca[s]) for s in common)
    print(f"{label}: {len(common)} logged steps, max relative loss difference {rel:.3g}")
compare("eq1", "eqN", f"1 GPU x batch 64 vs {n} GPUs x batch {64 // n}")
compare("eq1", "res1", f"{n}-GPU run resumed on 1 GPU vs the 1-GPU run")
def speed(name):
    r = train(name)[2:]  # the first lines include start-up
    return statistics.median(x["tokens_per_s"] for x in r) if r else float("nan")
s1, sn = speed("speed1"), speed("speedN")
print(f"throughput: 1 GPU {s1/1e6:.3f} M tok/s, {n} GPUs {sn/1e6:.3f} M tok/s, "
      f"scaling efficiency {sn / (n * s1):.1%}")
EOF
