#!/bin/bash
# test_snapshot_restart.sh PROG TOOL: the snapshot_restart example as its
# header tells it (issue 14, item 6): a program that snapshots its state
# every 10 steps while it runs, and restarts from the last snapshot. The
# table's checksum depends only on the step reached, so a restarted run
# must end exactly where one uninterrupted run does.
set -u
prog=$1
tool=$2
d=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-restart.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
sum() { sed -n 's/^step \([0-9]*\), checksum \([0-9a-f]*\)$/\1 \2/p' "$1"; }

"$prog" "$d/ref" 50 >"$d/ref.out" 2>&1 || fail "reference run: $(cat "$d/ref.out")"
"$prog" "$d/s" 35 >"$d/a.out" 2>&1 || fail "first run: $(cat "$d/a.out")"
grep -q "^started afresh$" "$d/a.out" && grep -q "^snapshot at step 30$" "$d/a.out" ||
  fail "first run: $(cat "$d/a.out")"
"$tool" check "$d/s" >"$d/c.out" 2>&1 || fail "mmpool check: $(cat "$d/c.out")"
"$tool" info "$d/s" >"$d/i.out" 2>&1 && grep -q "^serial      3$" "$d/i.out" &&
  grep -q "^  state " "$d/i.out" || fail "mmpool info: $(cat "$d/i.out")"
"$prog" "$d/s" 50 >"$d/b.out" 2>&1 || fail "restart: $(cat "$d/b.out")"
grep -q "^restarted from the snapshot in $d/s at step 30$" "$d/b.out" ||
  fail "restart: $(cat "$d/b.out")"
test "$(sum "$d/b.out")" = "$(sum "$d/ref.out")" ||
  fail "restarted run ends at '$(sum "$d/b.out")', one run at '$(sum "$d/ref.out")'"
# A damaged manifest is refused with its reason, and nothing starts.
printf 'x' | dd of="$d/s/manifest" bs=1 seek=200 conv=notrunc 2>/dev/null
"$prog" "$d/s" 60 >"$d/e.out" 2>&1 && fail "a damaged snapshot was used"
grep -q "manifest checksum mismatch" "$d/e.out" || fail "damaged: $(cat "$d/e.out")"
test $fails -eq 0 && echo "snapshot_restart: all cases passed"
exit $((fails > 0))
