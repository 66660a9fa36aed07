#!/bin/sh
# Fuzz every loader with 1,000,000 generated and mutated inputs (release
# build) and print, per loader, inputs, rejections, panics, hangs and the
# slowest input, then the wall time. Seeds: the repository's fixtures and
# examples, and ../shared/corpus/cases when it exists (or $HERD_FUZZ_CORPUS).
# Findings are saved under target/fuzz-findings/. Exit status 1 when any
# input panicked, hung (over 1 s) or crashed its process.
#
#   bench/fuzz.sh                     # the full run
#   bench/fuzz.sh --total 20000 --only template,playbook --seed 7
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --example fuzz
exec target/release/examples/fuzz --total "${FUZZ_TOTAL:-1000000}" --seed "${FUZZ_SEED:-1}" --jobs "${FUZZ_JOBS:-2}" "$@"
