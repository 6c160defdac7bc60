// test_hostile.c: pool files written by an attacker who also recomputes
// both checksums (issue 11, item 2: every descriptor is validated before it
// is used). Each case builds a valid file through the API, changes one
// field, re-seals the header and recomputes the metadata checksum (so the
// checks behind the checksums are what is tested), and attaches the copy in
// a forked child that then works the pool: it frees the block the hostile
// field is about (or a stray address that reaches the field), allocates
// many blocks of mixed sizes, and reports whether any two blocks, or a
// block and a block the file kept live, overlap or leave the pool. The file
// must be refused with a reason, or attached and never hand a block out
// twice; the child must not crash.
//
// Before the fix (see the report of the change that added this file) the
// owner cases and the root past the committed data failed: overlapping
// blocks, or a SIGSEGV on the first use of the root.
// Links mmpool_core (for poolfile_seal and poolfile_meta_hash).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "log.h"
#include "mmpool.h"
#include "poolfile.h"
#include "../common/poolimg.h"

#define BASE 0x330000000000ull
#define NEWOPTS "size=64M base=0x330000000000"
#define ROOT1_LEN 24u          // root 1: a small block, the first one
#define ROOT2_LEN (300u << 10) // root 2: a large block of 5 pages
#define MID_LEN (1u << 20)     // freed between live blocks: a free span
#define TOP_LEN (2u << 20)     // freed at the top: committed pages above it

static char *dir;
static unsigned char *good;
static size_t good_len;

static char *path_in(const char *name) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

// ---------------------------------------------------------------------------
// The valid file

