// log.c: the non-allocating formatter, the log sink and per-thread errors.
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"

// ---------------------------------------------------------------------------
// Formatter

struct out {
  char *buf;
  size_t n, len;
};

static void put(struct out *o, char c) {
  if (o->len + 1 < o->n) o->buf[o->len] = c;
  o->len++;
}

static void put_num(struct out *o, unsigned long long v, int base, int neg,
                    int width, char pad) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v);
  if (neg) {
    if (pad == '0') put(o, '-');
    width--;
  }
  for (int w = i; w < width; w++) put(o, pad);
  if (neg && pad != '0') put(o, '-');
  while (i) put(o, tmp[--i]);
}

size_t log_vformat(char *buf, size_t n, const char *fmt, va_list ap) {
  struct out o = {buf, n, 0};
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      put(&o, *f);
      continue;
    }
    f++;
    char pad = ' ';
    int width = 0, lng = 0, sz = 0, prec = -1;
    if (*f == '0') pad = '0', f++;
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    if (*f == '.') {
      f++;
      if (*f == '*') {
        prec = va_arg(ap, int);
        f++;
      } else {
        for (prec = 0; *f >= '0' && *f <= '9'; f++) prec = prec * 10 + (*f - '0');
      }
    }
    while (*f == 'l') lng++, f++;
    if (*f == 'z') sz = 1, f++;
    switch (*f) {
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      size_t sl = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
      for (size_t w = sl; w < (size_t)width; w++) put(&o, ' ');
      for (size_t i = 0; i < sl; i++) put(&o, s[i]);
      break;
    }
    case 'c': put(&o, (char)va_arg(ap, int)); break;
    case 'd': {
      long long v = sz ? (long long)va_arg(ap, ssize_t)
                  : lng ? (lng > 1 ? va_arg(ap, long long)
                                   : (long long)va_arg(ap, long))
                        : (long long)va_arg(ap, int);
      unsigned long long m = v < 0 ? 0ull - (unsigned long long)v
                                   : (unsigned long long)v;
      put_num(&o, m, 10, v < 0, width, pad);
      break;
    }
    case 'u':
    case 'x': {
      unsigned long long v =
          sz ? (unsigned long long)va_arg(ap, size_t)
          : lng ? (lng > 1 ? va_arg(ap, unsigned long long)
                           : (unsigned long long)va_arg(ap, unsigned long))
                : (unsigned long long)va_arg(ap, unsigned);
      put_num(&o, v, *f == 'x' ? 16 : 10, 0, width, pad);
      break;
    }
    case 'p':
      put(&o, '0'), put(&o, 'x');
      put_num(&o, (uintptr_t)va_arg(ap, void *), 16, 0, width, pad);
      break;
    case '%': put(&o, '%'); break;
    case 0: f--; break;
    default: put(&o, '%'), put(&o, *f); break;
    }
  }
  if (n) buf[o.len < n ? o.len : n - 1] = 0;
  return o.len < n ? o.len : (n ? n - 1 : 0);
}

size_t log_format(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t r = log_vformat(buf, n, fmt, ap);
  va_end(ap);
  return r;
}

// ---------------------------------------------------------------------------
// Sink

static int sink_fd = -1;  // -1: fd 2, while it is still the stderr we saw
static int level = LOG_WARN;
// The identity of fd 2 at start (log_open_sink); 0: not recorded.
static uint64_t err_dev, err_ino;
static int err_known;

void log_set_fd(int fd) { __atomic_store_n(&sink_fd, fd, __ATOMIC_RELAXED); }
void log_set_level(int l) { __atomic_store_n(&level, l, __ATOMIC_RELAXED); }
int log_level(void) { return __atomic_load_n(&level, __ATOMIC_RELAXED); }

// No copy of fd 2 is made: an extra descriptor in every process is visible
// to programs (fd numbering, inherited descriptors). Instead the file that
// fd 2 is at start is recorded, and a message goes to fd 2 only while fd 2
// is still that file: a program that closed stderr and reused the number
// for its own file never finds our lines in it (PITFALLS 3.13).
void log_open_sink(void) {
  uint64_t size;
  int reg;
  if (os_file_size(2, &size, &reg, &err_dev, &err_ino) == 0)
    __atomic_store_n(&err_known, 1, __ATOMIC_RELEASE);
}

static int sink(void) {
  int fd = __atomic_load_n(&sink_fd, __ATOMIC_RELAXED);
  if (fd >= 0) return fd;
  if (__atomic_load_n(&err_known, __ATOMIC_ACQUIRE)) {
    uint64_t size, dev, ino;
    int reg;
    if (os_file_size(2, &size, &reg, &dev, &ino) != 0 || dev != err_dev ||
        ino != err_ino)
      return -1;  // stderr is gone or is another file now: drop the line
  }
  return 2;
}

static void emit(const char *fmt, va_list ap) {
  char line[512];
  size_t n = log_format(line, sizeof line, "mmpool: ");
  n += log_vformat(line + n, sizeof line - n - 1, fmt, ap);
  line[n++] = '\n';
  int fd = sink();
  if (fd >= 0) os_write_all(fd, line, n);
}

void log_print(int l, const char *fmt, ...) {
  if (l > log_level()) return;
  va_list ap;
  va_start(ap, fmt);
  emit(fmt, ap);
  va_end(ap);
}

// ---------------------------------------------------------------------------
// Errors

static __thread char last_error[256];
static __thread int last_code;

int log_take_code(void) {
  int c = last_code;
  last_code = 0;
  return c;
}

int log_fail(int err, const char *fmt, ...) {
  last_code = err;
  va_list ap;
  va_start(ap, fmt);
  log_vformat(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  if (log_level() >= LOG_DEBUG) log_print(LOG_DEBUG, "%s", last_error);
  return -err;
}

const char *log_last_error(void) { return last_error; }

void log_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(fmt, ap);
  va_end(ap);
  abort();
}
