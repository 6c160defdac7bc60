// test_snapshot.c: snapshots of all the pools of a process (issue 14, items
// 1 and 3). A snapshot is a directory: a manifest and one image per pool,
// each a pool file that attaches and passes the strict walk of `mmpool
// check` (inspect_walk). Cases: three kinds of pools with pointers between
// them, read back by attaching the images; snapshots while four threads
// allocate and free across threads; injected failures at every open and
// fsync of the writer, each leaving the previous snapshot whole; and 200
// kills of a process (and its writer) at random moments during repeated
// snapshots, the last complete snapshot checked and attached each time.
//
// Links the static core: it reads manifests and walks images with the
// engine's own code, and injects failures with os_fault_arm.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "itest.h"
#include "../common/smaps.h"

#include "hash.h"
#include "inspect.h"
#include "os.h"
#include "snapshot.h"

ITEST_SCRATCH_DIR("snap")

// mmpool_snapshot, its failure said.
static void snap_ok(const char *sd) {
  if (mmpool_snapshot(sd) != 0)
    fail_msg("mmpool_snapshot(%s): %s", sd, mmpool_last_error());
}

static char *path2(const char *a, const char *b) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", a, b) > 0);
  return p;
}

// The manifest of snapshot directory sd into *m: 1, or 0 when none.
static int manifest_of(const char *sd, struct snap_manifest *m) {
  char *mp = path2(sd, SNAP_MANIFEST);
  unsigned char *buf = NULL;
  size_t len = 0;
  int r = itest_read_file(mp, &buf, &len);
  free(mp);
  if (r) return 0;
  char why[200] = "";
  assert_int_equal(len, sizeof *m);
  memcpy(m, buf, sizeof *m);
  free(buf);
  if (snap_manifest_check(m, len, why, sizeof why) != 0)
    fail_msg("manifest of %s: %s", sd, why);
  return 1;
}

static void problem(void *arg, int64_t page, uint64_t addr, const char *line) {
  (void)page;
  (void)addr;
  fprintf(stderr, "  problem in %s: %s\n", (const char *)arg, line);
}

// Every image the manifest names: sound by the strict walk, clean, and the
// manifest's facts are the image's.
static void check_images(const char *sd, const struct snap_manifest *m) {
  for (uint32_t i = 0; i < m->npools; i++) {
    const struct snap_entry *e = &m->pool[i];
    char *ip = path2(sd, e->file);
    struct inspect in;
    char why[4800] = "";
    int r = snapshot_image_open(&in, sd, m, i, why, sizeof why);
    if (r) fail_msg("image %s: %s", ip, why);
    struct inspect_cb cb = {problem, NULL, ip};
    assert_int_equal(inspect_walk(&in, &cb, NULL), 0);
    assert_true(in.hdr.flags & POOLFILE_CLEAN);
    assert_int_equal(in.hdr.base, e->base);
    assert_int_equal(in.file_size, e->length);
    assert_int_equal(in.hdr.checksum, e->header_checksum);
    assert_int_equal(in.hdr.uuid[0], e->uuid[0]);
    inspect_close(&in);
    free(ip);
  }
}

// The files of sd: only the manifest and the images and deltas it names (a
// failed or killed writer's leftovers are gone once the next snapshot
// succeeds), beside the images kept hidden for whole rewrites in place
// (SNAP_KEPT_PREFIX; test_snapshot_incr covers them).
static unsigned count_files(const char *sd) {
  char *cmd = NULL;
  assert_true(asprintf(&cmd, "ls -A %s | grep -v '^%s' | wc -l", sd,
                       SNAP_KEPT_PREFIX) > 0);
  FILE *f = popen(cmd, "r");
  unsigned n = 0;
  assert_int_equal(fscanf(f, "%u", &n), 1);
  pclose(f);
  free(cmd);
  return n;
}

// The files manifest m names: its images and deltas, and itself.
static unsigned named_files(const struct snap_manifest *m) {
  unsigned n = m->npools + 1;
  for (uint32_t i = 0; i < m->npools; i++) n += m->chain[i].n;
  return n;
}

// ---------------------------------------------------------------------------
// Three pools, pointers between them, read back from the images

struct node {
  struct node *next;  // in the other pool
  uint64_t value;
};

