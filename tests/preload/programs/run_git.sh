#!/usr/bin/env bash
# git under the shim, on a generated repository: init, a 1500-commit history
# through fast-import, then 60 porcelain commits, a branch and a merge, a
# tag, log, diff, blame, archive, gc and an aggressive repack, fsck, and a
# clone over the pack protocol (pack-objects, index-pack: threads). Dates
# and identities are fixed, so commit ids are the same in both runs; pack
# bytes are not compared (delta search is threaded), the objects are. See
# lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/git awk

# The history, generated once (no shim) as a fast-import stream: each
# commit rewrites one to three of 80 files; some files are big (64K+).
awk -v seed="$SEED" '
BEGIN {
  srand(seed)
  t = 1600000000
  for (c = 1; c <= 1500; c++) {
    t += 1 + int(rand() * 5000)
    msg = sprintf("commit %d: %s", c, word(5 + int(rand() * 30)))
    print "commit refs/heads/main"
    printf "mark :%d\n", c
    printf "author Ann Author <ann@example.org> %d +0000\n", t
    printf "committer Carl Committer <carl@example.org> %d +0000\n", t
    printf "data %d\n%s\n", length(msg), msg
    if (c > 1) printf "from :%d\n", c - 1
    n = 1 + int(rand() * 3)
    for (k = 0; k < n; k++) {
      f = int(rand() * 80)
      body = ""
      lines = (f % 16 == 0) ? 1500 + int(rand() * 1500) : 5 + int(rand() * 60)
      for (l = 0; l < lines; l++)
        body = body sprintf("%d %s %s\n", l, word(3 + int(rand() * 8)), (rand() < 0.8 ? "same old line" : word(20)))
      printf "M 100644 inline dir%d/file%02d.txt\n", f % 7, f
      printf "data %d\n%s\n", length(body), body
    }
    if (c % 200 == 0) printf "D dir%d/file%02d.txt\n", c % 7, (c / 200) * 7 + c % 7
    print ""
  }
}
function word(n,    s, k) {
  s = ""
  for (k = 0; k < n; k++) s = s sprintf("%c", 97 + int(rand() * 26))
  return s
}' >"$IN/history.fi"

workload() {
  export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_NAME=Ann GIT_AUTHOR_EMAIL=ann@example.org
  export GIT_COMMITTER_NAME=Carl GIT_COMMITTER_EMAIL=carl@example.org
  local t=1700000000 i
  git init -q -b main repo
  cd repo
  git config gc.auto 0
  git fast-import --quiet <"$IN/history.fi"
  git checkout -q main
  commit() {
    t=$((t + 3600))
    git add -A
    GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" \
      git commit -q -m "$1"
  }
  for i in $(seq 1 40); do
    seq 1 $((i * 10)) | sed "s/.*/line & of round $i/" >"dir$((i % 7))/round$i.txt"
    sed -i "s/same old line/changed in round $i/" "dir$((i % 5))/file$(printf %02d $((i % 80))).txt" 2>/dev/null || true
    commit "round $i"
  done
  git checkout -q -b topic HEAD~15
  for i in $(seq 1 20); do
    awk -v i="$i" '{ print i ": " $0 }' "dir3/file$(printf %02d $((i + 3))).txt" >"topic$i.txt" 2>/dev/null || echo "$i" >"topic$i.txt"
    commit "topic $i"
  done
  git checkout -q main
  t=$((t + 60))
  GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" \
    git merge -q --no-edit topic
  GIT_COMMITTER_DATE="@$t +0000" git tag -a v1.0 -m "release one"

  git log --format='%H %an %at %s' --stat >"$OUT/log.txt"
  git log --graph --oneline --all >"$OUT/graph.txt"
  git diff --stat HEAD~100 HEAD >"$OUT/diffstat.txt"
  git diff HEAD~300 HEAD >"$OUT/diff.txt"
  git log -p --follow -- dir0/file00.txt >"$OUT/follow.txt"
  git blame -s dir2/file16.txt >"$OUT/blame.txt"
  git archive --format=tar v1.0 | sha256sum
  git gc -q
  git repack -a -d -f -q --window=40 --depth=30
  git fsck --full --strict --no-progress
  git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
  git rev-list --all --objects | sort | sha256sum
  git rev-parse HEAD 'HEAD^{tree}' v1.0
  git describe --tags
  cd ..
  git clone -q --no-local --no-hardlinks repo clone
  git -C clone fsck --full --no-progress
  git -C clone rev-list --count HEAD
  git -C clone log -1 --format='%H %s'
}

compare_runs workload
