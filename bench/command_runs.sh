#!/usr/bin/env bash
# What a command run costs the daemon per reported epoch (docs/COMMAND_RUNS.md): a program that
# reports N epochs as fast as it can through a real caudad serve, against the same program
# alone. Prints the date, cores, load and commit, then a table (bench/command_runs.py).
#
#   bash bench/command_runs.sh                       # 3 runs x 2,000 epochs, 100 classes
#   BENCH_EPOCHS=500 BENCH_RUNS=1 bash bench/command_runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/cauda/target}"
# The workspace's dev profile (dependencies at opt-level 3, ours at 1), the binaries the tests
# use; BENCH_PROFILE=release for release builds (a cold one takes ~30 min on 2 cores).
PROFILE="${BENCH_PROFILE:-dev}"
DIR=debug
[ "$PROFILE" = release ] && DIR=release
cargo build --profile "$PROFILE" -q -p caudad -p cauda
PY="${BENCH_PYTHON:-python3}"
echo "$(date -u +%FT%TZ)  $(nproc) cores  $(uptime | sed 's/.*load/load/')  commit $(git rev-parse --short HEAD)"
echo "profile $PROFILE"
"$PY" bench/command_runs.py --caudad "$CARGO_TARGET_DIR/$DIR/caudad" \
  --cauda "$CARGO_TARGET_DIR/$DIR/cauda" --epochs "${BENCH_EPOCHS:-2000}" \
  --classes "${BENCH_CLASSES:-100}" --runs "${BENCH_RUNS:-3}"