static void test_three_pools(void **state) {
  (void)state;
  char *sd = path2(dir, "three");
  char *fshared = path2(dir, "shared.pool"), *fpriv = path2(dir, "priv.pool");
  char opts[600];
  mmpool_t *a = mmpool_open("snap_anon", "size=64M");
  snprintf(opts, sizeof opts, "file=%s size=64M", fshared);
  mmpool_t *s = mmpool_open("snap_shared", opts);
  assert_non_null(a);
  assert_non_null(s);
  // A private pool attaches an existing file: make it first.
  snprintf(opts, sizeof opts, "file=%s size=64M", fpriv);
  mmpool_t *p = mmpool_open("snap_priv", opts);
  assert_non_null(p);
  assert_int_equal(mmpool_close(p), 0);
  snprintf(opts, sizeof opts, "file=%s mode=private", fpriv);
  p = mmpool_open("snap_priv", opts);
  assert_non_null(p);

  // A chain through the three pools, and big blocks, with roots.
  mmpool_t *pools[3] = {a, s, p};
  struct node *head = NULL;
  for (int i = 0; i <= 3000; i++) {
    struct node *n = mmpool_malloc(pools[i % 3], sizeof *n + (i % 7) * 40);
    assert_non_null(n);
    n->next = head;
    n->value = (uint64_t)i * 2654435761u;
    head = n;
  }
  char *big = mmpool_malloc(a, 3 << 20);
  assert_non_null(big);
  memset(big, 0x5a, 3 << 20);
  assert_int_equal(mmpool_set_root(a, 0, head), 0);
  assert_int_equal(mmpool_set_root(a, 1, big), 0);

  snap_ok(sd);
  struct snap_manifest m;
  assert_int_equal(manifest_of(sd, &m), 1);
  assert_int_equal(m.serial, 1);
  assert_int_equal(m.pid, getpid());
  assert_true(m.npools >= 3);
  check_images(sd, &m);
  // What the program does after the snapshot is not in it.
  head->value = 1;
  snap_ok(sd);
  assert_int_equal(manifest_of(sd, &m), 1);
  assert_int_equal(m.serial, 2);
  check_images(sd, &m);
  assert_int_equal(count_files(sd), named_files(&m));
  head->value = 0;  // the live value; the snapshot says 1

  // Read back in a child: the pools closed there, the snapshot restored
  // at its bases (privately: the snapshot stays as it is; the anonymous
  // pool's image has a delta since the first snapshot).
  assert_int_equal(m.chain[0].n + m.chain[1].n + m.chain[2].n, 1);
  pid_t c = fork();
  if (c == 0) {
    mmpool_close(a);
    mmpool_close(s);
    mmpool_close(p);
    mmpool_t *img[3] = {0};
    const char *names[3] = {"snap_anon", "snap_shared", "snap_priv"};
    if (mmpool_restore(sd, NULL) != (int)m.npools) {
      fprintf(stderr, "restore %s: %s\n", sd, mmpool_last_error());
      _exit(2);
    }
    for (int k = 0; k < 3; k++)
      if (!(img[k] = mmpool_get(names[k]))) _exit(2);
    struct node *h = mmpool_get_root(img[0], 0);
    unsigned char *b = mmpool_get_root(img[0], 1);
    if (!h || h->value != 1 || !b || b[0] != 0x5a || b[(3 << 20) - 1] != 0x5a)
      _exit(3);
    int i = 3000, k = 0;
    for (struct node *n = h->next; n; n = n->next, k++) {
      i--;
      if (n->value != (uint64_t)i * 2654435761u) _exit(4);
      if (mmpool_of(n) != img[i % 3]) _exit(5);
    }
    _exit(k == 3000 ? 0 : 6);
  }
  int st = 0;
  assert_int_equal(waitpid(c, &st, 0), c);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);

  // The shared file itself stays the program's.
  assert_int_equal(mmpool_close(a), 0);
  assert_int_equal(mmpool_close(s), 0);
  assert_int_equal(mmpool_close(p), 0);
  free(sd);
  free(fshared);
  free(fpriv);
}

// ---------------------------------------------------------------------------
// thp=yes: the pool's range is advised for huge pages (VmFlags "hg" in
// /proc/self/smaps), so that a snapshot's copy of the process copies one
// page-table entry per 2 MiB; without it, not.

static int range_has_hg(uintptr_t lo, uintptr_t hi) {
  int hg = 0;
  assert_int_equal(smaps_range(lo, hi, NULL, &hg), 0);
  return hg;
}

