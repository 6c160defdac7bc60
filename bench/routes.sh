#!/bin/sh
# routes.sh: the cost of routing in the preload library, in instructions per
# malloc/free pair.
#
# Runs pair-glibc (plain malloc/free calls of the C library) with
# LD_PRELOAD=libmmpool-preload.so, so that every call goes to the shim, under
# valgrind --tool=callgrind at two iteration counts N1 and N2, and reports
# (Ir(N2) - Ir(N1)) / (N2 - N1) as callgrind.sh does: start-up and exit cost
# the same in both runs and cancel. One figure per configuration, mode and
# size; the configurations (CONFIGS below) differ only in MMPOOL_CONFIG:
#
#   none             MMPOOL_CONFIG unset: one default pool, no route
#   size             two size routes (small below 256 bytes, big from 64K)
#   size_lib         a lib= route that matches no module of pair-glibc, then
#                    the size routes: the lib route is evaluated and fails
#   size_lib_hit     a lib= route that matches the caller (the executable
#                    pair-glibc) first, then the size_lib routes
#   size_thread_lib  a thread= route (the main thread's name does not match)
#                    before the size_lib routes
#
# and ratio_to_none is a configuration's figure over the none figure of the
# same mode and size. The issue's bound: with size and lib routes a small
# pair costs at most 1.10 times the no-route pair.
#
# Before measuring, each configuration is run once (N=1000) with
# MMPOOL_LOG=info to check that the shim took it: it must list the
# configuration ("mmpool: config: ..." lines, one "route" line per route
# statement, no "had errors" line). Every run's stderr is searched for lines
# of the shim ("mmpool: ..."): any line other than the allowed ones below
# stops the script with the line shown.
#
# Environment (defaults in brackets):
#   BENCH_BIN_DIR  where pair-glibc is [<repo>/build-bench/bench]
#   BENCH_PROG     the program [pair-glibc]; pair-glibc-now is the same
#                  linked with -z now, whose calls the exported malloc
#                  routes by return address (no entry point: shim/got.c)
#   PRELOAD_LIB    the preload library [<BENCH_BIN_DIR>/../shim/libmmpool-preload.so]
#   CONFIGS        labels of the configurations to run, among those above
#                  [none size size_lib size_lib_hit size_thread_lib]; none
#                  is always run (the ratios need it)
#   SIZES          [16 64 256 1024 4096 65536]
#   MODES          [pair ws100] (see pair.c)
#   N1, N2         [100000, 1100000]
#   RESULTS_DIR    [<repo>/bench/results]
#   WALL_RUNS      [0] rounds of wall-time runs (no valgrind) after the
#                  callgrind figures; 0: none
#   WALL_N         [50000000] iterations of a wall-time run
#   WALL_SIZES     [16] sizes of the wall-time runs (each mode of MODES)
#
# Output: RESULTS_DIR/routes.csv, first line "# <the command that produced
# it>", then config,mode,size,instructions_per_pair,ratio_to_none; a summary
# on stderr. With WALL_RUNS: RESULTS_DIR/routes-wall.csv,
# config,mode,size,median_ns_per_pair,ratio_to_none,runs (every run's figure).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BENCH_BIN_DIR=${BENCH_BIN_DIR:-$repo/build-bench/bench}
BENCH_PROG=${BENCH_PROG:-pair-glibc}
PRELOAD_LIB=${PRELOAD_LIB:-$(dirname "$BENCH_BIN_DIR")/shim/libmmpool-preload.so}
CONFIGS=${CONFIGS:-none size size_lib size_lib_hit size_thread_lib}
SIZES=${SIZES:-16 64 256 1024 4096 65536}
MODES=${MODES:-pair ws100}
N1=${N1:-100000}
N2=${N2:-1100000}
RESULTS_DIR=${RESULTS_DIR:-$here/results}
WALL_RUNS=${WALL_RUNS:-0}
WALL_N=${WALL_N:-50000000}
WALL_SIZES=${WALL_SIZES:-16}

# The configurations: label -> MMPOOL_CONFIG ("" for none: variable unset).
sizes_only='pool small size=4G; pool big size=16G; route size<256 -> small; route size>=64K -> big'
lib_pools='pool small size=4G; pool big size=16G; pool libs size=4G'
lib_miss='route lib=libssl* -> libs'
size_routes='route size<256 -> small; route size>=64K -> big'
config_value() {
  case $1 in
  none) echo "" ;;
  size) echo "$sizes_only" ;;
  size_lib) echo "$lib_pools; $lib_miss; $size_routes" ;;
  size_lib_hit) echo "$lib_pools; route lib=pair-glibc* -> libs; $lib_miss; $size_routes" ;;
  size_thread_lib) echo "$lib_pools; route thread=worker-* -> libs; $lib_miss; $size_routes" ;;
  *) return 1 ;;
  esac
}

