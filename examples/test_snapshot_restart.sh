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
"$prog" "$d/ref60" 60 >"$d/ref60.out" 2>&1 || fail "reference run to 60"
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
# Its base taken (a page mapped there): refused without relocation,
# naming the mapping in the way; moved with relocate=yes, and the run ends
# as one uninterrupted run does.
base=$("$tool" info --json "$d/s" | sed -n 's/.*"base": \([0-9]*\).*/\1/p')
addr=$(printf '0x%x' "$base")
"$prog" "$d/s" 60 "$addr" >"$d/m.out" 2>"$d/m.err" ||
  fail "restart with the base taken: $(cat "$d/m.out" "$d/m.err")"
grep -q "^without relocation: .*$addr" "$d/m.out" ||
  fail "no refusal naming $addr: $(cat "$d/m.out")"
grep -q "at step 50 (moved)$" "$d/m.out" && grep -q "^snapshot at step 60$" "$d/m.out" ||
  fail "not restarted moved: $(cat "$d/m.out")"
# The snapshots it took after the move record the new base.
nbase=$("$tool" info --json "$d/s" | sed -n 's/.*"base": \([0-9]*\).*/\1/p')
test -n "$nbase" && test "$nbase" != "$base" || fail "base after the move: $nbase"
test "$(sum "$d/m.out")" = "$(sum "$d/ref60.out")" ||
  fail "moved run ends at '$(sum "$d/m.out")', one run at '$(sum "$d/ref60.out")'"
# Offline: mmpool relocate moves the snapshot; the restart uses it as is.
# (Its second snapshot is a delta after the first; the moved snapshot is
# whole images.)
"$prog" "$d/t" 20 >/dev/null 2>&1 || fail "third run"
"$tool" info "$d/t" | grep -q "^  state .* + 1 delta " ||
  fail "no delta before the move: $("$tool" info "$d/t")"
"$tool" relocate "$d/t" 0x300000000000 >"$d/r.out" 2>&1 ||
  fail "mmpool relocate: $(cat "$d/r.out")"
test "$(ls "$d/t" | grep -c '\.delta$')" = 0 || fail "deltas left: $(ls "$d/t")"
"$tool" check "$d/t" >/dev/null 2>&1 || fail "check after relocate"
"$tool" info "$d/t" | grep -q "base 0x300000000000" || fail "not moved"
"$prog" "$d/t" 50 >"$d/t.out" 2>&1 && test "$(sum "$d/t.out")" = "$(sum "$d/ref.out")" ||
  fail "restart after mmpool relocate: $(cat "$d/t.out")"
test "$(ls "$d/s" | grep -c relocated)" = 0 || fail "relocated copies left"
# A damaged manifest is refused with its reason, and nothing starts.
printf 'x' | dd of="$d/s/manifest" bs=1 seek=200 conv=notrunc 2>/dev/null
"$prog" "$d/s" 60 >"$d/e.out" 2>&1 && fail "a damaged snapshot was used"
grep -q "manifest checksum mismatch" "$d/e.out" || fail "damaged: $(cat "$d/e.out")"
test $fails -eq 0 && echo "snapshot_restart: all cases passed"
exit $((fails > 0))
