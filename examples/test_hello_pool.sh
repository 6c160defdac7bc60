#!/usr/bin/env bash
# ctest example_hello_pool: hello_pool must exit 0 (it checks its own results)
# and print its report, ending with the pool closed.
# Usage: test_hello_pool.sh PATH-TO-hello_pool
set -euo pipefail
exe=$1
rc=0
out=$("$exe") || rc=$?
echo "$out"
if ((rc != 0)); then
  echo "test_hello_pool: FAILED: hello_pool exited with status $rc" >&2
  exit 1
fi
for want in '^pool "demo": base 0x[0-9a-f]+, capacity 256.0 MiB$' \
  '^root 0 -> "hello, pool"$' '^stats: 3 blocks in use' '^check: ok$' \
  '^after one free: 2 blocks in use' '^closed "demo"$'; do
  grep -Eq -- "$want" <<<"$out" || {
    echo "test_hello_pool: FAILED: no line matching /$want/" >&2
    exit 1
  }
done
echo "test_hello_pool: ok"
