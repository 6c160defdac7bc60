#!/usr/bin/env bash
# ctest preload_brk_persist: a program break kept in a pool file (shim/brk.c)
# across runs of brk_persist (see its header), under the preload library.
#   1. shared runs: each finds the last run's heap at the same addresses,
#      through sbrk(0) alone, and extends it (no `recover`: exit leaves the
#      file clean);
#   2. mode=private resumes from the file and changes nothing in it (cmp with
#      a copy); the next shared run does not see the private run's record;
#   2b. a run that execs itself: the new program resumes the break the old
#      one left;
#   2c. a run killed by SIGKILL: the file is refused without `recover` (the
#      break then uses the default region), and with it the break resumes
#      where the killed run had moved it;
#   3. a record that names no region (start not one page into a live large
#      block: edited in the header) gives one warning naming the file and a
#      fresh break in the pool, which the next run resumes;
#   4. a record out of range (the break beyond the pool) is refused like any
#      damaged record: one warning, a fresh break, the file attached.
# Header offsets (core/poolfile.h, struct pool_state from byte 2048):
# st.brk_start at 2520, st.brk_cur at 2528, capacity at 64.
# Usage: persist.sh LIBMMPOOL-PRELOAD BRK_PERSIST
set -euo pipefail
lib=$1 exe=$2
py=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-brk-persist.XXXXXX")
trap 'rm -rf "$dir"' EXIT
pool=$dir/legacy.pool
# The pool also serves malloc, so the break takes half of it, and a second
# region fits beside a first one (case 3).
shared="pool legacy file=$pool size=64M brk
default legacy"
private="pool legacy file=$pool size=64M mode=private brk
default legacy"
recover="pool legacy file=$pool size=64M recover brk
default legacy"

fail() {
  echo "persist: FAILED: $*" >&2
  exit 1
}

# run CONFIG ARGS...: runs brk_persist; its stdout in $out, its stderr in
# $err.
run() {
  local rc=0 cfg=$1
  shift
  out=$(env "LD_PRELOAD=$lib" "MMPOOL_CONFIG=$cfg" "$exe" "$@" 2>"$dir/err") ||
    rc=$?
  err=$(cat "$dir/err")
  echo "$ brk_persist $*  ->  $out"
  [[ -z $err ]] || echo "$err" | sed 's/^/  stderr: /'
  ((rc == 0)) || fail "brk_persist $* exited with status $rc"
}

# field NAME OFFSET [VALUE]: reads (or writes) a u64 of the header.
field() {
  "$py" - "$pool" "$2" "${3:-}" <<'PY'
import struct, sys
path, off, val = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "r+b") as f:
    f.seek(off)
    if val:
        f.write(struct.pack("<Q", int(val, 0)))
    else:
        print(struct.unpack("<Q", f.read(8))[0])
PY
}

region() { echo "$out" | awk '{print $2}'; }
breakp() { echo "$out" | awk '{print $4}'; }

# 1. Three shared runs.
run "$shared" new
first=$(region)
[[ $out == "region $first break "*" records 1" ]] || fail "run 1: '$out'"
run "$shared" 1
[[ $out == "region $first break "*" records 2" ]] || fail "run 2: '$out'"
[[ -z $err ]] || fail "run 2 printed on stderr"
run "$shared" 2
[[ $out == "region $first break "*" records 3" ]] || fail "run 3: '$out'"
b3=$(breakp)
start_off=$(field start 2520)
cur_off=$(field cur 2528)
((start_off > 0 && cur_off > start_off)) ||
  fail "no break record in the header ($start_off, $cur_off)"

# 2. A private run: resumes, appends in its copy, leaves the file alone.
cp "$pool" "$dir/copy.pool"
run "$private" 3
[[ $out == "region $first break "*" records 4" ]] || fail "private: '$out'"
cmp "$pool" "$dir/copy.pool" || fail "mode=private changed the pool file"
run "$shared" 3
[[ $out == "region $first break "*" records 4" ]] ||
  fail "the shared run after the private one: '$out'"

# 2b. exec: the second program resumes the first one's break.
run "$shared" 4 exec
[[ $out == "region $first break "*" records 5"$'\n'"region $first break "*" records 6" ]] ||
  fail "exec: '$out'"
[[ -z $err ]] || fail "the exec run printed on stderr"
run "$shared" 6
[[ $out == "region $first break "*" records 7" ]] || fail "after exec: '$out'"

# 2c. A run that dies: the header holds the break it had.
# (Through sh, whose "Killed" line is dropped with its stderr.)
rc=$(sh -c '"$@" >"$0"; echo $?' "$dir/out" env "LD_PRELOAD=$lib" \
  "MMPOOL_CONFIG=$shared" "$exe" 7 kill 2>/dev/null)
echo "$ brk_persist 7 kill  ->  $(cat "$dir/out") (status $rc)"
((rc == 128 + 9)) || fail "brk_persist 7 kill: status $rc, not 137"
run "$shared" new
[[ $err == *"$pool: not closed cleanly"* ]] ||
  fail "the killed run's file was attached without recover"
run "$recover" 8
[[ $out == "region $first break "*" records 9" ]] || fail "recover: '$out'"
[[ $err == *"was not closed cleanly; its metadata checked sound"* ]] ||
  fail "no line saying the file was recovered"

# 3. A record in range whose start is not one page into a block.
field start 2520 $((start_off + 16))
run "$shared" new
second=$(region)
[[ $out == "region $second break "*" records 1" ]] || fail "damaged: '$out'"
[[ $second != "$first" ]] || fail "the damaged record was resumed"
[[ $err == *"brk: pool 'legacy': $pool: the recorded start of the break"*"is not 4096 bytes into a live large block"*"the break starts afresh"* ]] ||
  fail "no warning naming the file and the fault"
(($(echo "$err" | wc -l) == 1)) || fail "more than one line on stderr"
run "$shared" 1
[[ $out == "region $second break "*" records 2" ]] ||
  fail "the fresh break was not recorded: '$out'"

# 4. A record out of range: the same, the file is not refused for it.
cap=$(field capacity 64)
field cur 2528 $((cap * 2))
run "$shared" new
[[ $err == *"brk: pool 'legacy': $pool: "*"the break starts afresh"* ]] ||
  fail "no warning for a record out of range: '$err'"
(($(echo "$err" | wc -l) == 1)) || fail "more than one line on stderr"
[[ $out == "region "*" records 1" ]] || fail "out of range: '$out'"
echo "persist: ok"
