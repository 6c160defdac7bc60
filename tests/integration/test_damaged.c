// test_damaged.c: damaged pool files are refused with a reason, never
// crash the process that attaches them, and are left as they were.
//
// The parent never opens a pool: it builds a valid file in a child, damages
// copies of it byte by byte (through core/poolfile.h, so re-sealed headers
// pass the header checksum and reach the later checks), and attaches each
// copy in a forked child that reports what happened through a pipe.
// Links mmpool_core (for poolfile_seal), not mmpool_shared.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "../common/smaps.h"
#include "log.h"
#include "mmpool.h"
#include "poolfile.h"
#include "../common/poolimg.h"

#define BASE 0x320000000000ull
#define NEWOPTS "size=64M base=0x320000000000"
#define ROOT1_TEXT "damaged-test-root-1"
#define ROOT2_LEN (300u * 1024)

static char *dir;
static unsigned char *good; // the valid pool file's bytes
static size_t good_len;

static char *path_in(const char *name) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

// ---------------------------------------------------------------------------
// Children

// What an attaching child saw.
struct outcome {
  int accepted;  // mmpool_open returned a pool
  int err;       // errno when it did not
  int check;     // mmpool_check of the attached pool (0 sound)
  int roots_ok;  // roots 1 and 2 lead to the blocks the file was made with
  long blocks;   // stats.in_use_blocks
  int closed;    // mmpool_close result
  char msg[512]; // mmpool_last_error() after the open or the check
  // With probe_root1: after the above, root 1's block is freed and blocks
  // of its size allocated.
  size_t usable1; // mmpool_usable_size of root 1's block, before
  int reused;     // one of them was root 1's block (freed into a slab)
  int check2;     // mmpool_check after
  char log[512];  // the engine's warnings meanwhile
};

static int probe_root1;

static void fill_pool(mmpool_t *pool) {
  char *r1 = mmpool_malloc(pool, sizeof ROOT1_TEXT);
  unsigned char *r2 = mmpool_malloc(pool, ROOT2_LEN);
  if (r1 == NULL || r2 == NULL) _exit(20);
  memcpy(r1, ROOT1_TEXT, sizeof ROOT1_TEXT);
  itest_fill_pattern(r2, ROOT2_LEN, 2);
  // Some blocks of many classes, some freed, so the file has free lists.
  void *keep[600];
  uint64_t rng = 5;
  for (int i = 0; i < 600; i++) {
    size_t n = 1 + itest_rand(&rng) % (i % 10 == 0 ? 60000 : 2000);
    keep[i] = mmpool_malloc(pool, n);
    if (keep[i] == NULL) _exit(21);
    memset(keep[i], i & 0xff, n);
  }
  for (int i = 0; i < 600; i += 3)
    mmpool_free(keep[i]);
  if (mmpool_set_root(pool, 1, r1) != 0 || mmpool_set_root(pool, 2, r2) != 0)
    _exit(22);
}

static int roots_ok(mmpool_t *pool) {
  const char *r1 = mmpool_get_root(pool, 1);
  const unsigned char *r2 = mmpool_get_root(pool, 2);
  return r1 != NULL && r2 != NULL && mmpool_of(r1) == pool &&
         mmpool_of(r2) == pool && mmpool_usable_size(r1) == sizeof ROOT1_TEXT &&
         strcmp(r1, ROOT1_TEXT) == 0 && mmpool_usable_size(r2) == ROOT2_LEN &&
         itest_check_pattern(r2, ROOT2_LEN, 2);
}

// Creates the valid pool file at path (in a child).
static void make_good(const char *path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s %s", path, NEWOPTS);
    mmpool_t *pool = mmpool_open("good", opts);
    if (pool == NULL) {
      fprintf(stderr, "make_good: %s\n", mmpool_last_error());
      _exit(10);
    }
    fill_pool(pool);
    if (mmpool_check(pool) != 0 || !roots_ok(pool)) _exit(11);
    _exit(mmpool_close(pool) == 0 ? 0 : 12);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

// Attaches path (with extra options) in a forked child. *status gets the
// child's wait status.
static struct outcome attach(const char *path, const char *extra, int *status) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    struct outcome o;
    memset(&o, 0, sizeof o);
    o.check = -2;
    o.closed = -2;
    o.blocks = -1;
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s%s%s", path, extra ? " " : "",
             extra ? extra : "");
    errno = 0;
    mmpool_t *pool = mmpool_open("d", opts);
    o.err = errno;
    o.accepted = pool != NULL;
    snprintf(o.msg, sizeof o.msg, "%s", mmpool_last_error());
    if (pool != NULL) {
      o.check = mmpool_check(pool);
      if (o.check != 0)
        snprintf(o.msg, sizeof o.msg, "check: %s", mmpool_last_error());
      o.roots_ok = roots_ok(pool);
      mmpool_stats_t st;
      if (mmpool_stats(pool, &st) == 0) o.blocks = (long)st.in_use_blocks;
      // The pool must be usable: allocate, free, allocate large.
      void *a = mmpool_malloc(pool, 100), *b = mmpool_malloc(pool, 1 << 20);
      if (a == NULL || b == NULL) o.check = o.check ? o.check : -3;
      mmpool_free(a);
      mmpool_free(b);
      char *r1 = mmpool_get_root(pool, 1);
      FILE *logf = probe_root1 ? tmpfile() : NULL;
      if (logf && r1) {
        log_set_fd(fileno(logf));
        o.usable1 = mmpool_usable_size(r1);
        mmpool_free(r1);
        for (int i = 0; i < 64; i++)
          o.reused |= mmpool_malloc(pool, sizeof ROOT1_TEXT) == r1;
        o.check2 = mmpool_check(pool);
        size_t n = fread(o.log, 1, sizeof o.log - 1, (rewind(logf), logf));
        o.log[n] = '\0';
        log_set_fd(2);
      }
      o.closed = mmpool_close(pool);
    }
    ssize_t w = write(fds[1], &o, sizeof o);
    _exit(w == (ssize_t)sizeof o ? 0 : 1);
  }
  assert_true(pid > 0);
  close(fds[1]);
  struct outcome o;
  memset(&o, 0, sizeof o);
  size_t got = itest_read_all(fds[0], &o, sizeof o);
  close(fds[0]);
  assert_int_equal(waitpid(pid, status, 0), pid);
  if (!WIFEXITED(*status))
    print_error("attaching %s: child killed by signal %d\n", path,
                WTERMSIG(*status));
  assert_true(WIFEXITED(*status));
  assert_int_equal(WEXITSTATUS(*status), 0);
  assert_int_equal(got, sizeof o);
  o.msg[sizeof o.msg - 1] = '\0';
  return o;
}

