#!/usr/bin/env bash
# Checkpoint averaging on a shortened de->en recipe (bench/RESULTS.md, "Checkpoint
# averaging"): the translate-multi30k preset stopped after MINUTES of training,
# evaluated every EVAL_EVERY steps with the last 5 evaluations kept (train.keep_last),
# then test_2016_flickr BLEU (beam 5) of best/, of each kept checkpoint and of the
# average of the 5. Needs multi30k imported into $SEQTOOL_HOME:
#   seqtool corpus import multi30k --from ../shared/corpora/multi30k
# Usage: bash bench/checkpoint_average.sh [WORK]   (default runs/avg-bench)
# A run already in WORK/run is not trained again: to go on longer, resume it first
#   seqtool train translate --resume WORK/run --set train.max_minutes=55 --threads 1
# and run this again (it averages and evaluates the newest 5 checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/avg-bench}
MINUTES=${MINUTES:-30}
EVAL_EVERY=${EVAL_EVERY:-150}
THREADS=${THREADS:-1}
SEQTOOL=${SEQTOOL:-.venv/bin/seqtool}
mkdir -p "$WORK"
if [ ! -d "$WORK/run/last" ]; then
    "$SEQTOOL" train translate --corpus multi30k --src de --tgt en --config translate-multi30k \
        --set train.max_minutes="$MINUTES" --set train.eval_every="$EVAL_EVERY" \
        --set train.keep_last=5 --threads "$THREADS" --out "$WORK/run" --json \
        > "$WORK/train.json"
fi
"$SEQTOOL" average "$WORK/run" --last 5 --out "$WORK/avg5" --json > "$WORK/avg5.json"
evaluate() {  # name, model folder
    "$SEQTOOL" evaluate translate --model "$2" --corpus multi30k --split test_2016_flickr \
        --beam 5 --json > "$WORK/eval-$1.json"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], \
round(r['bleu'], 2), round(r['chrf'], 2))" "$WORK/eval-$1.json" "$1"
}
evaluate best "$WORK/run/best"
for ckpt in "$WORK"/run/ckpt-*; do
    evaluate "$(basename "$ckpt")" "$ckpt"
done
evaluate avg5 "$WORK/avg5"
"$SEQTOOL" plot "$WORK/run" --out "$WORK/curves.png"
