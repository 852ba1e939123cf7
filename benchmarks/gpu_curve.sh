#!/usr/bin/env bash
# The throughput benchmark and the time-to-quality curve on a lent GPU, one run at a time, inside a deadline.
#
# One run at a time: the eighteenth session ran the curve in eight lanes sharing one H200, and only 2 of 24 runs
# finished in 390 s: the evaluations took minutes instead of seconds (likely, not profiled: the GPU time-slices between
# processes, and a sampling loop that waits on the GPU at every step waits for the other lanes too; README, Results). A lent GPU comes for about 15 minutes in all, so this script does
# what fits, in order of worth, and stops starting runs before DEADLINE_SECONDS:
#   1. the throughput benchmark (alone on the GPU; about 2.5 minutes, three of its variants compile), unless THROUGHPUT=0;
#   2. (a) the course loop and (c) the recipe, one pair per (budget, seed) in PAIRS ("minutes:seed ..."), each pair
#      started only if its budgets plus PAIR_OVERHEAD seconds (start-up, final save, evaluation) fit before the deadline.
# Evaluation as the CPU curve's: conditional, guidance 4.5, DDIM 25, 500 samples, evaluation seeds 0 1 2.
#
# Usage (the device tool runs it from the repository root; DATA is crawl-sprites, HF_HOME_SEED an HF_HOME whose
# hf_sprites/ cache holds the domain classifier the CPU curve used, so that the GPU's scores use the same features):
#   DATA=.devdata/crawl-sprites HF_HOME_SEED=.devdata/hf_home bash benchmarks/gpu_curve.sh
#   THROUGHPUT=0 PAIRS="2:0 0.5:1" DATA=... bash benchmarks/gpu_curve.sh      # a second call of the same session
# and here: python benchmarks/time_to_quality.py --merge ttq-*.json --plot docs/images/time_to_quality/gpu_h200.png
# Outputs under $OUT: results.tgz (each pair's JSON and log, the throughput JSON, the log) and throughput.json.
# EXTRA="--smoke --device cpu" REQUIRE_CUDA=0 tries it on a CPU in a few minutes.
set -u
OUT=${OUT:-/tmp/gpu_curve_out}
DATA=${DATA:?set DATA to the crawl-sprites folder}
WORK=/tmp/gpu_curve
DEADLINE_SECONDS=${DEADLINE_SECONDS:-540}
PAIR_OVERHEAD=${PAIR_OVERHEAD:-90}
PAIRS=${PAIRS:-"0.5:0 1:0 2:0 0.5:1 1:1 0.5:2 1:2 2:1 5:0"}
start=$(date +%s)
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME=$WORK/hf_home
mkdir -p "$HF_HOME" && { [ -z "${HF_HOME_SEED:-}" ] || cp -r "$HF_HOME_SEED"/. "$HF_HOME"/; }
log() { echo "$(( $(date +%s) - start )) s: $*" | tee -a "$WORK/log.txt"; }
left() { echo $(( DEADLINE_SECONDS - ($(date +%s) - start) )); }

# fail in seconds, not minutes: the GPU, the libraries, the data (this also fills the datasets cache)
REQUIRE_CUDA=${REQUIRE_CUDA:-1} python3 - "$DATA" <<'EOF' || exit 1
import os, sys, torch, diffusers, datasets, pyarrow
from hf_sprites.data import load_images
assert torch.cuda.is_available() or os.environ.get("REQUIRE_CUDA") == "0", "no CUDA device"
source = load_images(train_data_dir=sys.argv[1])
print("check:", torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(), "diffusers",
      diffusers.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__, "images", len(source))
EOF

if [ "${THROUGHPUT:-1}" = 1 ]; then
  # shellcheck disable=SC2086  # EXTRA is words
  timeout -k 10 "$(( $(left) < 200 ? $(left) : 200 ))" python3 benchmarks/train_throughput.py --data "$DATA" \
    --rounds 3 --steps 40 --warmup 10 --no_readme ${EXTRA:-} > "$WORK/throughput.json" 2> "$WORK/throughput.err"
  log "throughput exit $?"
  tail -n 1 "$WORK/throughput.json" > "$OUT/throughput.json"
fi

for pair in $PAIRS; do
  minutes=${pair%%:*} seed=${pair##*:}
  need=$(python3 -c "print(int(2 * 60 * $minutes + $PAIR_OVERHEAD))")
  if [ "$need" -gt "$(left)" ]; then log "pair $pair skipped: needs about $need s, $(left) s left"; continue; fi
  # shellcheck disable=SC2086
  timeout -k 10 "$(left)" python3 benchmarks/time_to_quality.py --conditional --threads 1 --eval_seeds 0 1 2 \
    --guidance_scale 4.5 --data "$DATA" --contenders course best --budgets "$minutes" --seed_ids "$seed" ${EXTRA:-} \
    > "$WORK/ttq-$minutes-$seed.json" 2> "$WORK/ttq-$minutes-$seed.err"
  log "pair $pair exit $?"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$WORK/gpu.csv" 2>&1
tar czf "$OUT/results.tgz" -C "$WORK" --exclude hf_home .
