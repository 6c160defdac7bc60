#!/bin/sh
# callgrind.sh: instructions per malloc/free pair, per allocator and size.
#
# Runs each pair-<allocator> binary under valgrind --tool=callgrind at two
# iteration counts N1 and N2 and reports (Ir(N2) - Ir(N1)) / (N2 - N1): the
# start-up and exit costs are the same in both runs and cancel. Instruction
# counts do not depend on the load of the machine, unlike timings.
#
# Environment (defaults in brackets):
#   BENCH_BIN_DIR  where the pair-* binaries are [<repo>/build-bench/bench]
#   ALLOCATORS     [glibc jemalloc tcmalloc mimalloc mmpool]; missing
#                  binaries are skipped with a message
#   SIZES          [16 64 256 1024]
#   MODES          [pair ws ws100] (see pair.c): pair -> results/callgrind.csv,
#                  another mode M -> results/callgrind_M.csv
#   N1, N2         [100000, 1100000]
#   RESULTS_DIR    [<repo>/bench/results]
#
# Each CSV: first line "# <the command that produced it>", then
# allocator,size,instructions_per_pair
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BENCH_BIN_DIR=${BENCH_BIN_DIR:-$repo/build-bench/bench}
ALLOCATORS=${ALLOCATORS:-glibc jemalloc tcmalloc mimalloc mmpool}
SIZES=${SIZES:-16 64 256 1024}
MODES=${MODES:-pair ws ws100}
N1=${N1:-100000}
N2=${N2:-1100000}
RESULTS_DIR=${RESULTS_DIR:-$here/results}

command -v valgrind >/dev/null 2>&1 || {
  echo "callgrind.sh: valgrind not found" >&2
  exit 1
}
[ "$N2" -gt "$N1" ] || {
  echo "callgrind.sh: N2 must exceed N1" >&2
  exit 1
}
mkdir -p "$RESULTS_DIR"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-callgrind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

cmdline="BENCH_BIN_DIR=$BENCH_BIN_DIR ALLOCATORS=\"$ALLOCATORS\" SIZES=\"$SIZES\" MODES=\"$MODES\" N1=$N1 N2=$N2 RESULTS_DIR=$RESULTS_DIR $0"

# ir BIN SIZE N MODE: total instructions of one run.
ir() {
  out=$tmp/cg.out
  rm -f "$out"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    --cache-sim=no --branch-sim=no "$1" "$2" "$3" "$4" \
    >"$tmp/stdout" 2>"$tmp/stderr" || {
    echo "callgrind.sh: $1 $2 $3 $4 failed:" >&2
    cat "$tmp/stderr" >&2
    return 1
  }
  # "summary: N" (older valgrind writes "totals:"); first event is Ir.
  awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$out"
}

for mode in $MODES; do
  case $mode in
  pair) csv=$RESULTS_DIR/callgrind.csv ;;
  ws | ws[0-9]*) csv=$RESULTS_DIR/callgrind_$mode.csv ;;
  *)
    echo "callgrind.sh: unknown mode '$mode'" >&2
    exit 1
    ;;
  esac
  {
    echo "# $cmdline"
    echo "allocator,size,instructions_per_pair"
  } >"$csv.tmp"
  for a in $ALLOCATORS; do
    bin=$BENCH_BIN_DIR/pair-$a
    if [ ! -x "$bin" ]; then
      echo "callgrind.sh: $bin missing, $a skipped" >&2
      continue
    fi
    for s in $SIZES; do
      i1=$(ir "$bin" "$s" "$N1" "$mode")
      i2=$(ir "$bin" "$s" "$N2" "$mode")
      per=$(awk -v a="$i1" -v b="$i2" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "%.2f", (b - a) / (n2 - n1) }')
      echo "$a,$s,$per" >>"$csv.tmp"
      echo "callgrind: $mode $a size $s: $per instructions per pair" >&2
    done
  done
  mv "$csv.tmp" "$csv"
  echo "wrote $csv" >&2
done
