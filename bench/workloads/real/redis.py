# redis.py SCALE DIR MEASURE: redis-server run unmodified, with the allocator
# under test preloaded into the server only, driven by redis-benchmark on
# 127.0.0.1 at a free port. Started by the runner (or ctest) with
# LD_PRELOAD set to the allocator: this script takes it out of its own
# children's environment and hands it to MEASURE (wl-measure), which starts
# the server with it, so that the figures are the server's alone (wall time
# from start to shutdown, its CPU time, its peak RSS), not those of the
# client, which is the same program under every allocator.
#
# Without LD_PRELOAD (the runner's "glibc") the server is given the C
# library itself as its preload: Debian's redis-server is linked with
# libjemalloc.so.2 and imports plain malloc/free/calloc/realloc/
# malloc_usable_size, which resolve to jemalloc unless a preloaded library
# defines them first. Its mallctl and nallocx calls always reach jemalloc
# (they serve INFO's allocator_* lines and a realloc shortcut in sds.c whose
# test only holds when the block is large enough; docs/performance.md).
#
# Phases: redis-benchmark (pipelined, random keys, values of 16 B to 8 KiB,
# SCALE*4000 requests in all), FLUSHALL, then a deterministic load of
# SCALE*400 strings, lists and hashes through a pipelined connection of our
# own, checked by DBSIZE, GETs and LLENs; DEBUG DIGEST (the server's hash of
# the data set, independent of the allocator) is the checksum, INFO memory
# is read back, then SHUTDOWN NOSAVE. The server is killed on every exit
# path (exceptions, SIGTERM/SIGINT/SIGHUP), and `timeout` bounds its life
# should this script itself be killed with SIGKILL.
# Prints "OK redis scale=S checksum=X rps=R used_memory_kib=U
# rss_loaded_kib=L server_wall_s=W server_cpu_s=C server_maxrss_kib=M".
import os, signal, socket, subprocess, sys, tempfile, time

SIZES = (16, 256, 1024, 8192)
TESTS = "set,get,lpush,lpop,rpush,rpop,sadd,hset,spop,zadd,zpopmin,mset"
NTESTS = len(TESTS.split(","))


LOG = None  # the server's log, whose last lines go with a failure


def fail(msg):
    tail = []
    if LOG and os.path.exists(LOG):
        with open(LOG, errors="replace") as f:
            tail = [l.rstrip() for l in f if l.strip()][-3:]
    print("FAIL redis: " + msg + "".join("\n  server log: " + l for l in tail),
          file=sys.stderr)
    sys.exit(1)


