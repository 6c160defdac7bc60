# common.sh: what run_snapshot.sh and run_incr.sh share, sourced after
# they set `prefix` (the scratch directory's name): the library and the
# tool from their two arguments, python3, a scratch directory removed at
# exit, and the failure count with its helpers.
lib=$(realpath "$1")
tool=$(realpath "$2")
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
d=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
checks() {  # DIR WHAT: `mmpool check DIR` passes
  "$tool" check "$1" >"$d/chk.out" 2>"$d/chk.err" || {
    fail "$2: mmpool check $1:"
    cat "$d/chk.out" "$d/chk.err"
  }
}
