#!/usr/bin/env bash
# The GPU device check (docs/GPU.md): on a GPU host with no network and no Rust toolchain, from
# the bundle bench/gpu_bundle.sh made (or a checkout whose binaries are built), in under 8
# minutes it prints
#   1. the GPU (nvidia-smi);
#   2. ResNet-32 training images/s (CIFAR-sized synthetic data, batch 128, crop+flip, SGD) for
#      cauda on each GPU backend that runs here (`vulkan`; `tch` when the bundle has a
#      caudad-tch built for this host's PyTorch) and for PyTorch on the same GPU, as ratios;
#   3. the makespan of 8 short runs through a real `caudad serve`, packed 4 per GPU
#      (gpu_share = 0.25) against one at a time (gpus = 1).
# Short output here; every log and the raw figures in the logs folder. Whatever cannot run is
# skipped with the reason, and the rest still runs.
#
#   bench/gpu_check.sh [--bin DIR] [--logs DIR] [--cpu-dry-run]
#
# --bin: the folder of caudad-vulkan, caudad-tch-<PyTorch version> and cauda (default: the
#        bundle's bin/, else target/release). --cpu-dry-run: the same steps on the CPU with tiny sizes (flex and
#        libtorch CPU against PyTorch CPU, a fake GPU for the packing), to test this script.
# Env: PYTHON (default python3), EPOCHS (3), PER_CLASS (512 training images per class, 10
# classes), RUNS_EPOCHS (epochs of each packed run, 2), GPU_CHECK_BUDGET (seconds, 470).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BIN=""
LOGS=""
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --logs) LOGS=$2; shift 2 ;;
    --cpu-dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  if [ -d "$root/bin" ]; then BIN=$root/bin; else BIN=$root/target/release; fi
fi
LOGS=${LOGS:-$PWD/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$LOGS"
PY=${PYTHON:-python3}
if [ "$DRY" = 1 ]; then
  EPOCHS=${EPOCHS:-2}; PER_CLASS=${PER_CLASS:-26}; SIDE=16; RUNS_EPOCHS=${RUNS_EPOCHS:-1}
  RUN_LIMIT=200
else
  EPOCHS=${EPOCHS:-3}; PER_CLASS=${PER_CLASS:-512}; SIDE=32; RUNS_EPOCHS=${RUNS_EPOCHS:-2}
  RUN_LIMIT=120
fi
# The whole check stays under 8 minutes: each step's time limit is what is left of 470 s.
BUDGET=${GPU_CHECK_BUDGET:-470}
[ "$DRY" = 1 ] && BUDGET=${GPU_CHECK_BUDGET:-1500}  # a CPU (shared, maybe loaded) is no GPU
summary=$LOGS/summary.txt
: >"$summary"
say() { echo "$@" | tee -a "$summary"; }
skip() { say "  skipped: $*"; }
started=$(date +%s)
# limit N: N seconds, or less when less is left of the budget (0: no time left).
limit() {
  local left=$((BUDGET - ($(date +%s) - started)))
  [ $left -lt 20 ] && left=0
  echo $(($1 < left ? $1 : left))
}

# --- 1. the GPU -----------------------------------------------------------------------------
say "== gpu_check $( [ "$DRY" = 1 ] && echo '(CPU dry run) ')logs: $LOGS"
if [ "$DRY" = 1 ]; then
  say "GPU: none (dry run on $(nproc) CPU cores)"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >"$LOGS/nvidia-smi.txt" 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >>"$LOGS/nvidia-smi.txt" 2>&1
  say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1) ($(nvidia-smi -L | wc -l) GPU(s))"
else
  say "GPU: no NVIDIA GPU found (nvidia-smi missing or failing; see $LOGS/nvidia-smi.txt)."
  say "Nothing to measure on this host; use --cpu-dry-run to test the script."
  exit 1
fi

