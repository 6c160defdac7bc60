#!/usr/bin/env bash
# Lint of the exported API (label lint).
#
#   check_exports.sh library NM LIBRARY ALLOWLIST
#     The symbols LIBRARY defines in its dynamic symbol table
#     (nm -D --defined-only) must be exactly those of ALLOWLIST.
#   check_exports.sh header HEADER ALLOWLIST
#     ALLOWLIST must name exactly the functions HEADER declares with
#     MMPOOL_API, so the list cannot go stale when the API changes.
#
# ALLOWLIST: one symbol a line; blank lines and '#' comments are ignored.
# Exit 0 when the sets are equal; otherwise 1, listing every missing and every
# extra symbol.
set -euo pipefail

die() {
  echo "check_exports: $*" >&2
  exit 2
}

allowed() { # ALLOWLIST -> sorted names
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' | LC_ALL=C sort -u
}

# Prints the difference of two sorted files in words; returns 1 if any.
compare() { # WANT-FILE WANT-NAME HAVE-FILE HAVE-NAME
  local missing extra
  missing=$(LC_ALL=C comm -23 "$1" "$3")
  extra=$(LC_ALL=C comm -13 "$1" "$3")
  if [[ -z $missing && -z $extra ]]; then
    echo "check_exports: ok, $(wc -l <"$1") symbols: $4 matches $2"
    return 0
  fi
  echo "check_exports: FAILED: $4 does not match $2"
  if [[ -n $missing ]]; then
    echo "  in $2 but missing from $4:"
    sed 's/^/    - /' <<<"$missing"
  fi
  if [[ -n $extra ]]; then
    echo "  in $4 but not in $2:"
    sed 's/^/    + /' <<<"$extra"
  fi
  echo "--- diff -u $2 $4"
  diff -u --label "$2" --label "$4" "$1" "$3" || true
  return 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mode=${1:-}
case $mode in
library)
  (($# == 4)) || die "usage: $0 library NM LIBRARY ALLOWLIST"
  nm=$2 lib=$3 allow=$4
  [[ -f $lib ]] || die "no such library: $lib"
  [[ -f $allow ]] || die "no such allow-list: $allow"
  allowed "$allow" >"$tmp/want"
  # nm -D --defined-only prints "VALUE TYPE NAME". Type A marks version nodes
  # (version-script names such as MMPOOL_0), which are not symbols; a version
  # suffix (name@@VERS) is dropped. Every other defined symbol counts: code
  # (T, W, i), data (D, B, R, V, G, S) and anything new.
  "$nm" -D --defined-only "$lib" >"$tmp/nm" || die "$nm failed on $lib"
  awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" |
    LC_ALL=C sort -u >"$tmp/have"
  [[ -s $tmp/have ]] || die "$lib defines no dynamic symbols at all"
  compare "$tmp/want" "$(basename "$allow")" "$tmp/have" "$(basename "$lib")"
  ;;
header)
  (($# == 3)) || die "usage: $0 header HEADER ALLOWLIST"
  header=$2 allow=$3
  [[ -f $header ]] || die "no such header: $header"
  [[ -f $allow ]] || die "no such allow-list: $allow"
  allowed "$allow" >"$tmp/want"
  # A declaration starts with MMPOOL_API; its name is the first identifier
  # followed by '(' on that line (mmpool.h keeps name and '(' together).
  awk '/^[[:space:]]*MMPOOL_API[[:space:]]/ {
         if (match($0, /[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(/)) {
           name = substr($0, RSTART, RLENGTH)
           sub(/[[:space:]]*\($/, "", name)
           print name
         } else {
           print "UNPARSED: " $0
         }
       }' "$header" | LC_ALL=C sort -u >"$tmp/have"
  [[ -s $tmp/have ]] || die "no MMPOOL_API declaration found in $header"
  compare "$tmp/want" "$(basename "$allow")" "$tmp/have" "$(basename "$header")"
  ;;
*)
  die "usage: $0 library NM LIBRARY ALLOWLIST | header HEADER ALLOWLIST"
  ;;
esac
