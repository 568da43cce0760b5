#!/usr/bin/env bash
# The split-file input pipeline against PyTorch's DataLoader on the same JPEG folder, same
# transform (RandomResizedCrop(224) + flip + ColorJitter(0.4, 0.4, 0.4) + normalize), same batch
# (64) and the same number of workers N (cauda: loader threads; PyTorch: worker processes).
# Prints images/s of each, their ratio, and peak resident memory, per N.
#
#   bench/loader.sh                 # N = 1 and nproc, 2,000 images, 3 alternating rounds
#   THREADS="2" ROUNDS=5 IMAGES=4000 bench/loader.sh
#
# The data (ImageNet-sized JPEGs, bench/fixtures/jpeg_folder.py) is generated once under
# $CAUDA_LOADER_DATA. cauda's pipeline is built in the dev profile with cauda-plugins at
# opt-level 3, as a release build has it (a cold release build takes ~30 min here). Run on a
# quiet machine: the load average is printed first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/var/cache/cauda/venv/bin/python}
IMAGES=${IMAGES:-2000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-"1 $(nproc)"}
DATA=${CAUDA_LOADER_DATA:-/tmp/cauda-loader-bench-$IMAGES}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/cauda/target}"

if [ ! -f "$DATA/train.txt" ]; then
  echo "generating $IMAGES JPEGs under $DATA" >&2
  "$PY" bench/fixtures/jpeg_folder.py "$DATA" "$IMAGES"
fi
OPT=(--profile dev --config 'profile.dev.package.cauda-plugins.opt-level=3' -p cauda-plugins --bench loader)
cargo bench "${OPT[@]}" --no-run 2>&1 | tail -n 1
BIN=$(cargo bench "${OPT[@]}" --no-run --message-format=json 2>/dev/null |
  "$PY" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "loader" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  images=$IMAGES rounds=$ROUNDS" >&2
for n in $THREADS; do
  for r in $(seq "$ROUNDS"); do
    CAUDA_LOADER_THREADS=$n "$BIN" "$DATA" train.txt >>"$out"
    "$PY" bench/loader_torch.py "$DATA" train.txt --workers "$n" >>"$out"
  done
done
"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| N | cauda images/s | PyTorch images/s | cauda/PyTorch | cauda peak RSS MB | PyTorch peak RSS MB (main + workers) |")
print("|---|---|---|---|---|---|")
for n in sorted({r["threads"] for r in rows}):
    c = [r for r in rows if r["side"] == "cauda" and r["threads"] == n]
    t = [r for r in rows if r["side"] == "pytorch" and r["threads"] == n]
    ci = statistics.median(r["images_per_sec"] for r in c)
    ti = statistics.median(r["images_per_sec"] for r in t)
    cm = max(r["peak_rss_mb"] for r in c)
    tm = max(r["peak_rss_mb"] for r in t)
    tw = max(r["worker_peak_rss_mb"] for r in t)
    print(f"| {n} | {ci:.0f} | {ti:.0f} | {ci / ti:.2f}x | {cm:.0f} | {tm:.0f} + {tw:.0f} |")
PYEOF
