// itest.h: small helpers shared by the integration tests: a scratch
// directory, whole-file reads and writes, a deterministic generator, and
// for the public-API tests (test_api_*.c) cmocka checks of mmpool.h calls
// with the pools they open tracked for the teardown.
//
// Everything here is static inline so each test includes what it uses and
// nothing else; only the last section calls the mmpool API.
#ifndef MMPOOL_ITEST_H
#define MMPOOL_ITEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "mmpool.h"

#ifndef MMPOOL_SANITIZED
#define MMPOOL_SANITIZED 0
#endif

// A fresh directory under $TMPDIR (or /tmp); the caller frees the string.
static inline char *itest_mkdtemp(const char *tag) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0')
    tmp = "/tmp";
  size_t n = strlen(tmp) + strlen(tag) + 32;
  char *dir = malloc(n);
  if (dir == NULL)
    return NULL;
  snprintf(dir, n, "%s/mmpool-%s-XXXXXX", tmp, tag);
  if (mkdtemp(dir) == NULL) {
    free(dir);
    return NULL;
  }
  return dir;
}

static inline int itest_rm_one(const char *path, const struct stat *sb,
                               int type, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (type == FTW_DP)
    return rmdir(path);
  return unlink(path);
}

// Removes dir and everything below it (symbolic links are not followed).
static inline void itest_rmtree(const char *dir) {
  if (dir != NULL)
    nftw(dir, itest_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

// A test program's scratch directory: `static char *dir`, made by the
// group setup `setup` (mmpool-TAG-XXXXXX) and removed with what it holds by
// `teardown`, for cmocka_run_group_tests(tests, setup, teardown).
#define ITEST_SCRATCH_DIR(tag)                                                 \
  static char *dir;                                                            \
  static int setup(void **state) {                                             \
    (void)state;                                                               \
    dir = itest_mkdtemp(tag);                                                  \
    return dir ? 0 : -1;                                                       \
  }                                                                            \
  static int teardown(void **state) {                                          \
    (void)state;                                                               \
    itest_rmtree(dir);                                                         \
    free(dir);                                                                 \
    return 0;                                                                  \
  }


// Reads a whole file into a malloc'd buffer. 0 or -1 (errno set).
static inline int itest_read_file(const char *path, unsigned char **buf,
                                  size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return -1;
  }
  size_t n = (size_t)st.st_size;
  unsigned char *b = malloc(n ? n : 1);
  if (b == NULL) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      free(b);
      close(fd);
      if (r == 0)
        errno = EIO;
      return -1;
    }
    got += (size_t)r;
  }
  close(fd);
  *buf = b;
  *len = n;
  return 0;
}

// Reads up to n bytes from fd into buf (a child's report through a pipe),
// retrying short reads and EINTR; returns the bytes read (n unless the
// writer died first).
static inline size_t itest_read_all(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

// Creates or replaces path (mode 0600) with len bytes of buf.
static inline int itest_write_file(const char *path, const void *buf,
                                   size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  const unsigned char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, p + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  return close(fd);
}

// 1 when the file at path holds exactly len bytes equal to buf.
static inline int itest_file_equals(const char *path, const unsigned char *buf,
                                    size_t len) {
  unsigned char *b;
  size_t n;
  if (itest_read_file(path, &b, &n) != 0)
    return 0;
  int same = n == len && memcmp(b, buf, len) == 0;
  free(b);
  return same;
}

// The size of a file, or -1.
static inline long long itest_file_size(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return -1;
  return (long long)st.st_size;
}

// xorshift64*: a deterministic stream for sizes and contents.
// Resident 4 KiB pages of [a, a + len) (mincore).
static inline size_t itest_resident(const void *a, size_t len) {
  size_t n = len / 4096, k = 0;
  unsigned char *v = malloc(n);
  assert_non_null(v);
  assert_int_equal(mincore((void *)a, len, v), 0);
  for (size_t i = 0; i < n; i++) k += v[i] & 1;
  free(v);
  return k;
}

static inline uint64_t itest_rand(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

// Fills n bytes with the pattern of seed; itest_check_pattern verifies it.
static inline void itest_fill_pattern(void *p, size_t n, uint64_t seed) {
  unsigned char *b = p;
  uint64_t s = seed | 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = itest_rand(&s);
    memcpy(b + i, &v, 8);
  }
  if (i < n) {
    uint64_t v = itest_rand(&s);
    memcpy(b + i, &v, n - i);
  }
}

// 1 when p holds the pattern of seed over n bytes.
static inline int itest_check_pattern(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  uint64_t s = seed | 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = itest_rand(&s);
    if (memcmp(b + i, &v, 8) != 0)
      return 0;
  }
  if (i < n) {
    uint64_t v = itest_rand(&s);
    if (memcmp(b + i, &v, n - i) != 0)
      return 0;
  }
  return 1;
}

