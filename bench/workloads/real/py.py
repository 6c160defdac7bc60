# py.py SCALE: a Python program run unmodified (by /usr/bin/python3 under
# LD_PRELOAD): builds dicts of strings and lists of tuples, sorts, joins,
# drops them; checks its result against a closed formula.
import sys
n = int(sys.argv[1]) * 1000 if len(sys.argv) > 1 else 200000
total = 0
for rnd in range(4):
    d = {}
    for i in range(n):
        d["k%d-%d" % (i, rnd)] = [i, str(i) * (1 + i % 5), (i, rnd)]
    items = sorted(d.items(), key=lambda kv: kv[1][0], reverse=True)
    s = "".join(v[1] for _, v in items[: n // 10])
    total += sum(v[0] for _, v in items) + len(s)
    del d, items, s
expect = 4 * (n * (n - 1) // 2)
extra = total - expect
# the joined strings' lengths: recompute without the dict
chk = 0
for rnd in range(4):
    chk += sum(len(str(i)) * (1 + i % 5) for i in range(n - n // 10, n))
if extra != chk:
    print("FAIL py: %d != %d" % (extra, chk), file=sys.stderr)
    sys.exit(1)
print("OK py scale=%d checksum=%x" % (n // 1000, total))
