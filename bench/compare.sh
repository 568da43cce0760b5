#!/usr/bin/env bash
# Runs cauda and the PyTorch reference (bench/reference.py) side by side on the same long-tailed
# splits, over data sets x methods x seeds, and prints a markdown table of the final test accuracy
# (overall, many/medium/few-shot), mean +- std over seeds, plus each implementation's wall time.
#
# Usage: bench/compare.sh [WORK_DIR]        (default: target/compare)
# Environment:
#   PY       Python with torch (default /var/cache/cauda/venv/bin/python)
#   CAUDAD   caudad binary to use instead of building target/release/caudad
#   THREADS  torch threads for the reference (default 2)
#   METHODS  space-separated presets (default "ce balanced-softmax ldam-drw crt logit-adjust-posthoc")
#   SEEDS    space-separated seeds (default "0 1")
#   DATASETS space-separated, from "digits fmnist" (default both)
#   RECIPE   1 (default: lr 0.01, batch 64, the table in docs/RESULTS.md) or 2 (lr 0.05, batch
#            128, 30 epochs on both data sets, Fashion-MNIST capped at 700 per class: the
#            lockstep issue's second recipe)
#   EPOCHS   epochs of every run on both data sets instead of the recipe's (default: the recipe's);
#            for a shorter budget when a run set would not fit the time at hand. Say so beside
#            any table it gives: the tables in docs/RESULTS.md are at the recipe's epochs.
#   CROP     on | off: crop (pad 4) + flip on the 28x28 data (default on); digits never crop
#   BACKBONE model.backbone of every run (default lenet, the backbone of the tables in
#            docs/RESULTS.md); a CIFAR ResNet (resnet8/20/32, resnet8b/20b/32b) for the presets
#            that need one (ride, sade: experts over a shared trunk). reference.py builds the
#            same network from cauda's config.json.
#
# The second table is paired: per seed, cauda minus PyTorch on the same split, mean ± standard
# error over seeds, and how many seeds cauda was ahead.
#
# Each run lives in WORK_DIR/<data>/<method>/seed<k>/: spec.toml, cauda.jsonl (cauda's epoch lines),
# config.json, split.json, summary.json (cauda), reference.json (PyTorch), and wall times.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$ROOT/target/compare}
PY=${PY:-/var/cache/cauda/venv/bin/python}
THREADS=${THREADS:-2}
METHODS=${METHODS:-"ce balanced-softmax ldam-drw crt logit-adjust-posthoc"}
SEEDS=${SEEDS:-"0 1"}
DATASETS=${DATASETS:-"digits fmnist"}
RECIPE=${RECIPE:-1}
CROP=${CROP:-on}
BACKBONE=${BACKBONE:-lenet}
case $RECIPE in
    1) LR=0.01 BATCH=64 FMNIST_EPOCHS=20 DIGITS_EPOCHS=60 CAP=1000 ;;
    2) LR=0.05 BATCH=128 FMNIST_EPOCHS=30 DIGITS_EPOCHS=30 CAP=700 ;;
    *) echo "RECIPE must be 1 or 2" >&2; exit 2 ;;
esac
if [[ -n "${EPOCHS:-}" ]]; then
    [[ $EPOCHS =~ ^[1-9][0-9]*$ ]] || { echo "EPOCHS must be a positive integer" >&2; exit 2; }
    FMNIST_EPOCHS=$EPOCHS DIGITS_EPOCHS=$EPOCHS
fi
case $CROP in on) CROP_FLIP=true ;; off) CROP_FLIP=false ;; *) echo "CROP must be on or off" >&2; exit 2 ;; esac
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}

if [[ -z "${CAUDAD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p caudad)
    CAUDAD=$ROOT/target/release/caudad
fi
mkdir -p "$WORK"

# The recipe shared by every method: LeNet (or $BACKBONE), SGD momentum 0.9, weight decay 5e-4,
# lr 0.01 (LDAM's s = 30 diverges at 0.05 on LeNet), cosine schedule, batch 64; evaluation only
# after the last epoch.
spec() { # data method seed
    local data=$1 method=$2 seed=$3 epochs section
    case $data in
        digits)
            epochs=$DIGITS_EPOCHS
            section='format = "digits"
imbalance = { profile = "exp", ratio = 10 }'
            ;;
        fmnist)
            epochs=$FMNIST_EPOCHS
            section="format = \"idx\"
path = \"$FMNIST\"
imbalance = { profile = \"exp\", ratio = 100 }
max_per_class = $CAP"
            ;;
        *) echo "unknown data set $data" >&2; exit 2 ;;
    esac
    cat <<EOF
name = "compare-$data-$method-seed$seed"
method = "$method"
[data]
$section
[model]
backbone = "$BACKBONE"
[train]
epochs = $epochs
batch_size = $BATCH
seed = $seed
eval_every = $epochs
checkpoint_every = 0
optimizer = { name = "sgd", lr = $LR, momentum = 0.9, weight_decay = 5e-4 }
schedule = { name = "cosine" }
EOF
    if [[ $data == fmnist ]]; then
        printf '[augment]\ncrop_flip = %s\n' "$CROP_FLIP"
    fi
}

now() { date +%s.%N; }

