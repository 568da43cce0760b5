#!/usr/bin/env bash
# Training throughput, cauda against PyTorch on this machine's CPU, and each one's full loop
# against its bare step (see plugins/benches/throughput.rs and bench/torch_throughput.py).
# Builds the bench (release), runs both sides one after the other, prints a table of ratios.
#
#   bench/throughput.sh [lenet] [resnet32]     # default: both; SCALE=0.5 halves the rounds
#
# Numbers are only comparable within one run on a quiet machine: the load average is printed
# first; a concurrent build makes every figure meaningless.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/var/cache/cauda/venv/bin/python}
SCALE=${SCALE:-1}
THREADS=${THREADS:-$(nproc)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo bench -p cauda-plugins --bench throughput --no-run 2>&1 | tail -n 2
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  threads=$THREADS scale=$SCALE" >&2
# Burn's CPU backend runs on rayon's global pool; give both sides the same number of threads.
RAYON_NUM_THREADS=$THREADS CAUDA_BENCH_SCALE=$SCALE \
    cargo bench -q -p cauda-plugins --bench throughput -- "$@" >"$out/cauda.jsonl"
"$PY" bench/torch_throughput.py --scale "$SCALE" --threads "$THREADS" "$@" >"$out/torch.jsonl"

"$PY" - "$out/cauda.jsonl" "$out/torch.jsonl" <<'EOF'
import json, sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        rows[(r["side"], r["model"], r["what"])] = r

def ips(side, model, what):
    r = rows.get((side, model, what))
    return r["images_per_sec"] if r else float("nan")

models = sorted({m for (_, m, _) in rows}, key=lambda m: ["lenet", "resnet32"].index(m))
print()
def best(side, model, what):
    r = rows.get((side, model, what))
    return max(r["samples"]) if r else float("nan")

def paired(side, model):
    r = rows.get((side, model, "paired"))
    return r["loop_over_bare"] if r else float("nan")

print("images/s (median), batch 128, SGD momentum 0.9 + weight decay")
print("loop/bare: median over epochs of loop / (bare blocks around that epoch); overhead: extra time per image")
print("best-sample: cauda/torch of the fastest epoch/block each (least disturbed by other load)")
print(f"{'model':9} | {'cauda loop':>10} {'cauda bare':>10} {'loop/bare':>9} {'overhead':>8} | "
      f"{'torch loop':>10} {'torch bare':>10} {'loop/bare':>9} {'overhead':>8} | {'cauda/torch loop':>16} {'bare':>6} "
      f"| {'best-sample loop':>16} {'bare':>6}")
for m in models:
    cl, cb, cp = ips("cauda", m, "loop"), ips("cauda", m, "bare"), paired("cauda", m)
    tl, tb, tp = ips("torch", m, "loop"), ips("torch", m, "bare"), paired("torch", m)
    print(f"{m:9} | {cl:10.1f} {cb:10.1f} {cp:9.3f} {(1 / cp - 1) * 100:+7.1f}% | "
          f"{tl:10.1f} {tb:10.1f} {tp:9.3f} {(1 / tp - 1) * 100:+7.1f}% | {cl / tl:16.3f} {cb / tb:6.3f} "
          f"| {best('cauda', m, 'loop') / best('torch', m, 'loop'):16.3f} "
          f"{best('cauda', m, 'bare') / best('torch', m, 'bare'):6.3f}")
print()
print("cauda per batch: bare step; + tensors made from vectors each step; batch assembly alone (producer thread)")
for m in models:
    p = rows.get(("cauda", m, "parts"))
    if p:
        bt = ips("cauda", m, "bare+tensors")
        print(f"{m:9} | step {p['step_ms']:.2f} ms | bare+tensors {bt:.1f} images/s "
              f"({ips('cauda', m, 'bare') / bt:.3f}x the step time) | assembly {p['assemble_ms']:.3f} ms "
              f"| tensor creation {p['tensor_ms']:.3f} ms")
EOF
