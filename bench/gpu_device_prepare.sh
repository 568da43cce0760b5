#!/usr/bin/env bash
# Gets the lent GPU machine's check ready (docs/GPU.md, "On this workplace's device machine"):
# builds the bundle into .gpu/ and fetches the Vulkan/EGL loader packages into .gl/ (that image
# has the NVIDIA driver but may lack the loader), both ignored by git and carried by the `run`
# call this prints. Run it here, before asking for the machine: device time is scarce.
#
#   bench/gpu_device_prepare.sh
# Env: as bench/gpu_bundle.sh (TCH_VENVS, CARGO_TARGET_DIR; the host's PyTorch is 2.11.0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .gpu .gl
bash bench/gpu_bundle.sh "$root/.gpu/cauda-gpu-bundle.tar.xz"

# The loaders as the device README gives them (amd64 .debs, unpacked there into /).
lists=/tmp/cauda-amd64-lists
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${o[@]}" update -qq
(cd .gl && rm -f ./*.deb && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .gpu .gl
echo "ready; the device call (one, ~9 minutes with the machine's start):"
echo "  run(command=\"bash bench/gpu_device_run.sh\", carry=[\".gpu\", \".gl\"], timeout_s=600)"