static void make_good(const char *path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s %s", path, NEWOPTS);
    mmpool_t *pool = mmpool_open("good", opts);
    if (pool == NULL) _exit(10);
    char *r1 = mmpool_malloc(pool, ROOT1_LEN);
    void *small[300];
    for (int i = 0; i < 300; i++)
      if ((small[i] = mmpool_malloc(pool, 16 + (size_t)(i % 7) * 40)) == NULL)
        _exit(11);
    for (int i = 0; i < 300; i += 2)
      mmpool_free(small[i]);
    void *mid = mmpool_malloc(pool, MID_LEN);
    unsigned char *r2 = mmpool_malloc(pool, ROOT2_LEN);
    void *top = mmpool_malloc(pool, TOP_LEN);
    if (r1 == NULL || mid == NULL || r2 == NULL || top == NULL) _exit(12);
    memset(r1, 0x11, ROOT1_LEN);
    memset(r2, 0x22, ROOT2_LEN);
    mmpool_free(mid);
    mmpool_free(top);
    if (mmpool_set_root(pool, 1, r1) || mmpool_set_root(pool, 2, r2)) _exit(13);
    if (mmpool_check(pool) != 0) _exit(14);
    _exit(mmpool_close(pool) == 0 ? 0 : 15);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

// ---------------------------------------------------------------------------
// Images


static struct img img_copy(void) { return img_dup(good, good_len); }

// Page index of the first head of kind k with npages >= n below top.
static uint32_t find_head(struct img *m, uint8_t k, uint32_t n) {
  struct poolfile_header *h = img_hdr(m);
  for (uint32_t i = 0; i < h->st.top; i += img_desc(m, i)->npages)
    if (img_desc(m, i)->kind == k && img_desc(m, i)->npages >= n) return i;
  fail_msg("no head of kind %u with %u pages", k, n);
  return 0;
}

static uint64_t page_off(struct img *m, uint32_t i) {
  return img_hdr(m)->data_off + ((uint64_t)i << 16);
}

static char *img_save(struct img *m, const char *name) {
  char *p = path_in(name);
  unlink(p);
  assert_int_equal(itest_write_file(p, m->b, m->len), 0);
  free(m->b);
  m->b = NULL;
  return p;
}

// ---------------------------------------------------------------------------
// The attaching child

struct outcome {
  int accepted, err;
  int overlaps;  // pairs of blocks that overlap
  int outside;   // blocks not inside the pool's data
  int check;     // mmpool_check after the work (0 sound)
  long blocks;   // blocks recorded
  int stopped;   // a stray free stopped the child (SIGABRT): a misuse
  size_t root1_usable; // mmpool_usable_size of root 1's block
  char msg[512];
  char log[512]; // the engine's log lines (warnings) while the child worked
};

// Set by a case: the blocks it frees stay recorded as live, so that one
// handed out again (a free the engine should have refused) is an overlap.
static int keep_frees;

#define MAXR 6000
struct range {
  uintptr_t a;
  size_t n;
};
static struct range rs[MAXR];
static int nr;

static int record_live(void *b, size_t n, void *arg) {
  (void)arg;
  if (nr < MAXR) rs[nr++] = (struct range){(uintptr_t)b, n ? n : 1};
  return 0;
}

static int by_addr(const void *x, const void *y) {
  const struct range *a = x, *b = y;
  return a->a < b->a ? -1 : a->a > b->a;
}

static const void *h_root1(mmpool_t *pool) { return mmpool_get_root(pool, 1); }

// Attaches path, frees each of the nfree pool offsets in frees (blocks the
// file has live, or stray addresses), allocates, and checks the blocks.
static struct outcome work(const char *path, const char *extra,
                           const uint64_t *frees, int nfree) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
      signal(sigs[i], SIG_DFL);
    alarm(MMPOOL_SANITIZED ? 120 : 30);
    close(fds[0]);
    struct outcome o;
    memset(&o, 0, sizeof o);
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s%s%s", path, extra ? " " : "",
             extra ? extra : "");
    errno = 0;
    mmpool_t *pool = mmpool_open("h", opts);
    o.err = errno;
    o.accepted = pool != NULL;
    snprintf(o.msg, sizeof o.msg, "%s", mmpool_last_error());
    FILE *logf = tmpfile();
    if (logf) log_set_fd(fileno(logf));
    if (pool != NULL) {
      uintptr_t base = (uintptr_t)mmpool_base(pool);
      if (h_root1(pool)) o.root1_usable = mmpool_usable_size(h_root1(pool));
      const struct poolfile_header *h = (const void *)base;
      // Roots are followed: each must be readable.
      volatile unsigned char sink = 0;
      for (unsigned k = 0; k < MMPOOL_ROOTS; k++) {
        const unsigned char *r = mmpool_get_root(pool, k);
        if (r) sink ^= *r;
      }
      (void)sink;
      mmpool_walk(pool, record_live, NULL);  // what the file has live
      // A current slab of the smallest class with a live block, so that
      // a fast-path push onto a foreign descriptor makes it current.
      // And of root 1's class, whose slab is the one the slab cases damage:
      // taken from the avail list, it is checked on this first use.
      for (int i = 0; i < 8; i++) {
        void *b = mmpool_malloc(pool, 16);
        if (b) record_live(b, 16, NULL);
        b = mmpool_malloc(pool, ROOT1_LEN);
        if (b) record_live(b, ROOT1_LEN, NULL);
      }
      for (int f = 0; f < nfree; f++) {
        uintptr_t a = base + frees[f];
        mmpool_free((void *)a);
        if (keep_frees) {
          int seen = 0;
          for (int i = 0; i < nr; i++) seen |= rs[i].a == a;
          if (!seen) record_live((void *)a, 16, NULL);
          continue;
        }
        for (int i = 0; i < nr; i++)
          if (rs[i].a == a) rs[i--] = rs[--nr];
      }
      static const size_t sizes[] = {16, 16, 16, 48, 100, 700, 3000, 70000,
                                     200000};
      for (int i = 0; i < 3000 && nr < MAXR; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        void *b = mmpool_malloc(pool, n);
        if (b == NULL) continue;
        memset(b, 0x5a, n < 64 ? n : 64);
        record_live(b, n, NULL);
      }
      uintptr_t lo = base + h->data_off, hi = base + h->capacity;
      qsort(rs, (size_t)nr, sizeof rs[0], by_addr);
      for (int i = 0; i < nr; i++) {
        if (rs[i].a < lo || rs[i].a + rs[i].n > hi) o.outside++;
        if (i && rs[i - 1].a + rs[i - 1].n > rs[i].a) o.overlaps++;
      }
      o.blocks = nr;
      o.check = mmpool_check(pool);
      if (o.check) snprintf(o.msg, sizeof o.msg, "%s", mmpool_last_error());
      mmpool_close(pool);
    }
    if (logf) {
      size_t n = fread(o.log, 1, sizeof o.log - 1, (rewind(logf), logf));
      o.log[n] = '\0';
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
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  // A free of a stray address inside the pool is a misuse that the engine
  // stops (core/heap.c, heap_misuse): safe, nothing handed out twice.
  if (nfree > 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) {
    memset(&o, 0, sizeof o);
    o.stopped = 1;
    return o;
  }
  if (!WIFEXITED(st))
    print_error("%s: the attaching child was killed by signal %d\n", path,
                WTERMSIG(st));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_int_equal(got, sizeof o);
  o.msg[sizeof o.msg - 1] = '\0';
  return o;
}

