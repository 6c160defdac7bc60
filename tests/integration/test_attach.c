// test_attach.c: a file pool built by one process and attached by later,
// fresh processes (the test re-executes itself through /proc/self/exe, one
// phase per process), and the ways an attach must be refused.
//
// Phases pass what they saw to the next one through a small record file:
// the head pointers of the lists, their node counts and content hashes, and
// the pool's statistics. Each phase checks with REQ, which prints the failed
// condition with errno and mmpool_last_error() and exits with status 3; the
// cmocka side only asserts the exit status.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "mmpool.h"

#define BASE 0x310000000000ull
#define CAP (256ull << 20)
#define OPT_NEW "size=256M base=0x310000000000"

static const char *phase_name = "cmocka";

#define REQ(c)                                                                 \
  do {                                                                         \
    if (!(c)) {                                                                \
      int e_ = errno;                                                          \
      fprintf(stderr,                                                          \
              "%s:%d: phase %s: failed: %s (errno %d %s; last error: "         \
              "\"%s\")\n",                                                     \
              __FILE__, __LINE__, phase_name, #c, e_, strerror(e_),           \
              mmpool_last_error());                                            \
      exit(3);                                                                 \
    }                                                                          \
  } while (0)

// ---------------------------------------------------------------------------
// The data structure kept in the pool: singly linked lists of nodes of
// varied sizes whose bytes are a pattern of their seed.

struct node {
  struct node *next;
  uint64_t seed;
  uint64_t len; // bytes of data[]
  unsigned char data[];
};

#define TAG_TEXT "mmpool-attach-root31"

struct tag {
  char text[32];
  uint64_t serial;
};

// What one phase leaves for the next.
struct rec {
  uint64_t base, cap;
  uint64_t head1, count1, hash1; // list at root 3
  uint64_t head2, count2, hash2; // list at root 4 (0 when none)
  uint64_t tag;                  // block at root 31
  uint64_t blocks, in_use, gen;  // mmpool_stats after the phase's work
};

static void rec_write(const char *path, const struct rec *r) {
  FILE *f = fopen(path, "w");
  REQ(f != NULL);
  fprintf(f,
          "%" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64
          " %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64
          " %" PRIx64 " %" PRIx64 "\n",
          r->base, r->cap, r->head1, r->count1, r->hash1, r->head2, r->count2,
          r->hash2, r->tag, r->blocks, r->in_use, r->gen);
  REQ(fclose(f) == 0);
}

static void rec_read(const char *path, struct rec *r) {
  FILE *f = fopen(path, "r");
  REQ(f != NULL);
  int n = fscanf(f,
                 "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64
                 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64
                 " %" SCNx64 " %" SCNx64,
                 &r->base, &r->cap, &r->head1, &r->count1, &r->hash1,
                 &r->head2, &r->count2, &r->hash2, &r->tag, &r->blocks,
                 &r->in_use, &r->gen);
  fclose(f);
  REQ(n == 12);
}

static size_t pick_len(uint64_t *rng, unsigned i) {
  uint64_t r = itest_rand(rng);
  if (i % 97 == 5) // some large blocks, beyond any size class
    return 100000 + (size_t)(r % 1200000);
  switch (r % 8) {
  case 0: case 1: case 2: case 3:
    return (size_t)((r >> 8) % 200);
  case 4: case 5:
    return 200 + (size_t)((r >> 8) % 3800);
  case 6:
    return 4000 + (size_t)((r >> 8) % 36000);
  default:
    return 40 + (size_t)((r >> 8) % 60);
  }
}

static struct node *node_new(mmpool_t *pool, uint64_t seed, size_t len) {
  struct node *n = mmpool_malloc(pool, sizeof(struct node) + len);
  REQ(n != NULL);
  REQ(((uintptr_t)n & 15) == 0);
  REQ(mmpool_of(n) == pool);
  REQ(mmpool_usable_size(n) == sizeof(struct node) + len);
  n->next = NULL;
  n->seed = seed;
  n->len = len;
  itest_fill_pattern(n->data, len, seed);
  return n;
}

// Builds a list of count nodes with seeds seed0 + i; returns its head.
static struct node *list_build(mmpool_t *pool, unsigned count, uint64_t seed0) {
  uint64_t rng = seed0 * 7919 + 1;
  struct node *head = NULL, *tail = NULL;
  for (unsigned i = 0; i < count; i++) {
    struct node *n = node_new(pool, seed0 + i, pick_len(&rng, i));
    if (tail)
      tail->next = n;
    else
      head = n;
    tail = n;
  }
  return head;
}

