#!/bin/sh
# run_life.sh LIB: process life under the preload library with a shared
# file pool (issue 12, items 1-3): the pool is left consistent at exit,
# before exec and at _exit, so the next run attaches it with no `recover`
# and nothing on stderr; fork children have their own copy; children that
# inherit the configuration while their parent holds the file run exactly
# as without the library (same output, same stderr); %p and %e in file=
# give each process its own file; a pool left while other threads still
# run (and allocate) is let go at one instant (the freeze), consistent.
set -u
lib=$(realpath "$1")
# Debian's python3 (a version manager's shim would start several processes)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
d=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-life.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
cfg="pool f file=$d/f.pool size=1G
default f"
run() { env LD_PRELOAD="$lib" MMPOOL_CONFIG="$cfg" "$@"; }
# The next process attaches the file cleanly: nothing on its stderr, and
# the pool is open (MMPOOL_LOG=info says so).
attaches_clean() {
  run env MMPOOL_LOG=info "$py" -c 'print("next")' >"$d/n.out" 2>"$d/n.err"
  if ! grep -q "pool 'f' open at .*file $d/f.pool" "$d/n.err" ||
    grep -v "open at\|config:" "$d/n.err" | grep -q .; then
    fail "$1: the next run does not attach the file cleanly:"
    cat "$d/n.err"
  fi
}

# exit (python), exit of a shell, exec (bash -c 'exec ...'), _exit (dash)
run "$py" -c 'x = [str(i) for i in range(200000)]; print(len(x))' \
  >"$d/o" 2>"$d/e" && test "$(cat "$d/o")" = 200000 && ! test -s "$d/e" ||
  fail "python on the file pool: $(cat "$d/e")"
attaches_clean "exit"
run bash -c 'x=$(echo a); exec "$0" -c "print(2)"' "$py" >"$d/o" 2>"$d/e" &&
  test "$(cat "$d/o")" = 2 && ! test -s "$d/e" || fail "exec: $(cat "$d/e")"
attaches_clean "exec"
run sh -c 'ls / >/dev/null; echo a | cat' >"$d/o" 2>"$d/e" &&
  test "$(cat "$d/o")" = a && ! test -s "$d/e" || fail "dash: $(cat "$d/e")"
attaches_clean "_exit (dash)"

# Children that inherit the configuration, their parent holding the file:
# output and stderr as without the library.
script='x=$(echo hi); echo "[$x]"; sh -c "ls / | head -3; echo a | cat"
$py -c "import subprocess, sys
r = subprocess.run([\"sh\", \"-c\", \"echo sub; echo err >&2\"], capture_output=True, text=True)
print(r.stdout.strip(), r.stderr.strip()); print(\"warn\", file=sys.stderr)"
$py -c "
import multiprocessing as mp
def f(n): return n * n
with mp.Pool(3) as p: print(sum(p.map(f, range(100))))"'
py=$py bash -c "$script" >"$d/ref" 2>&1
run env py="$py" bash -c "$script" >"$d/out" 2>&1
cmp -s "$d/ref" "$d/out" || {
  fail "children: output differs from a run without the library"
  diff "$d/ref" "$d/out"
}
attaches_clean "children"

# A fork child's stores do not reach the parent (python, large blocks).
run "$py" -c '
import os
big = bytearray(8 << 20)
pid = os.fork()
if pid == 0:
    big[0] = 1
    x = [bytearray(100000) for _ in range(30)]
    os._exit(0 if big[0] == 1 else 3)
_, st = os.waitpid(pid, 0)
print(st, big[0])' >"$d/o" 2>"$d/e"
test "$(cat "$d/o")" = "0 0" && ! test -s "$d/e" ||
  fail "fork: child status and parent byte: $(cat "$d/o") $(cat "$d/e")"

# %p and %e: each process its own file.
env LD_PRELOAD="$lib" MMPOOL_CONFIG="pool f file=$d/p-%e-%p.pool size=1G
default f" bash -c 'sh -c true; sh -c true; true' 2>"$d/e" || fail "%p: $(cat "$d/e")"
n=$(ls "$d" | grep -c '^p-.*[0-9]\.pool$')
test "$n" -ge 3 || fail "%p: $n files, expected one per process (3+)"
ls "$d" | grep -q '^p-bash-[0-9]*\.pool$' || fail "%e: no p-bash-PID.pool"

# Other threads still running, and allocating, at exit: the file is let go
# at one instant all the same (core/heap.c, heap_freeze), so the next run
# attaches it without `recover`, and nothing is said.
for i in 1 2 3; do
  run "$py" -c '
import threading, time
def churn():
    while True:
        x = [bytes(64) for _ in range(1000)]
        d = {i: str(i) for i in range(500)}
for _ in range(3):
    threading.Thread(target=churn, daemon=True).start()
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
time.sleep(0.2)
print("bye")' >"$d/o" 2>"$d/e"
  test -s "$d/e" && fail "exit with threads running ($i): $(cat "$d/e")"
  run "$py" -c 'print(1)' >/dev/null 2>"$d/e"
  test -s "$d/e" && fail "after exit with threads running ($i): $(cat "$d/e")"
done

if [ "$fails" -ne 0 ]; then
  echo "run_life: $fails failure(s)"
  exit 1
fi
echo "run_life: all cases passed"