// Lines of the engine's log that say a damaged span, slab or list.
static int damage_lines(const char *log) {
  int n = 0;
  for (const char *l = log; (l = strstr(l, "damaged ")) != NULL; l++) n++;
  return n;
}

// Damage that a descriptor check finds (want): the file attaches, since
// its descriptors are checked on first use (docs/engine.md, "Attach"); the
// first use of the damaged span costs one warning, the span is left unused
// (no block handed out twice, none outside) and mmpool_check names want.
// (A file refused with EUCLEAN and a message naming want passes too.)
// With want NULL: refused with EUCLEAN, or attached with no block handed
// out twice and a sound pool after the work.
static void expect(struct img *m, const char *name, const char *extra,
                   const uint64_t *frees, int nfree, const char *want) {
  char *p = img_save(m, name);
  struct outcome o = work(p, extra, frees, nfree);
  if (o.stopped) {  // attached; the stray free was stopped as a misuse
    print_error("%s: attached; the stray free stopped the program\n", name);
    assert_null(want);
    return;
  }
  if (o.accepted)
    print_error("%s: attached; %ld blocks, %d overlaps, %d outside, check "
                "%d \"%s\"\n", name, o.blocks, o.overlaps, o.outside, o.check,
                o.msg);
  else
    print_error("%s: refused, errno %d: %s\n", name, o.err, o.msg);
  if (want && o.accepted) {
    print_error("%s: log \"%s\"\n", name, o.log);
    assert_int_equal(o.overlaps, 0);
    assert_int_equal(o.outside, 0);
    assert_int_not_equal(o.check, 0);
    assert_non_null(strstr(o.msg, "pool 'h': "));
    assert_non_null(strstr(o.msg, want));
    assert_int_equal(damage_lines(o.log), 1);
  } else if (want) {
    assert_int_equal(o.err, EUCLEAN);
    assert_non_null(strstr(o.msg, "pool 'h': "));
    assert_non_null(strstr(o.msg, want));
  } else if (o.accepted) {
    assert_int_equal(o.overlaps, 0);
    assert_int_equal(o.outside, 0);
    assert_int_equal(o.check, 0);
  } else {
    assert_int_equal(o.err, EUCLEAN);
  }
}

// ---------------------------------------------------------------------------
// Tests

static int setup(void **state) {
  (void)state;
  dir = itest_mkdtemp("hostile");
  return dir ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  free(good);
  itest_rmtree(dir);
  free(dir);
  return 0;
}

static void test_good_file(void **state) {
  (void)state;
  char *p = path_in("good.pool");
  make_good(p);
  assert_int_equal(itest_read_file(p, &good, &good_len), 0);
  struct img m = img_copy();
  struct poolfile_header *h = img_hdr(&m);
  assert_true(h->flags & POOLFILE_CLEAN);
  assert_int_equal(h->meta_checksum, poolfile_meta_hash(h));
  // The shapes the cases below need.
  find_head(&m, PD_LARGE, 5);
  find_head(&m, PD_FREE, 16);
  assert_true(page_off(&m, h->st.top + 8) < h->st.length);
  // Control: a resealed but unchanged copy attaches and works.
  uint64_t r2 = h->roots[2] - h->base;
  img_reseal(&m);
  expect(&m, "control.pool", NULL, &r2, 1, NULL);
  // Again (root 2's block was freed by the first run: no free now).
  struct outcome o = work(path_in("control.pool"), NULL, NULL, 0);
  assert_true(o.accepted);
}

