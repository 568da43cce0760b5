#!/usr/bin/env bash
# The Slurm executor against the local process executor (issue 5), on the real single-node Slurm
# cluster of .ci/slurm-up.sh (started if installed but down): submit-to-start latency (submit ->
# the worker registered with the daemon, daemon clock, BENCH_PROBES [10] one-epoch runs one after
# another) and the makespan of a BENCH_GRID [100]-run grid of one-epoch CPU runs, 2 at a time on
# both (local: devices cpu:2; Slurm: the node's 2 CPUs, cpus_per_task = 1). Prints the machine,
# one line per figure with the ratio slurm/local, and a JSON line. The driver is the ignored test
# `bench_slurm_against_local` in tests/e2e/slurm_test.rs (real `caudad serve`, real workers).
#
#   bash bench/slurm.sh
#   BENCH_GRID=20 BENCH_PROBES=5 bash bench/slurm.sh     # quicker
#   PROFILE=release bash bench/slurm.sh                  # [dev: dependencies at opt-level 3]
set -euo pipefail
cd "$(dirname "$0")/.."
sh .ci/slurm-up.sh
profile=()
[ "${PROFILE:-dev}" = release ] && profile=(--release)
# The end-to-end suite runs the workspace's binaries: build them in the same profile first.
cargo build "${profile[@]}" -q -p caudad -p cauda
cargo test "${profile[@]}" -q -p cauda-e2e --test e2e --no-run 2>&1 | tail -n 2
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  $(sinfo -V)  commit $(git rev-parse --short HEAD)"
cargo test "${profile[@]}" -q -p cauda-e2e --test e2e -- --ignored --nocapture --test-threads=1 slurm_test::bench_slurm_against_local 2>&1 |
  grep -v -E '^(running|test |$)|test result'