def libc_path():
    # The C library this interpreter runs on, which the server's loader
    # will use too: its path as mapped.
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if os.path.basename(p).startswith("libc.so"):
                return p
    fail("cannot find the C library in /proc/self/maps")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A minimal RESP client: enough for replies of one line and bulk
    strings."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, *cmds):
        out = []
        for c in cmds:
            out.append(b"*%d\r\n" % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("connection closed by the server")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        l = self.line()
        if l[:1] == b"-":
            raise RuntimeError("server error: " + l[1:].decode())
        if l[:1] == b"$":
            n = int(l[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                d = self.s.recv(65536)
                if not d:
                    raise ConnectionError("connection closed by the server")
                self.buf += d
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if l[:1] == b":":
            return int(l[1:])
        if l[:1] == b"*":
            return [self.reply() for _ in range(int(l[1:]))]
        return l[1:]

    def cmd(self, *args):
        self.send(args)
        return self.reply()


def value(i):
    # Deterministic values of 1 B to 4 KiB, mostly small.
    n = 1 + (i * 7919) % (64 if i % 8 else 4096)
    return (b"%d:" % i + b"v" * n)[:n] if n > 8 else b"x" * n


def main():
    if len(sys.argv) != 4:
        fail("usage: redis.py SCALE DIR MEASURE")
    scale = int(sys.argv[1])
    # The most the server may live (it takes about scale/50 s here): the
    # bound for when this script is killed with SIGKILL and cannot clean up.
    life_s = 60 + 3 * scale
    tmp = sys.argv[2]
    measure = sys.argv[3]
    preload = os.environ.get("LD_PRELOAD") or libc_path()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    work = tempfile.mkdtemp(prefix="wl-redis-", dir=tmp)
    res = os.path.join(work, "server.measure")
    global LOG
    log = LOG = os.path.join(work, "server.log")
    server = None

    def stop(*_):
        raise SystemExit("FAIL redis: interrupted")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        # A port free a moment ago can be taken before the server binds it:
        # a few tries, each with a fresh one.
        for attempt in range(5):
            port = free_port()
            server = subprocess.Popen(
                [measure, res, preload, "timeout", "--foreground", "-k", "5",
                 str(life_s),
                 "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", work,
                 "--logfile", log, "--daemonize", "no",
                 "--enable-debug-command", "local"],
                env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            conn = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and server.poll() is None:
                # Whoever answers on the port must be our server (its
                # directory is ours alone), not another one that held the
                # port first: this script flushes what it finds.
                try:
                    conn = Conn(port, timeout=1)
                    if conn.cmd("CONFIG", "GET", "dir") == [b"dir", work.encode()]:
                        conn.s.settimeout(30)
                        break
                except (OSError, RuntimeError, ValueError):
                    pass
                conn = None
                time.sleep(0.01)
            if conn is not None:
                break
            if server.poll() is None:
                fail("redis-server on port %d did not answer in 20 s" % port)
            server = None  # it exited: most likely the port was taken
        else:
            fail("redis-server did not start in 5 tries")

        # The benchmark: the same requests under every allocator, values of
        # every size class band, random keys (-r), pipelined so that the
        # server's own work (and its allocator) weighs more than the
        # system calls.
        per = max(100, scale * 4000 // (len(SIZES) * NTESTS))
        total_req, total_s = 0, 0.0
        for d in SIZES:
            p = subprocess.run(
                ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "16",
                 "-P", "16", "-r", "20000", "-d", str(d), "-n", str(per),
                 "-t", TESTS, "--csv"], env=env, capture_output=True, text=True,
                timeout=life_s)
            rows = [l.replace('"', "").split(",") for l in p.stdout.splitlines()]
            rows = [r for r in rows if len(r) > 1 and r[0] != "test"]
            if p.returncode != 0 or len(rows) < NTESTS:
                fail("redis-benchmark -d %d: rc=%d, %d results: %s" % (
                    d, p.returncode, len(rows), (p.stderr.strip().splitlines() or [""])[-1]))
            for r in rows:
                rps = float(r[1])
                if rps <= 0:
                    fail("redis-benchmark -d %d: %s at %s requests/s" % (d, r[0], r[1]))
                total_req += per
                total_s += per / rps

        # The deterministic data set.
        if conn.cmd("FLUSHALL", "SYNC") != b"OK":
            fail("FLUSHALL did not answer OK")
        n = scale * 400
        nlists, nhashes = max(1, n // 100), max(1, n // 50)
        batch = 500
        for i0 in range(0, n, batch):
            cmds = []
            for i in range(i0, min(n, i0 + batch)):
                cmds.append((b"SET", b"wl:s:%d" % i, value(i)))
                cmds.append((b"RPUSH", b"wl:l:%d" % (i % nlists), value(i + 1)))
                cmds.append((b"HSET", b"wl:h:%d" % (i % nhashes), b"f%d" % i, value(i + 2)))
            conn.send(*cmds)
            for _ in cmds:
                conn.reply()
        dbsize = conn.cmd("DBSIZE")
        if dbsize != n + nlists + nhashes:
            fail("DBSIZE %d, expected %d" % (dbsize, n + nlists + nhashes))
        for i in (0, 1, 7, n // 3, n // 2, n - 1):
            got = conn.cmd("GET", b"wl:s:%d" % i)
            if got != value(i):
                fail("GET wl:s:%d: %r, expected %r" % (i, got and got[:32], value(i)[:32]))
        for j in (0, nlists - 1):
            exp = len(range(j, n, nlists))
            if conn.cmd("LLEN", b"wl:l:%d" % j) != exp:
                fail("LLEN wl:l:%d is not %d" % (j, exp))
        digest = conn.cmd("DEBUG", "DIGEST").decode()
        info = dict(l.split(":", 1) for l in conn.cmd("INFO", "memory").decode().splitlines()
                    if ":" in l)
        used = int(info["used_memory"]) // 1024
        rss = int(info["used_memory_rss"]) // 1024
        try:
            conn.send((b"SHUTDOWN", b"NOSAVE"))
            conn.reply()
        except (OSError, ConnectionError):
            pass  # the server closes the connection as it goes
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("redis-server did not stop within 30 s of SHUTDOWN")
        server = None
        wall, cpu, maxrss, rc = open(res).read().split()
        if int(rc) != 0:
            fail("redis-server exited with status %s" % rc)
        print("OK redis scale=%d checksum=%s-%d rps=%d used_memory_kib=%d "
              "rss_loaded_kib=%d server_wall_s=%s server_cpu_s=%s server_maxrss_kib=%s" % (
                  scale, digest, dbsize, total_req / total_s, used, rss, wall, cpu, maxrss))
    finally:
        if server is not None:
            # wl-measure leads the server's session, and timeout (in the
            # foreground) and redis-server stay in its group: the whole
            # group goes, asked first, then killed.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(server.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        subprocess.call(["rm", "-rf", work])


if __name__ == "__main__":
    main()
