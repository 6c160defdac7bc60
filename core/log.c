// log.c: the log sink, per-thread errors and fatal errors (log.h).
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compiler.h"
#include "fmt.h"
#include "os.h"

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

// Every line and every kept error is escaped (fmt_escape) after it is
// formatted: messages quote paths, option words and configuration text,
// and none of those may put a control byte (an ESC sequence, a newline
// that forges a second line) on the program's stderr or in
// mmpool_last_error.
static void emit(const char *fmt, va_list ap) {
  char raw[512], line[512];  // a line is at most 512 bytes, escapes included
  size_t rn = fmt_vformat(raw, sizeof raw, fmt, ap);
  size_t n = fmt_format(line, sizeof line, "mmpool: ");
  n += fmt_escape(line + n, sizeof line - n - 1, raw, rn);
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

RARE int log_fail(int err, const char *fmt, ...) {
  last_code = err;
  char raw[sizeof last_error];
  va_list ap;
  va_start(ap, fmt);
  size_t n = fmt_vformat(raw, sizeof raw, fmt, ap);
  va_end(ap);
  fmt_escape(last_error, sizeof last_error, raw, n);
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
