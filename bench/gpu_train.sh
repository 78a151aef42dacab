#!/usr/bin/env bash
# One lent-GPU session (a CUDA machine with PyTorch but without `datasets`, see
# the session's device tool): the CUDA tests, then four trainings side by side on the
# one GPU, each evaluated on its test split there:
#   ende  the en->de recipe: preset translate-multi30k as it is (--src en --tgt de)
#   enja  translate-enja trained longer: cosine schedule over a time budget
#   jaen  the same for ja->en
#   lm    lm-wikitext2 trained longer with more dropout
# Payload (ignored by git, carried): .devpay/site (datasets, dill, multiprocess copied
# from the dev venv) and .devpay/corpora/{multi30k,small_parallel_enja,wikitext-2}.
# Results in $OUT: log.txt, results.json, and models.tar.* (15 MiB parts) holding the
# fp16 exports of the en->de run and of the runs that beat the shipped model.
# Usage (device tool): bash bench/gpu_train.sh MINUTES
set -u
MIN=${1:-5.5}
DEV=${DEV:-cuda}  # DEV=cpu: a dry run of the plumbing on the dev machine
OUT=${OUT:?set OUT}
PAY=$PWD/.devpay
R=/tmp/runs
mkdir -p $R
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

nvidia-smi -L
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
  || { stamp "pip install failed: using the tree"; ln -sfn ../corpora seqtool/catalog;
       ln -sfn ../checkpoints seqtool/checkpoints; }
export PYTHONPATH=$PAY/site:$PWD SEQTOOL_HOME=/tmp/home PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=3  # five processes share the 16 cores
python3 -c "import torch, datasets, seqtool; print('torch', torch.__version__, 'datasets',
datasets.__version__, 'seqtool', seqtool.__version__, 'cuda', torch.cuda.is_available())"
ST="python3 -m seqtool"
for c in multi30k small_parallel_enja wikitext-2; do
  $ST corpus import $c --from $PAY/corpora/$c > /dev/null || stamp "import $c failed"
done
stamp "imported"

train() {  # name, then seqtool arguments; SIGTERM after MIN+1.5 minutes saves last/
  local name=$1; shift
  timeout -s TERM $(python3 -c "print(int(($MIN + 2.5) * 60))") \
    $ST train "$@" --device $DEV --out $R/$name --json > $R/$name.json 2> $R/$name.err
  stamp "$name trained (exit $?): $(tail -c 300 $R/$name.json)"
}
evaluate() {  # name, then seqtool evaluate arguments
  local name=$1; shift
  local ck=$R/$name/best; [ -d $ck ] || ck=$R/$name/last
  $ST evaluate "$@" --model $ck --device $DEV --json > $R/$name.eval.json \
    2> $R/$name.eval.err
  stamp "$name evaluated (exit $?): $(cat $R/$name.eval.json)"
}
COS="--set train.schedule=cosine --set train.patience=0 --set train.max_minutes=$MIN"
pids=()
( train ende translate --corpus multi30k --src en --tgt de --config translate-multi30k \
    --set train.max_minutes=$MIN
  evaluate ende translate --corpus multi30k --src en --tgt de --split test_2016_flickr \
    --beam 5 ) & pids+=($!)
( train enja translate --corpus small_parallel_enja --src en --tgt ja --config translate-enja \
    --set train.epochs=40 $COS
  evaluate enja translate --corpus small_parallel_enja --src en --tgt ja --split test \
    --beam 5 ) & pids+=($!)
( sleep 20
  train jaen translate --corpus small_parallel_enja --src ja --tgt en --config translate-enja \
    --set train.epochs=40 $COS
  evaluate jaen translate --corpus small_parallel_enja --src ja --tgt en --split test \
    --beam 5 ) & pids+=($!)
( train lm lm --corpus wikitext-2 --config lm-wikitext2 --set train.epochs=60 \
    --set model.dropout=0.4 $COS
  evaluate lm lm --corpus wikitext-2 --split test ) & pids+=($!)
python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tail -15
stamp "cuda tests done"
wait "${pids[@]}"  # (a plain `wait` would also wait for the tee above)
stamp "all done"

# Keep what beats the shipped model (test BLEU / perplexity as measured here).
python3 - "$R" "${KEEP_ALL:-0}" <<'EOF'
import json, subprocess, sys
from pathlib import Path
r = Path(sys.argv[1])
shipped = {"enja": ("bleu", 35.59), "jaen": ("bleu", 37.17), "lm": ("perplexity", 93.09)}
res, keep = {}, []
for name in ("ende", "enja", "jaen", "lm"):
    try:
        res[name] = json.loads((r / f"{name}.eval.json").read_text())
    except Exception as exc:
        res[name] = {"error": repr(exc)}
    for f in ("metrics.jsonl",):
        p = r / name / f
        res[name]["metrics"] = p.read_text().splitlines() if p.is_file() else []
    if "error" not in res[name]:  # ende (no shipped en->de model) always comes back
        key, ref = shipped.get(name, ("bleu", 0.0))
        better = res[name][key] > ref if key == "bleu" else res[name][key] < ref
        if better or sys.argv[2] == "1":  # KEEP_ALL=1: the dry run exports all
            ck = r / name / "best" if (r / name / "best").is_dir() else r / name / "last"
            subprocess.run([sys.executable, "-m", "seqtool", "export", str(ck),
                            str(r / "export" / name), "--half"], check=False)
            keep.append(name)
res["kept"] = keep
Path(sys.argv[1], "results.json").write_text(json.dumps(res, indent=1))
print("kept:", keep)
EOF
cp $R/results.json "$OUT/"
if [ -d $R/export ]; then
  tar -C $R/export -cf - . | split -b 15m - "$OUT/models.tar."
fi
ls -la "$OUT"
stamp "packed"
