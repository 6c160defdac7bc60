#!/bin/sh
# run_snapshot.sh LIB TOOL: snapshots of an unmodified program's heap
# (issue 14, items 1, 3 and 5), taken by the preload library as its
# configuration asks (snapshot=DIR snapshot-on=...):
# - signal: `mmpool snapshot PID` sends the signal and waits for the new
#   manifest; the program runs on, its output unchanged;
# - exit: the last snapshot is the program's heap at exit;
# - interval: snapshots come by themselves while the program runs;
# - two pools with a size route: the snapshot holds both, and `mmpool info`
#   counts pointers from one into the other;
# - fork children inherit the configuration and take none;
# - a directory others may write: one line naming it, at start, and the
#   program's output is untouched;
# - programs it starts (sh, sleep) inherit the configuration and find the
#   directory taken: they take none and say nothing;
# - MMPOOL_STATS=1 counts the snapshots;
# - `mmpool run --from DIR` restarts a program on the snapshot: its pools
#   come back from the images (a root set before is there), and the
#   snapshot is left as it was; a damaged one is refused before it starts;
# - damaged manifests, cut ones and foreign images are refused by check,
#   info and run --from, each with its reason.
# Each snapshot passes `mmpool check DIR`; each image attaches (mmpool info);
# `mmpool map DIR` draws every pool of it.
set -u
prefix=mmpool-snap
. "$(dirname "$0")/common.sh"
serial() { "$tool" info --json "$1" 2>/dev/null |
  sed -n 's/.*"serial": \([0-9]*\).*/\1/p'; }

# signal, then exit: a program that builds a heap, waits for a file, then
# changes its heap and ends.
prog='
import ctypes, os, sys, time
d = {i: ("v%d" % i) * 20 for i in range(50000)}
big = [bytearray(100000) for _ in range(20)]
# 1000 small blocks (the default pool) that point to big ones (size route)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
small = []
for i in range(1000):
    s = libc.malloc(16)
    ctypes.c_void_p.from_address(s).value = libc.malloc(8192)
    small.append(s)
# a root, for the restart below
libc.mmpool_get.restype = ctypes.c_void_p
libc.mmpool_get.argtypes = [ctypes.c_char_p]
libc.mmpool_set_root.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]
note = libc.malloc(64)
ctypes.memmove(note, b"kept-by-the-snapshot\0", 21)
assert libc.mmpool_set_root(libc.mmpool_get(b"default"), 0, note) == 0
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]): time.sleep(0.01)
d2 = [str(i) for i in range(100000)]
print("done", len(d), len(d2))
'
cfg="pool default anon snapshot=$d/s1 snapshot-on=signal:USR2,exit
pool big anon
route size>=4096 -> big"
env LD_PRELOAD="$lib" MMPOOL_CONFIG="$cfg" MMPOOL_STATS=1 "$py" -c "$prog" \
  "$d/ready" "$d/go" >"$d/p.out" 2>"$d/p.err" &
pid=$!
n=0
while ! test -e "$d/ready" && test $n -lt 600; do sleep 0.05; n=$((n + 1)); done
"$tool" snapshot $pid >"$d/t.out" 2>"$d/t.err" ||
  fail "mmpool snapshot $pid: $(cat "$d/t.out" "$d/t.err")"
grep -q "^snapshot 1 of process $pid in $d/s1: 2 pools" "$d/t.out" ||
  fail "mmpool snapshot says: $(cat "$d/t.out")"
checks "$d/s1" "signal"
"$tool" info "$d/s1" >"$d/i.out" 2>&1 || fail "info: $(cat "$d/i.out")"
grep -Eq "^  default +-> big +[1-9][0-9][0-9][0-9]" "$d/i.out" ||
  fail "no pointers from default into big: $(cat "$d/i.out")"
"$tool" map "$d/s1" -o "$d/s1.svg" >"$d/m.out" 2>&1 || fail "map: $(cat "$d/m.out")"
/usr/bin/python3 -c '
import sys, xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
r = E.parse(sys.argv[1]).getroot()
ids = [g.get("id") for s in r.findall(ns + "svg") for g in s.findall(ns + "g")]
assert sorted(ids) == ["cells-big", "cells-default", "legend-big", "legend-default"], ids
assert "snapshot 1 of python3" in r.find(ns + "text").text' "$d/s1.svg" ||
  fail "map of the snapshot: $(head -c 600 "$d/s1.svg")"