// Holder of the stolen block: a live small block (root 1's).
static uint64_t victim(struct img *m) { return img_hdr(m)->roots[1] - BASE; }

// Makes descriptor d look like a slab of the calling thread (id 1) with one
// live block and root 1's block on its free list.
static void as_my_slab(struct img *m, struct pdesc *d) {
  d->owner = 1;
  d->used = 1;
  d->free = victim(m);
}

// A large block whose head claims the first thread as owner: its free was a
// slab push, which made it the thread's current 16-byte slab and handed
// root 1's live block out again.
static void test_large_owner(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t i = find_head(&m, PD_LARGE, 5);
  as_my_slab(&m, img_desc(&m, i));
  img_reseal(&m);
  uint64_t f = page_off(&m, i);
  expect(&m, "large-owner.pool", NULL, &f, 1, "owner 1 on a head");
  m = img_copy();
  as_my_slab(&m, img_desc(&m, i));
  img_hdr(&m)->flags &= ~POOLFILE_CLEAN;
  img_reseal(&m);
  expect(&m, "large-owner-recover.pool", "recover", &f, 1, NULL);
}

// A free span's head, the same: reached by a stray free into the span.
static void test_free_owner(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t i = find_head(&m, PD_FREE, 16);
  as_my_slab(&m, img_desc(&m, i));
  img_reseal(&m);
  uint64_t f = page_off(&m, i) + 4096;
  expect(&m, "free-owner.pool", NULL, &f, 1, "owner 1 on a head");
}

// A page inside a free span (no check reads it): owner 1 and no
// head_delta, or a head_delta that leads to the file's idea of a slab.
static void test_free_interior(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t i = find_head(&m, PD_FREE, 16);
  struct pdesc *d = img_desc(&m, i + 5);
  d->kind = PD_FREE_MID;
  d->head_delta = 0;
  as_my_slab(&m, d);
  img_reseal(&m);
  uint64_t f = page_off(&m, i + 5) + 64;
  expect(&m, "free-mid.pool", NULL, &f, 1, NULL);

  m = img_copy();
  d = img_desc(&m, i + 6);
  d->kind = PD_TAIL;
  d->head_delta = 1;
  as_my_slab(&m, img_desc(&m, i + 5));
  img_desc(&m, i + 5)->kind = PD_SLAB;
  img_reseal(&m);
  f = page_off(&m, i + 6) + 64;
  expect(&m, "free-tail.pool", NULL, &f, 1, NULL);
}

// Committed pages above the top: a stray free reaches their descriptors.
static void test_above_top(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t t = img_hdr(&m)->st.top;
  struct pdesc *d = img_desc(&m, t + 3);
  d->kind = PD_SLAB;
  as_my_slab(&m, d);
  struct pdesc *e = img_desc(&m, t + 4);
  e->kind = PD_TAIL;
  e->head_delta = 1;
  img_reseal(&m);
  uint64_t f[2] = {page_off(&m, t + 3) + 4096, page_off(&m, t + 4) + 64};
  expect(&m, "above-top.pool", NULL, f, 2, NULL);
}

// Tails and large-block fields: a tail pointing at another head, a tail
// with no head_delta and owner 1, a large block claiming more bytes than
// its pages, or a class, flags or links it cannot have.
static void test_large_fields(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t i = find_head(&m, PD_LARGE, 5);
  img_desc(&m, i + 2)->head_delta = 1;
  img_reseal(&m);
  uint64_t f = page_off(&m, i);
  expect(&m, "tail-delta.pool", NULL, &f, 1, "tail page");

  m = img_copy();
  img_desc(&m, i + 2)->head_delta = 0;
  as_my_slab(&m, img_desc(&m, i + 2));
  img_reseal(&m);
  uint64_t g = page_off(&m, i + 2);
  expect(&m, "tail-zero.pool", NULL, &g, 1, "tail page");

  m = img_copy();
  img_desc(&m, i)->req = ((uint64_t)img_desc(&m, i)->npages << 16) + 1;
  img_reseal(&m);
  expect(&m, "large-req.pool", NULL, &f, 1, "large block of");

  m = img_copy();
  img_desc(&m, i)->cls = 3;
  img_reseal(&m);
  expect(&m, "large-cls.pool", NULL, &f, 1, "large block with class");

  m = img_copy();
  img_desc(&m, i)->flags = PDF_LISTED;
  img_reseal(&m);
  expect(&m, "large-flags.pool", NULL, &f, 1, "flags 0x2");

  m = img_copy();
  img_desc(&m, i)->npages = 3;  // fewer pages than its size
  img_reseal(&m);
  expect(&m, "large-npages.pool", NULL, &f, 1, "large block of");

  m = img_copy();
  img_desc(&m, i)->npages = 3;  // and the size to match: pages 3, 4 are tails
  img_desc(&m, i)->req = 3u << 16;  // of nothing
  img_reseal(&m);
  expect(&m, "large-npages2.pool", NULL, &f, 1, "kind 5 where a span");
}

