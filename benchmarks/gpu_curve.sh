#!/usr/bin/env bash
# The time-to-quality curve and the throughput benchmark on one lent GPU, in one call of about nine minutes.
#
# A lent GPU comes for 15 minutes of device time in all, which cannot hold the curve's runs one after another
# (0.5 + 1 + 2 + 5 minutes, three contenders, several seeds: over an hour). So the runs share the GPU in EIGHT LANES
# that start together and each run for about five and a half minutes: every run, of every contender and budget,
# trains beside the other seven lanes' runs, and each run's own images/s is in its record (compare it with the solo
# throughput measured at the end, with nothing else running). Within a budget the contenders are interleaved
# (`time_to_quality.py` runs them one after another per seed), so load hits them alike.
#
#   lanes 1-3: (a) course, (c) best, (b) package at 5 minutes, seed 0 (each with its own sample grids)
#   lanes 4-6: (a) and (c) at 2 then 0.5 minutes, seeds 0, 1, 2
#   lane 7:    (a) and (c) at 1 minute, seeds 0 and 1; then (b) at 0.5 minutes
#   lane 8:    (a) and (c) at 1 minute, seed 2; then (b) at 2 and 1 minutes
#
# Evaluation as the CPU curve's: conditional, guidance 4.5, DDIM 25, 500 samples, evaluation seeds 0 1 2.
# Usage (the device tool runs it from the repository root; DATA is crawl-sprites, HF_HOME_SEED an HF_HOME whose
# hf_sprites/ cache holds the domain classifier to use, so the GPU's scores use the CPU curve's features):
#   DATA=.devdata/crawl-sprites HF_HOME_SEED=.devdata/hf_home bash benchmarks/gpu_curve.sh
# Outputs under $OUT: results.tgz (every lane's JSON lines, logs and grids), throughput.json, and the summary lines.
set -u
OUT=${OUT:-/tmp/gpu_curve_out}
DATA=${DATA:?set DATA to the crawl-sprites folder}
WORK=/tmp/gpu_curve
LANE_SECONDS=${LANE_SECONDS:-390}
THROUGHPUT_SECONDS=${THROUGHPUT_SECONDS:-140}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME=$WORK/hf_home
mkdir -p "$HF_HOME" && { [ -z "${HF_HOME_SEED:-}" ] || cp -r "$HF_HOME_SEED"/. "$HF_HOME"/; }

# fail in seconds, not minutes: the GPU, the libraries, the data (this also fills the datasets cache the lanes share)
REQUIRE_CUDA=${REQUIRE_CUDA:-1} python3 - "$DATA" <<'EOF' || exit 1
import sys, torch, diffusers, datasets, pyarrow
from hf_sprites.data import load_images
import os
assert torch.cuda.is_available() or os.environ.get("REQUIRE_CUDA") == "0", "no CUDA device"
source = load_images(train_data_dir=sys.argv[1])
print("check:", torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(), "diffusers", diffusers.__version__, "datasets",
      datasets.__version__, "pyarrow", pyarrow.__version__, "images", len(source))
EOF

T=(python3 benchmarks/time_to_quality.py --conditional --threads 1 --eval_seeds 0 1 2 --guidance_scale 4.5
   --data "$DATA" ${EXTRA:-})  # EXTRA: e.g. "--smoke --device cpu" to try the lanes on a CPU
lane() {  # lane NAME "flags of one invocation" ["flags of the next" ...]: one after another, each to its own JSON
  local name=$1 i=0
  shift
  for flags in "$@"; do
    i=$((i + 1))
    # shellcheck disable=SC2086  # the flags are words
    "${T[@]}" $flags > "$WORK/$name-$i.json" 2> "$WORK/$name-$i.err"
    echo "$name-$i exit $? at $(date +%T)" >> "$WORK/lanes.log"
  done
}
start=$(date +%s)
timeout -k 10 "$LANE_SECONDS" bash -c "$(declare -f lane); T=(${T[*]@Q}); WORK=$WORK
  lane lane1 '--contenders course --budgets 5 --seed_ids 0 --grids_dir $WORK/grids1' &
  lane lane2 '--contenders best --budgets 5 --seed_ids 0 --grids_dir $WORK/grids2' &
  lane lane3 '--contenders package --budgets 5 --seed_ids 0 --grids_dir $WORK/grids3' &
  lane lane4 '--contenders course best --budgets 2 0.5 --seed_ids 0' &
  lane lane5 '--contenders course best --budgets 2 0.5 --seed_ids 1' &
  lane lane6 '--contenders course best --budgets 2 0.5 --seed_ids 2' &
  lane lane7 '--contenders course best --budgets 1 --seed_ids 0 1' '--contenders package --budgets 0.5 --seed_ids 0' &
  lane lane8 '--contenders course best --budgets 1 --seed_ids 2' '--contenders package --budgets 2 1 --seed_ids 0' &
  wait"
echo "lanes done after $(( $(date +%s) - start )) s" | tee -a "$WORK/lanes.log"

# the solo reference: nothing else on the GPU now
timeout -k 10 "$THROUGHPUT_SECONDS" python3 benchmarks/train_throughput.py --data "$DATA" --rounds 3 --steps 40 \
  --warmup 10 --no_readme ${EXTRA:-} > "$WORK/throughput.json" 2> "$WORK/throughput.err"
echo "throughput exit $?" | tee -a "$WORK/lanes.log"
tail -n 1 "$WORK/throughput.json" > "$OUT/throughput.json"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$WORK/gpu.csv" 2>&1
tar czf "$OUT/results.tgz" -C "$WORK" --exclude hf_home .
cat "$WORK/lanes.log"
for f in "$WORK"/lane*-*.err; do grep -l -i "error\|Traceback" "$f" && tail -n 5 "$f"; done