// ---------------------------------------------------------------------------
// Damage and expectations

// A writable copy of the good file.

static struct img img_copy(void) { return img_dup(good, good_len); }

static char *img_save(struct img *m, const char *name) {
  char *p = path_in(name);
  unlink(p);
  assert_int_equal(itest_write_file(p, m->b, m->len), 0);
  return p;
}

// True when msg contains one of the '|'-separated alternatives.
// An empty alts asks only for a non-empty message.
static int has_any(const char *msg, const char *alts) {
  if (alts[0] == '\0') return msg[0] != '\0';
  char buf[256];
  snprintf(buf, sizeof buf, "%s", alts);
  for (char *save, *t = strtok_r(buf, "|", &save); t;
       t = strtok_r(NULL, "|", &save))
    if (strstr(msg, t)) return 1;
  return 0;
}

// Attaches m (saved as name) and expects a refusal with err and a message
// containing one of alts; the file must be left unchanged.
static void expect_refused_opts(struct img *m, const char *name,
                                const char *extra, int err, const char *alts) {
  char *p = img_save(m, name);
  int st;
  struct outcome o = attach(p, extra, &st);
  if (o.accepted || o.err != err || !has_any(o.msg, alts))
    print_error("%s: accepted %d, errno %d (%s), message \"%s\"; expected "
                "errno %d (%s) and \"%s\"\n",
                name, o.accepted, o.err, strerror(o.err), o.msg, err,
                strerror(err), alts);
  assert_false(o.accepted);
  assert_int_equal(o.err, err);
  assert_true(has_any(o.msg, alts));
  if (!itest_file_equals(p, m->b, m->len))
    print_error("%s: the refused attach changed the file\n", name);
  assert_true(itest_file_equals(p, m->b, m->len));
  free(m->b);
  m->b = NULL;
}

static void expect_refused(struct img *m, const char *name, int err,
                           const char *alts) {
  expect_refused_opts(m, name, NULL, err, alts);
}

// ---------------------------------------------------------------------------
// Tests

static int setup(void **state) {
  (void)state;
  dir = itest_mkdtemp("damaged");
  return dir ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  free(good);
  itest_rmtree(dir);
  free(dir);
  return 0;
}

// The file at path attaches (with opts) sound and with its roots, closes
// cleanly, and then attaches again without options.
static void assert_attaches(const char *path, const char *opts,
                            const char *what) {
  int st;
  struct outcome o = attach(path, opts, &st);
  if (!o.accepted || o.check != 0)
    print_error("%s: accepted %d errno %d check %d \"%s\"\n", what, o.accepted,
                o.err, o.check, o.msg);
  assert_true(o.accepted);
  assert_int_equal(o.check, 0);
  assert_true(o.roots_ok);
  assert_int_equal(o.closed, 0);
  o = attach(path, NULL, &st);
  assert_true(o.accepted);
  assert_int_equal(o.check, 0);
  assert_true(o.roots_ok);
}

static void test_good_file(void **state) {
  (void)state;
  char *p = path_in("good.pool");
  make_good(p);
  assert_int_equal(itest_read_file(p, &good, &good_len), 0);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_true(good_len >= POOLFILE_HEADER_SIZE);
  const struct poolfile_header *h = (const void *)good;
  assert_memory_equal(h->magic, POOLFILE_MAGIC, 8);
  assert_int_equal(h->version, POOLFILE_VERSION);
  assert_int_equal(h->base, BASE);
  assert_int_equal(h->capacity, 64u << 20);
  assert_true(h->flags & POOLFILE_CLEAN);
  assert_int_equal(h->st.length, good_len);
  assert_true(h->st.top > 0);
  assert_string_equal(h->name, "good");
  char why[256] = "";
  int rc = poolfile_validate(h, good_len, why, sizeof why);
  if (rc != 0) print_error("poolfile_validate(good file): %d %s\n", rc, why);
  assert_int_equal(rc, 0);
  // A copy attaches, with its roots, and stays sound (control case).
  struct img m = img_copy();
  char *c = img_save(&m, "copy.pool");
  free(m.b);
  assert_attaches(c, NULL, "copy");
}