// Attached (a slab's lists are not read on attach), and the damaged slab
// refused on its first use: one warning naming its page and want, no block
// handed out twice, and mmpool_check names the damage.
static void expect_lazy(struct img *m, const char *name, const uint64_t *frees,
                        int nfree, const char *want) {
  char *p = img_save(m, name);
  keep_frees = 1;
  struct outcome o = work(p, NULL, frees, nfree);
  keep_frees = 0;
  print_error("%s: accepted %d; %ld blocks, %d overlaps, %d outside, check "
              "%d \"%s\"; log \"%s\"\n", name, o.accepted, o.blocks,
              o.overlaps, o.outside, o.check, o.msg, o.log);
  assert_false(o.stopped);
  assert_true(o.accepted);
  assert_int_equal(o.overlaps, 0);
  assert_int_equal(o.outside, 0);
  assert_int_not_equal(o.check, 0);
  assert_non_null(strstr(o.msg, want));
  const char *w = strstr(o.log, "damaged slab left unused");
  assert_non_null(w);
  assert_non_null(strstr(w, want));
  assert_null(strstr(w + 1, "damaged slab left unused"));  // said once
}

// Slab fields that attach does not read (docs/pool-file-format.md, "What
// attach validates"): a free list link into another slab, a link past
// inited. The slab is checked when first used: a free into it (root 1's
// block, freed twice) and allocations of its class are refused, the
// block leaks, nothing is handed out twice.
static void test_slab_links(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t i = find_head(&m, PD_SLAB, 1);
  struct pdesc *d = img_desc(&m, i);
  assert_true(victim(&m) - page_off(&m, i) < ((uint64_t)d->npages << 16));
  d->free = victim(&m) + ((uint64_t)d->npages << 16) + 4096;
  img_reseal(&m);
  uint64_t f[2] = {victim(&m), victim(&m)};
  expect_lazy(&m, "slab-link.pool", f, 2, "free list holds");

  m = img_copy();
  d = img_desc(&m, i);
  assert_true(d->inited > 0);
  d->inited = 1;  // root 1's block only: the free list's blocks lie past it
  img_reseal(&m);
  expect_lazy(&m, "slab-inited.pool", f, 1, "never handed out");

  // A loop in the free list, and a block on it twice.
  m = img_copy();
  d = img_desc(&m, i);
  assert_true(d->free != 0);
  uint64_t *link = (uint64_t *)(m.b + d->free);
  *link = d->free;
  img_reseal(&m);
  expect_lazy(&m, "slab-loop.pool", f, 1, "twice");
}

// The pool's lists (header state, under no checksum) are followed link by
// link (docs/pool-file-format.md, "What attach validates", step 2): a bin
// naming a slab, an avail list naming a free span. The file attaches; the
// first allocation that walks the list cuts it there with one warning,
// nothing is handed out twice, and the pool is sound after (the cut list
// is a list again) or mmpool_check names the list.
static void expect_cut(struct img *m, const char *name, const char *list) {
  char *p = img_save(m, name);
  struct outcome o = work(p, NULL, NULL, 0);
  print_error("%s: accepted %d; %ld blocks, %d overlaps, %d outside, check "
              "%d \"%s\"; log \"%s\"\n", name, o.accepted, o.blocks,
              o.overlaps, o.outside, o.check, o.msg, o.log);
  assert_true(o.accepted);
  assert_int_equal(o.overlaps, 0);
  assert_int_equal(o.outside, 0);
  assert_int_equal(damage_lines(o.log), 1);
  assert_non_null(strstr(o.log, "damaged list cut short"));
  assert_non_null(strstr(o.log, list));
  if (o.check) assert_non_null(strstr(o.msg, list));
}

