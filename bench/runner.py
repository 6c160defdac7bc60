#!/usr/bin/env python3
"""runner.py: the measuring half of bench/run (see bench/README.md).

Runs every workload under each allocator in alternation (one repetition of
every allocator, then the next repetition, the order rotated each time), with
the allocator chosen by LD_PRELOAD, and measures each run from outside: wall
time (monotonic clock around fork/exec/wait), CPU time (user + system of the
child and its descendants, from wait4's rusage) and peak RSS (ru_maxrss of
the child: of the largest process for the shell-driven sqlite workload),
all taken by the small C program wl-measure (workloads/measure.c).
Every run must exit 0 and print its "OK <name> ... checksum=X" line, and the
checksum must be the same under every allocator. Writes the medians to CSV,
every run to <csv>-raw.csv. Python's standard library only."""
import argparse, os, platform, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [("glibc", None),
         ("jemalloc", LIBDIR + "/libjemalloc.so.2"),
         ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4"),
         ("mimalloc", LIBDIR + "/libmimalloc.so.2")]

# name: (threaded, default scale, quick scale, command builder(bin, t, scale, tmp))
def c(name):
    return lambda b, t, s, tmp: [os.path.join(b, "wl-" + name), str(t), str(s)]
WORKLOADS = {
    "small":    (True, 500, 2, c("small")),
    "hashtab":  (True, 300, 2, c("hashtab")),
    "larson":   (True, 10000, 20, c("larson")),
    "prodcons": (True, 2000, 5, c("prodcons")),
    "realloc":  (True, 500, 4, c("realloc")),
    "aligned":  (True, 500, 2, c("aligned")),
    "large":    (True, 150, 4, c("large")),
    "frag":     (False, 300, 5, c("frag")),
    "liveset":  (True, 50, 2, c("liveset")),
    "python":   (False, 100, 2, lambda b, t, s, tmp: [
        "/usr/bin/python3", os.path.join(HERE, "workloads/real/py.py"), str(s)]),
    "perl":     (False, 30, 2, lambda b, t, s, tmp: [
        "/usr/bin/perl", os.path.join(HERE, "workloads/real/perl.pl"), str(s)]),
    "sqlite":   (False, 300, 5, lambda b, t, s, tmp: [
        os.path.join(HERE, "workloads/real/sqlite.sh"), str(s), tmp]),
    "redis":    (False, 100, 2, lambda b, t, s, tmp: [
        "/usr/bin/python3", os.path.join(HERE, "workloads/real/redis.py"), str(s), tmp,
        os.path.join(b, "wl-measure")]),
    "gcc":      (False, 60, 2, lambda b, t, s, tmp: [
        os.path.join(HERE, "workloads/real/gcc.sh"), str(s), tmp]),
}
# Run once before a workload is measured, unmeasured, without the allocator:
# gcc's generated source.
PREPARE = {
    "gcc": lambda b, s, tmp: [os.path.join(HERE, "workloads/real/gcc.sh"), "gen", str(s), tmp],
}
# Figures a workload measures itself and prints on its OK line, which take
# the place of wl-measure's: redis.py measures the server alone (with
# wl-measure too), not the client and the driver around it.
OWN = ("server_wall_s=", "server_cpu_s=", "server_maxrss_kib=")


def run_one(cmd, preload, tmp, measure):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MMPOOL_") or k == "LD_PRELOAD":
            del env[k]
    res = os.path.join(tmp, "measure.out")
    with tempfile.TemporaryFile(dir=tmp) as out, tempfile.TemporaryFile(dir=tmp) as err:
        rc = subprocess.call([measure, res, preload or "-"] + cmd, stdout=out,
                             stderr=err, env=env)
        out.seek(0); err.seek(0)
        o = out.read().decode(errors="replace"); e = err.read().decode(errors="replace")
    if rc != 0:
        return rc, 0.0, 0.0, 0, [], e
    wall, cpu, rss, rc = open(res).read().split()
    ok = [l for l in o.splitlines() if l.startswith("OK ")]
    if len(ok) == 1:
        own = {f.split("=", 1)[0] + "=": f.split("=", 1)[1] for f in ok[0].split()
               if f.startswith(OWN)}
        if own:
            if len(own) != len(OWN):
                return 1, 0.0, 0.0, 0, [], "OK line with only some of " + " ".join(OWN)
            wall, cpu, rss = (own[k] for k in OWN)
    return int(rc), float(wall), float(cpu), int(rss), ok, e