static void test_truncated(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  m.len = 100;
  expect_refused(&m, "trunc100.pool", EUCLEAN, "truncated");
  m = img_copy();
  m.len = good_len / 2;
  expect_refused(&m, "trunchalf.pool", EUCLEAN, "truncated");
  m = img_copy();
  m.len = POOLFILE_HEADER_SIZE;
  expect_refused(&m, "trunchdr.pool", EUCLEAN, "truncated");
  m = img_copy();
  m.len = good_len - 1;
  expect_refused(&m, "truncone.pool", EUCLEAN, "truncated");
}

static void test_foreign(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  img_hdr(&m)->magic[0] ^= 0x20;
  expect_refused(&m, "magic.pool", ENOEXEC, "not an mmpool pool file");

  m = img_copy();
  img_hdr(&m)->version = POOLFILE_VERSION + 1;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "version.pool", ENOEXEC, "unsupported format version");

  // A future version may checksum differently: the version decides first.
  m = img_copy();
  img_hdr(&m)->version = 99;
  expect_refused(&m, "version99.pool", ENOEXEC, "unsupported format version");

  // A megabyte of random bytes.
  m.len = 1u << 20;
  m.b = malloc(m.len);
  assert_non_null(m.b);
  uint64_t rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  itest_fill_pattern(m.b, m.len, rng);
  if (memcmp(m.b, POOLFILE_MAGIC, 8) == 0) m.b[0] ^= 1;
  expect_refused(&m, "random.pool", ENOEXEC, "not an mmpool pool file");

  // A text file.
  const char *text = "This is not a pool.\n";
  m.len = strlen(text);
  m.b = malloc(m.len);
  assert_non_null(m.b);
  memcpy(m.b, text, m.len);
  expect_refused(&m, "text.pool", ENOEXEC, "not an mmpool pool file");
}

static void test_header_checksum(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  ((unsigned char *)&img_hdr(&m)->generation)[3] ^= 0x10;
  expect_refused(&m, "hdrgen.pool", EUCLEAN, "header checksum");
  m = img_copy();
  img_hdr(&m)->name[1] = 'x'; // "gxod": still a valid name
  expect_refused(&m, "hdrname.pool", EUCLEAN, "header checksum");
  m = img_copy();
  ((unsigned char *)&img_hdr(&m)->roots[1])[0] ^= 0x40;
  expect_refused(&m, "hdrroot.pool", EUCLEAN, "header checksum");
  m = img_copy();
  ((unsigned char *)&img_hdr(&m)->checksum)[7] ^= 0x01;
  expect_refused(&m, "hdrsum.pool", EUCLEAN, "header checksum");
}

// The metadata checksum (the descriptors) is not verified on attach: that
// would read every descriptor (docs/pool-file-format.md, "What attach
// validates"; 'mmpool check FILE' verifies it). A change behind the
// checksum's back gets what the field checks say on first use: a slab's
// owner is made detached as every slab's is, a span past the top is left
// unused (and mmpool_check names it), a wrong checksum alone changes
// nothing.
static void test_metadata_checksum(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  assert_true(img_hdr(&m)->flags & POOLFILE_CLEAN);
  assert_int_equal(img_desc(&m, 0)->kind, PD_SLAB);
  // else: "listed but owned"
  assert_false(img_desc(&m, 0)->flags & PDF_LISTED);
  img_desc(&m, 0)->owner ^= 0x40;
  char *p = img_save(&m, "meta0.pool");
  free(m.b);
  assert_attaches(p, NULL, "meta0");
  // Descriptors are checked on first use (docs/engine.md, "Attach"): a
  // span past the top attaches; mmpool_check names it.
  m = img_copy();
  img_desc(&m, img_hdr(&m)->st.top - 1)->npages ^= 0x100;
  p = img_save(&m, "metalast.pool");
  free(m.b);
  int st;
  struct outcome o = attach(p, NULL, &st);
  assert_true(o.accepted);
  assert_int_not_equal(o.check, 0);
  assert_non_null(strstr(o.msg, "passes the top"));
  assert_int_equal(o.closed, 0);
  m = img_copy();
  img_hdr(&m)->meta_checksum ^= 1;
  poolfile_seal(img_hdr(&m));
  p = img_save(&m, "metasum.pool");
  free(m.b);
  assert_attaches(p, NULL, "metasum");
}

static void test_out_of_range(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  img_hdr(&m)->st.top = (uint32_t)img_hdr(&m)->npages + 1;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "top.pool", EUCLEAN, "top");

  m = img_copy();
  img_hdr(&m)->data_off += PAGE_BYTES;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "dataoff.pool", EUCLEAN, "data_off");

  m = img_copy();
  img_hdr(&m)->data_off = img_hdr(&m)->capacity + PAGE_BYTES;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "dataoff2.pool", EUCLEAN, "data_off");

  m = img_copy();
  img_hdr(&m)->st.length = good_len + PAGE_BYTES;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "length.pool", EUCLEAN, "truncated");

  m = img_copy();
  img_hdr(&m)->st.length = img_hdr(&m)->capacity + PAGE_BYTES;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "length2.pool", EUCLEAN, "truncated|length|out of range");

  m = img_copy();
  img_hdr(&m)->base += 4096;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "base.pool", EUCLEAN, "base|out of range");

  m = img_copy();
  img_hdr(&m)->base = 0x7fff00000000ull + (1ull << 40);
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "basehigh.pool", EUCLEAN, "base|out of range");

  m = img_copy();
  img_hdr(&m)->capacity = 3;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "capacity.pool", EUCLEAN, "capacity|out of range");

  m = img_copy();
  img_hdr(&m)->npages += 1;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "npages.pool", EUCLEAN, "npages|out of range");

  m = img_copy();
  img_hdr(&m)->desc_off = 0;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "descoff.pool", EUCLEAN, "desc_off|out of range");

  m = img_copy();
  img_hdr(&m)->roots[7] = img_hdr(&m)->base + img_hdr(&m)->capacity + 64;
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "root.pool", EUCLEAN, "root|out of range");

  m = img_copy();
  img_hdr(&m)->st.bins[0] = (uint32_t)img_hdr(&m)->npages + 10;
  expect_refused(&m, "bins.pool", EUCLEAN, "bin|out of range");

  m = img_copy();
  img_hdr(&m)->st.avail[0] = (uint32_t)img_hdr(&m)->npages + 10;
  expect_refused(&m, "avail.pool", EUCLEAN, "avail|out of range");

  m = img_copy();
  // beyond [desc_off, data_off)
  img_hdr(&m)->st.meta_committed = img_hdr(&m)->data_off;
  expect_refused(&m, "metacommit.pool", EUCLEAN, "meta_committed|out of range");

  m = img_copy();
  memset(img_hdr(&m)->name, 'a', sizeof img_hdr(&m)->name); // no terminator
  poolfile_seal(img_hdr(&m));
  expect_refused(&m, "name.pool", EUCLEAN, "name|out of range");
}

