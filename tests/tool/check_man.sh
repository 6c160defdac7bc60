#!/usr/bin/env bash
# The manual pages of docs/man (label tool). Needs man-db and groff-base
# (.ci/install-deps installs them).
#
#   check_man.sh render MAN1 MAN3 HEADER VERSION TOOL
#     Each page renders with man-db (MANWIDTH=80, every groff warning on)
#     without a warning and without a line wider than 80 columns; every
#     "mmpool X.Y.Z" in them is VERSION; mmpool.3 names and declares every
#     MMPOOL_API function of HEADER; mmpool.1 has every command and every
#     environment variable that `TOOL help` lists, and the options that
#     `TOOL help run` lists.
#   check_man.sh example CC INCLUDE_DIR LIB_DIR MAN3
#     The program of mmpool.3's EXAMPLES, as the rendered page shows it,
#     compiles without a warning against INCLUDE_DIR and LIB_DIR's
#     libmmpool.so, and prints what the page says at its first and second
#     run.
#   check_man.sh install CMAKE BUILD_DIR MANDIR MAN1 MAN3 HEADER
#     `cmake --install BUILD_DIR --prefix P` puts the two pages under
#     P/MANDIR/man1 and man3, and a page for each MMPOOL_API function that
#     `man -M P/MANDIR 3 FUNCTION` renders as mmpool(3).
# Exit 0 when every check passes; else 1, with each fault on stderr.
set -euo pipefail
export LC_ALL=C.UTF-8

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
die() {
  echo "check_man: $*" >&2
  exit 1
}
need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 ||
      die "'$c' is not installed (run .ci/install-deps)"
  done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mmpool-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# render PAGE OUT: man-db's rendering as a reader sees it; any message on
# stderr (a groff warning, a man-db complaint) is a failure.
render() {
  local page=$1 out=$2
  if ! MANWIDTH=80 MAN_KEEP_FORMATTING= man --warnings=w -E UTF-8 -l "$page" \
    >"$out" 2>"$tmp/err"; then
    fail "man -l $page failed: $(cat "$tmp/err")"
  elif [[ -s $tmp/err ]]; then
    fail "man -l $page warned:"$'\n'"$(cat "$tmp/err")"
  elif [[ ! -s $out ]]; then
    fail "man -l $page printed nothing"
  fi
}