// FNV-1a over a byte range, chained through h.
static inline uint64_t itest_hash(const void *p, size_t n, uint64_t h) {
  const unsigned char *b = p;
  if (h == 0)
    h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// ---------------------------------------------------------------------------
// The public-API tests: each runs its cases with itest_group_setup and, per
// case, itest_teardown; a case opens its pools with itest_open and closes
// them with itest_close.

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

// expr (a pointer) must fail with errno e and leave a message.
#define ITEST_FAILS_PTR(expr, e)                                               \
  do {                                                                         \
    errno = 0;                                                                 \
    const void *r_ = (expr);                                                   \
    int e_ = errno;                                                            \
    if (r_ != NULL || e_ != (e))                                               \
      print_error("%s: returned %p errno %d (%s), expected NULL errno %d; "    \
                  "last error \"%s\"\n",                                       \
                  #expr, r_, e_, strerror(e_), (e), mmpool_last_error());      \
    assert_null(r_);                                                           \
    assert_int_equal(e_, (e));                                                 \
    assert_true(mmpool_last_error()[0] != '\0');                               \
  } while (0)

// expr (an int) must return -1 with errno e and leave a message.
#define ITEST_FAILS_INT(expr, e)                                               \
  do {                                                                         \
    errno = 0;                                                                 \
    int r_ = (expr);                                                           \
    int e_ = errno;                                                            \
    if (r_ != -1 || e_ != (e))                                                 \
      print_error("%s: returned %d errno %d (%s), expected -1 errno %d; "      \
                  "last error \"%s\"\n",                                       \
                  #expr, r_, e_, strerror(e_), (e), mmpool_last_error());      \
    assert_int_equal(r_, -1);                                                  \
    assert_int_equal(e_, (e));                                                 \
    assert_true(mmpool_last_error()[0] != '\0');                               \
  } while (0)

// Pools a test opened and has not closed yet: the teardown closes them, so
// one failed test does not leave pools open for the next.
static mmpool_t *itest_tracked[2 * MMPOOL_MAX_POOLS];
static int itest_ntracked;

static inline void itest_track(mmpool_t *p) {
  if (p != NULL &&
      itest_ntracked < (int)(sizeof itest_tracked / sizeof itest_tracked[0]))
    itest_tracked[itest_ntracked++] = p;
}

static inline void itest_untrack(mmpool_t *p) {
  for (int i = 0; i < itest_ntracked; i++)
    if (itest_tracked[i] == p) {
      itest_tracked[i] = itest_tracked[--itest_ntracked];
      return;
    }
}

// mmpool_open, asserted to succeed; the pool is tracked.
static inline mmpool_t *itest_open(const char *name, const char *opts) {
  errno = 0;
  mmpool_t *p = mmpool_open(name, opts);
  if (p == NULL)
    print_error("mmpool_open(%s, %s): errno %d, \"%s\"\n", name,
                opts ? opts : "NULL", errno, mmpool_last_error());
  assert_non_null(p);
  itest_track(p);
  return p;
}

// mmpool_close, asserted to succeed.
static inline void itest_close(mmpool_t *p) {
  itest_untrack(p);
  errno = 0;
  int r = mmpool_close(p);
  if (r != 0)
    print_error("mmpool_close(%s): errno %d \"%s\"\n", mmpool_name(p), errno,
                mmpool_last_error());
  assert_int_equal(r, 0);
}

// A case's teardown: pops the current-pool stack and closes what the case
// left open.
static inline int itest_teardown(void **state) {
  (void)state;
  while (mmpool_pop() != NULL)
    ;
  while (itest_ntracked > 0)
    mmpool_close(itest_tracked[--itest_ntracked]);
  return 0;
}

// The group setup: opens the default pool, so the count of open pools is
// known.
static inline int itest_group_setup(void **state) {
  (void)state;
  void *b = mmpool_malloc(NULL, 1);
  if (b == NULL) return -1;
  mmpool_free(b);
  return 0;
}

// mmpool_stats, asserted to succeed; *st is poisoned first.
static inline void itest_stats(mmpool_t *pool, mmpool_stats_t *st) {
  memset(st, 0xa5, sizeof *st);
  assert_int_equal(mmpool_stats(pool, st), 0);
}

static inline mmpool_t *itest_default_pool(void) {
  mmpool_t *d = mmpool_get("default");
  assert_non_null(d);
  return d;
}

// What an mmpool_walk callback saw: up to cap blocks' addresses and sizes,
// n of them in all. With stop_after, the walk is stopped (7) at that call.
struct itest_seen {
  size_t n, cap;
  uintptr_t *addr;
  size_t *size;
  int stop_after;
  int calls;
};

// The callback of mmpool_walk that fills a struct itest_seen (arg).
static inline int itest_record(void *block, size_t size, void *arg) {
  struct itest_seen *s = arg;
  s->calls++;
  if (s->n < s->cap) {
    s->addr[s->n] = (uintptr_t)block;
    s->size[s->n] = size;
  }
  s->n++;
  if (s->stop_after && s->calls == s->stop_after) return 7;
  return 0;
}

#endif // MMPOOL_ITEST_H
