#!/usr/bin/env bash
# full_fs.sh PRELOAD_LIB PROBE probe|python: a file pool on a full file
# system (issue 12, item 4). Blocks of 64 KiB and more go to a shared file
# pool on a 4 MiB tmpfs (mounted here when we may: root), or, when mounting
# is not allowed, on any file system under RLIMIT_FSIZE of 4 MiB (SIGXFSZ
# ignored: the kernel then answers EFBIG). The program must keep running on
# the default pool (full=fallback): no SIGBUS, no NULL, and the MMPOOL_STATS
# report counts the fallbacks by reason. On the tmpfs, the pool grows to
# what the file system holds (page_grow retries a step that does not fit
# with the exact size).
#   probe   full_probe fill 32: 32 MiB in blocks of 100 KiB, malloc and calloc
#   python  python3 allocates 50 MB of bytes objects (calloc and malloc)
set -u
lib=$1 probe=$2 mode=$3
dir=$(mktemp -d) || exit 1
mounted=0
cleanup() {
  [[ $mounted == 1 ]] && umount "$dir/fs"
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/fs"
if [[ $(id -u) == 0 ]] && mount -t tmpfs -o size=4m tmpfs "$dir/fs" 2>/dev/null; then
  mounted=1 reason=ENOSPC
else
  ulimit -f 4096 # KiB
  trap '' XFSZ
  reason=EFBIG
fi
config="pool f file=$dir/fs/f.pool size=1G
route size>=64K -> f"
case $mode in
  probe) cmd=("$probe" fill 32) want=ok ;;
  python)
    [[ -x /usr/bin/python3 ]] || { echo "python3 is missing"; exit 1; }
    cmd=(/usr/bin/python3 -c 'l = [bytes(100000) for _ in range(250)] + [b"x" * 100000 for _ in range(250)]
print(sum(map(len, l)))')
    want=50000000 ;;
esac
out=$(env LD_PRELOAD="$lib" MMPOOL_CONFIG="$config" MMPOOL_STATS=1 \
      "${cmd[@]}" 2>"$dir/err")
rc=$?
cat "$dir/err"
echo "status $rc, stdout: $out (file system: $([[ $mounted == 1 ]] && echo tmpfs 4m || echo RLIMIT_FSIZE 4m))"
[[ $rc == 0 && $out == "$want" ]] || { echo "FAIL: status or output"; exit 1; }
grep -Eq "^mmpool:   fallbacks: [0-9]+ \(.*$reason [0-9]+" "$dir/err" ||
  { echo "FAIL: no 'fallbacks: N ($reason N)' line for pool f"; exit 1; }
# Growth retries with the exact size: the 2 MiB step that no longer fits
# the 4 MiB file system must not end the pool's growth (without the retry
# the pool stops at about 2 MiB of blocks: 16 of 128 KiB).
if [[ $mounted == 1 && $mode == probe ]]; then
  n=$(sed -n '/^mmpool: pool f:/,/^mmpool: pool /s/^mmpool:   allocated since start: \([0-9]*\) blocks.*/\1/p' "$dir/err")
  [[ ${n:-0} -ge 20 ]] ||
    { echo "FAIL: pool f took ${n:-0} blocks of 100 KiB, not 20 or more"; exit 1; }
fi
echo PASS