// Walks a list, checking every node; returns its hash, *count its length.
static uint64_t list_verify(mmpool_t *pool, const struct node *head,
                            uint64_t *count) {
  uint64_t h = 0, c = 0;
  uintptr_t lo = (uintptr_t)mmpool_base(pool);
  uintptr_t hi = lo + mmpool_capacity(pool);
  for (const struct node *n = head; n != NULL; n = n->next) {
    REQ((uintptr_t)n >= lo && (uintptr_t)n < hi);
    REQ(mmpool_of(n) == pool);
    REQ(n->len <= (8u << 20));
    REQ(mmpool_usable_size(n) == sizeof(struct node) + n->len);
    if (!itest_check_pattern(n->data, n->len, n->seed)) {
      fprintf(stderr, "node %" PRIu64 " at %p (seed %" PRIu64 ", len %" PRIu64
                      ") has lost its content\n",
              c, (const void *)n, n->seed, n->len);
      REQ(!"node content intact");
    }
    h = itest_hash(&n->seed, sizeof n->seed, h);
    h = itest_hash(&n->len, sizeof n->len, h);
    c++;
    REQ(c < 10000000);
  }
  *count = c;
  return h;
}

static void stats_of(mmpool_t *pool, mmpool_stats_t *st) {
  memset(st, 0xa5, sizeof *st);
  REQ(mmpool_stats(pool, st) == 0);
  REQ(st->capacity == mmpool_capacity(pool));
  REQ(st->mapped <= st->capacity);
}

// Checks everything rec says about an attached pool.
static void pool_verify(mmpool_t *pool, const struct rec *r) {
  REQ((uint64_t)(uintptr_t)mmpool_base(pool) == r->base);
  REQ(mmpool_capacity(pool) == r->cap);
  struct node *h1 = mmpool_get_root(pool, 3);
  REQ((uint64_t)(uintptr_t)h1 == r->head1);
  uint64_t c1, c2;
  uint64_t hash1 = list_verify(pool, h1, &c1);
  REQ(c1 == r->count1);
  REQ(hash1 == r->hash1);
  struct node *h2 = mmpool_get_root(pool, 4);
  REQ((uint64_t)(uintptr_t)h2 == r->head2);
  uint64_t hash2 = list_verify(pool, h2, &c2);
  REQ(c2 == r->count2);
  if (r->count2)
    REQ(hash2 == r->hash2);
  struct tag *t = mmpool_get_root(pool, 31);
  REQ((uint64_t)(uintptr_t)t == r->tag);
  REQ(mmpool_usable_size(t) == sizeof(struct tag));
  REQ(strcmp(t->text, TAG_TEXT) == 0);
  REQ(t->serial == r->count1);
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    if (k != 3 && k != 4 && k != 31)
      REQ(mmpool_get_root(pool, k) == NULL);
  mmpool_stats_t st;
  stats_of(pool, &st);
  REQ(st.in_use_blocks == r->blocks);
  REQ(st.in_use == r->in_use);
  REQ(st.generation > r->gen);
  REQ(mmpool_check(pool) == 0);
}

static void rec_fill(mmpool_t *pool, struct rec *r) {
  memset(r, 0, sizeof *r);
  r->base = (uintptr_t)mmpool_base(pool);
  r->cap = mmpool_capacity(pool);
  struct node *h1 = mmpool_get_root(pool, 3);
  struct node *h2 = mmpool_get_root(pool, 4);
  r->head1 = (uintptr_t)h1;
  r->hash1 = list_verify(pool, h1, &r->count1);
  r->head2 = (uintptr_t)h2;
  r->hash2 = list_verify(pool, h2, &r->count2);
  r->tag = (uintptr_t)mmpool_get_root(pool, 31);
  mmpool_stats_t st;
  stats_of(pool, &st);
  r->blocks = st.in_use_blocks;
  r->in_use = st.in_use;
  r->gen = st.generation;
}

static char *opts_of(const char *file, const char *extra) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "file=%s%s%s", file, extra && extra[0] ? " " : "",
           extra ? extra : "");
  return buf;
}

// ---------------------------------------------------------------------------
// Phases (each runs in a fresh process)