static struct img unclean(void) {
  struct img m = img_copy();
  img_hdr(&m)->flags &= ~POOLFILE_CLEAN;
  poolfile_seal(img_hdr(&m));
  return m;
}

static void test_not_closed_cleanly(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = unclean();
  expect_refused(&m, "unclean.pool", EUCLEAN, "not closed cleanly");

  // With "recover" the sound file attaches, and is clean after closing.
  m = unclean();
  char *p = img_save(&m, "unclean-recover.pool");
  free(m.b);
  assert_attaches(p, "recover", "recover");

  // "recover" still refuses metadata that is not sound.
  m = unclean();
  img_desc(&m, 0)->kind = 77;
  expect_refused_opts(&m, "unclean-bad.pool", "recover", EUCLEAN, "");
  m = unclean();
  img_desc(&m, 0)->kind = PD_TAIL;
  img_desc(&m, 0)->head_delta = 5;
  expect_refused_opts(&m, "unclean-bad2.pool", "recover", EUCLEAN, "");
  // And a damaged header even with recover.
  m = unclean();
  img_hdr(&m)->st.top = (uint32_t)img_hdr(&m)->npages + 1;
  expect_refused_opts(&m, "unclean-top.pool", "recover", EUCLEAN, "top");
}

// An existing empty file is not a pool and is not made one: only an open
// that creates the file (O_EXCL) initialises it (issue 11, item 1). The
// file is left as it was, with or without size= and base=.
static void test_empty_file_refused(void **state) {
  (void)state;
  const char *names[] = {"empty.pool", "empty2.pool"};
  for (int i = 0; i < 2; i++) {
    char *p = path_in(names[i]);
    assert_int_equal(itest_write_file(p, "", 0), 0);
    int st;
    struct outcome o = attach(p, i == 0 ? NEWOPTS : NULL, &st);
    if (o.accepted || o.err != EINVAL || !strstr(o.msg, "is empty") ||
        !strstr(o.msg, p))
      print_error("empty file: accepted %d errno %d \"%s\"\n", o.accepted,
                  o.err, o.msg);
    assert_false(o.accepted);
    assert_int_equal(o.err, EINVAL);
    assert_non_null(strstr(o.msg, "is empty and was not created by this "
                                  "open"));
    assert_non_null(strstr(o.msg, p));
    assert_int_equal(itest_file_size(p), 0);
  }
}

// A child that holds the pool and allocates until it is killed.
static void kill_during_allocation(const char *p, unsigned delay_us) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s", p);
    mmpool_t *pool = mmpool_open("k", opts);
    if (pool == NULL) _exit(30);
    enum { RING = 2048 };
    static void *ring[RING];
    uint64_t rng = delay_us + 1;
    for (unsigned long i = 0;; i++) {
      unsigned k = (unsigned)(itest_rand(&rng) % RING);
      mmpool_free(ring[k]);
      uint64_t r = itest_rand(&rng);
      size_t n = r % 16 == 0 ? 20000 + r % 200000 : 1 + r % 3000;
      ring[k] = mmpool_malloc(pool, n);
      if (ring[k] == NULL) _exit(31);
      memset(ring[k], (int)i, n < 64 ? n : 64);
      if (i == 4000) {
        if (write(fds[1], "g", 1) != 1) _exit(32);
      }
    }
  }
  assert_true(pid > 0);
  close(fds[1]);
  char c;
  ssize_t r = read(fds[0], &c, 1);
  close(fds[0]);
  if (r == 1) usleep(delay_us);
  kill(pid, SIGKILL);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (r != 1) print_error("allocating child ended early: status %#x\n", st);
  assert_int_equal(r, 1);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void test_killed_holder(void **state) {
  (void)state;
  assert_non_null(good);
  static const unsigned delays[] = {0, 1000, 3000, 10000, 20000, 50000};
  for (unsigned i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "killed%u.pool", i);
    struct img m = img_copy();
    char *p = img_save(&m, name);
    free(m.b);
    kill_during_allocation(p, delays[i]);

    unsigned char *b = NULL;
    size_t n = 0;
    assert_int_equal(itest_read_file(p, &b, &n), 0);
    int st;
    struct outcome o = attach(p, NULL, &st);
    if (o.accepted || o.err != EUCLEAN || !strstr(o.msg, "not closed cleanly"))
      print_error("%s: accepted %d errno %d \"%s\"\n", name, o.accepted, o.err,
                  o.msg);
    assert_false(o.accepted);
    assert_int_equal(o.err, EUCLEAN);
    assert_non_null(strstr(o.msg, "not closed cleanly"));
    assert_true(itest_file_equals(p, b, n));
    free(b);

    o = attach(p, "recover", &st);
    if (!o.accepted || o.check != 0)
      print_error("%s recover: accepted %d errno %d check %d \"%s\"\n", name,
                  o.accepted, o.err, o.check, o.msg);
    assert_true(o.accepted);
    assert_int_equal(o.check, 0);
    assert_true(o.roots_ok);
    assert_int_equal(o.closed, 0);
    o = attach(p, NULL, &st);
    assert_true(o.accepted);
    assert_int_equal(o.check, 0);
    assert_true(o.roots_ok);
  }
}

