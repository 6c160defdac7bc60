#!/usr/bin/env bash
# ctest example_legacy_sbrk: runs legacy_sbrk under the preload library
# (through `mmpool run`) with its break in a file pool marked brk. Run 1
# makes a new heap; runs 2 and 3 find it through sbrk(0) alone, at the same
# address, check every number earlier runs wrote and add theirs; a
# mode=private run sees the heap but the file keeps nothing of it, so the
# run after it is run 4 again.
# Usage: test_legacy_sbrk.sh PATH-TO-mmpool PATH-TO-legacy_sbrk
set -euo pipefail
tool=$1 exe=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-example.XXXXXX")
trap 'rm -rf "$dir"' EXIT
shared="pool legacy file=$dir/legacy.pool size=64M brk"
private="pool legacy file=$dir/legacy.pool size=64M mode=private brk"

fail() {
  echo "test_legacy_sbrk: FAILED: $*" >&2
  exit 1
}

# expect RUN CONFIG EXPECTED-OUTPUT [NOTE]: the output less its last line
# (the addresses), which goes to $where.
expect() {
  local run=$1 cfg=$2 want=$3 out rc=0
  shift 3
  echo "$ MMPOOL_CONFIG='$cfg' mmpool run -- legacy_sbrk ${*@Q}"
  out=$(MMPOOL_CONFIG=$cfg "$tool" run -- "$exe" "$@") || rc=$?
  echo "$out"
  ((rc == 0)) || fail "run $run exited with status $rc"
  where=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $out != "$want" ]]; then
    diff -u <(echo "$want") <(echo "$out") | sed 's/^/  /' >&2 || true
    fail "run $run printed something else than expected"
  fi
}

expect 1 "$shared" "run 1: a new heap, 0 numbers of earlier runs checked
  1: first note" "first note"
heap=${where%%,*}
[[ $heap == "heap 0x"* ]] || fail "no heap address: '$where'"
expect 2 "$shared" "run 2: found the heap, 1000 numbers of earlier runs checked
  1: first note
  2: second note" "second note"
[[ ${where%%,*} == "$heap" ]] || fail "run 2: '$where', not $heap"
expect 3 "$shared" "run 3: found the heap, 2000 numbers of earlier runs checked
  1: first note
  2: second note
  3: note from run 3"
cp "$dir/legacy.pool" "$dir/copy.pool"
expect 4 "$private" "run 4: found the heap, 3000 numbers of earlier runs checked
  1: first note
  2: second note
  3: note from run 3
  4: a trial" "a trial"
cmp "$dir/legacy.pool" "$dir/copy.pool" || fail "mode=private changed the file"
expect 4 "$shared" "run 4: found the heap, 3000 numbers of earlier runs checked
  1: first note
  2: second note
  3: note from run 3
  4: note from run 4"
[[ ${where%%,*} == "$heap" ]] || fail "run 4: '$where', not $heap"
echo "test_legacy_sbrk: ok, 4 runs kept, 1 private run not kept"
