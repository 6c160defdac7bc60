#!/bin/sh
# run.sh: timings of pair and mt for every allocator, REPS repetitions,
# medians and ratios against glibc.
#
# The repetitions are the outer loop and the allocators the inner one, so a
# slow patch of a shared machine hits every allocator alike. Report medians,
# never single runs.
#
# Environment (defaults in brackets):
#   BENCH_BIN_DIR  where the pair-* and mt-* binaries are [<repo>/build-bench/bench]
#   ALLOCATORS     [glibc jemalloc tcmalloc mimalloc mmpool]; missing
#                  binaries are skipped with a message
#   REPS           repetitions of every measurement [5]
#   PAIR_N         malloc/free pairs per pair run [10000000]
#   SIZES          pair block sizes [16 64 256 1024]
#   PAIR_MODES     [pair ws ws100] (see pair.c)
#   THREADS        mt thread counts [1 2 4 8]
#   MIXES          mt size mixes [small large]
#   MT_SECONDS     wall time of one mt run [1]
#   MT_ARGS        extra mt options, e.g. "-r 50 -w 2000" []
#   SKIP_PAIR, SKIP_MT  set to 1 to skip a benchmark
#   RESULTS_DIR    [<repo>/bench/results]
#
# Output (each file's first line: "# <the command that produced it>"):
#   pair_raw.csv  allocator,mode,size,n,ns_per_pair            one line a run
#   pair.csv      allocator,mode,size,reps,median_ns_per_pair,min,max,
#                 ratio_vs_glibc     (median / glibc's median: < 1 is faster)
#   mt_raw.csv    allocator,mix,threads,ops,seconds,ops_per_sec,cpu_seconds,
#                 ops_per_cpu_sec                               one line a run
#   mt.csv        allocator,mix,threads,reps,median_ops_per_sec,min,max,
#                 ratio_vs_glibc     (median / glibc's median: > 1 is faster)
#   mt_cpu.csv    the same for ops_per_cpu_sec (operations per second of CPU
#                 time of the worker threads: steadier on a loaded machine)
# With the defaults a full run takes about 4 to 5 minutes on 2 cores.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BENCH_BIN_DIR=${BENCH_BIN_DIR:-$repo/build-bench/bench}
ALLOCATORS=${ALLOCATORS:-glibc jemalloc tcmalloc mimalloc mmpool}
REPS=${REPS:-5}
PAIR_N=${PAIR_N:-10000000}
SIZES=${SIZES:-16 64 256 1024}
PAIR_MODES=${PAIR_MODES:-pair ws ws100}
THREADS=${THREADS:-1 2 4 8}
MIXES=${MIXES:-small large}
MT_SECONDS=${MT_SECONDS:-1}
MT_ARGS=${MT_ARGS:-}
SKIP_PAIR=${SKIP_PAIR:-0}
SKIP_MT=${SKIP_MT:-0}
RESULTS_DIR=${RESULTS_DIR:-$here/results}

cmdline="BENCH_BIN_DIR=$BENCH_BIN_DIR ALLOCATORS=\"$ALLOCATORS\" REPS=$REPS PAIR_N=$PAIR_N SIZES=\"$SIZES\" PAIR_MODES=\"$PAIR_MODES\" THREADS=\"$THREADS\" MIXES=\"$MIXES\" MT_SECONDS=$MT_SECONDS MT_ARGS=\"$MT_ARGS\" SKIP_PAIR=$SKIP_PAIR SKIP_MT=$SKIP_MT RESULTS_DIR=$RESULTS_DIR $0"

mkdir -p "$RESULTS_DIR"

# The allocators whose binary of program $1 exists.
present() {
  list=
  for a in $ALLOCATORS; do
    if [ -x "$BENCH_BIN_DIR/$1-$a" ]; then
      list="$list $a"
    else
      echo "run.sh: $BENCH_BIN_DIR/$1-$a missing, $a skipped" >&2
    fi
  done
  echo "$list"
}

