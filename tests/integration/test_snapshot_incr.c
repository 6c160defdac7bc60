// test_snapshot_incr.c: incremental snapshots (issue 14, item 2).
//
// A series of snapshots of three pools (two anonymous, one shared file
// pool) mutated in varied ways between them: writes, frees, purges
// (heap_trim) followed by calloc of the purged pages without a write,
// growth past the first reservation and shrink, threads, a write made
// while the set is held (snapshot_at_hold: a thread running through the
// hold), a failed writer, a fork child taking its own snapshots, and
// restore from the last one. After EACH snapshot every image is compared,
// page by page, with the pool as it is (the program is single-threaded
// between snapshots, so the pools are still as at the instant): data pages
// of spans in use equal the pool's bytes, free spans read as zeros, which
// is what a full image holds; and the strict walk passes. The manifest
// must say full or incremental as expected, and an incremental snapshot
// of a little change must write a small part of what a full one writes.
//
// Links the static core: it reads manifests and images with the engine's
// own code, trims pools, and uses the test seams (snapshot_at_hold,
// os_fault_arm, snapshot_set_incremental).
#define _GNU_SOURCE
#include <glob.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "itest.h"

#include "delta.h"
#include "dirty.h"
#include "heap.h"
#include "inspect.h"
#include "os.h"
#include "pooltable.h"
#include "snapshot.h"

ITEST_SCRATCH_DIR("incr")

static char *path2(const char *a, const char *b) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", a, b) > 0);
  return p;
}

// ---------------------------------------------------------------------------
// Live blocks, with contents a tag can regenerate (0: zeros)

#define NB 6000
struct blk {
  char *p;
  size_t n;
  uint64_t tag;
};
static struct blk blks[NB];
static unsigned nblk;
static uint64_t seed = 0x9e3779b97f4a7c15ull;