// ---------------------------------------------------------------------------
// Data-page state that no checksum covers

// The first slab that holds live blocks, and the file offset of the slack
// entry (requested size = block size - slack) of its block 0.
static uint32_t first_live_slab(struct img *m, uint64_t *slack_at) {
  struct poolfile_header *h = img_hdr(m);
  for (uint32_t i = 0; i < h->st.top; i++) {
    struct pdesc *d = img_desc(m, i);
    if (d->kind != PD_SLAB || pdesc_used(d) == 0) continue;
    uint64_t slab = h->data_off + (uint64_t)i * PAGE_BYTES;
    *slack_at = d->slack_off + ((slab >> d->gshift) << 1);
    assert_true(*slack_at + 2 <= m->len);
    return i;
  }
  fail_msg("no slab with live blocks in the good file");
  return 0;
}

// Damages the slack entry of a live block (root 1's, the first block of
// the first slab) of a copy of the good file, or of its not-cleanly-closed
// variant, with value v (0: the block size + 1).
static struct img slack_damaged(int unclean_file, uint16_t v) {
  struct img m = unclean_file ? unclean() : img_copy();
  struct poolfile_header *h = img_hdr(&m);
  uint64_t at = 0;
  uint32_t idx = first_live_slab(&m, &at);
  struct pdesc *d = img_desc(&m, idx);
  // Its block 0 is root 1's block, the pool's first allocation: live, with
  // the slack of its requested size.
  uint64_t slab = h->data_off + (uint64_t)idx * PAGE_BYTES;
  assert_int_equal(h->roots[1], h->base + slab);
  uint16_t old;
  memcpy(&old, m.b + at, sizeof old);
  assert_int_equal(old, d->bsize - sizeof ROOT1_TEXT);
  if (v == 0) v = (uint16_t)(d->bsize + 1); // just too big
  memcpy(m.b + at, &v, sizeof v);
  return m;
}

// Saves m as name (and frees its bytes), then attaches it with root 1's
// block probed (attach: freed, asked for again, the pool checked).
static struct outcome attach_probing_root1(struct img *m, const char *name) {
  char *p = img_save(m, name);
  free(m->b);
  m->b = NULL;
  int st;
  probe_root1 = 1;
  struct outcome o = attach(p, NULL, &st);
  probe_root1 = 0;
  return o;
}

// A live block's slack entry says more than its block size: usable_size
// and realloc's copy read it (once, an unchecked entry made a block report
// a usable size of almost 64 KiB and realloc copy that much from the
// neighbouring blocks). Attach does not read slabs: the slab is checked
// on its first use here (root 1's block freed into it, blocks of its class
// asked for), refused with one warning, and left as it is; usable_size
// never says more than the block.
static void test_slack_damaged(void **state) {
  (void)state;
  assert_non_null(good);
  static const uint16_t vals[] = {0xffff, 0};
  static const char *const names[] = {"slack.pool", "slack1.pool"};
  for (int k = 0; k < 2; k++) {
    struct img m = slack_damaged(0, vals[k]);
    struct outcome o = attach_probing_root1(&m, names[k]);
    print_error("%s: accepted %d check %d \"%s\" usable %zu reused %d "
                "check2 %d log \"%s\"\n", names[k], o.accepted, o.check,
                o.msg, o.usable1, o.reused, o.check2, o.log);
    assert_true(o.accepted);
    assert_int_not_equal(o.check, 0);
    assert_non_null(strstr(o.msg, "records a slack"));
    assert_true(o.usable1 < 64);  // the block's size, at most
    assert_false(o.reused);
    assert_int_not_equal(o.check2, 0);
    const char *w = strstr(o.log, "damaged slab left unused");
    assert_non_null(w);
    assert_non_null(strstr(w, "records a slack"));
    assert_null(strstr(w + 1, "damaged slab left unused"));
    assert_int_equal(o.closed, 0);
  }
}