torch_version=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null || echo none)
torch_lib=$("$PY" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))" 2>/dev/null || true)
say "PyTorch: $torch_version ($PY)"
# The tch binary for this PyTorch: caudad-tch-<its version>, else one built for the same
# major.minor (a patch release apart; said so), else none (libtorch has no stable C++ ABI).
host_v=${torch_version%%+*}
tch_bin=""
tch_note=""
tch_have=$(cd "$BIN" 2>/dev/null && ls caudad-tch-* 2>/dev/null | sed 's/^caudad-tch-//' | tr '\n' ' ' | sed 's/ $//')
if [ -x "$BIN/caudad-tch-$host_v" ]; then
  tch_bin=caudad-tch-$host_v
else
  for v in $tch_have; do
    if [ "${v%.*}" = "${host_v%.*}" ]; then tch_bin=caudad-tch-$v; tch_note=" (built for $v)"; break; fi
  done
fi

# --- the ResNet-32 spec cauda trains ----------------------------------------------------------
# $1 name, $2 backend, $3 resources lines, $4 epochs, $5 extra lines
spec() {
  cat <<EOF
name = "$1"
method = "ce"
[data]
format = "synthetic"
synthetic = { num_classes = 10, per_class_train = $PER_CLASS, per_class_test = 10, channels = 3, height = $SIDE, width = $SIDE, seed = 1 }
[model]
backbone = "resnet32"
[augment]
crop_flip = true
[train]
epochs = $4
batch_size = 128
optimizer = { name = "sgd", lr = 0.1, momentum = 0.9, weight_decay = 5e-4 }
checkpoint_every = $4
[resources]
backend = "$2"
$3
$5
EOF
}

# Median images/s of a `caudad train` JSON-lines log, all epochs but the first (warm-up).
median_ips() {
  "$PY" - "$1" <<'EOF'
import json, statistics, sys
ips = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if "images_per_sec" in r:
        ips.append(r["images_per_sec"])
ips = ips[1:] if len(ips) > 1 else ips
print(f"{statistics.median(ips):.1f}" if ips else "")
EOF
}

# --- 2. images/s: PyTorch ---------------------------------------------------------------------
say ""
say "== ResNet-32 training, batch 128, ${SIDE}x${SIDE}x3 synthetic, $((PER_CLASS * 10)) images/epoch, $EPOCHS epochs"
declare -A IPS
torch_device=cuda
[ "$DRY" = 1 ] && torch_device=cpu
if [ "$torch_version" = none ]; then
  skip "PyTorch: no torch in $PY"
else
  timeout "$(limit 90)" "$PY" - "$root/bench" "$torch_device" "$PER_CLASS" "$SIDE" "$EPOCHS" \
    >"$LOGS/torch.json" 2>"$LOGS/torch.log" <<'EOF'
"""PyTorch's side: bench/reference.py's ResNet-32 and head, the same synthetic sizes, u8 images
on the host, per batch: copy to the device, crop+flip (pad 4) and normalize there, then
zero_grad / forward / cross_entropy / backward / SGD step; the loss is read once per epoch."""
import json, sys, time, types
import torch
import torch.nn as nn
import torch.nn.functional as F
import importlib.util
# A GPU host's PyTorch may come without numpy: reference.py's data loaders need it, its ResNet
# (all this uses) does not, so a stand-in is there only while reference.py is imported.
stub = importlib.util.find_spec("numpy") is None
if stub:
    sys.modules["numpy"] = types.ModuleType("numpy")
sys.path.insert(0, sys.argv[1])
from reference import ResNet
if stub:
    del sys.modules["numpy"]
device, per_class, side, epochs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False")
torch.manual_seed(0)
n = per_class * 10
protos = torch.randint(0, 256, (10, 3, side, side)).float()
y_all = torch.arange(n) % 10
x_all = (protos[y_all] + 32 * torch.randn(n, 3, side, side)).clamp(0, 255).to(torch.uint8)
if device == "cuda":
    x_all, y_all = x_all.pin_memory(), y_all.pin_memory()