// Waits for child pid, which must have exited with status 0.
static void child_ok(pid_t pid) {
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status))
    fail_msg("child %d ended by signal %d", (int)pid, WTERMSIG(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static uint64_t rnd(void) {
  seed ^= seed << 13;
  seed ^= seed >> 7;
  seed ^= seed << 17;
  return seed;
}

static void fill(char *p, size_t n, uint64_t tag) {
  for (size_t i = 0; i < n; i++)
    p[i] = (char)(tag * 31 + i * 7 + (i >> 12));
}

static int holds(const struct blk *b) {
  for (size_t i = 0; i < b->n; i++) {
    char want = b->tag ? (char)(b->tag * 31 + i * 7 + (i >> 12)) : 0;
    if (b->p[i] != want) return 0;
  }
  return 1;
}

static void add(mmpool_t *pool, size_t n, int zeroed) {
  assert_true(nblk < NB);
  struct blk *b = &blks[nblk++];
  b->n = n;
  if (zeroed) {
    b->p = mmpool_calloc(pool, 1, n);
    b->tag = 0;
  } else {
    b->p = mmpool_malloc(pool, n);
    b->tag = rnd() | 1;
    assert_non_null(b->p);
    fill(b->p, n, b->tag);
  }
  assert_non_null(b->p);
}

static void drop(unsigned i) {
  mmpool_free(blks[i].p);
  blks[i] = blks[--nblk];
}

// A size: mostly small blocks, some pages, a few large ones.
static size_t some_size(void) {
  unsigned k = (unsigned)(rnd() % 100);
  if (k < 70) return 16 + rnd() % 2000;
  if (k < 95) return 4096 + rnd() % 60000;
  return (256u << 10) + rnd() % (2u << 20);
}

// ---------------------------------------------------------------------------
// Checks

static void problem(void *arg, int64_t page, uint64_t addr, const char *line) {
  (void)page;
  (void)addr;
  fprintf(stderr, "  problem in %s: %s\n", (const char *)arg, line);
}

static void read_manifest(const char *sd, struct snap_manifest *m) {
  char why[200] = "";
  assert_int_equal(snapshot_read(sd, m), 0);
  assert_int_equal(snap_manifest_check(m, sizeof *m, why, sizeof why), 0);
}

// 1 when the 4 KiB page at a of an anonymous pool has no page in this
// process (reads as zeros), found without touching it: a read would map
// the zero page, which the next scan reports as written, and hide what the
// writer must find itself. (A file pool's page it has not is the file's.)
static int absent(uintptr_t a) {
  // A descriptor names the process that opened it: a fork child's own.
  static int fd = -1;
  static pid_t fd_pid;
  if (fd >= 0 && fd_pid != getpid()) {
    close(fd);
    fd = -1;
  }
  if (fd < 0) {
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    fd_pid = getpid();
  }
  assert_true(fd >= 0);
  uint64_t v = 0;
  assert_int_equal(pread(fd, &v, sizeof v, (off_t)(a >> 12) * 8), sizeof v);
  return !(v >> 62);
}

static int zero(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

// Every image of sd's manifest against the live pool of its name: in-use
// spans byte for byte (pages the pool has none of: zeros, read without
// touching the pool), free spans zeros, past the top nothing.
static void compare_images(const char *sd, const struct snap_manifest *m) {
  for (uint32_t k = 0; k < m->npools; k++) {
    const struct snap_entry *e = &m->pool[k];
    char *ip = path2(sd, e->file);
    struct inspect in;
    char why[4800] = "";
    if (snapshot_image_open(&in, sd, m, k, why, sizeof why))
      fail_msg("image %s: %s", ip, why);
    struct inspect_cb cb = {problem, NULL, ip};
    assert_int_equal(inspect_walk(&in, &cb, NULL), 0);
    struct mmpool *p = pool_from_handle(mmpool_get(e->name));
    assert_non_null(p);
    assert_int_equal(in.hdr.base, p->base);
    const char *img = (const char *)in.map + in.hdr.data_off;
    const char *live = (const char *)p->data;
    int anon = !p->is_file;
    const struct pdesc *d =
        (const struct pdesc *)((const char *)in.map + in.hdr.desc_off);
    uint32_t top = in.hdr.st.top;
    assert_int_equal(in.file_size,
                     in.hdr.data_off + ((uint64_t)top << PAGE_SHIFT));
    for (uint32_t i = 0; i < top;) {
      uint32_t n = d[i].npages;
      if (n == 0 || n > top - i) n = top - i;
      size_t off = (size_t)i << PAGE_SHIFT, len = (size_t)n << PAGE_SHIFT;
      for (size_t q = off; d[i].kind != PD_FREE && q < off + len; q += 4096)
        if (anon && absent((uintptr_t)live + q)
                ? !zero(img + q, 4096)
                : memcmp(img + q, live + q, 4096) != 0) {
          size_t j = 0;
          while (j < 4095 && img[q + j] == live[q + j]) j++;
          fail_msg("snapshot %llu, %s: in-use byte at data offset 0x%zx "
                   "is 0x%02x, in the pool 0x%02x%s",
                   (unsigned long long)m->serial, e->file, q + j,
                   img[q + j] & 0xff, live[q + j] & 0xff,
                   anon && absent((uintptr_t)live + q) ? " (a page it has not)"
                                                       : "");
        }
      if (d[i].kind == PD_FREE && !zero(img + off, len))
        fail_msg("snapshot %llu, %s: a free span at data offset 0x%zx is "
                 "not zeros", (unsigned long long)m->serial, e->file, off);
      i += n;
    }
    inspect_close(&in);
    free(ip);
  }
}

// Every block still holds what it was given (the pools themselves).
static void blocks_hold(void) {
  for (unsigned i = 0; i < nblk; i++)
    if (!holds(&blks[i])) fail_msg("block %u (%zu bytes) changed", i, blks[i].n);
}

// Takes a snapshot into sd and checks it: incr is the number of pools
// expected to be written incrementally (the others whole), full_why the
// reason the manifest gives for the whole ones (when any). A pool whose
// chain of deltas was cut (DIRTY_CHAIN: long, or a quarter of its image,
// which the header and descriptors of each delta reach soon in these
// small pools) counts as incremental here; the chain tests below check
// the cuts themselves.
static void snap(const char *sd, uint32_t incr, int full_why,
                 struct snap_manifest *m) {
  if (mmpool_snapshot(sd) != 0)
    fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
  read_manifest(sd, m);
  uint32_t cut = 0;
  for (uint32_t k = 0; k < m->npools; k++)
    cut += m->pool[k].how == (SNAP_HOW_FULL | DIRTY_CHAIN << 8);
  // The cut pools were expected incremental, or whole for another reason
  // that the cut came first to.
  uint32_t want = incr;
  if (m->incremental < incr && m->incremental + cut >= incr)
    incr = m->incremental;
  if (m->incremental != incr ||
      (incr < m->npools && (int)m->why_full != full_why &&
       !(cut && (int)m->why_full == DIRTY_CHAIN)))
    fail_msg("snapshot %llu: %u pools incremental (want %u), why %u (want "
             "%d: %s)", (unsigned long long)m->serial, m->incremental, want,
             m->why_full, full_why, dirty_why_text(full_why));
  uint32_t seen = 0;
  for (uint32_t k = 0; k < m->npools; k++) {
    uint32_t how = m->pool[k].how & 0xff;
    assert_true(how == SNAP_HOW_FULL || how == SNAP_HOW_INCREMENTAL);
    seen += how == SNAP_HOW_INCREMENTAL;
    // A delta ends its chain; an image written whole has none.
    assert_int_equal(m->chain[k].n > 0, how == SNAP_HOW_INCREMENTAL);
  }
  assert_int_equal(seen, incr);
  assert_true(m->bytes <= m->image_bytes);
  if (!incr) assert_int_equal(m->bytes, m->image_bytes);
  compare_images(sd, m);
}

// ---------------------------------------------------------------------------
// Mutations

static void write_some(unsigned count) {
  for (unsigned k = 0; k < count && nblk; k++) {
    struct blk *b = &blks[rnd() % nblk];
    b->tag = rnd() | 1;
    fill(b->p, b->n, b->tag);
  }
}

// Frees every block of pool of size class-ish range, trims the pool (its
// free pages go back to the kernel: they read as zeros with no write),
// then callocs as many of the same sizes, unwritten: they may sit on the
// purged pages, whose old bytes are in the previous snapshot's image.
static void purge_and_calloc(mmpool_t *pool) {
  size_t sizes[NB];
  unsigned ns = 0;
  for (unsigned i = 0; i < nblk;) {
    if (mmpool_of(blks[i].p) == pool) {
      sizes[ns++] = blks[i].n;
      drop(i);
    } else {
      i++;
    }
  }
  uint64_t pages = heap_trim(pool_from_handle(pool));
  assert_true(pages > 0);
  for (unsigned i = 0; i < ns; i++) add(pool, sizes[i], 1);
}

#define NT 4
#define PER_T 300
static mmpool_t *tpool;
static char *tblk[NT][PER_T];
static size_t tlen[NT][PER_T];
static uint64_t ttag[NT][PER_T];
static pthread_barrier_t bar;

static void *worker(void *arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  uint64_t s = 0x1234567ull * (t + 1);
  for (unsigned k = 0; k < PER_T; k++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tlen[t][k] = 64 + (s >> 33) % 20000;
    ttag[t][k] = s | 1;
    tblk[t][k] = mmpool_malloc(tpool, tlen[t][k]);
    if (tblk[t][k]) fill(tblk[t][k], tlen[t][k], ttag[t][k]);
  }
  pthread_barrier_wait(&bar);
  // Frees half of the next thread's blocks: frees across threads.
  unsigned o = (t + 1) % NT;
  for (unsigned k = 0; k < PER_T; k += 2) {
    mmpool_free(tblk[o][k]);
    tblk[o][k] = NULL;
  }
  return NULL;
}

static void threads(mmpool_t *pool) {
  tpool = pool;
  pthread_t th[NT];
  pthread_barrier_init(&bar, NULL, NT);
  for (unsigned t = 0; t < NT; t++)
    assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t),
                     0);
  for (unsigned t = 0; t < NT; t++) pthread_join(th[t], NULL);
  pthread_barrier_destroy(&bar);
  for (unsigned t = 0; t < NT; t++)
    for (unsigned k = 0; k < PER_T; k++)
      if (tblk[t][k]) {
        assert_non_null(tblk[t][k]);
        assert_true(nblk < NB);
        blks[nblk++] = (struct blk){tblk[t][k], tlen[t][k], ttag[t][k]};
      }
}

// The write a thread makes while the set is held: to a block written by
// nobody for the last two snapshots.
static struct blk *held_target;
static void write_at_hold(void) {
  held_target->tag = 0x5151515151515151ull;
  fill(held_target->p, held_target->n, held_target->tag);
}

// ---------------------------------------------------------------------------
// The series

static mmpool_t *pa, *pb, *pf;

static void fork_child_series(const char *sd) {
  // A fork child: nothing tracked is its own; its first snapshot is whole,
  // the next ones incremental, each one right.
  struct snap_manifest m;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    // A failure here ends this child through cmocka: not the scratch
    // directory with it.
    dir = NULL;
    char *cd = path2(sd, "../child");
    // The shared file pool is an anonymous copy in a fork child.
    write_some(50);
    snap(cd, 0, DIRTY_NO_SET, &m);
    write_some(50);
    snap(cd, 3, DIRTY_OK, &m);
    write_some(50);
    purge_and_calloc(pb);
    snap(cd, 3, DIRTY_OK, &m);
    write_some(50);
    snap(cd, 3, DIRTY_OK, &m);
    blocks_hold();
    _exit(0);
  }
  child_ok(pid);
}