// A thread-free list whose count lies (poolfile.h, TF_COUNT): root 1's
// slab has its free list moved to its thread-free list (as if other
// threads had freed those blocks), with a count of every live block. The
// owner takes a counted list without walking it, so the lie would have
// made the slab look empty and handed root 1's block out again. The slab
// is checked on its first use, refused with one warning naming the count,
// and left as it is; the file was resealed, as an attacker would.
static void test_thread_free_count_lies(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  uint64_t at = 0;
  struct pdesc *d = img_desc(&m, first_live_slab(&m, &at));
  uint32_t nfree = 0;  // pool offsets are file offsets
  for (uint64_t x = d->free; x; x = *(uint64_t *)(m.b + x)) {
    assert_true(x + 16 <= m.len);
    if (++nfree > d->nblocks) fail_msg("free list loops");
  }
  assert_int_equal(d->thread_free, 0);
  uint32_t used = pdesc_used(d) + nfree;
  d->thread_free = d->free | ((uint64_t)used << TF_COUNT_SHIFT);
  d->free = 0;
  d->used = used;
  img_reseal(&m);
  struct outcome o = attach_probing_root1(&m, "tfcount.pool");
  print_error("tfcount: %u free blocks moved; accepted %d check %d \"%s\" "
              "reused %d check2 %d log \"%s\"\n", nfree, o.accepted, o.check,
              o.msg, o.reused, o.check2, o.log);
  assert_true(o.accepted);
  assert_int_not_equal(o.check, 0);
  assert_non_null(strstr(o.msg, "its count says"));
  assert_false(o.reused);
  const char *w = strstr(o.log, "damaged slab left unused");
  assert_non_null(w);
  assert_non_null(strstr(w, "its count says"));
  assert_int_equal(o.closed, 0);
}

// The same with "recover" on a file that was not closed cleanly: refused,
// and the refused file is left as it was.
static void test_slack_damaged_recover(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = slack_damaged(1, 0xffff);
  expect_refused_opts(&m, "slack-recover.pool", "recover", EUCLEAN, "slack");
}

// KiB dirty (Shared_Dirty + Private_Dirty in /proc/self/smaps) in the
// mappings inside [lo, hi), or -1.
static long dirty_kib(uintptr_t lo, uintptr_t hi) {
  long kib = 0;
  return smaps_range(lo, hi, &kib, NULL) ? -1 : kib;
}

// Attaching a clean file writes its header page and no descriptor that
// already says what attach would write (every slab detached, listed by
// room, free spans dirty): a shared file's descriptor pages stay clean.
// 40 MiB of 256-byte blocks: 640 slabs, 10 pages of descriptors.
static void test_attach_writes_header_only(void **state) {
  (void)state;
  char *p = path_in("many.pool");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s size=64M base=0x321000000000", p);
    mmpool_t *pool = mmpool_open("many", opts);
    if (pool == NULL) _exit(10);
    for (int i = 0; i < (40 << 20) / 256; i++)
      if (mmpool_malloc(pool, 256) == NULL) _exit(11);
    if (mmpool_malloc(pool, 1 << 20) == NULL) _exit(12);
    if (mmpool_close(pool) != 0) _exit(13);
    snprintf(opts, sizeof opts, "file=%s", p);
    // Twice: the first attach after a pool's creation may still write.
    for (int k = 0; k < 2; k++) {
      pool = mmpool_open("many", opts);
      if (pool == NULL) _exit(14);
      uintptr_t b = (uintptr_t)mmpool_base(pool);
      long kib = dirty_kib(b, b + mmpool_capacity(pool));
      if (k == 1 && (kib < 4 || kib > 8)) {
        fprintf(stderr, "attach dirtied %ld KiB of the pool\n", kib);
        _exit(15);
      }
      if (mmpool_close(pool) != 0) _exit(16);
    }
    _exit(0);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  unlink(p);
}

// Lines of log (a file) that say a damaged span; -1 when unreadable.
static int damaged_lines(FILE *log) {
  char buf[4096];
  rewind(log);
  size_t n = fread(buf, 1, sizeof buf - 1, log);
  buf[n] = '\0';
  int k = 0;
  for (const char *l = buf; (l = strstr(l, "damaged span")) != NULL; l++) k++;
  fseek(log, 0, SEEK_END);
  return k;
}

