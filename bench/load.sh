#!/usr/bin/env bash
# Load figures (issue 6): 1,000 concurrent WatchRun streams on training runs and 200 clients
# submitting at once against a real `caudad serve` with real workers (daemon/benches/load.rs).
# Prints the date, cores and load, submit latency p50/p99, live event delivery latency p50/p99,
# the daemon's peak RSS and threads, and a JSON line (the last line) for scripts.
#
#   bash bench/load.sh
#   LOAD_WATCHERS=200 LOAD_SUBMITTERS=50 bash bench/load.sh     # smaller
#
# Knobs (env, defaults in brackets): LOAD_WATCHERS [1000], LOAD_SUBMITTERS [200],
# LOAD_TRAINING_RUNS [2] (one CPU slot each), LOAD_EPOCHS [30], LOAD_PER_CONNECTION [50] watch
# streams per HTTP/2 connection. The bench raises its open-file limit to the hard limit (the
# daemon inherits it); ~1 descriptor per connection on each side, see docs/OPERATIONS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench -p caudad --bench load --no-run 2>&1 | tail -n 2
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  commit $(git rev-parse --short HEAD)"
cargo bench -q -p caudad --bench load
