# lib.sh: what the real-program tests share. Sourced by the run_*.sh
# scripts of this directory; not a test itself.
#
# A test script is called by ctest as
#   bash run_PROG.sh PRELOAD_LIB
# with two variables set by CMakeLists.txt:
#   PROGRAMS_CONFIG  the MMPOOL_CONFIG of the shim run, @RUN@ standing for
#                    the run's directory (empty: the default
#                    configuration, one anonymous pool named 'default')
#   PROGRAMS_POOLS   the pools the shim must open, space separated
#
# The script generates its inputs once (no shim) under $IN, defines a
# function `workload` and calls `compare_runs workload`. The workload runs
# in a child bash that receives the script's functions; variables it needs
# besides IN, OUT, RUN, MODE, SEED and POOLS must be exported. HOME is a
# fresh scratch directory (no user configuration), LC_ALL=C, TZ=UTC, stdin
# is /dev/null. The function runs twice, in a fresh directory each time:
#   plain: no LD_PRELOAD, no MMPOOL_* variable;
#   shim:  LD_PRELOAD=PRELOAD_LIB, MMPOOL_LOG=info, MMPOOL_STATS=1 and
#          MMPOOL_CONFIG.
# The variables are exported for the commands the workload runs, never for
# the bash that runs it, so every program (and every child it starts) runs
# under the shim, and only they do.
#
# The workload runs in $RUN/work (scratch, not compared) and writes what it
# produces under $OUT (compared file by file). Then compare_runs checks:
#   - the plain run succeeded (status 0): otherwise the machine, not the
#     shim, is at fault, and the test says so and fails;
#   - the two exit statuses are equal;
#   - stdout is identical;
#   - stderr is identical once the shim's info lines and its MMPOOL_STATS
#     reports are removed (see SHIM_INFO_RE): any other line the shim
#     prints is a difference;
#   - the trees under $OUT are identical (names and bytes);
#   - the shim was in use: its stderr has "mmpool: pool 'NAME' open at" for
#     every pool of PROGRAMS_POOLS, and the MMPOOL_STATS reports that reach
#     the workload's stderr (processes whose stderr the workload keeps for
#     itself are not seen) show that every pool took allocations.
# Each run is bounded by RUN_LIMIT seconds (timeout kills its whole process
# group); a hang reads as status 124.
#
# PROGRAMS_ULIMIT_V=KIB runs both runs under `ulimit -v KIB`.
# PROGRAMS_KEEP=1 keeps the scratch directory (its path is printed).
# Generated inputs come from SEED, random unless PROGRAMS_SEED sets it; it
# is printed, so a failure can be replayed with the same inputs.

set -euo pipefail

# Lines the shim prints at MMPOOL_LOG=info: one per pool opened, the
# effective configuration, where the program break lives (processes that
# call sbrk), also when git relays a child's stderr after "remote: ".
# Extend this when the shim gains info-level lines (a file pool held by
# another process is one): any other line the shim
# prints (a warning, an error) is a difference between the runs.
# The MMPOOL_STATS report of each process at exit: its heading lines, one
# "mmpool: pool NAME: anon|file ..." line per pool, indented lines.
SHIM_INFO_RE="^(remote: +)?mmpool: (pool '[^']*' open at |pool '[^']*': [^ ]*: is in use by another process$|config: |brk: the break is |stats of pid |allocated: blocks handed out |pool [A-Za-z0-9_.-]+( \(default pool\))?: (anon|file )|  )"

RUN_LIMIT=${RUN_LIMIT:-100}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

note() { echo "== $*"; }

