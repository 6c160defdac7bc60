#!/usr/bin/env bash
# Python's own regression tests under the shim: 30 quick, deterministic
# modules of libpython3.11-testsuite (and those of PY_EXTRA_MODULES), run
# sequentially by Debian's
# /usr/bin/python3 (not the first python3 on PATH, which may be another
# build). Compared: the summary of `python3 -m test` (which tests ran, which
# passed, failed or were skipped; not the timings) and the exit status.
#
# The regression run itself does not get MMPOOL_LOG=info nor MMPOOL_STATS=1:
# the tests start child interpreters and assert that their stderr is empty,
# and the shim's lines would break them. Instead, a probe interpreter with
# the same environment plus both shows the pools opening and the
# allocations each took, and reports
# whether libmmpool-preload.so is in its memory map: it must be under the
# shim and must not be without. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/python3
[[ -f /usr/lib/python3.11/test/libregrtest/main.py ]] ||
  fail "Python's test suite is missing (libpython3.11-testsuite; run .ci/install-deps)"

export PY_MODULES="test_json test_re test_dict test_list test_set test_string
  test_unicode test_bytes test_collections test_functools test_itertools
  test_heapq test_bisect test_struct test_math test_textwrap test_difflib
  test_csv test_base64 test_hashlib test_pickle test_decimal test_fractions
  test_operator test_sort test_binascii test_int test_copy test_ordered_dict
  test_zlib ${PY_EXTRA_MODULES:-}"

workload() {
  local probe want=0 rc=0
  probe=$(/usr/bin/python3 -c '
import sys
print(int(any("libmmpool-preload" in l for l in open("/proc/self/maps"))))')
  [[ $MODE == shim ]] && want=1
  if [[ $probe != "$want" ]]; then
    echo "probe: libmmpool-preload.so mapped: $probe, expected $want" >&2
    return 3
  fi
  mkdir tmp
  # shellcheck disable=SC2086 # the module list is split on purpose
  TMPDIR=$PWD/tmp env -u MMPOOL_LOG -u MMPOOL_STATS /usr/bin/python3 -m test --timeout 120 \
    $PY_MODULES >regrtest.log 2>&1 || rc=$?
  sed -n '/^== Tests result/,$p' regrtest.log | grep -v '^Total duration'
  if [[ $rc != 0 ]]; then
    # What failed, for the stderr comparison to show.
    grep -E '^(FAIL|ERROR|Fatal Python error|Timeout)' regrtest.log >&2 || true
    tail -n 30 regrtest.log >&2
  fi
  return "$rc"
}

compare_runs workload