// build FILE REC COUNT OPTIONS: a new pool (at BASE, 256M, unless OPTIONS
// is "auto") holding one list of COUNT nodes.
static int phase_build(char **a) {
  const char *file = a[0], *recf = a[1];
  unsigned count = (unsigned)strtoul(a[2], NULL, 10);
  int fixed = strcmp(a[3], "auto") != 0;
  umask(0); // the engine, not the umask, must make the file 0600
  mmpool_t *pool = mmpool_open("p", opts_of(file, fixed ? OPT_NEW : "size=256M"));
  REQ(pool != NULL);
  uintptr_t base = (uintptr_t)mmpool_base(pool);
  if (fixed)
    REQ(base == BASE);
  REQ(base % (1ull << 30) == 0);
  REQ(base >= 0x200000000000ull && base + CAP <= 0x400000000000ull);
  REQ(mmpool_capacity(pool) == CAP);
  REQ(strcmp(mmpool_name(pool), "p") == 0);
  mmpool_stats_t st0;
  stats_of(pool, &st0);
  REQ(st0.in_use_blocks == 0);
  REQ(st0.in_use == 0);

  struct node *head = list_build(pool, count, 1000);
  struct tag *t = mmpool_malloc(pool, sizeof *t);
  REQ(t != NULL);
  memset(t, 0, sizeof *t);
  strcpy(t->text, TAG_TEXT);
  t->serial = count;
  REQ(mmpool_set_root(pool, 3, head) == 0);
  REQ(mmpool_set_root(pool, 31, t) == 0);
  REQ(mmpool_get_root(pool, 3) == head);

  struct rec r;
  rec_fill(pool, &r);
  REQ(r.count1 == count);
  REQ(r.blocks == (uint64_t)count + 1);
  REQ(r.in_use >= (uint64_t)count * sizeof(struct node));
  REQ(mmpool_check(pool) == 0);
  REQ(mmpool_sync(pool) == 0);
  rec_write(recf, &r);
  REQ(mmpool_close(pool) == 0);
  REQ(mmpool_get("p") == NULL);
  return 0;
}

// extend FILE RECIN RECOUT: attach, verify, then change the structure:
// free every third node, resize others, add a second list.
static int phase_extend(char **a) {
  const char *file = a[0];
  struct rec r1;
  rec_read(a[1], &r1);
  mmpool_t *pool = mmpool_open("p", opts_of(file, NULL));
  REQ(pool != NULL);
  REQ(strcmp(mmpool_name(pool), "p") == 0);
  pool_verify(pool, &r1);

  uint64_t rng = 42;
  struct node *head = mmpool_get_root(pool, 3);
  struct node *prev = NULL, *n = head;
  unsigned i = 0, freed = 0, moved = 0;
  while (n != NULL) {
    struct node *next = n->next;
    if (i % 3 == 1) {
      if (prev)
        prev->next = next;
      else
        head = next;
      mmpool_free(n);
      freed++;
    } else if (i % 7 == 0 || i % 11 == 0) {
      uint64_t old = n->len;
      uint64_t len = i % 7 == 0 ? old + 1 + itest_rand(&rng) % 5000 : old / 2;
      struct node *q = mmpool_realloc(NULL, n, sizeof(struct node) + len);
      REQ(q != NULL);
      REQ(mmpool_of(q) == pool);
      REQ(mmpool_usable_size(q) == sizeof(struct node) + len);
      REQ(q->seed == 1000 + i);
      REQ(itest_check_pattern(q->data, len < old ? len : old, q->seed));
      itest_fill_pattern(q->data, len, q->seed);
      q->len = len;
      if (prev)
        prev->next = q;
      else
        head = q;
      moved += q != n;
      n = q;
      prev = n;
    } else {
      prev = n;
    }
    n = next;
    i++;
  }
  REQ(i == r1.count1);
  REQ(freed > 0);
  REQ(mmpool_set_root(pool, 3, head) == 0);
  struct node *head2 = list_build(pool, 1500, 500000);
  REQ(mmpool_set_root(pool, 4, head2) == 0);

  struct rec r2;
  rec_fill(pool, &r2);
  REQ(r2.count1 == r1.count1 - freed);
  REQ(r2.count2 == 1500);
  REQ(r2.blocks == r2.count1 + r2.count2 + 1);
  REQ(r2.gen > r1.gen);
  REQ(mmpool_check(pool) == 0);
  ((struct tag *)mmpool_get_root(pool, 31))->serial = r2.count1;
  rec_write(a[2], &r2);
  REQ(mmpool_close(pool) == 0);
  return 0;
}

// verify FILE REC NAME [EXTRA]: attach (under NAME), check everything in
// REC, use the pool a little (leaving it as it was), close.
static int phase_verify(char **a) {
  struct rec r;
  rec_read(a[1], &r);
  const char *name = a[2];
  mmpool_t *pool = mmpool_open(name, opts_of(a[0], a[3]));
  REQ(pool != NULL);
  REQ(strcmp(mmpool_name(pool), name) == 0);
  REQ(mmpool_get(name) == pool);
  pool_verify(pool, &r);
  // The attached pool allocates and frees as a new one would.
  void *blk[300];
  uint64_t rng = 7;
  for (unsigned i = 0; i < 300; i++) {
    size_t len = pick_len(&rng, i);
    blk[i] = mmpool_malloc(pool, len);
    REQ(blk[i] != NULL);
    REQ(mmpool_usable_size(blk[i]) == len);
    memset(blk[i], 0x5c, len);
  }
  for (unsigned i = 0; i < 300; i++)
    mmpool_free(blk[i]);
  mmpool_stats_t st;
  stats_of(pool, &st);
  REQ(st.in_use_blocks == r.blocks);
  REQ(st.in_use == r.in_use);
  REQ(mmpool_check(pool) == 0);
  REQ(mmpool_close(pool) == 0);
  return 0;
}

