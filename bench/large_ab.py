#!/usr/bin/python3
"""large_ab.py: the large-block workload under several allocators and mmpool
builds side by side, with wall, user and system time, minor faults and peak
RSS (GNU time), medians of N alternated repetitions (issue 16, item 1).

  bench/large_ab.py --bin build-bench/bench/workloads -n 7 -t "1 2 4" \
      --scale 400 --csv bench/results/large-....csv \
      glibc=- jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
      mmpool-before=/tmp/before/libmmpool-preload.so \
      mmpool=build-bench/shim/libmmpool-preload.so

Each NAME=PRELOAD runs `wl-large THREADS SCALE` with LD_PRELOAD=PRELOAD
("-": none) under /usr/bin/time; repetition r runs them all, the order
rotated by one at each repetition (bench/runner.py's method). The CSV's
first line is the command; then
workload,threads,allocator,runs,wall_s,user_s,sys_s,cpu_s,minflt,maxrss_kib
(medians); every run in the same file after a "# runs" line.
"""
import argparse, os, statistics, subprocess, sys, tempfile


def run(cmd, preload):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MMPOOL_") and k != "LD_PRELOAD"}
    if preload != "-":
        env["LD_PRELOAD"] = preload
    with tempfile.NamedTemporaryFile("r") as tf:
        p = subprocess.run(["/usr/bin/time", "-o", tf.name, "-f",
                            "%e %U %S %R %M"] + cmd, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = p.stdout.decode(errors="replace")
        line = tf.read().strip().splitlines()
    ok = [l for l in out.splitlines() if l.startswith("OK ")]
    if p.returncode != 0 or len(ok) != 1:
        sys.exit("large_ab: %s failed under %s (rc %d): %s" % (
            cmd, preload, p.returncode, p.stderr.decode(errors="replace")[-400:]))
    wall, user, sysl, minflt, rss = line[-1].split()
    cs = [f for f in ok[0].split() if f.startswith("checksum=")][0]
    return (float(wall), float(user), float(sysl), int(minflt), int(rss)), cs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("-t", default="1 2 4")
    ap.add_argument("--scale", type=int, default=400)
    ap.add_argument("--workload", default="large")
    ap.add_argument("--csv", required=True)
    ap.add_argument("allocs", nargs="+")
    a = ap.parse_args()
    allocs = [x.split("=", 1) for x in a.allocs]
    rows, raw = [], []
    for t in [int(x) for x in a.t.replace(",", " ").split()]:
        cmd = [os.path.join(a.bin, "wl-" + a.workload), str(t), str(a.scale)]
        runs = {n: [] for n, _ in allocs}
        sums = set()
        for r in range(a.n):
            k = r % len(allocs)
            for name, lib in allocs[k:] + allocs[:k]:
                m, cs = run(cmd, lib)
                sums.add(cs)
                runs[name].append(m)
                raw.append((a.workload, t, name, r + 1) + m)
        if len(sums) != 1:
            sys.exit("large_ab: checksums differ: %s" % sums)
        for name, _ in allocs:
            rs = runs[name]
            med = [statistics.median(x[i] for x in rs) for i in range(5)]
            cpu = statistics.median(x[1] + x[2] for x in rs)
            rows.append((a.workload, t, name, len(rs), med[0], med[1], med[2],
                         cpu, int(med[3]), int(med[4])))
            print("%-6s t=%d %-16s wall %.3f user %.3f sys %.3f cpu %.3f "
                  "minflt %d rss %d MiB" % (a.workload, t, name, med[0],
                  med[1], med[2], cpu, med[3], med[4] // 1024), file=sys.stderr)
    with open(a.csv, "w") as f:
        f.write("# " + " ".join(sys.argv) + "\n")
        f.write("# medians of %d alternated runs; allocators: %s\n" % (
            a.n, " ".join("%s=%s" % (n, l) for n, l in allocs)))
        f.write("workload,threads,allocator,runs,wall_s,user_s,sys_s,cpu_s,"
                "minflt,maxrss_kib\n")
        for r in rows:
            f.write("%s,%d,%s,%d,%.3f,%.3f,%.3f,%.3f,%d,%d\n" % r)
        f.write("# runs\nworkload,threads,allocator,rep,wall_s,user_s,sys_s,"
                "minflt,maxrss_kib\n")
        for r in raw:
            f.write("%s,%d,%s,%d,%.3f,%.3f,%.3f,%d,%d\n" % r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