static void restore_child(const char *sd) {
  // The last snapshot restored in a child (its own pools closed first):
  // every block as it was. Its restored pools are private file pools, so
  // its own snapshot is whole, and says why.
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dir = NULL;  // as in fork_child_series
    assert_int_equal(mmpool_close(pa), 0);
    assert_int_equal(mmpool_close(pb), 0);
    assert_int_equal(mmpool_close(pf), 0);
    if (mmpool_restore(sd, NULL) != 3) {
      fprintf(stderr, "restore: %s (errno %d)\n", mmpool_last_error(), errno);
      _exit(2);
    }
    for (unsigned i = 0; i < nblk; i++)
      if (!holds(&blks[i])) {
        fprintf(stderr, "restored block %u differs\n", i);
        _exit(3);
      }
    struct snap_manifest m;
    char *rd = path2(sd, "../restored");
    snap(rd, 0, DIRTY_FILE, &m);
    _exit(0);
  }
  child_ok(pid);
}

static void test_series(void **state) {
  (void)state;
  char *sd = path2(dir, "snap");
  char *fpath = path2(dir, "shared.pool");
  char opts[600];
  pa = mmpool_open("incr_a", "size=2G");
  pb = mmpool_open("incr_b", "size=1G");
  snprintf(opts, sizeof opts, "file=%s size=256M", fpath);
  pf = mmpool_open("incr_f", opts);
  assert_non_null(pa);
  assert_non_null(pb);
  assert_non_null(pf);
  struct snap_manifest m;

  for (unsigned i = 0; i < 1500; i++) add(pa, some_size(), 0);
  for (unsigned i = 0; i < 600; i++) add(pb, some_size(), 0);
  for (unsigned i = 0; i < 200; i++) add(pf, 16 + rnd() % 4000, 0);
  // The first is whole: there is no earlier snapshot to follow.
  snap(sd, 0, DIRTY_NO_SET, &m);
  uint64_t full_bytes = m.bytes;
  write_some(100);
  snap(sd, 2, DIRTY_FILE, &m);

  // A little change twice: a few small blocks written.
  for (int round = 0; round < 2; round++) {
    for (unsigned k = 0, i = 0; k < 5 && i < nblk; i++)
      if (blks[i].n < 4096 && mmpool_of(blks[i].p) != pf) {
        blks[i].tag = rnd() | 1;
        fill(blks[i].p, blks[i].n, blks[i].tag);
        k++;
      }
    snap(sd, 2, DIRTY_FILE, &m);
  }
  if (m.bytes * 20 > full_bytes)
    fail_msg("an incremental snapshot of 10 small blocks wrote %llu bytes, "
             "a full one %llu", (unsigned long long)m.bytes,
             (unsigned long long)full_bytes);

  // Purged pages under unwritten calloc'd blocks, in both anonymous pools.
  purge_and_calloc(pa);
  snap(sd, 2, DIRTY_FILE, &m);
  write_some(20);
  snap(sd, 2, DIRTY_FILE, &m);
  purge_and_calloc(pb);
  for (unsigned i = 0; i < 300; i++) add(pa, some_size(), 0);
  snap(sd, 2, DIRTY_FILE, &m);
  snap(sd, 2, DIRTY_FILE, &m);

  // Growth past the first reservation (64 MiB), then shrink.
  unsigned big0 = nblk;
  for (unsigned i = 0; i < 6; i++) add(pa, 48u << 20, i & 1);
  snap(sd, 2, DIRTY_FILE, &m);
  write_some(30);
  snap(sd, 2, DIRTY_FILE, &m);
  while (nblk > big0) drop(nblk - 1);
  heap_trim(pool_from_handle(pa));
  snap(sd, 2, DIRTY_FILE, &m);
  snap(sd, 2, DIRTY_FILE, &m);

  // Threads allocating, writing and freeing across threads.
  threads(pa);
  snap(sd, 2, DIRTY_FILE, &m);
  threads(pb);
  for (unsigned i = 0; i < 100 && nblk; i++) drop((unsigned)(rnd() % nblk));
  snap(sd, 2, DIRTY_FILE, &m);

  // A write during the hold, after the scan, to a block nobody wrote since
  // the last snapshot: the writer must find it itself.
  snap(sd, 2, DIRTY_FILE, &m);
  held_target = NULL;
  for (unsigned i = 0; i < nblk && !held_target; i++)
    if (mmpool_of(blks[i].p) == pa && blks[i].n >= 8192) held_target = &blks[i];
  assert_non_null(held_target);
  snapshot_at_hold = write_at_hold;
  snap(sd, 2, DIRTY_FILE, &m);
  snapshot_at_hold = NULL;
  snap(sd, 2, DIRTY_FILE, &m);

  // Something mapped over part of a pool (the program's own mmap
  // MAP_FIXED): that mapping is not registered, the scan refuses it, the
  // range is registered again and the pool written whole, with a warning;
  // then incremental.
  {
    struct blk *b = NULL;
    for (unsigned i = 0; i < nblk && !b; i++)
      if (mmpool_of(blks[i].p) == pa && blks[i].n >= (64u << 10)) b = &blks[i];
    assert_non_null(b);
    uintptr_t lo = ((uintptr_t)b->p + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)b->p + b->n) & ~(uintptr_t)4095;
    assert_true(mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                (void *)lo);
    b->tag = rnd() | 1;
    fill(b->p, b->n, b->tag);
    snap(sd, 1, DIRTY_LOST, &m);
    snap(sd, 2, DIRTY_FILE, &m);
  }

  // A failed writer (each of its files in turn): it changed no file of the
  // snapshot before it, so the next one is a delta after that one all the
  // same, and right.
  for (unsigned nth = 1; nth <= 3; nth++) {
    write_some(10);
    os_fault_arm(OS_FAULT_FSYNC, nth, EIO);
    assert_int_equal(mmpool_snapshot(sd), -1);
    os_fault_arm(0, 0, 0);
    write_some(10);
    snap(sd, 2, DIRTY_FILE, &m);
  }

  // The data of a delta goes to the device directly, past the page cache
  // (the header and the records, at its ends, through it); where O_DIRECT
  // is refused (a file system without it), through the page cache, and it
  // reads back the same. On tmpfs the page cache is the file: there only
  // the second holds, and only that is checked.
  struct statfs sfs;
  assert_int_equal(statfs(dir, &sfs), 0);
  int in_memory = sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC;
  if (in_memory) print_message("%s is in memory: the delta's pages are in "
                               "the page cache either way\n", dir);
  for (int refuse = 0, tries = 0; refuse < 2; tries++) {
    for (unsigned i = 0, k = 0; i < nblk && k < 200; i++)
      if (mmpool_of(blks[i].p) == pa && blks[i].n >= 4096) {
        blks[i].tag = rnd() | 1;
        fill(blks[i].p, blks[i].n, blks[i].tag);
        k++;
      }
    if (refuse) os_fault_arm(OS_FAULT_DIRECT, 1, EINVAL);
    // Not snap(): its reading of the images fills the page cache.
    if (mmpool_snapshot(sd) != 0)
      fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
    os_fault_arm(0, 0, 0);
    read_manifest(sd, &m);
    size_t cached = 0, pages = 0;
    for (uint32_t k = 0; k < m.npools; k++) {
      if (strcmp(m.pool[k].name, "incr_a") || !m.chain[k].n) continue;
      char name[SNAP_FILE_MAX], *dp = NULL;
      snap_delta_name(name, sizeof name, "incr_a",
                      m.chain[k].serial[m.chain[k].n - 1]);
      assert_true(asprintf(&dp, "%s/%s", sd, name) > 0);
      int fd = open(dp, O_RDONLY);
      assert_true(fd >= 0);
      struct stat st;
      assert_int_equal(fstat(fd, &st), 0);
      pages = (size_t)st.st_size / 4096;
      void *v = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      assert_true(v != MAP_FAILED);
      cached = itest_resident(v, pages * 4096);
      munmap(v, (size_t)st.st_size);
      close(fd);
      free(dp);
    }
    if (!pages && tries < 3) continue;  // its chain was cut: whole
    if (pages < 64) fail_msg("a delta of %zu pages: too small to tell", pages);
    if (refuse || !in_memory ? (refuse ? cached < pages * 9 / 10
                                       : cached > pages / 10)
                             : 0)
      fail_msg("%s: %zu of the delta's %zu pages in the page cache",
               refuse ? "O_DIRECT refused" : "direct", cached, pages);
    compare_images(sd, &m);
    refuse++;
    tries = 0;
  }

  // The last file of a pool's chain changed behind the writer's back (a
  // byte of its data): that pool is written whole, and says why. (Short
  // chains first, so that no cut comes before.)
  snapshot_set_incremental(0);
  snap(sd, 0, DIRTY_ASKED, &m);
  snapshot_set_incremental(1);
  snap(sd, 0, DIRTY_NO_SET, &m);
  write_some(10);
  snap(sd, 2, DIRTY_FILE, &m);
  {
    char *kp = NULL, name[SNAP_FILE_MAX];
    const struct snap_chain *c = NULL;
    for (uint32_t k = 0; k < m.npools; k++)
      if (!strcmp(m.pool[k].name, "incr_a")) c = &m.chain[k];
    assert_true(c && c->n > 0);
    snap_delta_name(name, sizeof name, "incr_a", c->serial[c->n - 1]);
    assert_true(asprintf(&kp, "%s/%s", sd, name) > 0);
    int fd = open(kp, O_WRONLY);
    if (fd < 0) fail_msg("no delta %s", kp);
    assert_int_equal(pwrite(fd, "x", 1, 5000), 1);
    close(fd);
    free(kp);
    snap(sd, 1, DIRTY_CHANGED, &m);
    for (uint32_t k = 0; k < m.npools; k++)
      if (!strcmp(m.pool[k].name, "incr_a"))
        assert_int_equal(m.pool[k].how, SNAP_HOW_FULL | DIRTY_CHANGED << 8);
    snap(sd, 2, DIRTY_FILE, &m);
  }

  // A chain is cut at SNAP_CHAIN_MAX deltas: the next image is whole. A
  // pool of 64 MiB with one small block written each time (its deltas
  // stay far below a quarter of it); every cut (of any pool) follows a
  // chain at one of the two limits.
  {
    mmpool_t *pc = mmpool_open("incr_c", "size=1G");
    assert_non_null(pc);
    char *cblk[64];
    for (int i = 0; i < 64; i++) {
      assert_non_null(cblk[i] = mmpool_malloc(pc, 1u << 20));
      memset(cblk[i], i + 1, 1u << 20);
    }
    struct snap_manifest prev;
    snap(sd, 2, DIRTY_FILE, &m);  // incr_c new: whole
    uint32_t cut_c = 0, longest = 0;
    for (int round = 0; round < SNAP_CHAIN_MAX + 2; round++) {
      prev = m;
      cblk[round][100] ^= 1;
      if (mmpool_snapshot(sd) != 0)
        fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
      read_manifest(sd, &m);
      compare_images(sd, &m);
      for (uint32_t k = 0; k < m.npools; k++) {
        const char *nm = m.pool[k].name;
        if (m.chain[k].n > longest) longest = m.chain[k].n;
        if (m.pool[k].how != (SNAP_HOW_FULL | DIRTY_CHAIN << 8)) continue;
        const struct snap_entry *pe = NULL;
        const struct snap_chain *pc2 = NULL;
        for (uint32_t j = 0; j < prev.npools; j++)
          if (!strcmp(prev.pool[j].name, nm)) {
            pe = &prev.pool[j];
            pc2 = &prev.chain[j];
          }
        assert_non_null(pe);
        if (!(pc2->n >= SNAP_CHAIN_MAX || pc2->bytes > pe->length / 4))
          fail_msg("%s cut after %u deltas of %llu bytes (image %llu)", nm,
                   pc2->n, (unsigned long long)pc2->bytes,
                   (unsigned long long)pe->length);
        if (!strcmp(nm, "incr_c")) {
          assert_int_equal(pc2->n, SNAP_CHAIN_MAX);
          assert_int_equal(round, SNAP_CHAIN_MAX);
          cut_c++;
        }
      }
    }
    assert_int_equal(cut_c, 1);
    assert_int_equal(longest, SNAP_CHAIN_MAX);
    // Restored in a child, after a chain of SNAP_CHAIN_MAX - 1 deltas:
    // every block as written.
    for (int round = 0; round < SNAP_CHAIN_MAX - 1; round++) {
      cblk[round][200] ^= 1;
      snap(sd, 3, DIRTY_FILE, &m);
    }
    char *saved = malloc(64u << 20);
    assert_non_null(saved);
    for (int i = 0; i < 64; i++) memcpy(saved + ((size_t)i << 20), cblk[i], 1u << 20);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      dir = NULL;  // as in fork_child_series
      mmpool_t *all[4] = {pa, pb, pf, pc};
      for (int k = 0; k < 4; k++) assert_int_equal(mmpool_close(all[k]), 0);
      if (mmpool_restore(sd, NULL) != 4) {
        fprintf(stderr, "restore: %s\n", mmpool_last_error());
        _exit(2);
      }
      for (int i = 0; i < 64; i++)
        if (memcmp(saved + ((size_t)i << 20), cblk[i], 1u << 20)) _exit(3);
      _exit(0);
    }
    child_ok(pid);
    free(saved);
    assert_int_equal(mmpool_close(pc), 0);
    snap(sd, 2, DIRTY_FILE, &m);
  }
  // ... and when its deltas hold a quarter of the image's bytes.
  {
    int cut = 0;
    for (int round = 0; round < 8 && !cut; round++) {
      // Every block of incr_b written: most of its pages.
      for (unsigned i = 0; i < nblk; i++)
        if (mmpool_of(blks[i].p) == pb) {
          blks[i].tag = rnd() | 1;
          fill(blks[i].p, blks[i].n, blks[i].tag);
        }
      if (mmpool_snapshot(sd) != 0)
        fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
      read_manifest(sd, &m);
      compare_images(sd, &m);
      for (uint32_t k = 0; k < m.npools; k++)
        if (!strcmp(m.pool[k].name, "incr_b") &&
            m.pool[k].how == (SNAP_HOW_FULL | DIRTY_CHAIN << 8)) {
          assert_true(round >= 1 && round <= 5);
          cut = 1;
        }
    }
    assert_true(cut);
  }

  // A fork child takes its own; the parent goes on incrementally.
  fork_child_series(sd);
  write_some(10);
  snap(sd, 2, DIRTY_FILE, &m);
  snap(sd, 2, DIRTY_FILE, &m);

  // Forced full: each image is the pool's hidden one rewritten whole in
  // place, after frees, purges, growth and shrink that leave old bytes
  // where the image now has free spans or zeros (snap compares every byte).
  snapshot_set_incremental(0);
  for (int round = 0; round < 5; round++) {
    if (round == 0) purge_and_calloc(pa);
    if (round == 1)
      for (unsigned i = 0; i < 2; i++) add(pb, 40u << 20, 0);
    if (round == 2) {
      for (unsigned i = nblk; i-- > 0;)
        if (blks[i].n >= (40u << 20)) drop(i);
      heap_trim(pool_from_handle(pb));
    }
    if (round == 3)
      for (unsigned i = nblk; i-- > 0;)
        if (mmpool_of(blks[i].p) == pf && (i & 1)) drop(i);
    write_some(20);
    // The kept image of each pool (one at most, hidden), held open across
    // the snapshot: the new image must be that file (its inode cannot be
    // another file's while it is open), except the one with a second name
    // (a copy the user kept with ln), which must be left as it was. Each
    // pool has one once it was written whole twice: incr_a and incr_f
    // from the start, all three after the first round.
    const char *names[3] = {"incr_a", "incr_b", "incr_f"};
    int kfd[3];
    struct stat kst[3];
    char *keep = path2(dir, "kept-by-user.pool");
    for (int k = 0; k < 3; k++) {
      char *pat = NULL;
      glob_t g;
      assert_true(asprintf(&pat, "%s/%s%s.*.pool", sd, SNAP_KEPT_PREFIX,
                           names[k]) > 0);
      int gr = glob(pat, 0, NULL, &g);
      if (gr == GLOB_NOMATCH && round == 0 && k == 1) {
        kfd[k] = -1;
        free(pat);
        continue;
      }
      if (gr != 0 || g.gl_pathc != 1)
        fail_msg("want one kept image %s (round %d)", pat, round);
      kfd[k] = open(g.gl_pathv[0], O_RDONLY);
      assert_true(kfd[k] >= 0);
      if (k == round % 3) assert_int_equal(link(g.gl_pathv[0], keep), 0);
      assert_int_equal(fstat(kfd[k], &kst[k]), 0);
      globfree(&g);
      free(pat);
    }
    char *before = NULL;
    size_t blen = (size_t)kst[round % 3].st_size;
    assert_non_null(before = malloc(blen ? blen : 1));
    assert_int_equal(pread(kfd[round % 3], before, blen, 0), (ssize_t)blen);
    snap(sd, 0, DIRTY_ASKED, &m);
    assert_int_equal(m.bytes, m.image_bytes);
    for (int k = 0; k < 3; k++) {
      char *np = NULL;
      struct stat nst;
      assert_true(asprintf(&np, "%s/%s.%llu.pool", sd, names[k],
                           (unsigned long long)m.serial) > 0);
      assert_int_equal(stat(np, &nst), 0);
      if (kfd[k] < 0) {
        free(np);
        continue;
      }
      if (k == round % 3) {
        assert_true(nst.st_ino != kst[k].st_ino);
        struct stat ks;
        assert_int_equal(stat(keep, &ks), 0);
        assert_int_equal(ks.st_ino, kst[k].st_ino);
        assert_int_equal((size_t)ks.st_size, blen);
        char *after = malloc(blen ? blen : 1);
        assert_non_null(after);
        assert_int_equal(pread(kfd[k], after, blen, 0), (ssize_t)blen);
        assert_memory_equal(before, after, blen);
        free(after);
      } else {
        assert_int_equal(nst.st_ino, kst[k].st_ino);
      }
      close(kfd[k]);
      free(np);
    }
    assert_int_equal(unlink(keep), 0);
    free(keep);
    free(before);
  }
  // Back on: whole once (nothing was tracked), then incremental.
  snapshot_set_incremental(1);
  snap(sd, 0, DIRTY_NO_SET, &m);
  write_some(3);
  snap(sd, 2, DIRTY_FILE, &m);

  blocks_hold();
  restore_child(sd);
  assert_int_equal(mmpool_close(pa), 0);
  assert_int_equal(mmpool_close(pb), 0);
  assert_int_equal(mmpool_close(pf), 0);
  free(sd);
  free(fpath);
}