# Takes the arguments of the test script; makes $SCRATCH and $IN.
prog_init() {
  [[ $# -eq 1 ]] || fail "usage: $0 PRELOAD_LIB"
  PRELOAD=$1
  [[ -f $PRELOAD ]] || fail "no preload library at '$PRELOAD'"
  CONFIG=${PROGRAMS_CONFIG-}
  export POOLS=${PROGRAMS_POOLS:-default}
  local keep=${PROGRAMS_KEEP:-0}
  # Whatever the caller's environment holds (ctest itself may run under a
  # shim), the plain run has neither the preload nor its variables.
  unset LD_PRELOAD
  local v
  for v in $(compgen -e); do
    [[ $v == MMPOOL_* ]] && unset "$v"
  done
  export LC_ALL=C TZ=UTC
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-prog.XXXXXX")
  if [[ $keep == 1 ]]; then
    trap 'echo "scratch kept: $SCRATCH"' EXIT
  else
    trap 'rm -rf "$SCRATCH"' EXIT
  fi
  export IN=$SCRATCH/in HOME=$SCRATCH/home
  mkdir "$IN" "$HOME"
  note "preload: $PRELOAD"
  note "configuration: $(printf '%s' "${CONFIG:-(default)}" | tr '\n' ';')"
  note "pools expected: $POOLS"
  export SEED=${PROGRAMS_SEED:-$((RANDOM * 32768 + RANDOM + 1))}
  note "seed: $SEED (PROGRAMS_SEED=$SEED replays these inputs)"
}

# Fails unless every command named is installed; .ci/install-deps has them.
need() {
  local c
  for c in "$@"; do
    [[ -x $c ]] || command -v "$c" >/dev/null 2>&1 ||
      fail "'$c' is not installed (run .ci/install-deps)"
  done
}

# compare_runs FUNC: runs FUNC plain and under the shim, then compares.
compare_runs() {
  local fn=$1 mode run rc
  for mode in plain shim; do
    run=$SCRATCH/run.$mode
    # (run.plain and run.shim_: paths of the same length in both runs)
    [[ $mode == shim ]] && run+=_
    mkdir -p "$run/out" "$run/work"
    note "$mode run"
    local t0=$SECONDS
    set +e
    # The child bash gets the script's functions as text (declare -f) and
    # exports the shim's variables itself, so that this bash never runs
    # under the shim; `timeout` kills the run's whole process group.
    RUN=$run OUT=$run/out MODE=$mode PRELOAD=$PRELOAD CONFIG=$CONFIG \
      timeout -k 10 "$RUN_LIMIT" bash -c "$(declare -f)"'
        set -euo pipefail
        cd "$RUN/work"
        # Both runs under the same address-space limit, when one is set.
        [[ -z ${PROGRAMS_ULIMIT_V-} ]] || ulimit -v "$PROGRAMS_ULIMIT_V"
        if [[ $MODE == shim ]]; then
          export LD_PRELOAD=$PRELOAD MMPOOL_LOG=info MMPOOL_STATS=1
          # @RUN@: the run directory (a file pool for this run)
          [[ -z $CONFIG ]] || export MMPOOL_CONFIG=${CONFIG//@RUN@/$RUN}
        fi
        '"$fn" </dev/null >"$run/stdout" 2>"$run/stderr"
    rc=$?
    set -e
    echo "$rc" >"$run/rc"
    note "$mode run: status $rc, $((SECONDS - t0)) s"
  done
  check_results
}

# Prints the first lines of a diff, indented.
show_diff() {
  diff -u "$@" | head -40 | sed 's/^/    /' >&2 || true
}

check_results() {
  local p=$SCRATCH/run.plain s=$SCRATCH/run.shim_ bad=0
  local prc src
  prc=$(cat "$p/rc") src=$(cat "$s/rc")
  if [[ $prc != 0 ]]; then
    echo "plain run stderr:" >&2
    tail -20 "$p/stderr" | sed 's/^/    /' >&2
    fail "the plain run (no shim) failed with status $prc$([[ $prc == 124 ]] &&
      echo " (timed out after $RUN_LIMIT s)"): not a shim problem, but" \
      "nothing can be compared"
  fi
  if [[ $src != "$prc" ]]; then
    echo "DIFF: exit status: plain $prc, shim $src$([[ $src == 124 ]] &&
      echo " (timed out after $RUN_LIMIT s)")" >&2
    bad=1
  fi
  if ! cmp -s "$p/stdout" "$s/stdout"; then
    echo "DIFF: stdout (plain vs shim):" >&2
    show_diff "$p/stdout" "$s/stdout"
    bad=1
  fi
  grep -E -v "$SHIM_INFO_RE" "$s/stderr" >"$s/stderr.filtered" || true
  if ! cmp -s "$p/stderr" "$s/stderr.filtered"; then
    echo "DIFF: stderr, the shim's info lines removed (plain vs shim):" >&2
    show_diff "$p/stderr" "$s/stderr.filtered"
    bad=1
  fi
  if ! diff -r "$p/out" "$s/out" >"$SCRATCH/out.diff" 2>&1; then
    echo "DIFF: files produced under \$OUT (plain vs shim):" >&2
    head -40 "$SCRATCH/out.diff" | sed 's/^/    /' >&2
    bad=1
  fi
  local pool n a reports
  reports=$(grep -c -E "^(remote: +)?mmpool: stats of pid " "$s/stderr" ||
    true)
  for pool in $POOLS; do
    n=$(grep -c -E "^mmpool: pool '$pool' open at " "$s/stderr" || true)
    # The blocks the pool took, summed over the reports.
    a=$(awk -v pool="$pool" '
      { sub(/^remote: +/, "") }
      /^mmpool: pool [^ ]+( \(default pool\))?: (anon|file )/ {
        name = $3; sub(/:$/, "", name); cur = name; next }
      /^mmpool: [^ ]/ { cur = "" }
      cur == pool && /^mmpool:   allocated since start: / { s += $5 }
      END { print s + 0 }' "$s/stderr")
    if [[ $n == 0 ]]; then
      echo "DIFF: the shim run never opened pool '$pool' (no" \
        "\"mmpool: pool '$pool' open at\" line): was the shim in use?" >&2
      bad=1
    elif [[ $a == 0 ]]; then
      echo "DIFF: pool '$pool' took no allocation in the $reports" \
        "MMPOOL_STATS report(s) of the shim run" >&2
      bad=1
    else
      note "pool '$pool' opened by $n process(es); $a allocations in the" \
        "$reports report(s) seen"
    fi
  done
  if [[ $bad != 0 ]]; then
    echo "(PROGRAMS_SEED=$SEED PROGRAMS_KEEP=1 replays this run and keeps" \
      "its files)" >&2
    fail "the shim run differs from the plain run (details above)"
  fi
  note "identical: status $prc, stdout $(wc -c <"$p/stdout") bytes," \
    "$(find "$p/out" -type f | wc -l) files"
}

