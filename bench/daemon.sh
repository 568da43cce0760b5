#!/usr/bin/env bash
# The daemon's figures (issues 3 and 16): submit-to-dispatch latency with 1,000 queued runs, 200
# simultaneous submissions, metric ingestion through the worker API into sled (1, 8 and 64
# workers at once, 64 sending ReportEpochs batches, and the no-op gRPC floor), `ls` latency over
# 10,000 stored runs and the RSS of the real `caudad serve` (see daemon/benches/daemon.rs).
# Builds the bench in release, prints the date, the cores and the load, one line per figure and
# a JSON line (the last line) for scripts.
#
#   bash bench/daemon.sh
#   BENCH_RUNS=2000 BENCH_SUBMITS=50 bash bench/daemon.sh      # a quicker, smaller run
#
# Knobs (env, defaults in brackets): BENCH_QUEUED [1000] runs waiting during the dispatch
# probes, BENCH_SUBMITS [200] probe submissions per queue size, BENCH_POINTS [2000] epochs
# reported per ingestion round of 1 and 8 clients, BENCH_POINTS_64 [12800] epochs reported by 64
# workers at once (and calls of the no-op gRPC floor; 4x as many in ReportEpochs calls of
# BENCH_BATCH [16] epochs), BENCH_RUNS [10000] runs stored for `ls` and RSS, BENCH_REPS
# [100] timed first-page and state-filtered listings, BENCH_WALKS [10] timed full walks,
# BENCH_CAUDAD the binary to serve (default: the release one cargo builds for the bench),
# BENCH_ONLY [all] the figure groups to run, comma-separated: dispatch, burst, decide, ingest,
# batch, floor, served (one group alone is what a callgrind profile runs).
# Temp dirs go under TMPDIR. Figures are only comparable on a quiet machine: mind the load.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench -p caudad --bench daemon --no-run 2>&1 | tail -n 2
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  commit $(git rev-parse --short HEAD)"
cargo bench -q -p caudad --bench daemon