// ---------------------------------------------------------------------------
// Captures (core/snapshot.c): small deltas made by the process itself,
// with no copy of it, at an instant they check

static uint64_t captured(void) {
  struct snap_stats ss;
  snapshot_stats(&ss);
  return ss.captured;
}

// k small blocks of the anonymous pools written.
static void write_small(unsigned k) {
  for (unsigned i = 0; i < nblk && k; i++)
    if (blks[i].n < 4096 && (rnd() & 1)) {
      blks[i].tag = rnd() | 1;
      fill(blks[i].p, blks[i].n, blks[i].tag);
      k--;
    }
}

// A write made by a thread that does not call the allocator, while the
// capture copies: to a block nobody wrote since the last snapshot.
static struct blk *cap_target;
static int cap_writes;
static void write_at_capture(void) {
  cap_writes++;
  cap_target->tag = rnd() | 1;
  fill(cap_target->p, cap_target->n, cap_target->tag);
}

// A thread that writes, without a call to the allocator, a counter to lo
// and then to hi (hi far above lo), again and again: in any snapshot at one
// instant, hi <= lo <= hi + 1.
static volatile uint64_t *cnt_lo, *cnt_hi;
static atomic_int cnt_stop;
static void *counter(void *arg) {
  (void)arg;
  for (uint64_t v = 1; !atomic_load(&cnt_stop); v++) {
    *cnt_lo = v;
    atomic_signal_fence(memory_order_seq_cst);
    *cnt_hi = v;
    if (!(v & 63)) usleep(20);  // some snapshots find a quiet moment
  }
  return NULL;
}