def sysinfo():
    cpu = "?"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip(); break
    except OSError:
        pass
    glibc = " ".join(platform.libc_ver())
    try:
        glibc = subprocess.run(["ldd", "--version"], capture_output=True,
                               text=True).stdout.splitlines()[0]
    except Exception:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    peers = []
    for pkg in ("libjemalloc2", "libtcmalloc-minimal4", "libmimalloc2.0"):
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                           capture_output=True, text=True).stdout.strip()
        peers.append("%s %s" % (pkg, v or "?"))
    return [("commit", commit + (" (with uncommitted changes)" if dirty else "")),
            ("cpu", cpu), ("cores", str(os.cpu_count())),
            ("kernel", platform.release()), ("glibc", glibc),
            ("peers", ", ".join(peers))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("-q", action="store_true")
    ap.add_argument("-w", default="")
    ap.add_argument("-t", default="1 2 4")
    ap.add_argument("--csv", default="")
    ap.add_argument("--command", default="")
    a = ap.parse_args()
    names = a.w.replace(",", " ").split() or list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            sys.exit("bench: unknown workload %s (known: %s)" % (n, " ".join(WORKLOADS)))
    threads = [int(x) for x in a.t.replace(",", " ").split()]
    allocs = [("mmpool", a.preload)]
    if not a.q:
        allocs = []
        for name, lib in PEERS:
            if lib and not os.path.exists(lib):
                print("bench: %s not found (%s), skipped" % (name, lib), file=sys.stderr)
                continue
            allocs.append((name, lib))
        allocs.append(("mmpool", a.preload))
    reps = 1 if a.q else a.n
    info = sysinfo()  # at the start: the commit that was built and run
    tmp = tempfile.mkdtemp(prefix="mmpool-bench-")
    raw, med, failures = [], [], 0
    for w in names:
        threaded, scale, qscale, build = WORKLOADS[w]
        s = qscale if a.q else scale
        if w in PREPARE:
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            if subprocess.call(PREPARE[w](a.bin, s, tmp), env=env) != 0:
                failures += 1
                print("bench: FAIL %s: its preparation failed" % w, file=sys.stderr)
                continue
        for t in (threads if threaded else [1]):
            cmd = build(a.bin, t, s, tmp)
            runs = {n: [] for n, _ in allocs}
            sums = {}
            for r in range(reps):
                k = r % len(allocs)
                for name, lib in allocs[k:] + allocs[:k]:
                    rc, wall, cpu, rss, ok, err = run_one(cmd, lib, tmp, os.path.join(a.bin, "wl-measure"))
                    good = rc == 0 and len(ok) == 1
                    if good:
                        cs = [f for f in ok[0].split() if f.startswith("checksum=")]
                        sums.setdefault(cs[0] if cs else "", []).append(name)
                    extra = " ".join(f for f in ok[0].split()[1:]
                                     if ("_kib=" in f or f.startswith("rps="))
                                     and not f.startswith(OWN)) if ok else ""
                    raw.append((w, t, name, r + 1, "%.4f" % wall, "%.4f" % cpu, rss,
                                "ok" if good else "FAIL rc=%d" % rc, extra))
                    if not good:
                        failures += 1
                        print("bench: FAIL %s t=%d %s rc=%d: %s" % (
                            w, t, name, rc, (err.strip().splitlines() or ["no OK line"])[-1]),
                            file=sys.stderr)
                    else:
                        runs[name].append((wall, cpu, rss, extra))
            if len(sums) > 1:
                failures += 1
                print("bench: FAIL %s t=%d: checksums differ: %s" % (w, t, sums), file=sys.stderr)
            line = []
            for name, _ in allocs:
                rs = runs[name]
                if not rs:
                    continue
                m = (statistics.median(x[0] for x in rs), statistics.median(x[1] for x in rs),
                     statistics.median(x[2] for x in rs))
                mid = sorted(rs, key=lambda x: x[0])[len(rs) // 2]  # the median-wall run
                med.append([w, t, name, len(rs), m[0], m[1], m[2], mid[3]])
                line.append("%s %.3fs %dMiB" % (name, m[0], m[2] // 1024))
            print("bench: %-9s t=%-2d %s" % (w, t, "  ".join(line)), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    if a.q:
        print("bench: quick check: %d failure(s)" % failures)
        return 1 if failures else 0
    # ratios mmpool / this allocator, per workload and thread count
    mm = {(r[0], r[1]): r for r in med if r[2] == "mmpool"}
    with open(a.csv, "w") as f:
        f.write("# command: %s\n" % a.command)
        for k, v in info:
            f.write("# %s: %s\n" % (k, v))
        f.write("# date: %s\n" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        f.write("# repetitions: %d, allocators in alternation: %s; medians of wall time, "
                "user+sys CPU time, peak RSS (ru_maxrss); ratios are mmpool / this allocator "
                "(< 1: mmpool faster or smaller); every run in %s\n" % (
                    reps, " ".join(n for n, _ in allocs),
                    os.path.basename(a.csv)[:-4] + "-raw.csv"))
        if "redis" in names:
            f.write("# redis: wall_s, cpu_s and maxrss_kib are redis-server's alone (from its "
                    "start to its shutdown), measured by redis.py; extra: the client's "
                    "requests/s (rps), used_memory and RSS from INFO after the same load\n")
        f.write("workload,threads,allocator,runs,wall_s,cpu_s,maxrss_kib,"
                "mmpool_wall_ratio,mmpool_cpu_ratio,mmpool_rss_ratio,extra\n")
        for r in med:
            m = mm.get((r[0], r[1]))
            rat = ["%.3f" % (m[i] / r[i]) if m and r[i] > 0 else "" for i in (4, 5, 6)]
            f.write("%s,%d,%s,%d,%.4f,%.4f,%d,%s,%s,%s,%s\n" % (
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], rat[0], rat[1], rat[2], r[7]))
    with open(a.csv[:-4] + "-raw.csv", "w") as f:
        f.write("# command: %s\n# every run of %s\n" % (a.command, os.path.basename(a.csv)))
        f.write("workload,threads,allocator,rep,wall_s,cpu_s,maxrss_kib,status,extra\n")
        for r in raw:
            f.write(",".join(str(x) for x in r) + "\n")
    print("bench: wrote %s (%d failure(s))" % (a.csv, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