# summarize RAW OUT NKEY VALCOL FMT HEADER: group the raw lines (after the two
# header lines) by their first NKEY fields, and write per group the count,
# median, min and max of field VALCOL, and the ratio of the median to that of
# the glibc group with the same remaining key fields.
summarize() {
  raw=$1 out=$2 nkey=$3 valcol=$4 fmt=$5 header=$6
  {
    echo "# $cmdline"
    echo "$header"
    tail -n +3 "$raw" |
      awk -F, -v nkey="$nkey" -v vc="$valcol" '{
          key = $1; for (i = 2; i <= nkey; i++) key = key "," $i
          print key "," $vc }' |
      sort -t, -k1,"$nkey" -k$((nkey + 1)),$((nkey + 1))g |
      awk -F, -v nkey="$nkey" -v fmt="$fmt" '
        function flush() {
          if (n == 0) return
          med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
          med = sprintf(fmt, med)
          keys[++nk] = cur; med_of[cur] = med
          line[cur] = cur "," n "," med "," v[1] "," v[n]
          n = 0
        }
        {
          key = $1; for (i = 2; i <= nkey; i++) key = key "," $i
          if (key != cur) { flush(); cur = key }
          v[++n] = $(nkey + 1)
        }
        END {
          flush()
          for (k = 1; k <= nk; k++) {
            c = keys[k]; rest = c; sub(/^[^,]*/, "", rest)
            g = "glibc" rest
            r = (g in med_of && med_of[g] != 0) ? \
                sprintf("%.3f", med_of[c] / med_of[g]) : "NA"
            print line[c] "," r
          }
        }' |
      sort -t, -k2,2 -k3,3n -k1,1
  } >"$out"
}

if [ "$SKIP_PAIR" != 1 ]; then
  allocs=$(present pair)
  raw=$RESULTS_DIR/pair_raw.csv
  {
    echo "# $cmdline"
    echo "allocator,mode,size,n,ns_per_pair"
  } >"$raw"
  rep=1
  while [ "$rep" -le "$REPS" ]; do
    for mode in $PAIR_MODES; do
      for s in $SIZES; do
        for a in $allocs; do
          "$BENCH_BIN_DIR/pair-$a" "$s" "$PAIR_N" "$mode" >>"$raw"
        done
      done
    done
    echo "run.sh: pair repetition $rep/$REPS done" >&2
    rep=$((rep + 1))
  done
  summarize "$raw" "$RESULTS_DIR/pair.csv" 3 5 "%.2f" \
    "allocator,mode,size,reps,median_ns_per_pair,min,max,ratio_vs_glibc"
  echo "wrote $RESULTS_DIR/pair.csv" >&2
fi

if [ "$SKIP_MT" != 1 ]; then
  allocs=$(present mt)
  raw=$RESULTS_DIR/mt_raw.csv
  {
    echo "# $cmdline"
    echo "allocator,mix,threads,ops,seconds,ops_per_sec,cpu_seconds,ops_per_cpu_sec"
  } >"$raw"
  rep=1
  while [ "$rep" -le "$REPS" ]; do
    for mix in $MIXES; do
      for t in $THREADS; do
        for a in $allocs; do
          # shellcheck disable=SC2086 # MT_ARGS is a list of options
          "$BENCH_BIN_DIR/mt-$a" -t "$t" -d "$MT_SECONDS" -m "$mix" \
            $MT_ARGS >>"$raw"
        done
      done
    done
    echo "run.sh: mt repetition $rep/$REPS done" >&2
    rep=$((rep + 1))
  done
  summarize "$raw" "$RESULTS_DIR/mt.csv" 3 6 "%.0f" \
    "allocator,mix,threads,reps,median_ops_per_sec,min,max,ratio_vs_glibc"
  summarize "$raw" "$RESULTS_DIR/mt_cpu.csv" 3 8 "%.0f" \
    "allocator,mix,threads,reps,median_ops_per_cpu_sec,min,max,ratio_vs_glibc"
  echo "wrote $RESULTS_DIR/mt.csv and mt_cpu.csv" >&2
fi
