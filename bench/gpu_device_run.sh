#!/usr/bin/env bash
# What runs on the lent GPU machine (after bench/gpu_device_prepare.sh here): unpacks the Vulkan
# loaders if the image lacks them, unpacks the bundle, runs bench/gpu_check.sh, and leaves its
# summary and an archive of its logs in $OUT (the device tool brings back at most 8 files).
#
#   bash bench/gpu_device_run.sh [gpu_check.sh arguments, e.g. --cpu-dry-run to try it here]
# Env: OUT (the device tool sets it), GPU_CHECK_BUDGET (seconds; default 420, so that a second
# try still fits the session's 15 minutes of device time).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:?OUT: the folder whose files come back}
dry=0
for a in "$@"; do [ "$a" = --cpu-dry-run ] && dry=1; done
if [ "$dry" = 0 ] && ! ldconfig -p | grep -q libvulkan; then
  for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
work=$(mktemp -d)
tar -C "$work" -xf "$root/.gpu/cauda-gpu-bundle.tar.xz" || { echo "no bundle: run bench/gpu_device_prepare.sh first" >&2; exit 2; }
# The scripts of this checkout, not the bundle's copies: a fix to them needs no new bundle.
cp "$root/bench/gpu_check.sh" "$root/bench/reference.py" "$work/cauda-gpu/bench/"
{
  echo "== host"
  uname -a
  nvidia-smi 2>&1 | head -n 15
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1
  ldconfig -p | grep -E 'libvulkan|libtorch' | head
} >"$OUT/host.txt" 2>&1
export GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-420}
"$work/cauda-gpu/bench/gpu_check.sh" --logs "$work/logs" "$@" 2>&1 | tee "$OUT/gpu_check.txt"
rc=${PIPESTATUS[0]}
# Not the daemon's data dir (sled files, checkpoints: over 100 MB, and the tool brings back 16 MiB
# a file).
tar -C "$work" --exclude=logs/serve/data -czf "$OUT/gpu-check-logs.tar.gz" logs
exit "$rc"
