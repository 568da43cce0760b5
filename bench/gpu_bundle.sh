#!/usr/bin/env bash
# Builds what bench/gpu_check.sh needs on a GPU host without network or Rust, and packs it:
#   bin/caudad-vulkan  caudad with `--features vulkan` (needs only libvulkan1 and the GPU
#                      driver's Vulkan ICD on the host)
#   bin/caudad-tch-V   caudad with `--features tch` for each PyTorch V found in $TCH_VENVS (it
#                      links that libtorch dynamically and runs only where the host's PyTorch
#                      is V too: bench/gpu_check.sh picks the one matching the host's python3)
#   bin/cauda          the client
#   bench/gpu_check.sh, bench/reference.py
# Release builds, stripped, packed with xz (the vulkan binary alone is 126 MB stripped: 35 MB
# with gzip, 22 MB with xz); the archive must stay under 64 MiB (checked).
#
#   bench/gpu_bundle.sh [OUT.tar.xz]      # default: cauda-gpu-bundle.tar.xz here
# Env: TCH_VENVS (default: /var/cache/cauda/venv (2.9.0) and /var/cache/cauda/venv-torch2.11,
# those that exist; versions other than 2.9.0 build with LIBTORCH_BYPASS_VERSION_CHECK=1, verified
# for 2.11.0 in docs/GPU.md), NO_TCH=1 to leave the tch binaries out. Each PyTorch version builds
# in its own target dir ($CARGO_TARGET_DIR/tch-V), so switching does not rebuild the others.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-cauda-gpu-bundle.tar.xz}")
TCH_VENVS=${TCH_VENVS:-/var/cache/cauda/venv /var/cache/cauda/venv-torch2.11}
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

if [ "${NO_TCH:-0}" = 1 ]; then
  echo "== caudad --features tch: left out (NO_TCH=1)"
else
  for venv in $TCH_VENVS; do
    version=$("$venv/bin/python" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
    if [ -z "$version" ]; then
      echo "== caudad --features tch: no PyTorch in $venv, left out"
      continue
    fi
    bypass=()
    [ "$version" != 2.9.0 ] && bypass=(LIBTORCH_BYPASS_VERSION_CHECK=1)
    echo "== caudad --features tch (release, libtorch $version of $venv${bypass:+, version check bypassed})"
    env "${bypass[@]}" LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
      CARGO_TARGET_DIR="$target/tch-$version" cargo build --release -p caudad --features tch
    cp "$target/tch-$version/release/caudad" "$stage/cauda-gpu/bin/caudad-tch-$version"
  done
fi
strip "$stage"/cauda-gpu/bin/caudad-* "$stage/cauda-gpu/bin/cauda" 2>/dev/null || true
cp bench/gpu_check.sh bench/reference.py "$stage/cauda-gpu/bench/"
ls -l "$stage/cauda-gpu/bin"

XZ_OPT=${XZ_OPT:--6 -T0} tar -C "$stage" -cJf "$out" cauda-gpu
size=$(stat -c %s "$out")
echo "bundle: $out ($((size / 1024 / 1024)) MiB, $(du -sh "$stage/cauda-gpu" | cut -f1) unpacked)"
if [ "$size" -gt "$LIMIT" ]; then
  echo "bundle is over 64 MiB" >&2
  exit 1
fi
echo "on the GPU host: tar xf $(basename "$out") && cauda-gpu/bench/gpu_check.sh"