static void test_lists(void **state) {
  (void)state;
  struct img m = img_copy();
  uint32_t s = find_head(&m, PD_SLAB, 1);
  img_hdr(&m)->st.bins[0] = s + 1;  // 1-page spans: slabs of 1 page walk it
  img_reseal(&m);
  expect_cut(&m, "bins-slab.pool", "bins[0]");

  m = img_copy();
  uint32_t f = find_head(&m, PD_FREE, 1);
  img_hdr(&m)->st.avail[0] = f + 1;  // the 16-byte class
  img_reseal(&m);
  expect_cut(&m, "avail-free.pool", "avail[0]");
  free(m.b);
}

// A root past the committed data but inside the capacity was accepted, and
// its first use faulted.
static void test_root_past_length(void **state) {
  (void)state;
  struct img m = img_copy();
  img_hdr(&m)->roots[3] = BASE + img_hdr(&m)->st.length + 4096;
  img_reseal(&m);
  expect(&m, "root-length.pool", NULL, NULL, 0, "root 3");
  m = img_copy();
  img_hdr(&m)->roots[4] = BASE + img_hdr(&m)->desc_off;  // the descriptors
  img_reseal(&m);
  expect(&m, "root-desc.pool", NULL, NULL, 0, "root 4");
}

// The slack array (in data pages) is under the metadata checksum, which
// attach no longer verifies (it would read every slab): a live block's
// entry changed to another value in range, the checksum not recomputed, is
// attached, and the block's usable size is what the entry says ('mmpool
// check FILE' finds the mismatch). A value out of range is the next case.
static void test_slack_checksum(void **state) {
  (void)state;
  struct img m = img_copy();
  struct poolfile_header *h = img_hdr(&m);
  uint32_t i = find_head(&m, PD_SLAB, 1);
  struct pdesc *d = img_desc(&m, i);
  uint64_t slab = page_off(&m, i);
  assert_int_equal(victim(&m), slab);  // root 1's block is block 0
  uint64_t at = d->slack_off + ((slab >> d->gshift) << 1);
  uint16_t v;
  memcpy(&v, m.b + at, 2);
  assert_int_equal(v, d->bsize - ROOT1_LEN);
  v = (uint16_t)(v - 1);
  memcpy(m.b + at, &v, 2);
  uint32_t bsize = d->bsize;
  poolfile_seal(h);
  char *p = img_save(&m, "slack-sum.pool");
  struct outcome o = work(p, NULL, NULL, 0);
  assert_true(o.accepted);
  assert_int_equal(o.check, 0);
  assert_int_equal(o.overlaps, 0);
  assert_int_equal(o.root1_usable, bsize - v);

  // Out of range: usable_size is never more than the block, and the first
  // use of the slab refuses it.
  m = img_copy();
  v = 0xffff;
  memcpy(m.b + at, &v, 2);
  img_reseal(&m);
  uint64_t f = victim(&m);
  p = img_save(&m, "slack-range.pool");
  keep_frees = 1;
  o = work(p, NULL, &f, 1);
  keep_frees = 0;
  assert_true(o.accepted);
  assert_true(o.root1_usable <= bsize);
  assert_int_equal(o.overlaps, 0);
  assert_non_null(strstr(o.msg, "records a slack"));
  assert_non_null(strstr(o.log, "damaged slab left unused"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file),
      cmocka_unit_test(test_large_owner),
      cmocka_unit_test(test_free_owner),
      cmocka_unit_test(test_free_interior),
      cmocka_unit_test(test_above_top),
      cmocka_unit_test(test_large_fields),
      cmocka_unit_test(test_slab_links),
      cmocka_unit_test(test_lists),
      cmocka_unit_test(test_root_past_length),
      cmocka_unit_test(test_slack_checksum),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
