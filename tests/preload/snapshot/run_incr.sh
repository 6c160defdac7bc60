#!/bin/sh
# run_incr.sh LIB TOOL: incremental snapshots of an unmodified program
# (issue 14, item 2), taken by the preload library on a signal:
# - the first snapshot is whole and says nothing on stderr; the next ones
#   are incremental (a delta each), write a small part of what a whole one
#   writes when little changed, and `mmpool info DIR` says which is which
#   and why;
# - every snapshot passes `mmpool check DIR`, and the last one (an
#   incremental one, at exit) restarts with `mmpool run --from`: the
#   program's last words are there;
# - the directory holds the manifest, its image and its deltas;
# - MMPOOL_STATS=1 counts the incremental ones;
# - snapshot-incremental=no: every one whole, and info says so; the
#   previous one's image is kept hidden as well, for the next to rewrite.
set -u
prefix=mmpool-incr
. "$(dirname "$0")/common.sh"
field() { "$tool" info --json "$1" 2>/dev/null |
  sed -n "s/.*\"snapshot\": {[^}]*\"$2\": \"*\([a-z0-9]*\).*/\1/p"; }

# A program that builds about 40 MiB of heap, then at each go file changes
# one small string and says so, and ends at the last.
prog='
import ctypes, os, sys, time
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.mmpool_get.restype = ctypes.c_void_p
libc.mmpool_get.argtypes = [ctypes.c_char_p]
libc.mmpool_set_root.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]
big = [bytearray(os.urandom(1 << 20)) for _ in range(40)]
note = libc.malloc(64)
def say(s):
    ctypes.memmove(note, s.encode() + b"\0", len(s) + 1)
say("step 0")
assert libc.mmpool_set_root(libc.mmpool_get(b"default"), 0, note) == 0
for k in range(1, 5):
    open(sys.argv[1] + str(k), "w").close()
    while not os.path.exists(sys.argv[2] + str(k)): time.sleep(0.01)
    big[k][0:4] = b"step"
    say("step %d" % k)
print("done")
'
run() {  # CONFIG-EXTRA DIR
  rm -f "$d"/ready* "$d"/go*
  cfg="pool default anon snapshot=$2 snapshot-on=signal:USR2,exit $1"
  env LD_PRELOAD="$lib" MMPOOL_CONFIG="$cfg" MMPOOL_STATS=1 "$py" -c "$prog" \
    "$d/ready" "$d/go" >"$d/p.out" 2>"$d/p.err" &
  pid=$!
  for k in 1 2 3 4; do
    n=0
    while ! test -e "$d/ready$k" && test $n -lt 600; do
      sleep 0.05
      n=$((n + 1))
    done
    "$tool" snapshot $pid >"$d/t$k.out" 2>"$d/t.err" ||
      fail "mmpool snapshot $pid: $(cat "$d/t$k.out" "$d/t.err")"
    checks "$2" "snapshot $k"
    "$tool" info "$2" >"$d/i$k.out" 2>&1 || fail "info: $(cat "$d/i$k.out")"
    cp "$d/i$k.out" "$d/i$k.txt"
    eval "bytes$k=$(field "$2" bytes)"
    eval "kind$k=$(field "$2" written)"
    touch "$d/go$k"
  done
  wait $pid || fail "the program failed: $(cat "$d/p.err")"
  test "$(cat "$d/p.out")" = done || fail "program output: $(cat "$d/p.out")"
  checks "$2" "exit"
}

run "" "$d/s"
test "$kind1 $kind2 $kind3 $kind4" = "full incremental incremental incremental" ||
  fail "kinds: $kind1 $kind2 $kind3 $kind4"
grep -q "^written .* bytes, full: no earlier snapshot" "$d/i1.txt" ||
  fail "info of the first: $(cat "$d/i1.txt")"
grep -q "^written .* bytes, incremental (1 of 1 pools; a full snapshot writes" \
  "$d/i4.txt" || fail "info of the fourth: $(cat "$d/i4.txt")"
grep -Eq "^  default .*\+ 3 deltas .*\(incremental\)$" "$d/i4.txt" ||
  fail "info of the fourth, its pool: $(cat "$d/i4.txt")"
grep -q "incremental, pause" "$d/t4.out" ||
  fail "mmpool snapshot says: $(cat "$d/t4.out")"
# A little changed between the third and the fourth: a few pages.
test $((bytes4 * 20)) -lt "$bytes1" ||
  fail "an incremental snapshot wrote $bytes4 bytes, a whole one $bytes1"
test "$(field "$d/s" written)" = incremental ||
  fail "the snapshot at exit: $(field "$d/s" written)"
# The incremental ones are small: taken without a copy of the process,
# unless the program wrote during one (then with a copy, core/snapshot.c).
grep -Eq "snapshots: 4 taken, 0 failed \(3 incremental, [0-3] without a copy of the process\)" "$d/p.err" ||
  fail "MMPOOL_STATS: $(grep snapshot "$d/p.err")"
# Nothing on stderr but the statistics: whole first snapshots are no fault.
grep -v "^mmpool: \(stats\|allocated\|pool\|  \|snapshots\)" "$d/p.err" |
  grep -q . && fail "stderr: $(cat "$d/p.err")"
# The manifest, the first image and the four deltas after it (the last
# at exit); nothing hidden (no image was replaced).
test "$(ls -A "$d/s" | tr '\n' ' ')" = "default.1.pool default.2.delta default.3.delta default.4.delta default.5.delta manifest " ||
  fail "files: $(ls -A "$d/s")"
env MMPOOL_CONFIG="pool default anon" "$tool" run --from "$d/s" -- "$py" -c '
import ctypes
libc = ctypes.CDLL(None)
libc.mmpool_get.restype = ctypes.c_void_p
libc.mmpool_get.argtypes = [ctypes.c_char_p]
libc.mmpool_get_root.restype = ctypes.c_char_p
libc.mmpool_get_root.argtypes = [ctypes.c_void_p, ctypes.c_uint]
print(libc.mmpool_get_root(libc.mmpool_get(b"default"), 0).decode())' \
  >"$d/r.out" 2>"$d/r.err" || fail "run --from: $(cat "$d/r.err")"
test "$(cat "$d/r.out")" = "step 4" || fail "run --from: $(cat "$d/r.out" "$d/r.err")"

run "snapshot-incremental=no" "$d/f"
test "$kind1 $kind2 $kind3 $kind4" = "full full full full" ||
  fail "snapshot-incremental=no: $kind1 $kind2 $kind3 $kind4"
grep -q "^written .* bytes, full: snapshot-incremental=no" "$d/i4.txt" ||
  fail "info, snapshot-incremental=no: $(cat "$d/i4.txt")"
# The previous snapshot's image is kept hidden there too: the next whole
# snapshot rewrites it in place.
test "$(ls "$d/f" | wc -l)" = 2 || fail "files: $(ls -A "$d/f")"
test "$(ls -A "$d/f" | grep -c '^\.prev\.')" = 1 ||
  fail "kept images: $(ls -A "$d/f")"

test $fails -eq 0 && echo "all incremental snapshot cases passed"
exit $((fails > 0))
