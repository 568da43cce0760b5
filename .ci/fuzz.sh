#!/usr/bin/env bash
# Fuzzes cauda's untrusted-input parsers (spec text, IDX, CIFAR, PNG/JPEG and the image-folder
# cache) for a bounded time each, starting from the committed corpora in fuzz/corpus/. A crash
# fails CI and leaves its input in fuzz/artifacts/<target>/ (see docs/FUZZ.md).
#
# cargo-fuzz needs nightly flags (-Zsanitizer, -Cpasses=sancov-module); this machine has only
# the stable toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. AddressSanitizer is
# used by default (FUZZ_SANITIZER=none to build without it: faster, still finds panics and
# aborts). Everything big is cached under /var/cache/cauda so a rerun skips the builds.
#
#   .ci/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=10 .ci/fuzz.sh spec idx
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=/var/cache/cauda/cargo-tools
export PATH="$TOOLS/bin:$PATH"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/cache/cauda/fuzz-target}"
export RUSTC_BOOTSTRAP=1
SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(spec idx cifar cifar_pickle image split_list)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz into $TOOLS"
  CARGO_TARGET_DIR=/var/cache/cauda/cargo-tools-build \
    cargo install --locked --root "$TOOLS" cargo-fuzz --version 0.13.2
fi

cd fuzz
echo "== building fuzz targets (sanitizer: $SANITIZER)"
start=$(date +%s)
cargo fuzz build -O -s "$SANITIZER"
echo "== built in $(( $(date +%s) - start )) s"

for t in "${TARGETS[@]}"; do
  echo "== fuzzing $t for ${SECONDS_EACH} s"
  # A scratch copy of the corpus: new inputs found in CI are not written into the checkout.
  work="$CARGO_TARGET_DIR/corpus-$t"
  rm -rf "$work"
  mkdir -p "$work" "artifacts/$t"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  if ! cargo fuzz run -O -s "$SANITIZER" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -max_len=65536 \
    -timeout=20 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t crashed: the input is in fuzz/artifacts/$t/ (docs/FUZZ.md)" >&2
    exit 1
  fi
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || tail -n 5 "$log"
done
echo "== fuzzing done"