static uint64_t image_word(const char *sd, const struct snap_manifest *m,
                           const char *pool, uintptr_t a) {
  for (uint32_t k = 0; k < m->npools; k++) {
    if (strcmp(m->pool[k].name, pool)) continue;
    struct inspect in;
    char why[4800] = "";
    if (snapshot_image_open(&in, sd, m, k, why, sizeof why))
      fail_msg("image of %s: %s", pool, why);
    assert_true(a >= in.hdr.base && a + 8 <= in.hdr.base + in.file_size);
    uint64_t v;
    memcpy(&v, (const char *)in.map + (a - in.hdr.base), sizeof v);
    inspect_close(&in);
    return v;
  }
  fail_msg("no pool %s in the snapshot", pool);
  return 0;
}

// snap() of a small change: captured, unless a chain of deltas was cut
// (pb's, small, is cut every few snapshots): a whole image is written by
// a copy of the process. Counts the captures in *c.
static void snap_small(const char *sd, struct snap_manifest *m, uint64_t *c) {
  snap(sd, 2, DIRTY_OK, m);
  int cut = 0;
  for (uint32_t k = 0; k < m->npools; k++)
    cut |= m->pool[k].how == (SNAP_HOW_FULL | DIRTY_CHAIN << 8);
  if (!cut) ++*c;
  assert_int_equal(captured(), *c);
}

