#!/usr/bin/env bash
# Paired arms per seed, to tell which source of randomness carries a gap between cauda and
# PyTorch (docs/RESULTS.md, "The lockstep issue's own case"):
#   cauda                 caudad train, recording its init and every step's draws
#   reference.json        PyTorch's own run (bench/reference.py)
#   ref_cinit.json        PyTorch from cauda's initial weights, its own batches
#   replay_*.json         with DRAWS=1: bench/replay_draws.py with (init, order, crops) =
#                         (cauda, cauda, cauda), (cauda, cauda, torch), (cauda, torch, cauda)
#
# Usage: bench/arms.sh SPEC OUT_DIR SEED...
#   SPEC is a one-stage spec whose [train] has `seed = 0` (replaced per seed). Each seed lives in
#   OUT_DIR/seed<k>/; finished seeds are skipped, so the script can be rerun or run as several
#   processes over disjoint seeds. Then: bench/arms_stats.py OUT_DIR.
# Environment: PY (torch venv python), CAUDAD (default: target/release/caudad, built), DRAWS=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-/var/cache/cauda/venv/bin/python}
spec=$1 out=$2
shift 2
if [[ -z "${CAUDAD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p caudad)
    CAUDAD=${CARGO_TARGET_DIR:-$ROOT/target}/release/caudad
fi
for s in "$@"; do
    d=$out/seed$s
    mkdir -p "$d"
    if [[ ! -f $d/summary.json ]]; then
        sed -e "s/^seed = 0$/seed = $s/" "$spec" > "$d/spec.toml"
        grep -q "^seed = $s$" "$d/spec.toml" || { echo "$spec: no 'seed = 0' line" >&2; exit 2; }
        rm -rf "$d/lockstep"
        "$CAUDAD" train "$d/spec.toml" --out "$d" --lockstep "$d/lockstep" --lockstep-steps 1 \
            --lockstep-draws > "$d/cauda.jsonl" 2> "$d/cauda.stderr"
    fi
    [[ -f $d/reference.json ]] || "$PY" "$ROOT/bench/reference.py" "$d" --threads 1 > /dev/null
    [[ -f $d/ref_cinit.json ]] || "$PY" "$ROOT/bench/reference.py" "$d" --threads 1 \
        --init "$d/lockstep/stage1_init.safetensors" --out "$d/ref_cinit.json" > /dev/null
    if [[ ${DRAWS:-0} == 1 ]]; then
        for arm in "cauda cauda cauda" "cauda cauda torch" "cauda torch cauda"; do
            read -r i o c <<< "$arm"
            f=$d/replay_${i}_${o}_${c}.json
            [[ -f $f ]] || "$PY" "$ROOT/bench/replay_draws.py" "$d" --init "$i" --order "$o" \
                --crops "$c" --out "$f" > /dev/null
        done
    fi
    echo "seed $s done $(date +%T)" >&2
done