# Lines of the shim on stderr ("mmpool: ...") that are not failures, as
# extended regular expressions matched against the text after "mmpool: ".
#
# ALLOWED_WARN: accepted in every run (none: any warning fails the run).
ALLOWED_WARN=''
# INFO_OK: the info lines of the MMPOOL_LOG=info check run (the configuration
# listing and the pools opened); never printed at the default level.
INFO_OK='^config: |^pool '\''[^'\'']*'\'' open at '

command -v valgrind >/dev/null 2>&1 || {
  echo "routes.sh: valgrind not found" >&2
  exit 1
}
[ "$N2" -gt "$N1" ] || {
  echo "routes.sh: N2 must exceed N1" >&2
  exit 1
}
bin=$BENCH_BIN_DIR/$BENCH_PROG
[ -x "$bin" ] || {
  echo "routes.sh: $bin missing (build the target $BENCH_PROG)" >&2
  exit 1
}
[ -f "$PRELOAD_LIB" ] || {
  echo "routes.sh: $PRELOAD_LIB missing (build the target mmpool_preload)" >&2
  exit 1
}
PRELOAD_LIB=$(cd "$(dirname "$PRELOAD_LIB")" && pwd)/$(basename "$PRELOAD_LIB")
for c in $CONFIGS; do
  config_value "$c" >/dev/null || {
    echo "routes.sh: unknown configuration '$c'" >&2
    exit 1
  }
done
# none first: the ratios of the others are taken against it.
others=
for c in $CONFIGS; do
  [ "$c" = none ] || others="$others $c"
done
CONFIGS="none$others"
for mode in $MODES; do
  case $mode in
  pair | ws | ws[0-9]*) ;;
  *)
    echo "routes.sh: unknown mode '$mode'" >&2
    exit 1
    ;;
  esac
done

# Nothing of the caller's environment may change the shim's behaviour.
unset MMPOOL_CONFIG MMPOOL_CONFIG_FILE MMPOOL_STATS MMPOOL_LOG MMPOOL_STRICT

mkdir -p "$RESULTS_DIR"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-routes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

cmdline="BENCH_BIN_DIR=$BENCH_BIN_DIR BENCH_PROG=$BENCH_PROG PRELOAD_LIB=$PRELOAD_LIB CONFIGS=\"$CONFIGS\" SIZES=\"$SIZES\" MODES=\"$MODES\" N1=$N1 N2=$N2 RESULTS_DIR=$RESULTS_DIR $0"

# grind LABEL LOGLEVEL SIZE N MODE: one run of pair-glibc under callgrind
# with the preload library and the configuration LABEL (LOGLEVEL "" for the
# default), callgrind's output in $tmp/cg.out, stderr in $tmp/stderr. Fails
# if the run fails or the shim prints a line that is not allowed.
grind() {
  cfg=$(config_value "$1")
  rm -f "$tmp/cg.out"
  set -- "$1" "$2" "$3" "$4" "$5" \
    valgrind --tool=callgrind --trace-children=no \
    --callgrind-out-file="$tmp/cg.out" --cache-sim=no --branch-sim=no \
    "$bin" "$3" "$4" "$5"
  label=$1 level=$2
  shift 5
  # valgrind hands LD_PRELOAD on to the client (after its own preloads).
  # The programs that start valgrind load the shim too (the launcher; on
  # Debian also the /usr/bin/valgrind shell script in front of it), so its
  # lines can come several times: those of the client are the ones after
  # valgrind's "==PID== Command: ..." line (into $tmp/client). The check of
  # the lines below applies to all of them.
  (
    export LD_PRELOAD="$PRELOAD_LIB"
    [ -z "$cfg" ] || export MMPOOL_CONFIG="$cfg"
    [ -z "$level" ] || export MMPOOL_LOG="$level"
    exec "$@"
  ) >"$tmp/stdout" 2>"$tmp/stderr" || {
    echo "routes.sh: $label: $* failed:" >&2
    cat "$tmp/stderr" >&2
    return 1
  }
  ok=$ALLOWED_WARN
  [ -z "$level" ] || ok=${ok:+$ok|}$INFO_OK
  sed -n 's/^mmpool: //p' "$tmp/stderr" >"$tmp/shim"
  awk 'client { print } /^==[0-9]+== Command: / { client = 1 }' \
    "$tmp/stderr" | sed -n 's/^mmpool: //p' >"$tmp/client"
  if [ -n "$ok" ]; then
    grep -Ev "$ok" "$tmp/shim" >"$tmp/bad" || true
  else
    cp "$tmp/shim" "$tmp/bad"
  fi
  if [ -s "$tmp/bad" ]; then
    echo "routes.sh: $label (MMPOOL_CONFIG='$cfg'): the shim reported:" >&2
    sed 's/^/  mmpool: /' "$tmp/bad" >&2
    echo "routes.sh: command: $*" >&2
    return 1
  fi
}

