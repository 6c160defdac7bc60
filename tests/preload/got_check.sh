#!/bin/sh
# got_check.sh EXPECT PROG ARGS...: runs PROG (under the LD_PRELOAD and
# MMPOOL_CONFIG of the test) with MMPOOL_LOG=debug. PROG must exit 0 and
# print "ok". EXPECT=patched: the shim must log that PROG's own calls to
# malloc go through the entry point of class 1 (shim/got.c); EXPECT=kept:
# it must not (PROG was linked with -z now: its GOT is read-only).
set -u
expect=$1
shift
err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$(MMPOOL_LOG=debug "$@" 2>"$err")
rc=$?
if [ $rc -ne 0 ] || [ "$out" != ok ]; then
  echo "got_check: $1 exited $rc, printed: $out"
  cat "$err"
  exit 1
fi
line="lib= routes: $1 calls malloc through the entry of class 1"
if grep -qF "$line" "$err"; then found=patched; else found=kept; fi
if [ "$found" != "$expect" ]; then
  echo "got_check: expected $expect, the log says $found ('$line')"
  cat "$err"
  exit 1
fi
echo "got_check: $expect as expected"
