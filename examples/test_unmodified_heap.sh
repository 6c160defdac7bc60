#!/usr/bin/env bash
# ctest example_unmodified_heap: runs unmodified_heap twice through
# `mmpool run` with its heap in a mode=shared pool file. Both runs print the
# same result; after each the file is marked clean, and its generation
# (attaches so far, core/poolfile.h: a u64 at byte 72; flags at byte 44,
# CLEAN = 1) is 1 after the run that created it and 2 after the second,
# which attached it without `recover`. Then `mmpool check FILE` must pass
# and `mmpool info FILE` describe it.
# Usage: test_unmodified_heap.sh PATH-TO-mmpool PATH-TO-unmodified_heap
set -euo pipefail
tool=$1 exe=$2
py=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-example.XXXXXX")
trap 'rm -rf "$dir"' EXIT
pool=$dir/heap.pool
export MMPOOL_CONFIG="pool heap file=$pool size=1G; default heap"
want="200000 keys, 181312 distinct, tree height 43, checksum b544ef7307d75c13"

fail() {
  echo "test_unmodified_heap: FAILED: $*" >&2
  exit 1
}

# header FILE: "GENERATION FLAGS" of a pool file.
header() {
  "$py" -c 'import struct, sys
h = open(sys.argv[1], "rb").read(80)
print(struct.unpack_from("<Q", h, 72)[0], struct.unpack_from("<I", h, 44)[0])' "$1"
}

for run in 1 2; do
  echo "$ MMPOOL_CONFIG='$MMPOOL_CONFIG' mmpool run -- unmodified_heap"
  rc=0
  out=$(MMPOOL_STATS=$((run - 1)) "$tool" run -- "$exe" 2>"$dir/err") || rc=$?
  echo "$out"
  sed 's/^/  stderr: /' "$dir/err"
  ((rc == 0)) || fail "run $run exited with status $rc"
  [[ $out == "$want" ]] || fail "run $run printed '$out', not '$want'"
  [[ -f $pool ]] || fail "no pool file after run $run"
  read -r gen flags < <(header "$pool")
  echo "  header: generation $gen, flags $flags"
  ((gen == run)) || fail "generation $gen after run $run (expected $run)"
  ((flags & 1)) || fail "the file is not marked clean after run $run"
done
# The second run reported the pool as a file pool, attached.
grep -q "pool heap (default pool): file $pool, mode=shared" "$dir/err" ||
  fail "the second run's report does not show the file pool"

# tool CMD: runs `mmpool CMD FILE`, which must pass.
tool_cmd() {
  local rc=0
  "$tool" "$1" "$pool" >"$dir/out" 2>"$dir/err" || rc=$?
  echo "$ mmpool $1 FILE"
  cat "$dir/out" "$dir/err"
  ((rc == 0)) || fail "mmpool $1 exited with status $rc"
  return 0
}
if tool_cmd check; then
  echo "  mmpool check: the file is sound"
fi
if tool_cmd info; then
  [[ -s $dir/out ]] || fail "mmpool info printed nothing"
fi
echo "test_unmodified_heap: ok, 2 runs, generation 2"
