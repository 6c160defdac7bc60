#!/usr/bin/env bash
# ctest example_persistent_list: runs persistent_list three times on a fresh
# pool file and checks that the list grew by one node each run and kept its
# contents: 1, then 2, then 3 items.
# Usage: test_persistent_list.sh PATH-TO-persistent_list
set -euo pipefail
exe=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-example.XXXXXX")
trap 'rm -rf "$dir"' EXIT

fail() {
  echo "test_persistent_list: FAILED: $*" >&2
  exit 1
}

# expect RUN EXPECTED-OUTPUT COMMAND...
expect() {
  local run=$1 want=$2 out rc=0
  shift 2
  echo "$ ${*@Q}"
  out=$("$@") || rc=$?
  echo "$out"
  ((rc == 0)) || fail "run $run exited with status $rc"
  if [[ $out != "$want" ]]; then
    diff -u <(echo "$want") <(echo "$out") | sed 's/^/  /' >&2 || true
    fail "run $run printed something else than expected"
  fi
}

cd "$dir"
# Run 1: default path ./list.pool and default text.
expect 1 "1 item in ./list.pool
   1: hello 1" "$exe"
[[ -f $dir/list.pool ]] || fail "no pool file $dir/list.pool after run 1"
# Run 2: the same file by absolute path, with a text of our own.
expect 2 "2 items in $dir/list.pool
   1: hello 1
   2: second node" "$exe" "$dir/list.pool" "second node"
# Run 3: back to the defaults; the new node is numbered after the list.
expect 3 "3 items in ./list.pool
   1: hello 1
   2: second node
   3: hello 3" "$exe"
[[ -f $dir/list.pool ]] || fail "no pool file $dir/list.pool after run 3"
echo "test_persistent_list: ok, 3 runs, 3 items"
