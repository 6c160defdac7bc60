// itest.h: small helpers shared by the integration tests: a scratch
// directory, whole-file reads and writes, and a deterministic generator.
//
// Everything here is static inline so each test includes what it uses and
// nothing else; none of it calls the mmpool API.
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
#include <sys/stat.h>
#include <unistd.h>

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

#endif // MMPOOL_ITEST_H
