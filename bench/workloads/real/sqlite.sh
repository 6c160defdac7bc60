#!/bin/sh
# sqlite.sh SCALE DIR: sqlite3 run unmodified on a database it generates in
# DIR (SCALE*1000 rows, an index, a join, a group by), checked against a
# closed formula. Only the sqlite3 process is measured: the runner preloads
# the allocator into this script, and sh and sqlite3 both get it.
n=$(( ${1:-100} * 1000 ))
db=${2:-/tmp}/wl-sqlite-$$.db
rm -f "$db"
out=$(sqlite3 "$db" <<SQL
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, g INTEGER, name TEXT);
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM c WHERE i+1<$n)
INSERT INTO t SELECT i, i % 100, printf('name-%08d-%s', i, hex(randomblob(8))) FROM c;
CREATE INDEX t_g ON t(g, name);
CREATE TABLE u AS SELECT g, count(*) AS c, sum(id) AS s FROM t GROUP BY g;
SELECT sum(u.c), sum(u.s), count(DISTINCT t.g) FROM t JOIN u ON t.g = u.g WHERE t.id % 10 = 0;
SQL
)
out=$(printf "%s\n" "$out" | tail -n 1
)
rm -f "$db"
# rows with id%10==0: n/10, each joined with its group (count n/100)
exp="$(( n / 10 * (n / 100) ))|"
case "$out" in
  "$exp"*) echo "OK sqlite scale=${1:-100} checksum=$out" ;;
  *) echo "FAIL sqlite: got '$out', expected '$exp...'" >&2; exit 1 ;;
esac
