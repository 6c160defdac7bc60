#!/usr/bin/env bash
# sqlite3 under the shim, on a generated database: create tables, insert
# 50k rows (plus some 64K+ blobs and sub-256-byte strings, so that every
# size route is taken), index, then queries with joins, GROUP BY, window
# functions, recursive CTEs, big sorts and group_concat; an integrity check
# and a VACUUM. Compared: the query output, the .dump of the database and
# the database file itself. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/sqlite3 awk

# The data, generated once (no shim) as one SQL script.
awk -v seed="$SEED" '
BEGIN {
  srand(seed)
  print "PRAGMA journal_mode=DELETE;"
  print "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, born INTEGER);"
  print "CREATE TABLE product(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, descr TEXT);"
  print "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customer, product INTEGER REFERENCES product, qty INTEGER, day TEXT, note TEXT);"
  print "BEGIN;"
  split("Lyon Oslo Lima Kobe Pune Graz Bern Cork Faro Nice", cities, " ")
  for (i = 1; i <= 2000; i++)
    printf "INSERT INTO customer VALUES(%d, %s, %s, %d);\n", i, name(4 + int(rand() * 10)), "\x27" cities[1 + int(rand() * 10)] "\x27", 1940 + int(rand() * 60)
  for (i = 1; i <= 500; i++)
    printf "INSERT INTO product VALUES(%d, %s, %.2f, %s);\n", i, name(6), rand() * 1000, name(20 + int(rand() * 200))
  for (i = 1; i <= 50000; i++)
    printf "INSERT INTO orders VALUES(%d, %d, %d, %d, \x272024-%02d-%02d\x27, %s);\n", i, 1 + int(rand() * 2000), 1 + int(rand() * 500), 1 + int(rand() * 20), 1 + int(rand() * 12), 1 + int(rand() * 28), (rand() < 0.3 ? name(1 + int(rand() * 40)) : "NULL")
  print "COMMIT;"
  # A few big rows: 64K..1M blobs and text.
  print "CREATE TABLE big(id INTEGER PRIMARY KEY, data BLOB, txt TEXT);"
  for (i = 1; i <= 12; i++)
    printf "INSERT INTO big VALUES(%d, randomblob(0), %s);\n", i, "hex(zeroblob(" 65536 * i ")) || " name(30)
  print "UPDATE big SET data = zeroblob(100000 + id * 7919);"
}
function name(n,    s, k) {
  s = ""
  for (k = 0; k < n; k++) s = s sprintf("%c", 97 + int(rand() * 26))
  return "\x27" s "\x27"
}' >"$IN/data.sql"

cat >"$IN/queries.sql" <<'EOF'
.headers on
.mode list
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_product_day ON orders(product, day);
CREATE INDEX customer_city ON customer(city, name);
ANALYZE;
SELECT count(*), sum(qty), count(note), max(length(note)) FROM orders;
-- Joins and GROUP BY.
SELECT c.city, count(*) AS n, sum(o.qty) AS items, printf('%.2f', sum(o.qty * p.price)) AS total
  FROM orders o JOIN customer c ON c.id = o.customer JOIN product p ON p.id = o.product
  GROUP BY c.city ORDER BY total DESC;
SELECT substr(day, 1, 7) AS month, count(DISTINCT customer), count(DISTINCT product), sum(qty)
  FROM orders GROUP BY month ORDER BY month;
SELECT p.id, p.name, count(o.id) AS n FROM product p LEFT JOIN orders o ON o.product = p.id
  GROUP BY p.id HAVING n < 85 ORDER BY n, p.id LIMIT 20;
-- Window functions: each customer's top order, a running total.
SELECT customer, id, qty, rank FROM (
  SELECT customer, id, qty, rank() OVER (PARTITION BY customer ORDER BY qty DESC, id) AS rank FROM orders)
  WHERE rank = 1 AND customer % 97 = 0 ORDER BY customer;
SELECT day, n, sum(n) OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
  FROM (SELECT day, count(*) AS n FROM orders GROUP BY day) ORDER BY day LIMIT 40;
-- A sort of every row on an expression no index covers, and big strings.
SELECT md5sum, n FROM (SELECT count(*) AS n, group_concat(id || ':' || coalesce(note, '-'), ',') AS md5sum
  FROM (SELECT id, note FROM orders ORDER BY coalesce(note, ''), qty * 7 % 13, id DESC)) ;
SELECT length(group_concat(name, '')) FROM (SELECT c.name FROM customer c JOIN orders o ON o.customer = c.id ORDER BY c.name, o.id);
-- A recursive CTE and a correlated subquery.
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 30000)
  SELECT count(*), sum(x % 7), max(x) FROM seq WHERE x NOT IN (SELECT qty * 1000 FROM orders);
SELECT c.id, c.name, (SELECT count(*) FROM orders o WHERE o.customer = c.id AND o.qty > 15) AS big
  FROM customer c WHERE c.born < 1945 ORDER BY big DESC, c.id LIMIT 15;
-- Big rows.
SELECT id, length(data), length(txt), hex(substr(txt, 1, 8)) FROM big ORDER BY id;
UPDATE big SET txt = txt || txt WHERE id % 3 = 0;
DELETE FROM orders WHERE qty = 7;
SELECT count(*), sum(length(txt)) FROM big;
PRAGMA integrity_check;
VACUUM;
PRAGMA integrity_check;
SELECT count(*) FROM orders;
EOF

workload() {
  sqlite3 -batch -bail "$OUT/shop.db" <"$IN/data.sql" >/dev/null
  sqlite3 -batch -bail "$OUT/shop.db" <"$IN/queries.sql" >"$OUT/queries.txt"
  sqlite3 -batch -bail "$OUT/shop.db" .dump >"$OUT/dump.sql"
  # Reading the dump back gives the same content.
  sqlite3 -batch -bail "$RUN/work/copy.db" <"$OUT/dump.sql"
  sqlite3 -batch "$RUN/work/copy.db" \
    'SELECT count(*), sum(qty), total(length(note)) FROM orders;'
  wc -l <"$OUT/queries.txt"
}

compare_runs workload