// Runs body(DIR/sub) in a fork child, which must end well: a failure ends
// the child, not the scratch directory, and this process's pools and
// tracking stay as they were.
static void in_child(const char *sub, void (*body)(const char *sd)) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char *sd = path2(dir, sub);
    dir = NULL;
    snapshot_set_incremental(1);  // whatever a failed test left
    body(sd);
    _exit(0);
  }
  child_ok(pid);
}

static void capture_series(const char *sd) {
  pa = mmpool_open("cap_a", "size=512M");
  pb = mmpool_open("cap_b", "size=256M");
  assert_non_null(pa);
  assert_non_null(pb);
  pf = NULL;
  nblk = 0;
  // About 150 MiB: a few small blocks, or all of pb's, are far below
  // 1/64 of it.
  for (unsigned i = 0; i < 3000; i++) add(pa, (32u << 10) + rnd() % 32768, 0);
  for (unsigned i = 0; i < 300; i++) add(pb, (size_t)64 << (rnd() % 6), 0);
  for (unsigned i = 0; i < 10; i++) add(pb, 64u << 10, 0);
  struct snap_manifest m;
  snap(sd, 0, DIRTY_NO_SET, &m);
  uint64_t c = captured(), c_first = c;

  // Small changes: captured, and right.
  for (int round = 0; round < 3; round++) {
    write_small(30);
    snap_small(sd, &m, &c);
  }
  // Purged pages under unwritten calloc'd blocks: zero records, found
  // in the process's own pagemap.
  purge_and_calloc(pb);
  snap_small(sd, &m, &c);
  write_small(10);
  snap_small(sd, &m, &c);

  // A write while the capture copies: not one instant, so the process
  // is copied after all (the copy has the write: the image too), and
  // the next snapshot does not try (the program writes while held: a
  // capture's copies would be lost again); the one after does.
  cap_target = NULL;
  for (unsigned i = 0; i < nblk && !cap_target; i++)
    if (mmpool_of(blks[i].p) == pa) cap_target = &blks[i];
  assert_non_null(cap_target);
  write_small(10);
  snapshot_at_capture = write_at_capture;
  snap(sd, 2, DIRTY_OK, &m);
  snapshot_at_capture = NULL;
  assert_int_equal(cap_writes, 1);
  assert_int_equal(captured(), c);
  write_small(10);
  snap(sd, 2, DIRTY_OK, &m);
  assert_int_equal(captured(), c);
  write_small(10);
  snap_small(sd, &m, &c);

  // Changes too large for a capture: copied.
  for (unsigned i = 0; i < nblk; i++)
    if (mmpool_of(blks[i].p) == pa) {
      blks[i].tag = rnd() | 1;
      fill(blks[i].p, blks[i].n, blks[i].tag);
    }
  snap(sd, 2, DIRTY_OK, &m);  // a delta of all of pa (the next cuts it)
  assert_int_equal(captured(), c);
  write_small(10);
  snap_small(sd, &m, &c);

  // A capture that fails to write (its delta's sync, then the
  // manifest's): the snapshot before stands, and the next one is a
  // delta after it, right.
  for (unsigned nth = 1; nth <= 3; nth++) {
    write_small(10);
    os_fault_arm(OS_FAULT_FSYNC, nth, EIO);
    assert_int_equal(mmpool_snapshot(sd), -1);
    os_fault_arm(0, 0, 0);
    assert_int_equal(captured(), c);
    uint64_t serial = m.serial;
    read_manifest(sd, &m);
    assert_int_equal(m.serial, serial);
    for (uint32_t k = 0; k < m.npools; k++) {
      struct inspect in;
      char why[4800] = "";
      if (snapshot_image_open(&in, sd, &m, k, why, sizeof why))
        fail_msg("after a failed capture, %s: %s", m.pool[k].file, why);
      struct inspect_cb cb = {problem, NULL, m.pool[k].file};
      assert_int_equal(inspect_walk(&in, &cb, NULL), 0);
      inspect_close(&in);
    }
    write_small(10);
    snap_small(sd, &m, &c);
  }
  // A page of a block the program made unreadable (a guard page, as some
  // JITs and debug allocators make): the capture's copy is refused by
  // the kernel rather than faulting in the program, which runs on; the
  // copy of the process then faults reading it, so the snapshot fails
  // with that reason and the one before stands. Readable again: the next
  // one is right.
  {
    struct blk *b = NULL;
    for (unsigned i = 0; i < nblk && !b; i++)
      if (mmpool_of(blks[i].p) == pa && blks[i].n >= 3 * 4096) b = &blks[i];
    assert_non_null(b);
    char *g = (char *)(((uintptr_t)b->p + 4095) & ~(uintptr_t)4095);
    b->tag = rnd() | 1;
    fill(b->p, b->n, b->tag);
    write_small(10);
    assert_int_equal(mprotect(g, 4096, PROT_NONE), 0);
    uint64_t serial = m.serial;
    assert_int_equal(mmpool_snapshot(sd), -1);
    assert_non_null(strstr(mmpool_last_error(), "signal 11"));
    assert_int_equal(mprotect(g, 4096, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(captured(), c);
    read_manifest(sd, &m);
    assert_int_equal(m.serial, serial);
    snap(sd, 2, DIRTY_OK, &m);
  }
  blocks_hold();
  // Most of them were captured (the others cut a chain).
  if (c - c_first < 6)
    fail_msg("%llu snapshots of small changes captured",
             (unsigned long long)(c - c_first));

  // Restored (in a child, its pools closed first): the images mapped
  // where they are, copy-on-write, with their deltas applied at attach,
  // no copy of an image made; every block as it was.
  read_manifest(sd, &m);
  uint32_t chained = 0, ck = 0;
  for (uint32_t k = 0; k < m.npools; k++)
    if (m.chain[k].n) chained++, ck = k;
  assert_true(chained > 0);
  // A delta others may write is refused as its image would be.
  char dname[SNAP_FILE_MAX], *dpath;
  snap_delta_name(dname, sizeof dname, m.pool[ck].name, m.chain[ck].serial[0]);
  dpath = path2(sd, dname);
  assert_int_equal(chmod(dpath, 0620), 0);
  pid_t rp = fork();
  assert_true(rp >= 0);
  if (rp == 0) {
    uintptr_t base = (uintptr_t)pool_from_handle(pa)->base;
    assert_int_equal(mmpool_close(pa), 0);
    assert_int_equal(mmpool_close(pb), 0);
    int n = mmpool_restore(sd, NULL);
    if (n != -1 || errno != EACCES ||
        !strstr(mmpool_last_error(), "group or others may write it"))
      _exit(6);
    // The same when the set is moved in copies (cap_a's base taken).
    void *in_way = mmap((void *)base, 4096, PROT_READ,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                        -1, 0);
    if (in_way != (void *)base) _exit(7);
    n = mmpool_restore(sd, "relocate=yes");
    _exit(n == -1 && errno == EACCES &&
                  strstr(mmpool_last_error(), "group or others may write it")
              ? 0
              : 8);
  }
  child_ok(rp);
  assert_int_equal(chmod(dpath, 0600), 0);
  free(dpath);
  rp = fork();
  assert_true(rp >= 0);
  if (rp == 0) {
    assert_int_equal(mmpool_close(pa), 0);
    assert_int_equal(mmpool_close(pb), 0);
    if (mmpool_restore(sd, NULL) != 2) {
      fprintf(stderr, "restore: %s\n", mmpool_last_error());
      _exit(2);
    }
    for (unsigned i = 0; i < nblk; i++)
      if (!holds(&blks[i])) _exit(3);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4500];
    unsigned images = 0;
    while (f && fgets(line, sizeof line, f)) {
      if (strstr(line, ".relocated-")) _exit(4);
      images += strstr(line, "/cap_a.") || strstr(line, "/cap_b.");
    }
    if (f) fclose(f);
    _exit(images >= 2 ? 0 : 5);
  }
  child_ok(rp);

  // A thread writing all the while, without the allocator: every
  // snapshot, captured or copied, is one instant for it too.
  cnt_lo = (volatile uint64_t *)blks[0].p;
  cnt_hi = NULL;
  for (unsigned i = 0; i < nblk; i++)
    if (mmpool_of(blks[i].p) == mmpool_of(blks[0].p) &&
        (char *)blks[i].p > (char *)cnt_lo + (8u << 20) &&
        blks[i].n >= 8) {
      cnt_hi = (volatile uint64_t *)blks[i].p;
      break;
    }
  assert_non_null(cnt_hi);
  const char *cname = mmpool_of(blks[0].p) == pa ? "cap_a" : "cap_b";
  // Both words start at 0, and the snapshots once the thread has begun
  // (a loaded machine may run it late).
  *cnt_lo = *cnt_hi = 0;
  atomic_store(&cnt_stop, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, counter, NULL), 0);
  while (!*cnt_hi) usleep(100);
  uint64_t c0 = captured(), seen_lo = 0;
  for (int k = 0; k < 40; k++) {
    usleep(2000);
    if (mmpool_snapshot(sd) != 0)
      fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
    read_manifest(sd, &m);
    uint64_t lo = image_word(sd, &m, cname, (uintptr_t)cnt_lo),
             hi = image_word(sd, &m, cname, (uintptr_t)cnt_hi);
    if (hi > lo || lo > hi + 1)
      fail_msg("snapshot %llu is not one instant: the counter is %llu "
               "where it is written first, %llu where second",
               (unsigned long long)m.serial, (unsigned long long)lo,
               (unsigned long long)hi);
    assert_true(lo >= seen_lo);
    seen_lo = lo;
  }
  atomic_store(&cnt_stop, 1);
  pthread_join(th, NULL);
  print_message("%llu of 40 snapshots captured while a thread wrote\n",
                (unsigned long long)(captured() - c0));
  assert_true(seen_lo > 0);
}

