#!/usr/bin/env python3
"""plot.py RUN.csv: from a CSV of bench/run, writes RUN.svg (the time and
memory ratios mmpool / each peer, per workload and thread count, log scale,
plain SVG text) and RUN-summary.md (the same figures as a table, with the
geometric means). Python's standard library only."""
import csv, math, os, sys

COLORS = {"glibc": "#4e79a7", "jemalloc": "#f28e2b", "tcmalloc": "#59a14f",
          "mimalloc": "#b07aa1"}


def load(path):
    rows = [r for r in csv.DictReader(l for l in open(path) if not l.startswith("#"))]
    keys, peers, ratio = [], [], {}
    for r in rows:
        k = "%s t%s" % (r["workload"], r["threads"])
        if k not in keys:
            keys.append(k)
        if r["allocator"] == "mmpool" or not r["mmpool_wall_ratio"]:
            continue
        if r["allocator"] not in peers:
            peers.append(r["allocator"])
        ratio[(k, r["allocator"])] = (float(r["mmpool_wall_ratio"]),
                                      float(r["mmpool_cpu_ratio"]),
                                      float(r["mmpool_rss_ratio"]))
    keys = [k for k in keys if any((k, p) in ratio for p in peers)]
    return keys, peers, ratio


def gmean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def svg(path, keys, peers, ratio, title):
    rowh, barh = 6 + 7 * len(peers), 6
    left, pw, gap, top = 130, 330, 40, 50
    lo, hi = 1 / 4, 4.0          # axis: 0.25x .. 4x, log scale
    def x(v, x0):
        v = min(max(v, lo), hi)
        return x0 + pw * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    allk = keys + ["geomean"]
    h = top + rowh * len(allk) + 40
    w = left + 2 * pw + gap + 20
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="10">' % (w, h),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="14" font-size="12">%s</text>' % (left, title)]
    for pi, (name, idx) in enumerate((("wall time: mmpool / peer", 0),
                                      ("peak RSS: mmpool / peer", 2))):
        x0 = left + pi * (pw + gap)
        o.append('<text x="%d" y="32" font-size="11">%s (log; &lt;1 is better for mmpool)</text>' % (x0, name))
        for v in (0.25, 0.5, 1, 2, 4):
            xx = x(v, x0)
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (
                xx, top - 4, xx, h - 30, "#000" if v == 1 else "#ddd"))
            o.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (xx, h - 18, v))
        for ki, k in enumerate(allk):
            y0 = top + ki * rowh
            if pi == 0:
                o.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (
                    left - 6, y0 + rowh / 2 + 3, k))
            for j, p in enumerate(peers):
                if k == "geomean":
                    v = gmean([ratio[(kk, p)][idx] for kk in keys if (kk, p) in ratio])
                elif (k, p) in ratio:
                    v = ratio[(k, p)][idx]
                else:
                    o.append('<text x="%.1f" y="%d" font-size="7" fill="%s">%s: no run</text>' % (
                        x(1, x0) + 3, y0 + 9 + 7 * j, COLORS.get(p, "#888"), p))
                    continue
                if v != v:
                    continue
                if v > hi or v < lo:  # clipped at the axis: say the value
                    o.append('<text x="%.1f" y="%d" font-size="7" fill="#fff" font-weight="bold" text-anchor="%s">%.2f</text>' % (
                        x(v, x0) + (-2 if v > hi else 2), y0 + 9 + 7 * j,
                        "end" if v > hi else "start", v))
                x1, x2 = sorted((x(1, x0), x(v, x0)))
                o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s">'
                         '<title>%s %s: %.3f</title></rect>' % (
                             x1, y0 + 3 + 7 * j, max(x2 - x1, 0.5), barh, COLORS.get(p, "#888"),
                             k, p, v))
    for j, p in enumerate(peers):
        o.append('<rect x="%d" y="%d" width="10" height="8" fill="%s"/><text x="%d" y="%d">'
                 'vs %s</text>' % (left + 90 * j, h - 10, COLORS.get(p, "#888"),
                                   left + 90 * j + 14, h - 2, p))
    o.append("</svg>")
    open(path, "w").write("\n".join(o) + "\n")


def main():
    path = sys.argv[1]
    keys, peers, ratio = load(path)
    base = path[:-4]
    svg(base + ".svg", keys, peers, ratio, os.path.basename(path))
    hdr = "| workload | " + " | ".join("time vs %s" % p for p in peers) + " | " + \
          " | ".join("RSS vs %s" % p for p in peers) + " |"
    lines = ["Ratios mmpool / peer, medians (`%s`): wall time, then peak RSS; "
             "< 1 means mmpool is faster or smaller." % os.path.basename(path), "",
             hdr, "|" + "---|" * (1 + 2 * len(peers))]
    for k in keys + ["geomean"]:
        cells = []
        for idx in (0, 2):
            for p in peers:
                if k == "geomean":
                    v = gmean([ratio[(kk, p)][idx] for kk in keys if (kk, p) in ratio])
                else:
                    v = ratio.get((k, p), (float("nan"),) * 3)[idx]
                cells.append("fail" if v != v else "%.2f" % v)  # nan: no run
        lines.append("| %s | %s |" % ("**geomean**" if k == "geomean" else k, " | ".join(cells)))
    open(base + "-summary.md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("bench: wrote %s.svg and %s-summary.md" % (base, base), file=sys.stderr)


if __name__ == "__main__":
    main()
