#!/usr/bin/env bash
# CI for cauda's optional training backends (docs/GPU.md), so neither feature can rot:
#   - `vulkan` (wgpu): built (no GPU in CI to run it on);
#   - `tch` (libtorch 2.9.0 from the PyTorch venv .ci/run creates): built, and the engine's tests
#     run with it, on libtorch's CPU device: with the feature, `Device::default()` in the tests is
#     libtorch's CPU device, and tests/backends.rs trains the same epoch on flex and on libtorch
#     and compares.
# Needs .ci/run's venv ($VENV, torch==2.9.0; the CPU wheel is enough). Without it, the tch half
# is skipped with a loud reason (CI installs it; a registry outage should not fail CI);
# SKIP_TCH=1 / SKIP_VULKAN=1 skip a half on purpose. VENV=<a venv with another PyTorch> checks
# that version instead (e.g. 2.11.0, which the GPU hosts have; with its own CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/cauda/target}"
export CARGO_TERM_COLOR=never
VENV=${VENV:-/var/cache/cauda/venv}
status=0

if [ "${SKIP_VULKAN:-0}" = 1 ]; then
  echo "== vulkan: skipped (SKIP_VULKAN=1)"
else
  echo "== cargo build -p caudad --features vulkan"
  start=$(date +%s)
  cargo build -p caudad --features vulkan
  echo "   vulkan build: $(($(date +%s) - start)) s"
fi

if [ "${SKIP_TCH:-0}" = 1 ]; then
  echo "== tch: skipped (SKIP_TCH=1)"
  exit 0
fi
version=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
if [ -z "$version" ]; then
  # .ci/run installs it; it is best effort there (a registry outage), so this says so loudly
  # instead of failing CI for a download.
  echo "== tch: SKIPPED: no PyTorch in $VENV (burn-tch 0.22 is built for 2.9.0)" >&2
  exit 0
fi
if [ "$version" != "2.9.0" ]; then
  # torch-sys 0.22 checks for 2.9.0; other versions build with the check bypassed (2.11.0 was
  # verified: docs/GPU.md). Use a target dir per PyTorch version, or torch-sys and everything
  # above it rebuild at each switch.
  echo "== tch: PyTorch $version in $VENV: building with LIBTORCH_BYPASS_VERSION_CHECK=1"
  export LIBTORCH_BYPASS_VERSION_CHECK=1
fi

# torch-sys takes libtorch's headers and libraries from this python's torch (LIBTORCH_USE_PYTORCH);
# the binaries find the libraries through LD_LIBRARY_PATH.
torch_lib=$("$VENV/bin/python" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== cargo test -p cauda-plugins --features tch (engine tests on libtorch's CPU device)"
start=$(date +%s)
cargo test -p cauda-plugins --features tch || status=1
echo "   tch build + tests: $(($(date +%s) - start)) s"

echo "== cargo build -p caudad --features tch"
cargo build -p caudad --features tch || status=1
exit $status