touch "$d/go"
wait $pid || fail "the program failed: $(cat "$d/p.err")"
test "$(cat "$d/p.out")" = "done 50000 100000" ||
  fail "program output: $(cat "$d/p.out")"
test "$(serial "$d/s1")" = 2 || fail "no snapshot at exit: $(serial "$d/s1")"
checks "$d/s1" "exit"
grep -q "snapshots: 1 taken, 0 failed" "$d/p.err" ||
  fail "MMPOOL_STATS: $(grep snapshot "$d/p.err")"
grep -v "^mmpool: \(stats\|allocated\|pool\|  \|snapshots\)" "$d/p.err" |
  grep -q . && fail "stderr: $(cat "$d/p.err")"
# Only the manifest, the images and the deltas of the last snapshot remain
# (the one at exit is a delta after the one on the signal).
test "$(ls "$d/s1" | grep -c '\.[0-9]*\.pool$')" = 2 &&
  test "$(ls "$d/s1" | grep -c '\.2\.delta$')" = 2 &&
  test "$(ls "$d/s1" | wc -l)" = 5 || fail "files left: $(ls "$d/s1")"
for f in "$d"/s1/*.pool; do
  "$tool" info "$f" >/dev/null 2>&1 || fail "mmpool info $f"
done

# Restart from it: `mmpool run --from` opens both pools from their images;
# the root is there. The snapshot is not written (private mapping).
before=$(cat "$d"/s1/* | md5sum)
env MMPOOL_CONFIG="pool default anon; pool big anon; route size>=4096 -> big" \
  "$tool" run --from "$d/s1" -- "$py" -c '
import ctypes
libc = ctypes.CDLL(None)
libc.mmpool_get.restype = ctypes.c_void_p
libc.mmpool_get.argtypes = [ctypes.c_char_p]
libc.mmpool_get_root.restype = ctypes.c_char_p
libc.mmpool_get_root.argtypes = [ctypes.c_void_p, ctypes.c_uint]
print(libc.mmpool_get_root(libc.mmpool_get(b"default"), 0).decode())
print(bool(libc.mmpool_get(b"big")))' >"$d/r.out" 2>"$d/r.err" ||
  fail "run --from: $(cat "$d/r.err")"
test "$(cat "$d/r.out")" = "kept-by-the-snapshot
True" || fail "run --from: $(cat "$d/r.out" "$d/r.err")"
test "$(cat "$d"/s1/* | md5sum)" = "$before" || fail "run --from wrote the snapshot"
# A damaged snapshot stops the tool before the program starts.
cp -r "$d/s1" "$d/bad"
printf 'x' | dd of="$d/bad/manifest" bs=1 seek=300 conv=notrunc 2>/dev/null
"$tool" run --from "$d/bad" -- true >"$d/r.out" 2>&1
test $? = 125 && grep -q "manifest checksum mismatch" "$d/r.out" ||
  fail "run --from a damaged snapshot: $(cat "$d/r.out")"

# interval, and fork children (they inherit the configuration, take none)
cfg="pool default anon snapshot=$d/s2 snapshot-on=interval:1s"
env LD_PRELOAD="$lib" MMPOOL_CONFIG="$cfg" "$py" -c '
import os, time, subprocess
x = [str(i) for i in range(100000)]
for _ in range(3):
    if os.fork() == 0:
        time.sleep(1.2); os._exit(0)
subprocess.run(["sh", "-c", "sleep 1.2"])
time.sleep(2.5)
while os.waitpid(-1, os.WNOHANG)[0] if False else False: pass
try:
    while True: os.wait()
except ChildProcessError: pass
print(len(x))' >"$d/p.out" 2>"$d/p.err" || fail "interval program failed"
test "$(cat "$d/p.out")" = 100000 || fail "interval output: $(cat "$d/p.out")"
test -s "$d/p.err" && fail "interval stderr: $(cat "$d/p.err")"
s=$(serial "$d/s2")
test -n "$s" && test "$s" -ge 2 || fail "interval: serial '$s' after 3.7 s"
checks "$d/s2" "interval"
# The manifest names the parent (no child replaced it with its copy).
"$tool" info "$d/s2" | grep -q "(pid $!)\|of python3 (pid" ||
  fail "interval: $("$tool" info "$d/s2")"

# A directory others may write: one line at the first failure, not one
# per try; the program runs on.
mkdir -m 777 "$d/open"
chmod 777 "$d/open"
cfg="pool default anon snapshot=$d/open snapshot-on=interval:1s,exit"
env LD_PRELOAD="$lib" MMPOOL_CONFIG="$cfg" "$py" -c '
import time; time.sleep(3.3); print("ok")' >"$d/p.out" 2>"$d/p.err" ||
  fail "open dir: the program failed"
test "$(cat "$d/p.out")" = ok || fail "open dir output: $(cat "$d/p.out")"
test "$(grep -c "may be written by group or others" "$d/p.err")" = 1 ||
  fail "open dir: want one line: $(cat "$d/p.err")"
test -e "$d/open/manifest" && fail "open dir: a snapshot was written"

# Damaged and foreign snapshots: refused by check and info with a reason.
cp -r "$d/s1" "$d/h1"
printf 'x' | dd of="$d/h1/manifest" bs=1 seek=77 conv=notrunc 2>/dev/null
"$tool" check "$d/h1" >"$d/h.out" 2>&1 && fail "check took a damaged manifest"
grep -q "manifest checksum mismatch" "$d/h.out" || fail "check: $(cat "$d/h.out")"
"$tool" info "$d/h1" >"$d/h.out" 2>&1 && fail "info took a damaged manifest"
grep -q "manifest checksum mismatch" "$d/h.out" || fail "info: $(cat "$d/h.out")"
cp -r "$d/s1" "$d/h2"
truncate -s 100 "$d/h2/manifest"
"$tool" check "$d/h2" >"$d/h.out" 2>&1 && fail "check took a cut manifest"
grep -q "not an mmpool snapshot manifest" "$d/h.out" || fail "cut: $(cat "$d/h.out")"
# An image of another snapshot, under the name the manifest gives.
cp -r "$d/s1" "$d/h3"
# (The manifest follows it with a delta, which applies to its own image
# only: that is what refuses it.)
# refused DIR PATTERN WHAT: info and check refuse DIR saying PATTERN, and
# run --from says it (the program then starts without the snapshot).
refused() {
  for c in info check; do
    "$tool" $c "$1" >"$d/h.out" 2>&1 && fail "$c took $3"
    grep -q "$2" "$d/h.out" || fail "$c, $3: $(cat "$d/h.out")"
  done
  "$tool" run --from "$1" -- true >"$d/h.out" 2>&1
  grep -q "$2" "$d/h.out" || fail "run --from, $3: $(cat "$d/h.out")"
}
img=$(ls "$d/h3" | grep '^default\..*\.pool$')
cp "$d/s2/$(ls "$d/s2" | grep '^default\..*\.pool$')" "$d/h3/$img"
refused "$d/h3" "default.2.delta: applies to" "a foreign image"
# A delta of another snapshot, under the name the manifest gives.
cp -r "$d/s1" "$d/h4"
cp "$d/h4/big.2.delta" "$d/h4/default.2.delta"
refused "$d/h4" "default.2.delta: applies to" "a foreign delta"
# A cut delta.
cp -r "$d/s1" "$d/h5"
truncate -s 5000 "$d/h5/big.2.delta"
refused "$d/h5" "big.2.delta: delta of 5000 bytes says" "a cut delta"

# The writer of a snapshot is waited for before an exec: the program exec
# starts in the process inherits no child from it (`read` is a builtin of
# sh: it starts no child itself).
env LD_PRELOAD="$lib" MMPOOL_CONFIG="pool default anon" "$py" -c '
import ctypes, os, sys
libc = ctypes.CDLL(None)
for _ in range(3):
    assert libc.mmpool_snapshot(sys.argv[1].encode()) == 0
os.execv("/bin/sh", ["sh", "-c",
         "read c < /proc/$$/task/$$/children; echo \"[$c]\""])' \
  "$d/x1" >"$d/x.out" 2>&1
test "$(cat "$d/x.out")" = "[]" ||
  fail "children after exec: $(cat "$d/x.out")"

# A program without snapshot-on=signal is sent nothing.
env LD_PRELOAD="$lib" "$py" -c 'import time; time.sleep(2)' &
pid=$!
sleep 0.3
"$tool" snapshot $pid >"$d/t.out" 2>"$d/t.err" &&
  fail "snapshot of a program that takes none succeeded"
grep -q "takes no snapshot on a signal" "$d/t.err" ||
  fail "snapshot refusal: $(cat "$d/t.err")"
wait $pid || fail "the program was hurt by the refusal"

test $fails -eq 0 && echo "all snapshot cases passed"
exit $((fails > 0))