// True when /proc/self/maps has a mapping of path starting at addr.
static int mapped_at(uintptr_t addr, const char *path) {
  FILE *f = fopen("/proc/self/maps", "r");
  REQ(f != NULL);
  char line[4096];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo;
    if (sscanf(line, "%lx-", &lo) == 1 && lo == addr && strstr(line, path))
      found = 1;
  }
  fclose(f);
  return found;
}

#define OCC_BYTES 8192

static void occupant_bytes(unsigned char *b) {
  for (size_t i = 0; i < OCC_BYTES; i += 8)
    memcpy(b + i, "occupant", 8);
  itest_fill_pattern(b + 64, 1000, 99);
}

// occupied FILE REC OCCFILE OFFSET: another file mapped at BASE+OFFSET must
// make the attach fail, touching neither that mapping nor the pool file.
static int phase_occupied(char **a) {
  const char *file = a[0], *occ = a[2];
  uintptr_t off = (uintptr_t)strtoull(a[3], NULL, 0);
  struct rec r;
  rec_read(a[1], &r);
  unsigned char *before = NULL;
  size_t blen = 0;
  REQ(itest_read_file(file, &before, &blen) == 0);

  unsigned char expect[OCC_BYTES];
  occupant_bytes(expect);
  REQ(itest_write_file(occ, expect, OCC_BYTES) == 0);
  int fd = open(occ, O_RDWR | O_CLOEXEC);
  REQ(fd >= 0);
  void *want = (void *)(uintptr_t)(BASE + off);
  void *m = mmap(want, OCC_BYTES, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  REQ(m == want);

  errno = 0;
  mmpool_t *pool = mmpool_open("p", opts_of(file, NULL));
  int e = errno;
  const char *msg = mmpool_last_error();
  if (pool != NULL || e != EEXIST || strstr(msg, occ) == NULL)
    fprintf(stderr, "attach over %s at %p: pool %p errno %d, message \"%s\"\n",
            occ, want, (void *)pool, e, msg);
  REQ(pool == NULL);
  REQ(e == EEXIST);
  REQ(strstr(msg, occ) != NULL);
  REQ(memcmp(m, expect, OCC_BYTES) == 0);
  REQ(mapped_at((uintptr_t)want, occ));
  REQ(mmpool_get("p") == NULL);
  REQ(itest_file_equals(occ, expect, OCC_BYTES));
  REQ(itest_file_equals(file, before, blen));
  free(before);

  // Once the range is free again, the same process attaches the file.
  REQ(munmap(m, OCC_BYTES) == 0);
  close(fd);
  pool = mmpool_open("p", opts_of(file, NULL));
  REQ(pool != NULL);
  pool_verify(pool, &r);
  REQ(mmpool_close(pool) == 0);
  return 0;
}

// hold FILE READYFD GOFD: keeps the pool attached until GOFD reaches EOF.
static int phase_hold(char **a) {
  int ready = atoi(a[1]), go = atoi(a[2]);
  mmpool_t *pool = mmpool_open("p", opts_of(a[0], NULL));
  REQ(pool != NULL);
  void *x = mmpool_malloc(pool, 1000);
  REQ(x != NULL);
  mmpool_free(x);
  REQ(write(ready, "r", 1) == 1);
  close(ready);
  char c;
  while (read(go, &c, 1) != 0)
    ;
  close(go);
  REQ(mmpool_close(pool) == 0);
  return 0;
}

// busy FILE: another live process has the file attached.
static int phase_busy(char **a) {
  const char *file = a[0];
  unsigned char *before = NULL;
  size_t blen = 0;
  REQ(itest_read_file(file, &before, &blen) == 0);
  for (int mode = 0; mode < 2; mode++) {
    errno = 0;
    mmpool_t *pool =
        mmpool_open("p", opts_of(file, mode ? "mode=private" : "mode=shared"));
    int e = errno;
    if (mode == 0) {
      REQ(pool == NULL);
      REQ(e == EBUSY);
      REQ(strstr(mmpool_last_error(), "in use by another process") != NULL);
    } else if (pool != NULL) {
      // A private attach need not lock; it must not write either.
      REQ(mmpool_close(pool) == 0);
    } else {
      REQ(e == EBUSY);
    }
  }
  REQ(itest_file_equals(file, before, blen));
  free(before);
  return 0;
}

// private FILE REC: attach copy-on-write, verify, change everything, close.
static int phase_private(char **a) {
  struct rec r;
  rec_read(a[1], &r);
  mmpool_t *pool = mmpool_open("p", opts_of(a[0], "mode=private"));
  REQ(pool != NULL);
  REQ((uint64_t)(uintptr_t)mmpool_base(pool) == r.base);
  struct node *h = mmpool_get_root(pool, 3);
  REQ((uint64_t)(uintptr_t)h == r.head1);
  uint64_t c;
  REQ(list_verify(pool, h, &c) == r.hash1);
  REQ(c == r.count1);
  // Scribble over every node, free half of them, grow the pool well past
  // the file's length, and move the roots.
  unsigned i = 0;
  for (struct node *n = h, *next; n != NULL; n = next, i++) {
    next = n->next;
    memset(n->data, 0x5a, n->len);
    n->seed ^= 0xffff;
    if (i % 2)
      mmpool_free(n);
  }
  for (unsigned k = 0; k < 40; k++) {
    void *big = mmpool_malloc(pool, 1u << 20);
    REQ(big != NULL);
    memset(big, 0x77, 1u << 20);
  }
  REQ(mmpool_set_root(pool, 3, NULL) == 0);
  REQ(mmpool_set_root(pool, 5, mmpool_malloc(pool, 64)) == 0);
  REQ(mmpool_check(pool) == 0);
  REQ(mmpool_sync(pool) == 0);
  REQ(mmpool_close(pool) == 0);
  return 0;
}

static int phase_main(int argc, char **argv) {
  phase_name = argv[2];
  struct {
    const char *name;
    int nargs;
    int (*fn)(char **);
  } phases[] = {
      {"build", 4, phase_build},       {"extend", 3, phase_extend},
      {"verify", 4, phase_verify},     {"occupied", 4, phase_occupied},
      {"hold", 3, phase_hold},         {"busy", 1, phase_busy},
      {"private", 2, phase_private},
  };
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
    if (strcmp(argv[2], phases[i].name) == 0) {
      if (argc - 3 != phases[i].nargs) {
        fprintf(stderr, "phase %s: %d arguments expected\n", argv[2],
                phases[i].nargs);
        return 2;
      }
      return phases[i].fn(argv + 3);
    }
  fprintf(stderr, "unknown phase %s\n", argv[2]);
  return 2;
}

// ---------------------------------------------------------------------------
// The cmocka side: runs phases as fresh processes.

static char *dir;

static char *path_in(const char *name) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

// Runs one phase in a new process: fork, execv(/proc/self/exe), waitpid.
// Returns the wait status.
static int run_phase(const char *phase, ...) {
  char *argv[16];
  int n = 0;
  argv[n++] = "test_attach";
  argv[n++] = "phase";
  argv[n++] = (char *)phase;
  va_list ap;
  va_start(ap, phase);
  for (char *s; n < 15 && (s = va_arg(ap, char *)) != NULL;)
    argv[n++] = s;
  va_end(ap);
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  assert_true(pid > 0);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    assert_int_equal(errno, EINTR);
  return status;
}

#define PHASE_OK(...)                                                          \
  do {                                                                         \
    int st_ = run_phase(__VA_ARGS__, (char *)NULL);                            \
    if (!WIFEXITED(st_) || WEXITSTATUS(st_) != 0)                              \
      print_error("phase %s: %s %d\n", #__VA_ARGS__,                          \
                  WIFEXITED(st_) ? "exit status" : "killed by signal",         \
                  WIFEXITED(st_) ? WEXITSTATUS(st_) : WTERMSIG(st_));         \
    assert_true(WIFEXITED(st_));                                               \
    assert_int_equal(WEXITSTATUS(st_), 0);                                     \
  } while (0)

static int setup(void **state) {
  (void)state;
  dir = itest_mkdtemp("attach");
  return dir ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  itest_rmtree(dir);
  free(dir);
  return 0;
}

static void build_small(const char *file, const char *rec) {
  unlink(file);
  PHASE_OK("build", file, rec, "300", "fixed");
}

// Built by one process, attached, extended and attached again by others.
static void test_build_extend_attach(void **state) {
  (void)state;
  char *file = path_in("a.pool"), *r1 = path_in("a1.rec"),
       *r2 = path_in("a2.rec");
  PHASE_OK("build", file, r1, MMPOOL_SANITIZED ? "2000" : "3000", "fixed");
  struct stat st;
  assert_int_equal(lstat(file, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_true(st.st_size > 0);
  assert_true((unsigned long long)st.st_size <= CAP);
  PHASE_OK("extend", file, r1, r2);
  PHASE_OK("verify", file, r2, "p3", "");       // another name is fine
  PHASE_OK("verify", file, r2, "p", "");        // and back
  PHASE_OK("verify", file, r2, "p", "size=256M"); // equal size= is fine
  PHASE_OK("verify", file, r2, "p", "base=0x310000000000 mode=shared");
}

// A mapping in the way at the recorded base (or inside the range).
static void test_base_occupied(void **state) {
  (void)state;
  char *file = path_in("b.pool"), *rec = path_in("b.rec");
  build_small(file, rec);
  PHASE_OK("occupied", file, rec, path_in("occupant-at-base"), "0");
  PHASE_OK("occupied", file, rec, path_in("occupant-inside"), "0x2000000");
  PHASE_OK("occupied", file, rec, path_in("occupant-at-end"), "0xfffe000");
  PHASE_OK("verify", file, rec, "p", "");
}

// A file attached by a live process cannot be attached by another.
static void test_busy(void **state) {
  (void)state;
  char *file = path_in("c.pool"), *rec = path_in("c.rec");
  build_small(file, rec);
  int ready[2], go[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  char rfd[16], gfd[16];
  snprintf(rfd, sizeof rfd, "%d", ready[1]);
  snprintf(gfd, sizeof gfd, "%d", go[0]);
  fflush(NULL);
  pid_t holder = fork();
  if (holder == 0) {
    close(ready[0]);
    close(go[1]);
    char *argv[] = {"test_attach", "phase", "hold", file, rfd, gfd, NULL};
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  assert_true(holder > 0);
  close(ready[1]);
  close(go[0]);
  char c = 0;
  ssize_t got = read(ready[0], &c, 1);
  close(ready[0]);
  int busy = got == 1 ? run_phase("busy", file, (char *)NULL) : -1;
  close(go[1]); // lets the holder close the pool and exit
  int hst;
  assert_int_equal(waitpid(holder, &hst, 0), holder);
  assert_int_equal(got, 1);
  assert_true(WIFEXITED(hst));
  assert_int_equal(WEXITSTATUS(hst), 0);
  assert_true(WIFEXITED(busy));
  assert_int_equal(WEXITSTATUS(busy), 0);
  PHASE_OK("verify", file, rec, "p", "");
}

// mode=private writes nothing back.
static void test_private(void **state) {
  (void)state;
  char *file = path_in("d.pool"), *rec = path_in("d.rec");
  build_small(file, rec);
  unsigned char *before = NULL;
  size_t blen = 0;
  assert_int_equal(itest_read_file(file, &before, &blen), 0);
  PHASE_OK("private", file, rec);
  int same = itest_file_equals(file, before, blen);
  long long after = itest_file_size(file);
  free(before);
  if (!same)
    print_error("private attach changed the file (%zu bytes before, %lld "
                "after)\n",
                blen, after);
  assert_true(same);
  PHASE_OK("verify", file, rec, "p", "");
}

// Symbolic links are refused, dangling or not; nothing is created.
static void test_symlink(void **state) {
  (void)state;
  char *file = path_in("e.pool"), *rec = path_in("e.rec");
  build_small(file, rec);
  unsigned char *before = NULL;
  size_t blen = 0;
  assert_int_equal(itest_read_file(file, &before, &blen), 0);
  char *link1 = path_in("link.pool"), *link2 = path_in("dangling.pool"),
       *target = path_in("target-of-dangling.pool");
  assert_int_equal(symlink(file, link1), 0);
  assert_int_equal(symlink(target, link2), 0);
  const char *links[] = {link1, link2};
  for (int i = 0; i < 2; i++) {
    errno = 0;
    mmpool_t *pool = mmpool_open("s", opts_of(links[i], NULL));
    int e = errno;
    if (pool != NULL || e != ELOOP)
      print_error("%s: pool %p errno %d (%s)\n", links[i], (void *)pool, e,
                  mmpool_last_error());
    assert_null(pool);
    assert_int_equal(e, ELOOP);
    assert_non_null(strstr(mmpool_last_error(), "symbolic link"));
    assert_null(mmpool_get("s"));
  }
  assert_int_equal(itest_file_size(target), -1); // not created
  assert_true(itest_file_equals(file, before, blen));
  free(before);
  PHASE_OK("verify", file, rec, "p", "");
}

// size= on attach must match the recorded capacity.
static void test_size_mismatch(void **state) {
  (void)state;
  char *file = path_in("f.pool"), *rec = path_in("f.rec");
  build_small(file, rec);
  unsigned char *before = NULL;
  size_t blen = 0;
  assert_int_equal(itest_read_file(file, &before, &blen), 0);
  const char *bad[] = {"size=128M", "size=512M", "size=1G"};
  for (int i = 0; i < 3; i++) {
    errno = 0;
    mmpool_t *pool = mmpool_open("s", opts_of(file, bad[i]));
    int e = errno;
    if (pool != NULL || e != EINVAL)
      print_error("%s: pool %p errno %d (%s)\n", bad[i], (void *)pool, e,
                  mmpool_last_error());
    assert_null(pool);
    assert_int_equal(e, EINVAL);
    assert_non_null(strstr(mmpool_last_error(), "capacity"));
    assert_null(mmpool_get("s"));
  }
  assert_true(itest_file_equals(file, before, blen));
  free(before);
  // The failed attaches left no lock behind, in this process or for others.
  PHASE_OK("verify", file, rec, "p", "");
  mmpool_t *pool = mmpool_open("s", opts_of(file, "size=256M"));
  if (pool == NULL)
    print_error("re-attach after failures: errno %d (%s)\n", errno,
                mmpool_last_error());
  assert_non_null(pool);
  assert_int_equal((uintptr_t)mmpool_base(pool), BASE);
  assert_int_equal(mmpool_check(pool), 0);
  assert_int_equal(mmpool_close(pool), 0);
  PHASE_OK("verify", file, rec, "p", "");
}

// A pool built at an automatic base is attached at that base.
static void test_auto_base(void **state) {
  (void)state;
  char *file = path_in("auto.pool"), *rec = path_in("auto.rec");
  PHASE_OK("build", file, rec, "500", "auto");
  PHASE_OK("verify", file, rec, "p", "");
  PHASE_OK("verify", file, rec, "p", "base=auto");
}

// Conflicts inside one process: a pool of this process in the way of the
// file's base, and the same file attached twice.
static void test_in_process_conflicts(void **state) {
  (void)state;
  char *file = path_in("g.pool"), *rec = path_in("g.rec");
  build_small(file, rec);
  unsigned char *before = NULL;
  size_t blen = 0;
  assert_int_equal(itest_read_file(file, &before, &blen), 0);

  mmpool_t *blocker = mmpool_open("blocker", "size=1G base=0x310000000000");
  if (blocker == NULL)
    free(before);
  assert_non_null(blocker);
  errno = 0;
  mmpool_t *pool = mmpool_open("p", opts_of(file, NULL));
  int e = errno;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", mmpool_last_error());
  int same = itest_file_equals(file, before, blen);
  free(before);
  if (pool != NULL || e != EEXIST || !strstr(msg, "blocker")) {
    print_error("attach under pool 'blocker': pool %p errno %d \"%s\"\n",
                (void *)pool, e, msg);
    if (pool != NULL)
      mmpool_close(pool);
    mmpool_close(blocker); // leaves no pool in the way of the next tests
  }
  assert_null(pool);
  assert_int_equal(e, EEXIST);
  assert_non_null(strstr(msg, "blocker"));
  assert_true(same);
  void *x = mmpool_malloc(blocker, 1000); // the blocker is untouched
  assert_non_null(x);
  mmpool_free(x);
  assert_int_equal(mmpool_check(blocker), 0);
  assert_int_equal(mmpool_close(blocker), 0);

  mmpool_t *p1 = mmpool_open("p1", opts_of(file, NULL));
  if (p1 == NULL)
    print_error("attach: errno %d \"%s\"\n", errno, mmpool_last_error());
  assert_non_null(p1);
  struct node *head = mmpool_get_root(p1, 3);
  assert_non_null(head);
  errno = 0;
  mmpool_t *p2 = mmpool_open("p2", opts_of(file, NULL));
  e = errno;
  if (p2 != NULL || (e != EBUSY && e != EEXIST))
    print_error("second attach in one process: pool %p errno %d \"%s\"\n",
                (void *)p2, e, mmpool_last_error());
  assert_null(p2);
  assert_true(e == EBUSY || e == EEXIST);
  assert_true(mmpool_last_error()[0] != '\0');
  assert_ptr_equal(mmpool_get_root(p1, 3), head); // p1 is still attached
  assert_ptr_equal(mmpool_of(head), p1);
  assert_int_equal(mmpool_check(p1), 0);
  assert_int_equal(mmpool_close(p1), 0);
  PHASE_OK("verify", file, rec, "p", "");
}

// Paths that are no pool file.
static void test_bad_paths(void **state) {
  (void)state;
  char *missing_dir = path_in("no-such-dir/x.pool");
  errno = 0;
  mmpool_t *pool = mmpool_open("s", opts_of(missing_dir, NULL));
  int e = errno;
  assert_null(pool);
  assert_int_equal(e, ENOENT);
  assert_non_null(strstr(mmpool_last_error(), "no-such-dir"));
  // A directory.
  errno = 0;
  pool = mmpool_open("s", opts_of(dir, NULL));
  e = errno;
  assert_null(pool);
  assert_true(e != 0);
  assert_true(mmpool_last_error()[0] != '\0');
  // mode=private attaches an existing file only: nothing is created.
  char *missing = path_in("missing.pool");
  errno = 0;
  pool = mmpool_open("s", opts_of(missing, "mode=private"));
  e = errno;
  assert_null(pool);
  assert_int_equal(e, ENOENT);
  assert_int_equal(itest_file_size(missing), -1);
  assert_null(mmpool_get("s"));
}

// ---------------------------------------------------------------------------
// Lazy attach under threads (docs/engine.md, "Attach"): the file's
// descriptors are checked on first use, and the free fast path reaches only
// a checked prefix that the slow paths grow. Four threads free every block
// the file holds, interleaved across the pool (so frees land past the
// prefix, slabs are adopted from the file by whichever thread frees first,
// and the prefix grows under them), allocating and freeing their own blocks
// meanwhile. The pool stays sound and ends empty, and so does the file.

#define LZ_THREADS 4

struct lz {
  mmpool_t *pool;
  void **blocks;
  size_t n;
  int k;
  int bad;
};

static int lz_collect(void *b, size_t n, void *arg) {
  (void)n;
  struct lz *z = arg;
  z->blocks[z->n++] = b;
  return 0;
}

static void *lz_worker(void *arg) {
  struct lz *z = arg;
  void *mine[64];
  int m = 0;
  for (size_t i = (size_t)z->k; i < z->n; i += LZ_THREADS) {
    mmpool_free(z->blocks[i]);
    if (i % 8 == 0) {
      size_t sz = 16 + (i % 2000);
      char *b = mmpool_malloc(z->pool, sz);
      if (!b) z->bad = 1;
      else memset(b, 0x3c, sz);
      if (m == 64) {
        while (m) mmpool_free(mine[--m]);
      }
      if (b) mine[m++] = b;
    }
  }
  while (m) mmpool_free(mine[--m]);
  return NULL;
}

static void test_lazy_threads(void **state) {
  (void)state;
  char *p = path_in("lazy.pool");
  unlink(p);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char opts[4200];
    snprintf(opts, sizeof opts, "file=%s size=256M", p);
    mmpool_t *pool = mmpool_open("lz", opts);
    if (!pool) _exit(10);
    for (int i = 0; i < 150000; i++)
      if (!mmpool_malloc(pool, 16 + (size_t)(i * 37) % 3000)) _exit(11);
    for (int i = 0; i < 16; i++)
      if (!mmpool_malloc(pool, 70000 + (size_t)i * 9000)) _exit(12);
    if (mmpool_close(pool) != 0) _exit(13);
    snprintf(opts, sizeof opts, "file=%s", p);
    pool = mmpool_open("lz", opts);
    if (!pool) _exit(14);
    static struct lz z[LZ_THREADS];
    void **blocks = malloc(200000 * sizeof *blocks);
    if (!blocks) _exit(15);
    struct lz all = {.pool = pool, .blocks = blocks};
    if (mmpool_walk(pool, lz_collect, &all) != 0 || all.n != 150016)
      _exit(16);
    pthread_t t[LZ_THREADS];
    for (int k = 0; k < LZ_THREADS; k++) {
      z[k] = all;
      z[k].k = k;
      if (pthread_create(&t[k], NULL, lz_worker, &z[k]) != 0) _exit(17);
    }
    for (int k = 0; k < LZ_THREADS; k++) {
      pthread_join(t[k], NULL);
      if (z[k].bad) _exit(18);
    }
    if (mmpool_check(pool) != 0) _exit(19);
    mmpool_stats_t st;
    if (mmpool_stats(pool, &st) != 0 || st.in_use_blocks != 0) _exit(20);
    if (mmpool_close(pool) != 0) _exit(21);
    pool = mmpool_open("lz", opts);
    if (!pool || mmpool_check(pool) != 0) _exit(22);
    if (mmpool_stats(pool, &st) != 0 || st.in_use_blocks != 0) _exit(23);
    _exit(mmpool_close(pool) == 0 ? 0 : 24);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_error("lazy threads: child status 0x%x\n", st);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  unlink(p);
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "phase") == 0)
    return phase_main(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_build_extend_attach),
      cmocka_unit_test(test_base_occupied),
      cmocka_unit_test(test_busy),
      cmocka_unit_test(test_private),
      cmocka_unit_test(test_symlink),
      cmocka_unit_test(test_size_mismatch),
      cmocka_unit_test(test_auto_base),
      cmocka_unit_test(test_in_process_conflicts),
      cmocka_unit_test(test_bad_paths),
      cmocka_unit_test(test_lazy_threads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