static void test_capture(void **state) {
  (void)state;
  in_child("capture", capture_series);
}

// ---------------------------------------------------------------------------
// A kernel that refuses userfaultfd

// From here, system call nr fails with EPERM in this process (a seccomp
// filter, as a container's would be).
static void refuse_syscall(long nr) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof *f, f};
  assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  assert_int_equal(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

// In a child whose userfaultfd(2) fails with EPERM (a seccomp filter, as a
// container's would): every snapshot is whole, says why, and is right.
static void kernel_refuses(const char *sd) {
  refuse_syscall(SYS_userfaultfd);
  pa = mmpool_open("incr_k", "size=256M");
  assert_non_null(pa);
  pb = pf = NULL;
  nblk = 0;
  for (unsigned i = 0; i < 300; i++) add(pa, some_size(), 0);
  struct snap_manifest m;
  for (int k = 0; k < 4; k++) {
    write_some(10);
    snap(sd, 0, DIRTY_KERNEL, &m);
  }
}

static void test_kernel_refuses(void **state) {
  (void)state;
  in_child("kernel", kernel_refuses);
}

// In a child whose process_vm_readv(2) fails with EPERM (a filter): the
// first capture is dropped and no other is tried; every snapshot is a
// delta, copied, and right.
static void copies_refused(const char *sd) {
  refuse_syscall(SYS_process_vm_readv);
  pa = mmpool_open("incr_r", "size=512M");
  assert_non_null(pa);
  pb = pf = NULL;
  nblk = 0;
  for (unsigned i = 0; i < 2000; i++) add(pa, (32u << 10) + rnd() % 32768, 0);
  for (unsigned i = 0; i < 300; i++) add(pa, (size_t)64 << (rnd() % 6), 0);
  struct snap_manifest m;
  snap(sd, 0, DIRTY_NO_SET, &m);
  uint64_t c = captured();
  for (int k = 0; k < 4; k++) {
    write_small(10);
    snap(sd, 1, DIRTY_OK, &m);
  }
  assert_int_equal(captured(), c);
  assert_int_equal(delta_capture_usable(), 0);
}

static void test_copies_refused(void **state) {
  (void)state;
  in_child("refused", copies_refused);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_capture),
      cmocka_unit_test(test_series),
      cmocka_unit_test(test_kernel_refuses),
      cmocka_unit_test(test_copies_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