backbone = ResNet(3, 5, "A")  # resnet32: option A, as cauda's `resnet32`
model = nn.Sequential(backbone, nn.Linear(backbone.dim, 10)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
mean = torch.full((1, 3, 1, 1), 0.5, device=device)
std = torch.full((1, 3, 1, 1), 0.25, device=device)
def sync():
    if device == "cuda":
        torch.cuda.synchronize()
out = []
for epoch in range(epochs):
    order = torch.randperm(n)
    sync(); t0 = time.perf_counter(); total = torch.zeros((), device=device)
    for i in range(0, n - 127, 128):
        idx = order[i:i + 128]
        x = x_all[idx].to(device, non_blocking=True).float().div_(255.0)
        y = y_all[idx].to(device, non_blocking=True)
        x = F.pad(x, (4, 4, 4, 4))
        dx, dy = torch.randint(0, 9, (2,)).tolist()
        x = x[:, :, dy:dy + side, dx:dx + side]
        flip = torch.rand(x.shape[0], device=device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        x = (x - mean) / std
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        total += loss.detach()
    total.item(); sync()
    out.append((n // 128) * 128 / (time.perf_counter() - t0))
    print(f"epoch {epoch + 1}: {out[-1]:.1f} img/s loss {total.item() / (n // 128):.4f}", file=sys.stderr)
rest = sorted(out[1:] if len(out) > 1 else out)
print(json.dumps({"images_per_sec": rest[len(rest) // 2], "epochs": out, "torch": torch.__version__,
                  "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}))
EOF
  rc=$?
  IPS[torch]=$("$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['images_per_sec'], 1))" "$LOGS/torch.json" 2>/dev/null)
  if [ $rc -ne 0 ] || [ -z "${IPS[torch]}" ]; then
    skip "PyTorch on $torch_device (rc $rc): $(tail -n 1 "$LOGS/torch.log")"
    unset 'IPS[torch]'
  else
    say "  pytorch $torch_version on $torch_device: ${IPS[torch]} images/s"
  fi
fi

# --- 2. images/s: cauda on each backend -------------------------------------------------------
# name:binary:backend:resources (dry run: the CPU; else GPU 0)
if [ "$DRY" = 1 ]; then
  cases="flex:caudad-vulkan:flex:gpus=0 tch-cpu:${tch_bin:-caudad-tch}:tch:gpus=0"
  [ -x "$BIN/caudad-vulkan" ] || cases="flex:caudad:flex:gpus=0 tch-cpu:${tch_bin:-caudad-tch}:tch:gpus=0"
else
  cases="vulkan:caudad-vulkan:vulkan:gpus=1 tch:${tch_bin:-caudad-tch}:tch:gpus=1"
fi
best=""
for c in $cases; do
  IFS=: read -r name bin backend res <<<"$c"
  exe=$BIN/$bin
  env_extra=()
  if [ "$backend" = tch ] && [ -z "$tch_bin" ]; then
    skip "cauda $name: no caudad-tch for this host's PyTorch $torch_version in $BIN (have: ${tch_have:-none}); libtorch has no stable C++ ABI across versions: build one with bench/gpu_bundle.sh on a machine with that PyTorch (docs/GPU.md)"
    continue
  fi
  if [ ! -x "$exe" ]; then
    skip "cauda $name: no $exe (bench/gpu_bundle.sh builds it)"; continue
  fi
  if [ "$backend" = tch ]; then
    env_extra=(LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    [ -n "$tch_note" ] && say "  note: $bin$tch_note runs with PyTorch $torch_version's libtorch"
  fi
  t=$(limit "$RUN_LIMIT")
  if [ "$t" = 0 ]; then skip "cauda $name: the 8-minute budget is spent"; continue; fi
  spec "bench-$name" "$backend" "${res/=/ = }" "$EPOCHS" "" >"$LOGS/$name.toml"
  env "${env_extra[@]}" timeout "$t" "$exe" train "$LOGS/$name.toml" \
    >"$LOGS/$name.jsonl" 2>"$LOGS/$name.log"
  rc=$?
  ips=$(median_ips "$LOGS/$name.jsonl")
  if [ $rc -ne 0 ] || [ -z "$ips" ]; then
    skip "cauda $name (rc $rc$([ $rc = 124 ] && echo ", over $t s")): $(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 1 | cut -c1-200)"
    continue
  fi
  IPS[$name]=$ips
  ratio=""
  [ -n "${IPS[torch]:-}" ] && ratio=$("$PY" -c "print(f'{$ips / ${IPS[torch]}:.3f}')")
  say "  cauda $name: $ips images/s${ratio:+  (cauda/pytorch = $ratio)}"
  # The packing runs use the fastest backend (the dry run: flex, whose fake GPU is the CPU).
  if [ "$DRY" = 1 ] && [ "$backend" != flex ]; then continue; fi
  if [ -z "$best" ] || "$PY" -c "import sys; sys.exit(0 if $ips > ${IPS[$best]} else 1)"; then
    best=$name; best_bin=$exe; best_backend=$backend; best_env=("${env_extra[@]}")
  fi
done

# --- 3. packing: 8 short runs, 4 per GPU vs one at a time --------------------------------------
say ""
say "== 8 runs of $RUNS_EPOCHS epoch(s) through caudad serve: packed 4 per GPU (gpu_share = 0.25) vs one at a time (gpus = 1)"
client=$BIN/cauda
if [ -z "$best" ]; then
  skip "packing: no cauda backend ran above"
elif [ ! -x "$client" ]; then
  skip "packing: no $client"
else
  serve_dir=$LOGS/serve
  mkdir -p "$serve_dir"
  devices=""
  [ "$DRY" = 1 ] && devices='devices = ["cpu:1", "gpu:0"]'
  printf '%s\nmax_retries = 0\n' "$devices" >"$serve_dir/caudad.toml"
  env "${best_env[@]}" "$best_bin" serve --listen 127.0.0.1:0 --config "$serve_dir/caudad.toml" \
    --data-dir "$serve_dir/data" 2>"$serve_dir/caudad.log" &
  serve_pid=$!
  addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^caudad listening on //p' "$serve_dir/caudad.log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 $serve_pid 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$addr" ]; then
    skip "packing: caudad serve did not start: $(tail -n 1 "$serve_dir/caudad.log")"
  else
    declare -A SPAN
    for mode in packed serial; do
      if [ $mode = packed ]; then res="gpu_share = 0.25"; seeds="[1, 2, 3, 4, 5, 6, 7, 8]"
      else res="gpus = 1"; seeds="[11, 12, 13, 14, 15, 16, 17, 18]"; fi
      # Different seeds: the daemon would otherwise reuse the first experiment's runs.
      spec "pack-$mode" "$best_backend" "$res" "$RUNS_EPOCHS" \
        "[sweep]
\"train.seed\" = $seeds" >"$serve_dir/$mode.toml"
      t=$(limit "$RUN_LIMIT")
      if [ "$t" = 0 ]; then skip "packing $mode: the 8-minute budget is spent"; continue; fi
      t0=$(date +%s.%N)
      timeout "$t" "$client" --addr "http://$addr" submit --wait "$serve_dir/$mode.toml" \
        >"$serve_dir/$mode.log" 2>&1
      rc=$?
      t1=$(date +%s.%N)
      "$client" --addr "http://$addr" ls >>"$serve_dir/$mode.log" 2>&1
      if [ $rc -ne 0 ]; then
        skip "packing $mode (rc $rc): $(tail -n 1 "$serve_dir/$mode.log")"
      else
        SPAN[$mode]=$("$PY" -c "print(f'{$t1 - $t0:.1f}')")
        say "  $mode: ${SPAN[$mode]} s"
      fi
    done
    "$client" --addr "http://$addr" devices >"$serve_dir/devices.txt" 2>&1
    if [ -n "${SPAN[packed]:-}" ] && [ -n "${SPAN[serial]:-}" ]; then
      say "  makespan one-at-a-time / packed = $("$PY" -c "print(f'{${SPAN[serial]} / ${SPAN[packed]}:.2f}')") (backend $best_backend)"
    fi
  fi
  kill $serve_pid 2>/dev/null
  wait $serve_pid 2>/dev/null
fi
say ""
say "done in $(($(date +%s) - started)) s; logs in $LOGS"