# The MMPOOL_API functions of HEADER (the lint test's parse), sorted.
api_functions() {
  awk '/^[[:space:]]*MMPOOL_API[[:space:]]/ {
         if (match($0, /[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(/)) {
           name = substr($0, RSTART, RLENGTH)
           sub(/[[:space:]]*\($/, "", name)
           print name
         }
       }' "$1" | LC_ALL=C sort -u
}

# section TEXT NAME: the lines of the rendered section NAME.
section() {
  awk -v want="$2" '/^[A-Z][A-Z ]*$/ { on = ($0 == want); next } on' "$1"
}

mode=${1:-}
case $mode in
render)
  (($# == 6)) || die "usage: $0 render MAN1 MAN3 HEADER VERSION TOOL"
  man1=$2 man3=$3 header=$4 version=$5 tool=$6
  need man groff
  for page in "$man1" "$man3"; do
    out="$tmp/$(basename "$page").txt"
    render "$page" "$out"
    wide=$(awk 'length > 80 { printf "%d: %s\n", NR, $0 }' "$out")
    [[ -z $wide ]] || fail "$page: lines wider than 80 columns:"$'\n'"$wide"
    # Every version the page states is this build's.
    while read -r v; do
      [[ $v == "mmpool $version" ]] || fail "$page says '$v', not 'mmpool $version'"
    done < <(grep -o 'mmpool [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' "$page")
    grep -q "^\.TH .*\"mmpool $version\"" "$page" ||
      fail "$page: its .TH line does not name mmpool $version"
  done
  txt1="$tmp/$(basename "$man1").txt" txt3="$tmp/$(basename "$man3").txt"

  # mmpool(3): the NAME line and the SYNOPSIS hold every function.
  api_functions "$header" >"$tmp/api"
  [[ -s $tmp/api ]] || die "no MMPOOL_API function found in $header"
  section "$txt3" NAME | tr -s ' ,\n' '\n' | grep '^mmpool_' |
    LC_ALL=C sort -u >"$tmp/named"
  if ! diff -u --label "$header" --label "mmpool.3 NAME" "$tmp/api" \
    "$tmp/named" >"$tmp/diff"; then
    fail "mmpool.3's NAME does not list the API:"$'\n'"$(cat "$tmp/diff")"
  fi
  section "$txt3" SYNOPSIS >"$tmp/synopsis3"
  while read -r f; do
    grep -q "[ *]$f(" "$tmp/synopsis3" ||
      fail "mmpool.3's SYNOPSIS does not declare $f"
  done <"$tmp/api"

  # mmpool(1): the commands and variables of `mmpool help`, the options of
  # `mmpool help run`.
  "$tool" help >"$tmp/help" || die "$tool help failed"
  "$tool" help run >"$tmp/help_run" || die "$tool help run failed"
  awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }' \
    "$tmp/help" >"$tmp/commands"
  (($(wc -l <"$tmp/commands") >= 9)) || die "'$tool help' lists no commands"
  section "$txt1" SYNOPSIS >"$tmp/synopsis1"
  while read -r c; do
    grep -q "^ *mmpool $c\b" "$tmp/synopsis1" ||
      fail "mmpool.1's SYNOPSIS lacks 'mmpool $c'"
    grep -q "^ *mmpool $c\b" <(section "$txt1" COMMANDS) ||
      fail "mmpool.1's COMMANDS does not describe 'mmpool $c'"
  done <"$tmp/commands"
  grep -o '^  MMPOOL_[A-Z_]*' "$tmp/help" | tr -d ' ' >"$tmp/vars"
  [[ -s $tmp/vars ]] || die "'$tool help' lists no variables"
  section "$txt1" ENVIRONMENT >"$tmp/environment"
  while read -r v; do
    grep -q "^       $v\$" "$tmp/environment" ||
      fail "mmpool.1's ENVIRONMENT does not describe $v"
  done <"$tmp/vars"
  for o in -c --config --stats --explain --help; do
    grep -q -- "$o" "$tmp/help_run" || die "'$tool help run' lacks $o"
    grep -q -- "^       $o\b\|, $o\b" <(section "$txt1" COMMANDS) ||
      fail "mmpool.1 does not describe 'mmpool run $o'"
  done
  ;;
example)
  (($# == 5)) || die "usage: $0 example CC INCLUDE_DIR LIB_DIR MAN3"
  cc=$2 inc=$3 libdir=$4 man3=$5
  need man groff
  render "$man3" "$tmp/man3.txt"
  ((failures == 0)) || exit 1
  # The program: from its first #include to the closing brace of main, as
  # the reader copies it (the page's indentation removed).
  section "$tmp/man3.txt" EXAMPLES | sed 's/^              //' |
    awk '/^#include/ { on = 1 } on { print } on && /^}$/ { exit }' \
      >"$tmp/list.c"
  grep -q 'int main' "$tmp/list.c" || die "no program in mmpool.3's EXAMPLES"
  if ! "$cc" -std=gnu11 -Wall -Wextra -Werror -I "$inc" -o "$tmp/list" \
    "$tmp/list.c" -L "$libdir" -lmmpool -Wl,-rpath,"$libdir" 2>"$tmp/cc"; then
    cat -n "$tmp/list.c" >&2
    die "the example does not compile:"$'\n'"$(cat "$tmp/cc")"
  fi
  mkdir "$tmp/run"
  (cd "$tmp/run" && "$tmp/list") >"$tmp/out1" 2>&1 ||
    fail "first run failed: $(cat "$tmp/out1")"
  (cd "$tmp/run" && "$tmp/list") >"$tmp/out2" 2>&1 ||
    fail "second run failed: $(cat "$tmp/out2")"
  [[ $(cat "$tmp/out1") == "run 1" ]] ||
    fail "first run printed '$(cat "$tmp/out1")', not 'run 1'"
  [[ $(cat "$tmp/out2") == $'run 2\nrun 1' ]] ||
    fail "second run printed '$(cat "$tmp/out2")', not 'run 2' and 'run 1'"
  [[ -f $tmp/run/list.pool ]] || fail "no list.pool in the directory"
  ;;
install)
  (($# == 7)) || die "usage: $0 install CMAKE BUILD_DIR MANDIR MAN1 MAN3 HEADER"
  cmake=$2 build=$3 mandir=$4 man1=$5 man3=$6 header=$7
  need man groff
  prefix="$tmp/prefix"
  "$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    die "cmake --install failed:"$'\n'"$(cat "$tmp/install.log")"
  cmp -s "$man1" "$prefix/$mandir/man1/mmpool.1" ||
    fail "$prefix/$mandir/man1/mmpool.1 is missing or differs from $man1"
  cmp -s "$man3" "$prefix/$mandir/man3/mmpool.3" ||
    fail "$prefix/$mandir/man3/mmpool.3 is missing or differs from $man3"
  # man finds both pages, and each function's, in the installed tree.
  pages=("1 mmpool" "3 mmpool")
  while read -r f; do pages+=("3 $f"); done < <(api_functions "$header")
  for page in "${pages[@]}"; do
    sec=${page%% *} name=${page#* }
    file="$prefix/$mandir/man$sec/$name.$sec"
    if [[ ! -f $file ]]; then
      fail "no page $file"
    elif ! MANWIDTH=80 man -M "$prefix/$mandir" --warnings=w "$sec" "$name" \
      >"$tmp/page" 2>"$tmp/err" || [[ -s $tmp/err ]]; then
      fail "man -M $prefix/$mandir $sec $name: $(cat "$tmp/err")"
    elif ! head -1 "$tmp/page" | grep -q "^MMPOOL($sec)"; then
      fail "man -M $prefix/$mandir $sec $name shows: $(head -1 "$tmp/page")"
    fi
  done
  ;;
*)
  die "usage: $0 render ... | example ... | install ..."
  ;;
esac

if ((failures)); then
  echo "check_man: $failures failure(s)" >&2
  exit 1
fi
echo "check_man: $mode: ok"
