#!/usr/bin/env bash
# Builds what bench/gpu_check.sh needs on a GPU host without network or Rust, and packs it:
#   bin/caudad-vulkan  caudad with `--features vulkan` (needs only libvulkan1 and the GPU
#                      driver's Vulkan ICD on the host)
#   bin/caudad-tch     caudad with `--features tch`, when a PyTorch 2.9.0 is at $VENV (links that
#                      libtorch dynamically: it runs only where the host's PyTorch is 2.9.0 too;
#                      bin/caudad-tch.torch records the version)
#   bin/cauda          the client
#   bench/gpu_check.sh, bench/reference.py
# Release builds, stripped; the archive must stay under 64 MiB (checked).
#
#   bench/gpu_bundle.sh [OUT.tar.gz]      # default: cauda-gpu-bundle.tar.gz here
# Env: VENV (default /var/cache/cauda/venv), NO_TCH=1 to leave caudad-tch out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-cauda-gpu-bundle.tar.gz}")
VENV=${VENV:-/var/cache/cauda/venv}
LIMIT=$((64 * 1024 * 1024))
target=${CARGO_TARGET_DIR:-$root/target}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/cauda-gpu/bin" "$stage/cauda-gpu/bench"
cd "$root"

echo "== caudad --features vulkan, cauda (release)"
cargo build --release -p caudad --features vulkan
cp "$target/release/caudad" "$stage/cauda-gpu/bin/caudad-vulkan"
cargo build --release -p cauda
cp "$target/release/cauda" "$stage/cauda-gpu/bin/cauda"

version=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
if [ "${NO_TCH:-0}" = 1 ]; then
  echo "== caudad --features tch: left out (NO_TCH=1)"
elif [ "$version" != "2.9.0" ]; then
  echo "== caudad --features tch: left out: burn-tch 0.22 needs PyTorch 2.9.0 at $VENV (found '${version:-none}')"
else
  echo "== caudad --features tch (release, libtorch of $VENV)"
  LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
    cargo build --release -p caudad --features tch
  cp "$target/release/caudad" "$stage/cauda-gpu/bin/caudad-tch"
  "$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])" \
    >"$stage/cauda-gpu/bin/caudad-tch.torch"
fi
strip "$stage"/cauda-gpu/bin/caudad-* "$stage/cauda-gpu/bin/cauda" 2>/dev/null || true
cp bench/gpu_check.sh bench/reference.py "$stage/cauda-gpu/bench/"
ls -l "$stage/cauda-gpu/bin"

tar -C "$stage" -czf "$out" cauda-gpu
size=$(stat -c %s "$out")
echo "bundle: $out ($((size / 1024 / 1024)) MiB, $(du -sh "$stage/cauda-gpu" | cut -f1) unpacked)"
if [ "$size" -gt "$LIMIT" ]; then
  echo "bundle is over 64 MiB" >&2
  exit 1
fi
echo "on the GPU host: tar xzf $(basename "$out") && cauda-gpu/bench/gpu_check.sh"