// A damaged span far from what the program touches: the file attaches
// without a word (attach reads no descriptor), the blocks the program uses
// work, the first touch of the damaged span costs one warning and leaves
// the span unused (usable_size 0, a free of its block ignored), later
// touches cost nothing, and mmpool_check names the fault. Root 2's block
// (300 KiB, 5 pages) has its third page pointing at the wrong head.
static void test_damage_far(void **state) {
  (void)state;
  assert_non_null(good);
  struct img m = img_copy();
  uint64_t r2 = img_hdr(&m)->roots[2];
  uint64_t head = (r2 - BASE - img_hdr(&m)->data_off) >> PAGE_SHIFT;
  assert_int_equal(img_desc(&m, head)->kind, PD_LARGE);
  assert_int_equal(img_desc(&m, head + 2)->kind, PD_TAIL);
  img_desc(&m, head + 2)->head_delta = 1;
  char *p = img_save(&m, "far.pool");
  free(m.b);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    FILE *log = tmpfile();
    if (!log) _exit(30);
    log_set_fd(fileno(log));
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s", p);
    mmpool_t *pool = mmpool_open("d", opts);
    if (!pool) _exit(31);
    if (damaged_lines(log) != 0) _exit(32);  // attach said nothing
    const char *r1 = mmpool_get_root(pool, 1);
    if (!r1 || mmpool_usable_size(r1) != sizeof ROOT1_TEXT ||
        strcmp(r1, ROOT1_TEXT) != 0)
      _exit(33);
    void *a = mmpool_malloc(pool, 100), *b = mmpool_malloc(pool, 1 << 20);
    if (!a || !b) _exit(34);
    mmpool_free(a);
    mmpool_free(b);
    if (damaged_lines(log) != 0) _exit(35);
    void *d = mmpool_get_root(pool, 2);
    if (mmpool_usable_size(d) != 0) _exit(36);  // touched: left unused
    if (damaged_lines(log) != 1) _exit(37);
    mmpool_free(d);  // ignored: its pages stay out of use
    if (mmpool_usable_size(d) != 0) _exit(38);
    // realloc neither aborts nor moves it: NULL with EIO, the block stays.
    errno = 0;
    if (mmpool_realloc(NULL, d, 64) != NULL || errno != EIO) _exit(44);
    for (int i = 0; i < 64; i++)
      if (mmpool_malloc(pool, 300 * 1024) == d) _exit(39);
    if (damaged_lines(log) != 1) _exit(40);  // said once
    if (mmpool_check(pool) == 0) _exit(41);
    if (!strstr(mmpool_last_error(), "tail page")) _exit(42);
    if (mmpool_close(pool) != 0) _exit(43);
    _exit(0);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_error("far.pool: child status 0x%x\n", st);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

// The metadata checksum of a clean close covers the descriptors only
// (POOLFILE_COMPAT_META_DESC, set by the close): the close reads no slab.
// A slack entry changed (in range) leaves it as it was, a descriptor
// changed does not; a file without the bit (an older build's close) has
// the slack arrays under it too.
static void test_meta_desc_only(void **state) {
  (void)state;
  assert_non_null(good);
  const struct poolfile_header *g = (const void *)good;
  assert_true(g->feature_compat & POOLFILE_COMPAT_META_DESC);
  struct img m = img_copy();
  struct poolfile_header *h = img_hdr(&m);
  assert_int_equal(poolfile_meta_hash(h), h->meta_checksum);
  uint64_t at = 0;
  (void)first_live_slab(&m, &at);
  uint16_t v;
  memcpy(&v, m.b + at, sizeof v);
  v = (uint16_t)(v - 1);
  memcpy(m.b + at, &v, sizeof v);
  assert_int_equal(poolfile_meta_hash(h), h->meta_checksum);
  h->feature_compat &= ~POOLFILE_COMPAT_META_DESC;
  uint64_t legacy = poolfile_meta_hash(h);
  v = (uint16_t)(v + 1);
  memcpy(m.b + at, &v, sizeof v);
  assert_int_not_equal(poolfile_meta_hash(h), legacy);
  h->feature_compat |= POOLFILE_COMPAT_META_DESC;
  img_desc(&m, 0)->inited ^= 1;
  assert_int_not_equal(poolfile_meta_hash(h), h->meta_checksum);
  free(m.b);
}

// In a forked child: a crash ends the child with its signal (cmocka's
// handlers would otherwise resume the test runner inside the child).
static void child_default_signals(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
}

// What a child saw when it attached a file and called calloc.
struct calloc_outcome {
  int accepted;
  int err;
  uint64_t off;   // the block's offset from the pool's base
  size_t nonzero; // bytes of the block that were not zero
  int closed;
  char msg[256];
};

static struct calloc_outcome calloc_after_attach(const char *path, size_t n) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    child_default_signals();
    alarm(MMPOOL_SANITIZED ? 60 : 20);
    close(fds[0]);
    struct calloc_outcome o;
    memset(&o, 0, sizeof o);
    o.closed = -2;
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s", path);
    errno = 0;
    mmpool_t *pool = mmpool_open("z", opts);
    o.err = errno;
    o.accepted = pool != NULL;
    snprintf(o.msg, sizeof o.msg, "%s", mmpool_last_error());
    if (pool != NULL) {
      unsigned char *c = mmpool_calloc(pool, 1, n);
      if (c == NULL) {
        snprintf(o.msg, sizeof o.msg, "calloc: %s", mmpool_last_error());
        o.nonzero = (size_t)-1;
      } else {
        o.off = (uint64_t)((uintptr_t)c - (uintptr_t)mmpool_base(pool));
        for (size_t i = 0; i < n; i++)
          o.nonzero += c[i] != 0;
      }
      o.closed = mmpool_close(pool);
    }
    ssize_t w = write(fds[1], &o, sizeof o);
    _exit(w == (ssize_t)sizeof o ? 0 : 1);
  }
  assert_true(pid > 0);
  close(fds[1]);
  struct calloc_outcome o;
  memset(&o, 0, sizeof o);
  size_t got = itest_read_all(fds[0], &o, sizeof o);
  close(fds[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st))
    print_error("calloc after attaching %s: child killed by signal %d\n", path,
                WTERMSIG(st));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_int_equal(got, sizeof o);
  o.msg[sizeof o.msg - 1] = '\0';
  return o;
}

// Creates at path a pool file where a 1 MiB block filled with 0xAA was
// freed: between two live blocks (its pages become a free span) when mid,
// else at the top (the top comes down over its pages).
static void make_freed_big(const char *path, int mid) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s %s", path, NEWOPTS);
    mmpool_t *pool = mmpool_open("big", opts);
    if (pool == NULL) _exit(10);
    char *keep = mmpool_malloc(pool, 100);
    unsigned char *big = mmpool_malloc(pool, 1 << 20);
    if (keep == NULL || big == NULL) _exit(11);
    memset(keep, 1, 100);
    memset(big, 0xAA, 1 << 20);
    if (mid) {
      unsigned char *after = mmpool_malloc(pool, 300000);
      if (after == NULL) _exit(12);
      memset(after, 0xBB, 300000);
    }
    mmpool_free(big);
    if (mmpool_check(pool) != 0) _exit(13);
    _exit(mmpool_close(pool) == 0 ? 0 : 14);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static struct img img_load(const char *path) {
  struct img m;
  assert_int_equal(itest_read_file(path, &m.b, &m.len), 0);
  assert_true(m.len >= POOLFILE_HEADER_SIZE);
  return m;
}