static void test_thp(void **state) {
  (void)state;
  mmpool_t *y = mmpool_open("thp_yes", "size=256M thp=yes");
  mmpool_t *n = mmpool_open("thp_no", "size=256M");
  assert_non_null(y);
  assert_non_null(n);
  for (int i = 0; i < 10000; i++) {
    memset(mmpool_malloc(y, 1000), 1, 1000);
    memset(mmpool_malloc(n, 1000), 1, 1000);
  }
  uintptr_t by = (uintptr_t)mmpool_base(y), bn = (uintptr_t)mmpool_base(n);
  assert_true(range_has_hg(by, by + mmpool_capacity(y)));
  assert_false(range_has_hg(bn, bn + mmpool_capacity(n)));
  assert_int_equal(mmpool_close(y), 0);
  assert_int_equal(mmpool_close(n), 0);
}

// ---------------------------------------------------------------------------
// Relocation: two pools pointing into each other, both bases taken

static void test_relocate_two_pools(void **state) {
  (void)state;
  char *sd = path2(dir, "reloc");
  mmpool_t *a = mmpool_open("rel_a", "size=64M");
  mmpool_t *b = mmpool_open("rel_b", "size=64M");
  assert_non_null(a);
  assert_non_null(b);
  struct node *head = NULL;
  for (int i = 0; i <= 2000; i++) {
    struct node *n = mmpool_malloc(i % 2 ? b : a, sizeof *n + (i % 5) * 24);
    n->next = head;
    n->value = (uint64_t)i;
    head = n;
    if (i == 700) snap_ok(sd);  // the images; the deltas come after
  }
  // i = 2000 is in a: the root. A large block holds pointers too.
  struct node **big = mmpool_malloc(b, 300000);
  for (int k = 0; k < 1000; k++) big[k] = head;
  assert_int_equal(mmpool_set_root(a, 0, head), 0);
  assert_int_equal(mmpool_set_root(b, 0, big), 0);
  uintptr_t base_a = (uintptr_t)mmpool_base(a), base_b = (uintptr_t)mmpool_base(b);
  snap_ok(sd);
  struct snap_manifest before;
  assert_int_equal(manifest_of(sd, &before), 1);
  // Both pools moved from an image and a delta.
  assert_int_equal(before.chain[0].n, 1);
  assert_int_equal(before.chain[1].n, 1);
  pid_t c = fork();
  if (c == 0) {
    mmpool_close(a);
    mmpool_close(b);
    // Something else at both bases now.
    if (mmap((void *)base_a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
             MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED ||
        mmap((void *)base_b, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
             MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
      _exit(2);
    if (mmpool_restore(sd, NULL) != -1 || errno != EEXIST ||
        !strstr(mmpool_last_error(), "occupied by")) {
      fprintf(stderr, "restore without relocation: %s\n",
              mmpool_last_error());
      _exit(3);
    }
    if (mmpool_get("rel_a") || mmpool_get("rel_b")) _exit(4);
    if (mmpool_restore(sd, "relocate=yes") < 2) {
      fprintf(stderr, "restore: %s\n", mmpool_last_error());
      _exit(5);
    }
    mmpool_t *ra = mmpool_get("rel_a"), *rb = mmpool_get("rel_b");
    if (!ra || !rb || mmpool_base(ra) == (void *)base_a ||
        mmpool_base(rb) == (void *)base_b)
      _exit(6);
    struct node *h = mmpool_get_root(ra, 0);
    struct node **bg = mmpool_get_root(rb, 0);
    if (!h || mmpool_of(h) != ra || !bg || mmpool_of(bg) != rb) _exit(7);
    for (int k = 0; k < 1000; k++)
      if (bg[k] != h) _exit(8);
    int i = 2000;
    for (struct node *n = h; n; n = n->next, i--)
      if (n->value != (uint64_t)i || mmpool_of(n) != (i % 2 ? rb : ra))
        _exit(9);
    if (i != -1) _exit(10);
    // The moved pools work: allocate, free, check.
    for (int k = 0; k < 1000; k++) mmpool_free(mmpool_malloc(ra, 40));
    mmpool_free(h);
    if (mmpool_check(ra) || mmpool_check(rb)) _exit(11);
    _exit(0);
  }
  int st = 0;
  assert_int_equal(waitpid(c, &st, 0), c);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  // The snapshot is as it was, and no copy is left beside it.
  struct snap_manifest after;
  assert_int_equal(manifest_of(sd, &after), 1);
  assert_memory_equal(&before, &after, sizeof before);
  check_images(sd, &after);
  assert_int_equal(count_files(sd), named_files(&after));
  assert_int_equal(mmpool_close(a), 0);
  assert_int_equal(mmpool_close(b), 0);
  free(sd);
}

// ---------------------------------------------------------------------------
// Four threads allocating and freeing across threads

enum { NT = 4, RING = 128, SWAP = 512 };
static mmpool_t *tpool;
static atomic_int stop;
static _Atomic(void *) swap_slots[SWAP];

static void *worker(void *arg) {
  uint64_t rng = (uintptr_t)arg * 977 + 3;
  void *ring[RING] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    unsigned k = (unsigned)(rng >> 20) % RING;
    mmpool_free(ring[k]);
    size_t sz = (rng >> 33) % 100 == 0 ? 70000 + (rng >> 40) % 200000
                                       : 16 + (rng >> 33) % 2000;
    ring[k] = mmpool_malloc(tpool, sz);
    if (ring[k] && (rng & 3) == 0) {
      void *old = atomic_exchange(&swap_slots[(rng >> 44) % SWAP], ring[k]);
      ring[k] = NULL;
      mmpool_free(old);
    }
  }
  for (unsigned k = 0; k < RING; k++) mmpool_free(ring[k]);
  return NULL;
}

static void test_under_threads(void **state) {
  (void)state;
  char *sd = path2(dir, "threads");
  tpool = mmpool_open("snap_threads", "size=1G");
  assert_non_null(tpool);
  pthread_t t[NT];
  atomic_store(&stop, 0);
  for (long i = 0; i < NT; i++)
    assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
  int rounds = MMPOOL_SANITIZED ? 5 : 20;
  struct snap_manifest m;
  for (int r = 0; r < rounds; r++) {
    usleep(20000);
    snap_ok(sd);
    assert_int_equal(manifest_of(sd, &m), 1);
    assert_int_equal(m.serial, (uint64_t)r + 1);
    check_images(sd, &m);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  for (unsigned k = 0; k < SWAP; k++) mmpool_free(atomic_exchange(&swap_slots[k], NULL));
  assert_int_equal(mmpool_close(tpool), 0);
  free(sd);
}

// ---------------------------------------------------------------------------
// One pool, one word: its value through a snapshot

// A pool of 64 MiB named name whose root 0 is a word holding value (*v).
static mmpool_t *pool_with_root(const char *name, uint64_t value,
                                uint64_t **v) {
  mmpool_t *p = mmpool_open(name, "size=64M");
  assert_non_null(p);
  *v = mmpool_malloc(p, sizeof **v);
  assert_non_null(*v);
  **v = value;
  assert_int_equal(mmpool_set_root(p, 0, *v), 0);
  return p;
}

// In a child with pool p closed: sd's snapshot of that one pool restored,
// and its root 0 holds want.
static void restored_root_is(const char *sd, mmpool_t *p, const char *name,
                             uint64_t want) {
  pid_t c = fork();
  if (c == 0) {
    mmpool_close(p);
    if (mmpool_restore(sd, NULL) != 1) _exit(2);
    uint64_t *rv = mmpool_get_root(mmpool_get(name), 0);
    _exit(rv && *rv == want ? 0 : 3);
  }
  int st = 0;
  assert_int_equal(waitpid(c, &st, 0), c);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

// ---------------------------------------------------------------------------
// Failures: each open and fsync of the writer fails once in turn

static void test_failures_keep_previous(void **state) {
  (void)state;
  char *sd = path2(dir, "faults");
  uint64_t *v;
  mmpool_t *fp = pool_with_root("snap_faults", 41, &v);
  snap_ok(sd);
  struct snap_manifest good, m;
  assert_int_equal(manifest_of(sd, &good), 1);
  // Whole images first, then deltas. A fault may also hit an open the
  // writer can do without (the previous image, a hidden one to reuse):
  // then it writes the image whole, or in a new file, and succeeds.
  unsigned fired = 0, nth, ok = 0;
  for (int incr = 0; incr < 2; incr++) {
  snapshot_set_incremental(incr);
  for (nth = 1; nth < 24; nth++) {
    *v = 1000 + nth;
    os_fault_arm(OS_FAULT_OPEN | OS_FAULT_FSYNC | OS_FAULT_FTRUNCATE, nth,
                 ENOSPC);
    int r = mmpool_snapshot(sd);
    os_fault_arm(0, 0, 0);  // the writer's copy fired, not this one
    if (r == 0) {           // past the open or fsync asked to fail
      assert_int_equal(manifest_of(sd, &m), 1);
      assert_int_equal(m.serial, good.serial + 1);
      check_images(sd, &m);
      assert_int_equal(count_files(sd), named_files(&m));
      ok += incr && m.incremental == 1;
      good = m;
      continue;
    }
    fired++;
    assert_int_equal(errno, ENOSPC);
    // One line naming where: the directory, or the writer's file.
    if (!strstr(mmpool_last_error(), sd))
      fail_msg("fault %u: %s", nth, mmpool_last_error());
    assert_int_equal(manifest_of(sd, &m), 1);
    if (strstr(mmpool_last_error(), "new snapshot is in place")) {
      // The directory's fsync failed after the rename: the new one is
      // there, whole, and becomes the one to keep.
      assert_int_equal(m.serial, good.serial + 1);
      good = m;
    } else {
      assert_int_equal(m.serial, good.serial);
      assert_memory_equal(&m, &good, sizeof m);
    }
    check_images(sd, &m);
    assert_int_equal(count_files(sd), named_files(&m));
  }
  }
  // Images (open, truncate, fsync), the manifest (open, fsync), the
  // directory (fsync): every step of one pool's snapshot failed once,
  // whole and as a delta (open, fsync, manifest, directory).
  assert_true(fired >= 11);
  assert_true(ok > 0);
  assert_int_equal(manifest_of(sd, &m), 1);
  check_images(sd, &m);
  assert_int_equal(count_files(sd), named_files(&m));
  // The root's value of the last snapshot, restored in a child.
  restored_root_is(sd, fp, "snap_faults", 1000 + nth - 1);

  // A manifest that is not one is refused, not overwritten.
  char *mp = path2(sd, SNAP_MANIFEST);
  FILE *f = fopen(mp, "r+b");
  assert_non_null(f);
  fseek(f, 100, SEEK_SET);
  fputc(0x77, f);
  fclose(f);
  assert_int_equal(mmpool_snapshot(sd), -1);
  assert_int_equal(errno, EUCLEAN);
  assert_non_null(strstr(mmpool_last_error(), "manifest checksum mismatch"));
  // A directory others may write is refused.
  char *od = path2(dir, "open");
  assert_int_equal(mkdir(od, 0777), 0);
  assert_int_equal(chmod(od, 0777), 0);
  assert_int_equal(mmpool_snapshot(od), -1);
  assert_int_equal(errno, EACCES);
  assert_non_null(strstr(mmpool_last_error(), "group or others"));
  assert_int_equal(mmpool_close(fp), 0);
  free(mp);
  free(od);
  free(sd);
}

// ---------------------------------------------------------------------------
// A manifest of version 1 (builds before deltas): read as version 2 with no
// chains, and restored; one whose checksum does not hold is refused.

static void test_manifest_v1(void **state) {
  (void)state;
  char *sd = path2(dir, "v1");
  uint64_t *v;
  mmpool_t *p = pool_with_root("snap_v1", 1234567, &v);
  snap_ok(sd);  // one snapshot: whole images, no chain
  struct snap_manifest m;
  assert_int_equal(manifest_of(sd, &m), 1);
  assert_int_equal(m.chain[0].n, 0);
  // What a build before deltas wrote: the same up to the entries, then a
  // checksum of them (the manifest's hash, core/snapshot.c).
  static unsigned char old[SNAP_V1_SIZE];
  struct snap_manifest *o = (struct snap_manifest *)(void *)&m;
  o->version = 1;
  o->size = SNAP_V1_SIZE;
  memcpy(old, o, SNAP_V1_SIZE - 8);
  uint64_t sum = hash_bytes(old, SNAP_V1_SIZE - 8, 0x736e6170);
  memcpy(old + SNAP_V1_SIZE - 8, &sum, 8);
  char *mp = path2(sd, SNAP_MANIFEST);
  FILE *f = fopen(mp, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(old, 1, sizeof old, f), sizeof old);
  assert_int_equal(fclose(f), 0);
  struct snap_manifest r;
  assert_int_equal(snapshot_read(sd, &r), 0);
  assert_int_equal(r.version, SNAP_VERSION);
  assert_int_equal(r.npools, m.npools);
  assert_string_equal(r.pool[0].file, m.pool[0].file);
  for (uint32_t i = 0; i < MMPOOL_MAX_POOLS; i++)
    assert_int_equal(r.chain[i].n, 0);
  assert_int_equal(r.npools, 1);
  restored_root_is(sd, p, "snap_v1", 1234567);
  // A byte of it changed: refused by its checksum.
  old[100] ^= 1;
  f = fopen(mp, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(old, 1, sizeof old, f), sizeof old);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(snapshot_read(sd, &r), -EUCLEAN);
  assert_non_null(strstr(mmpool_last_error(), "manifest checksum mismatch"));
  // The next snapshot replaces it (version 2 again).
  old[100] ^= 1;
  f = fopen(mp, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(old, 1, sizeof old, f), sizeof old);
  assert_int_equal(fclose(f), 0);
  snap_ok(sd);
  assert_int_equal(manifest_of(sd, &m), 1);
  assert_int_equal(m.version, SNAP_VERSION);
  assert_int_equal(mmpool_close(p), 0);
  free(mp);
  free(sd);
}

// ---------------------------------------------------------------------------
// Kills at random moments

// The program: a pool with a root chain, threads changing it, snapshots
// in a loop until it is killed (with its writer: one process group).
static _Noreturn void snapshot_loop(const char *sd, unsigned seed) {
  setpgid(0, 0);
  tpool = mmpool_open("snap_kill", "size=256M");
  if (!tpool) _exit(2);
  uint64_t *roots = mmpool_calloc(tpool, 64, sizeof *roots);
  mmpool_set_root(tpool, 0, roots);
  atomic_store(&stop, 0);
  pthread_t t[2];
  for (long i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, worker, (void *)(i + seed));
  // Some bulk, so that a writer takes a moment.
  for (int i = 0; i < 8; i++) memset(mmpool_malloc(tpool, 1 << 20), i, 1 << 20);
  for (uint64_t k = 1;; k++) {
    roots[k % 64] = k;
    uint64_t t0 = os_now_ns();
    int r = mmpool_snapshot(sd);
    if (getenv("SNAP_VERBOSE"))
      fprintf(stderr, "snapshot %d in %llu us\n", r,
              (unsigned long long)(os_now_ns() - t0) / 1000);
  }
}

static void test_kill_at_random(void **state) {
  (void)state;
  char *sd = path2(dir, "kill");
  // Orphaned writers become this process's children, to be reaped.
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int rounds = MMPOOL_SANITIZED ? 40 : 200;
  unsigned seen = 0, attached = 0;
  uint64_t last_serial = 0;
  srand(12345);
  for (int r = 0; r < rounds; r++) {
    pid_t c = fork();
    if (c == 0) snapshot_loop(sd, (unsigned)r);
    setpgid(c, c);
    struct timespec ts = {0, (long)(rand() % 150) * 1000000L + rand() % 1000000};
    nanosleep(&ts, NULL);
    kill(-c, SIGKILL);
    kill(c, SIGKILL);
    // The program, then any writer it left.
    while (waitpid(-1, NULL, __WALL) > 0) {
    }
    struct snap_manifest m;
    if (!manifest_of(sd, &m)) continue;  // killed before the first one
    seen++;
    assert_true(m.serial >= last_serial);
    last_serial = m.serial;
    check_images(sd, &m);
    // It restarts: the images attach (privately; deltas applied) and the
    // root is there.
    if (mmpool_restore(sd, NULL) != (int)m.npools)
      fail_msg("restore %s: %s", sd, mmpool_last_error());
    mmpool_t *img = mmpool_get("snap_kill");
    assert_non_null(img);
    assert_non_null(mmpool_get_root(img, 0));
    for (uint32_t i = 0; i < m.npools; i++)
      assert_int_equal(mmpool_close(mmpool_get(m.pool[i].name)), 0);
    attached++;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  print_message("%u of %d kills left a snapshot (last serial %llu)\n", seen,
                rounds, (unsigned long long)last_serial);
  assert_true(seen > 0 && attached == seen);
  free(sd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_three_pools),
      cmocka_unit_test(test_relocate_two_pools),
      cmocka_unit_test(test_thp),
      cmocka_unit_test(test_under_threads),
      cmocka_unit_test(test_failures_keep_previous),
      cmocka_unit_test(test_manifest_v1),
      cmocka_unit_test(test_kill_at_random),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
