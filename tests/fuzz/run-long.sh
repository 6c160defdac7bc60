#!/bin/sh
# run-long.sh: a longer libFuzzer run of the attach checks (fuzz_attach.c).
#
# Usage: tests/fuzz/run-long.sh [SECONDS [JOBS [BUILD_DIR]]]
#   SECONDS    total time (default 600)
#   JOBS       fuzzing processes (default 1; libFuzzer -fork=JOBS when > 1)
#   BUILD_DIR  where the tree was built (default build/, the default preset)
# The corpus grows in BUILD_DIR/tests/fuzz/corpus-long (kept between runs);
# crashes are written to BUILD_DIR/tests/fuzz/crash-* with the input that
# reproduces them: BUILD_DIR/tests/fuzz/fuzz_attach crash-FILE.
# Needs the fuzz_attach target (built when a clang with libFuzzer exists).
set -eu
secs=${1:-600}
jobs=${2:-1}
build=${3:-build}
dir="$build/tests/fuzz"
bin="$dir/fuzz_attach"
if [ ! -x "$bin" ]; then
  echo "run-long.sh: $bin is missing: build the default preset with clang installed" >&2
  exit 2
fi
mkdir -p "$dir/corpus-long"
cd "$dir"
fork=""
if [ "$jobs" -gt 1 ]; then fork="-fork=$jobs"; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
exec ./fuzz_attach $fork -max_total_time="$secs" -max_len=256 -len_control=0 \
  -print_final_stats=1 -artifact_prefix=./ corpus-long