# ir LABEL SIZE N MODE: total instructions of one run.
ir() {
  grind "$1" "" "$2" "$3" "$4"
  # "summary: N" (older valgrind writes "totals:"); first event is Ir.
  v=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$tmp/cg.out")
  [ -n "$v" ] || {
    echo "routes.sh: $1: no instruction count in callgrind's output" >&2
    return 1
  }
  echo "$v"
}

# The check: each configuration, once, at the info level.
# shellcheck disable=SC2086 # split the lists into words
set -- $SIZES
check_size=$1
# shellcheck disable=SC2086
set -- $MODES
check_mode=$1
for c in $CONFIGS; do
  grind "$c" info "$check_size" 1000 "$check_mode"
  cfg=$(config_value "$c")
  want=$(printf '%s\n' "$cfg" | tr ';' '\n' | grep -c '^ *route ' || true)
  got=$(grep -c '^config: route ' "$tmp/client" || true)
  lines=$(grep -c '^config: ' "$tmp/client" || true)
  if [ "$lines" -eq 0 ] || [ "$got" -ne "$want" ] ||
    grep -q '^config: # the configuration had errors' "$tmp/client"; then
    echo "routes.sh: $c: pair-glibc's shim did not take MMPOOL_CONFIG='$cfg'" \
      "($want route statements, $got route lines listed); stderr:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  echo "routes: $c: configuration taken ($got routes)" >&2
done

csv=$RESULTS_DIR/routes.csv
{
  echo "# $cmdline"
  echo "config,mode,size,instructions_per_pair,ratio_to_none"
} >"$tmp/csv"
: >"$tmp/summary"
for mode in $MODES; do
  for s in $SIZES; do
    base=
    for c in $CONFIGS; do
      i1=$(ir "$c" "$s" "$N1" "$mode")
      i2=$(ir "$c" "$s" "$N2" "$mode")
      per=$(awk -v a="$i1" -v b="$i2" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "%.2f", (b - a) / (n2 - n1) }')
      [ "$c" = none ] && base=$per
      ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.3f", p / b }')
      echo "$c,$mode,$s,$per,$ratio" >>"$tmp/csv"
      echo "routes: $mode size $s $c: $per instructions per pair ($ratio x none)" >&2
    done
  done
done
mv "$tmp/csv" "$csv"
echo "wrote $csv" >&2

# Summary: the table, and the largest ratio per configuration.
{
  echo "routes: instructions per pair (ratio to none):"
  awk -F, 'NR > 2 {
      printf "  %-16s %-6s %5s %9s  %s\n", $1, $2, $3, $4, $5
      if (!($1 in max) || $5 > max[$1]) { max[$1] = $5; at[$1] = $2 " " $3 }
      if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 }
    }
    END {
      print "routes: largest ratio to none:"
      for (i = 0; i < n; i++)
        printf "  %-16s %s (%s)\n", order[i], max[order[i]], at[order[i]]
    }' "$csv"
} >&2

# Wall time (WALL_RUNS > 0): pair-glibc without valgrind, WALL_N iterations,
# WALL_RUNS rounds in which every configuration runs once (alternating, so
# that a noisy neighbour hits them alike); the median ns per pair of each.
[ "$WALL_RUNS" -gt 0 ] || exit 0
wcsv=$RESULTS_DIR/routes-wall.csv
{
  echo "# WALL_RUNS=$WALL_RUNS WALL_N=$WALL_N WALL_SIZES=\"$WALL_SIZES\" $cmdline"
  echo "config,mode,size,median_ns_per_pair,ratio_to_none,runs"
} >"$tmp/wcsv"
for mode in $MODES; do
  for s in $WALL_SIZES; do
    : >"$tmp/wall"
    r=0
    while [ "$r" -lt "$WALL_RUNS" ]; do
      for c in $CONFIGS; do
        cfg=$(config_value "$c")
        ns=$(
          export LD_PRELOAD="$PRELOAD_LIB"
          [ -z "$cfg" ] || export MMPOOL_CONFIG="$cfg"
          "$bin" "$s" "$WALL_N" "$mode" | cut -d, -f5
        ) || exit 1
        echo "$c $ns" >>"$tmp/wall"
      done
      r=$((r + 1))
    done
    base=
    for c in $CONFIGS; do
      runs=$(awk -v c="$c" '$1 == c { print $2 }' "$tmp/wall" | sort -n)
      med=$(printf '%s\n' "$runs" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
      [ "$c" = none ] && base=$med
      ratio=$(awk -v p="$med" -v b="$base" 'BEGIN { printf "%.3f", p / b }')
      echo "$c,$mode,$s,$med,$ratio,$(printf '%s' "$runs" | tr '\n' ' ')" >>"$tmp/wcsv"
      echo "routes: wall $mode size $s $c: median $med ns per pair ($ratio x none)" >&2
    done
  done
done
mv "$tmp/wcsv" "$wcsv"
echo "wrote $wcsv" >&2