// Bytes of the file's data page run [idx, idx + n) that are 0xAA.
static size_t count_aa(struct img *m, uint32_t idx, uint32_t n) {
  uint64_t off = img_hdr(m)->data_off + (uint64_t)idx * PAGE_BYTES;
  size_t len = (size_t)n * PAGE_BYTES, c = 0;
  assert_true(off + len <= m->len);
  for (size_t i = 0; i < len; i++)
    c += m->b[off + i] == 0xAA;
  return c;
}

// calloc skips its memset on pages it believes were never written. Those
// beliefs (st.hiwater, a free span's PDF_DIRTY) come from the file, and the
// attach must not trust them: calloc of the freed pages returns zeros.
//
// The freed block is a free span below the top: the file claims the span
// clean (PDF_DIRTY cleared, metadata checksum recomputed) and nothing above
// the top ever used (hiwater = top).
static void test_calloc_span_claimed_clean(void **state) {
  (void)state;
  const size_t big = (size_t)1 << 20;
  const uint32_t big_pages = (uint32_t)(big / PAGE_BYTES);
  char *p = path_in("freed-mid.pool");
  make_freed_big(p, 1);
  struct img m = img_load(p);
  struct poolfile_header *h = img_hdr(&m);
  assert_true(h->flags & POOLFILE_CLEAN);
  int64_t span = -1;
  for (uint32_t i = 0; i < h->st.top; i++) {
    struct pdesc *d = img_desc(&m, i);
    if (d->kind == PD_FREE && d->npages == big_pages) {
      assert_int_equal(span, -1); // one such span
      span = i;
    }
  }
  if (span < 0)
    print_error("no free span of %u pages below top %u\n", big_pages,
                h->st.top);
  assert_true(span >= 0);
  struct pdesc *d = img_desc(&m, (uint64_t)span);
  assert_true(d->flags & PDF_DIRTY);
  // The freed bytes are still in the file (all but a few links).
  assert_true(count_aa(&m, (uint32_t)span, big_pages) > big - 4096);
  d->flags &= (uint8_t)~PDF_DIRTY;
  h->st.hiwater = h->st.top;
  h->meta_checksum = poolfile_meta_hash(h);
  poolfile_seal(h);
  char why[256] = "";
  assert_int_equal(poolfile_validate(h, m.len, why, sizeof why), 0);
  uint64_t span_off = h->data_off + (uint64_t)span * PAGE_BYTES;
  p = img_save(&m, "freed-mid-clean.pool");
  free(m.b);
  struct calloc_outcome o = calloc_after_attach(p, big);
  if (!o.accepted || o.nonzero != 0)
    print_error("free span claimed clean: accepted %d errno %d \"%s\", "
                "calloc(1 MiB) at offset %#llx (the span: %#llx) has %zu "
                "non-zero bytes\n",
                o.accepted, o.err, o.msg, (unsigned long long)o.off,
                (unsigned long long)span_off, o.nonzero);
  assert_true(o.accepted);
  assert_int_equal(o.off, span_off); // the test reached the span
  assert_int_equal(o.nonzero, 0);
  assert_int_equal(o.closed, 0);
}

// The freed block was at the top, which came down over its pages: the file
// claims they were never used (hiwater = top; the pool state is outside
// every checksum).
static void test_calloc_top_claimed_unused(void **state) {
  (void)state;
  const size_t big = (size_t)1 << 20;
  const uint32_t big_pages = (uint32_t)(big / PAGE_BYTES);
  char *p = path_in("freed-top.pool");
  make_freed_big(p, 0);
  struct img m = img_load(p);
  struct poolfile_header *h = img_hdr(&m);
  assert_true(h->st.hiwater >= h->st.top + big_pages);
  uint64_t top_off = h->data_off + (uint64_t)h->st.top * PAGE_BYTES;
  assert_true(count_aa(&m, h->st.top, big_pages) > big - 4096);
  h->st.hiwater = h->st.top;
  p = img_save(&m, "freed-top-clean.pool");
  free(m.b);
  struct calloc_outcome o = calloc_after_attach(p, big);
  if (!o.accepted || o.nonzero != 0)
    print_error("pages above the top claimed unused: accepted %d errno %d "
                "\"%s\", calloc(1 MiB) at offset %#llx (the top: %#llx) "
                "has %zu non-zero bytes\n",
                o.accepted, o.err, o.msg, (unsigned long long)o.off,
                (unsigned long long)top_off, o.nonzero);
  assert_true(o.accepted);
  assert_int_equal(o.off, top_off);
  assert_int_equal(o.nonzero, 0);
  assert_int_equal(o.closed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_foreign),
      cmocka_unit_test(test_header_checksum),
      cmocka_unit_test(test_metadata_checksum),
      cmocka_unit_test(test_out_of_range),
      cmocka_unit_test(test_not_closed_cleanly),
      cmocka_unit_test(test_empty_file_refused),
      cmocka_unit_test(test_killed_holder),
      cmocka_unit_test(test_slack_damaged),
      cmocka_unit_test(test_slack_damaged_recover),
      cmocka_unit_test(test_thread_free_count_lies),
      cmocka_unit_test(test_attach_writes_header_only),
      cmocka_unit_test(test_damage_far),
      cmocka_unit_test(test_meta_desc_only),
      cmocka_unit_test(test_calloc_span_claimed_clean),
      cmocka_unit_test(test_calloc_top_claimed_unused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
