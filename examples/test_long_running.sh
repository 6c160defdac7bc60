#!/bin/bash
# test_long_running.sh TOOL PROG: the long_running example as its header
# tells it (issue 14, item 6): an unmodified program, snapshotted on
# SIGUSR2 through `mmpool snapshot PID` while it runs, the snapshot then
# described and checked by the tool, and one more snapshot at exit.
set -u
tool=$1
prog=$2
d=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-long.XXXXXX") || exit 1
trap 'kill $pid 2>/dev/null; rm -rf "$d"' EXIT
fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
export MMPOOL_CONFIG="pool default anon snapshot=$d/snap snapshot-on=signal:USR2,exit"
"$tool" run -- "$prog" 50000 >"$d/out" 2>"$d/err" &
pid=$!
for _ in $(seq 200); do grep -q "^running" "$d/out" 2>/dev/null && break; sleep 0.05; done
grep -q "^running $pid$" "$d/out" || fail "not running: $(cat "$d/out" "$d/err")"
for n in 1 2; do
  "$tool" snapshot $pid >"$d/s.out" 2>&1 || fail "mmpool snapshot: $(cat "$d/s.out")"
  grep -q "^snapshot $n of process $pid" "$d/s.out" || fail "snapshot $n: $(cat "$d/s.out")"
  "$tool" check "$d/snap" >"$d/c.out" 2>&1 || fail "mmpool check: $(cat "$d/c.out")"
done
"$tool" info "$d/snap" >"$d/i.out" 2>&1 || fail "mmpool info: $(cat "$d/i.out")"
grep -q "^serial      2$" "$d/i.out" && grep -q "default -> default" "$d/i.out" ||
  grep -Eq "^  default +-> default +[1-9]" "$d/i.out" || fail "info: $(cat "$d/i.out")"
kill -TERM $pid
wait $pid || fail "the program failed: $(cat "$d/err")"
grep -q "^stopped after [1-9][0-9]* rounds, [0-9]* items$" "$d/out" ||
  fail "output: $(cat "$d/out")"
test -s "$d/err" && fail "stderr: $(cat "$d/err")"
"$tool" info --json "$d/snap" | grep -q '"serial": 3' || fail "no snapshot at exit"
"$tool" check "$d/snap" >/dev/null 2>&1 || fail "check after exit"
test $fails -eq 0 && echo "long_running: all cases passed"
exit $((fails > 0))
