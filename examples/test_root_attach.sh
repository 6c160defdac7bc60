#!/usr/bin/env bash
# ctest example_root_attach: runs root_attach twice on a fresh pool file.
# The first run builds the table of 1000000 entries; the second finds it
# through root 0 and attaches it instead of building it: it says so, finds
# the same keys and prints the same checksum over all the entries (the
# value this table always has). The times are printed, not checked.
# Usage: test_root_attach.sh PATH-TO-root_attach
set -euo pipefail
exe=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-example.XXXXXX")
trap 'rm -rf "$dir"' EXIT

fail() {
  echo "test_root_attach: FAILED: $*" >&2
  exit 1
}

content="key 1: entry-0 = 0
key 2639671947: entry-333334 = 111111555556
key 5279343893: entry-666668 = 444446222224
checksum 3b3562e64c481711 over 1000000 entries"

for run in 1 2; do
  echo "$ root_attach $dir/table.pool"
  rc=0
  out=$("$exe" "$dir/table.pool") || rc=$?
  echo "$out"
  ((rc == 0)) || fail "run $run exited with status $rc"
  first=${out%%$'\n'*}
  case $run in
  1) [[ $first == "built 1000000 entries in "*" ms" ]] ||
       fail "run 1 did not build the table: '$first'" ;;
  2) [[ $first == "attached 1000000 entries in "*" ms (built in "*" ms by the first run: "*"x faster)" ]] ||
       fail "run 2 did not attach the table: '$first'" ;;
  esac
  if [[ ${out#*$'\n'} != "$content" ]]; then
    diff -u <(echo "$content") <(echo "${out#*$'\n'}") | sed 's/^/  /' >&2 || true
    fail "run $run found other contents"
  fi
done
echo "test_root_attach: ok, built once, attached once, same checksum"