for data in $DATASETS; do
    for method in $METHODS; do
        for seed in $SEEDS; do
            dir=$WORK/$data/$method/seed$seed
            mkdir -p "$dir"
            spec "$data" "$method" "$seed" > "$dir/spec.toml"
            t0=$(now)
            "$CAUDAD" train "$dir/spec.toml" --out "$dir" > "$dir/cauda.jsonl" 2> "$dir/cauda.stderr"
            t1=$(now)
            "$PY" "$ROOT/bench/reference.py" "$dir" --threads "$THREADS" \
                --out "$dir/reference.json" > "$dir/reference.stdout"
            t2=$(now)
            echo "$t1 - $t0" | bc > "$dir/cauda.wall_s"
            echo "$t2 - $t1" | bc > "$dir/reference.wall_s"
            printf '%-7s %-21s seed %s  cauda %6.1fs  pytorch %6.1fs\n' "$data" "$method" "$seed" \
                "$(cat "$dir/cauda.wall_s")" "$(cat "$dir/reference.wall_s")" >&2
        done
    done
done

"$PY" - "$WORK" "$DATASETS" "$METHODS" "$SEEDS" "$DIGITS_EPOCHS" "$FMNIST_EPOCHS" "$CAP" "$CROP" \
    "$BACKBONE" <<'EOF'
import json, pathlib, sys
import numpy as np

work, datasets, methods, seeds = pathlib.Path(sys.argv[1]), *(a.split() for a in sys.argv[2:5])
de, fe, cap, crop, backbone = sys.argv[5:10]
titles = {"digits": f"digits-LT (ratio 10, {de} epochs, {backbone})",
          "fmnist": f"Fashion-MNIST-LT (ratio 100, max {cap} per class, {fe} epochs, crop/flip {crop}, "
                    f"{backbone})"}
cols = [("overall", "test_top1"), ("many", "many"), ("medium", "medium"), ("few", "few")]

def fmt(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    a = 100 * np.array(xs)
    return f"{a.mean():.1f} ± {a.std():.1f}"

for data in datasets:
    print(f"\n**{titles.get(data, data)}**: top-1 % on the balanced test set, mean ± std over seeds "
          f"{', '.join(seeds)} (cauda / PyTorch)\n")
    head = "| method | " + " | ".join(f"{c} cauda | {c} torch" for c, _ in cols)
    print(head + " | Δ overall | wall s cauda | wall s torch |")
    print("|---" * (2 + 2 * len(cols) + 2) + "|")
    few = {}
    for m in methods:
        runs = [work / data / m / f"seed{s}" for s in seeds]
        ca = [json.loads((r / "summary.json").read_text())["last"] for r in runs]
        pt = [json.loads((r / "reference.json").read_text()) for r in runs]
        for r, p in zip(runs, pt):
            s = json.loads((r / "summary.json").read_text())
            assert s["split_hash"] == p["split_hash"] and s["class_counts"] == p["class_counts"], r
        pt = [p["last"] for p in pt]
        cells = [f"{fmt([x[k] for x in ca])} | {fmt([x[k] for x in pt])}" for _, k in cols]
        delta = 100 * (np.mean([x["test_top1"] for x in ca]) - np.mean([x["test_top1"] for x in pt]))
        wall = lambda who: np.mean([float((r / f"{who}.wall_s").read_text()) for r in runs])
        print(f"| {m} | " + " | ".join(cells)
              + f" | {delta:+.1f} | {wall('cauda'):.1f} | {wall('reference'):.1f} |")
        few[m] = (np.mean([x["few"] for x in ca]), np.mean([x["few"] for x in pt]))
    if "ce" in few:
        for who, i in (("cauda", 0), ("torch", 1)):
            beat = [m for m in few if m != "ce" and few[m][i] > few["ce"][i]]
            lose = [m for m in few if m != "ce" and few[m][i] <= few["ce"][i]]
            print(f"\n{who}: few-shot above ce: {', '.join(beat) or 'none'}"
                  + (f"; not above: {', '.join(lose)}" if lose else ""))

    print(f"\n**{titles.get(data, data)}, paired**: cauda minus PyTorch on the same split, "
          f"percentage points, mean ± standard error over {len(seeds)} seeds\n")
    print("| method | Δ overall | Δ many | Δ medium | Δ few | seeds cauda ahead | within 2 SE |")
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        runs = [work / data / m / f"seed{s}" for s in seeds]
        ca = [json.loads((r / "summary.json").read_text())["last"] for r in runs]
        pt = [json.loads((r / "reference.json").read_text())["last"] for r in runs]
        cells, ok, ahead = [], False, 0
        for _, k in cols:
            d = [100 * (a[k] - b[k]) for a, b in zip(ca, pt) if a[k] is not None and b[k] is not None]
            if not d:
                cells.append("-")
                continue
            mean = float(np.mean(d))
            se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            cells.append(f"{mean:+.1f} ± {se:.1f}")
            if k == "test_top1":
                ok = abs(mean) <= 2 * se if se == se else False
                ahead = sum(1 for x in d if x > 0)
        print(f"| {m} | " + " | ".join(cells) + f" | {ahead}/{len(seeds)} | {'yes' if ok else 'NO'} |")
EOF
