// test_log.c: the non-allocating formatter and the log sink (core/log.h).
//
// fmt_format must agree with snprintf on every conversion it supports, cut
// its output at the buffer size with a terminating NUL (never writing past
// it), and the sink must print one "mmpool: " line per message, filtered by
// level; log_fail keeps a per-thread last error; log_fatal aborts.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fmt.h"
#include "log.h"

static char got[512], want[512];

// Formats with both fmt_format and snprintf and compares result and length.
#define SAME(fmt, ...)                                                         \
  do {                                                                         \
    memset(got, '#', sizeof got);                                              \
    size_t n_ = fmt_format(got, sizeof got, fmt, __VA_ARGS__);                 \
    int w_ = snprintf(want, sizeof want, fmt, __VA_ARGS__);                    \
    if (strcmp(got, want) != 0 || n_ != (size_t)w_)                            \
      fail_msg("format \"%s\": got \"%s\" (%zu), snprintf \"%s\" (%d)", fmt,   \
               got, n_, want, w_);                                             \
  } while (0)

static void test_conversions(void **state) {
  (void)state;
  SAME("%s", "");
  SAME("%s", "hello");
  SAME("[%s|%s]", "a", "bc");
  SAME("%8s|", "abc");
  SAME("%.3s|", "abcdef");
  SAME("%.10s|", "ab");
  SAME("%.0s|", "abc");
  SAME("%.*s|", 2, "xyz");
  SAME("%.*s|", 0, "xyz");
  SAME("%.*s|", -1, "xyz"); // a negative precision is no precision
  SAME("'%.*s' at %d", 4, "size=12Q trailing", 7);
  SAME("%8.3s|", "abcdef");
  SAME("%c%c%c", 'x', 'y', 'z');
  SAME("%d", 0);
  SAME("%d", 42);
  SAME("%d", -42);
  SAME("%d", INT_MAX);
  SAME("%d", INT_MIN);
  SAME("%5d|", -42);
  SAME("%05d|", -42);
  SAME("%05d|", 42);
  SAME("%2d|", 12345);
  SAME("%u", 0u);
  SAME("%u", UINT_MAX);
  SAME("%ld", LONG_MIN);
  SAME("%ld", LONG_MAX);
  SAME("%lu", ULONG_MAX);
  SAME("%lld", LLONG_MIN);
  SAME("%lld", LLONG_MAX);
  SAME("%llu", ULLONG_MAX);
  SAME("%zu", (size_t)0);
  SAME("%zu", SIZE_MAX);
  SAME("%zd", (ssize_t)-5);
  SAME("%zd", (ssize_t)SSIZE_MAX);
  SAME("%x", 0xdeadbeefu);
  SAME("%x", 0u);
  SAME("%lx", 0x7fffffffffffffffUL);
  SAME("%lx", 0x200000000000UL);
  SAME("%llx", 0xfedcba9876543210ULL);
  SAME("%zx", (size_t)0x1234abcd);
  SAME("%016lx", 0x1234UL);
  SAME("%016lx", 0xffffffffffffffffUL);
  SAME("%08x", 0xabcu);
  SAME("%o", 0u);
  SAME("%04o", 0620u);
  SAME("%o", 0100644u);
  SAME("%4u|", 7u);
  SAME("100%% %d%%", 5);
  SAME("0x%lx-0x%lx %s", 0x200000000000UL, 0x200040000000UL, "rw-p /a/b");
  SAME("%s=%zu (%d, %s)", "size", (size_t)4096, -1, "x");
  SAME("%p", (void *)0x200000001230);
  SAME("%p", (void *)&got);
  SAME("%p", (void *)1);
  SAME("%s", "no conversion at the end");
}

static void test_pointers_and_null(void **state) {
  (void)state;
  // NULL strings and pointers: something readable, not a crash.
  const char *volatile null_str = NULL;
  fmt_format(got, sizeof got, "%s", null_str);
  assert_string_equal(got, "(null)");
  // A precision bounds the read: the string need not be terminated.
  char unterminated[4] = {'a', 'b', 'c', 'd'};
  fmt_format(got, sizeof got, "[%.4s]", unterminated);
  assert_string_equal(got, "[abcd]");
  fmt_format(got, sizeof got, "%p", (void *)NULL);
  assert_true(strcmp(got, "0x0") == 0 || strcmp(got, "(nil)") == 0);
  // A lone '%' at the end of the format does not read past it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
  fmt_format(got, sizeof got, "50%");
#pragma GCC diagnostic pop
  assert_true(strncmp(got, "50", 2) == 0);
  assert_true(strlen(got) <= 3);
}

// Output is cut at the buffer size, always NUL-terminated, and nothing
// past buf[n-1] is written.
static void test_truncation(void **state) {
  (void)state;
  const char *full = "mmpool: 12345 abcdef 0x2a";
  size_t flen = strlen(full);
  for (size_t n = 0; n <= flen + 4; n++) {
    char buf[64];
    memset(buf, '#', sizeof buf);
    size_t r = fmt_format(buf, n, "mmpool: %d %s 0x%x", 12345, "abcdef", 42);
    if (n == 0) {
      assert_int_equal(buf[0], '#');
      assert_int_equal(r, 0);
      continue;
    }
    size_t expect = flen < n - 1 ? flen : n - 1;
    assert_int_equal(r, expect);
    assert_int_equal(strlen(buf), expect);
    assert_memory_equal(buf, full, expect);
    for (size_t i = n; i < sizeof buf; i++)
      if (buf[i] != '#') fail_msg("n=%zu: byte %zu written", n, i);
  }
  // Cutting in the middle of a number, of a padded number, of a string.
  char b4[4];
  fmt_format(b4, sizeof b4, "%016lx", 0x12UL);
  assert_string_equal(b4, "000");
  fmt_format(b4, sizeof b4, "%d", -123456);
  assert_string_equal(b4, "-12");
  fmt_format(b4, sizeof b4, "%8s", "ab");
  assert_string_equal(b4, "   ");
  fmt_format(b4, sizeof b4, "%p", (void *)0xabcdef);
  assert_string_equal(b4, "0xa");
  // A long string into a big buffer.
  static char big[3000], out[1024];
  memset(big, 'q', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(fmt_format(out, sizeof out, "<%s>", big), sizeof out - 1);
  assert_int_equal(out[0], '<');
  assert_int_equal(strlen(out), sizeof out - 1);
}

static void vwrap(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fmt_vformat(buf, n, fmt, ap);
  va_end(ap);
}

static void test_vformat(void **state) {
  (void)state;
  vwrap(got, sizeof got, "%s:%d:%zu", "f", -3, (size_t)9);
  assert_string_equal(got, "f:-3:9");
}

// ---------------------------------------------------------------------------
// The sink

static int pipe_fds[2];

static size_t drain(char *buf, size_t len) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < len && (r = read(pipe_fds[0], buf + n, len - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = 0;
  return n;
}

static void test_print_levels(void **state) {
  (void)state;
  assert_int_equal(pipe2(pipe_fds, O_NONBLOCK), 0);
  log_set_fd(pipe_fds[1]);
  int old = log_level();
  log_set_level(LOG_WARN);
  assert_int_equal(log_level(), LOG_WARN);

  log_print(LOG_ERROR, "error %d", 1);
  log_print(LOG_WARN, "warn %s", "two");
  log_print(LOG_INFO, "info %d", 3);   // filtered
  log_print(LOG_DEBUG, "debug %d", 4); // filtered
  char buf[4096];
  drain(buf, sizeof buf);
  assert_string_equal(buf, "mmpool: error 1\nmmpool: warn two\n");

  log_set_level(LOG_DEBUG);
  log_print(LOG_DEBUG, "debug %zu", (size_t)5);
  drain(buf, sizeof buf);
  assert_string_equal(buf, "mmpool: debug 5\n");

  // A very long message: one line, cut, still ending with a newline.
  static char big[2000];
  memset(big, 'L', sizeof big - 1);
  log_print(LOG_ERROR, "%s", big);
  size_t n = drain(buf, sizeof buf);
  assert_true(n > 100 && n <= 512);
  assert_int_equal(strncmp(buf, "mmpool: LLLL", 12), 0);
  assert_int_equal(buf[n - 1], '\n');
  assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);

  log_set_level(old);
  log_set_fd(2);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

static void *other_thread(void *arg) {
  (void)arg;
  // A new thread has no last error of its own yet.
  static char seen[256];
  strcpy(seen, log_last_error());
  assert_int_equal(log_fail(ENOENT, "thread %d", 2), -ENOENT);
  return seen;
}

static void test_fail_per_thread(void **state) {
  (void)state;
  int e = errno = 1234;
  assert_int_equal(log_fail(EINVAL, "bad %s: %d", "thing", 7), -EINVAL);
  assert_string_equal(log_last_error(), "bad thing: 7");
  assert_int_equal(errno, e); // recording an error leaves errno alone
  pthread_t t;
  void *seen;
  assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
  assert_int_equal(pthread_join(t, &seen), 0);
  assert_string_equal((char *)seen, "");
  assert_string_equal(log_last_error(), "bad thing: 7"); // not overwritten
  // Long messages are cut, not overrun.
  static char big[1000];
  memset(big, 'e', sizeof big - 1);
  log_fail(E2BIG, "%s", big);
  assert_true(strlen(log_last_error()) > 100);
  assert_true(strlen(log_last_error()) < 1000);
}

static void test_fatal_aborts(void **state) {
  (void)state;
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    log_set_fd(p[1]);
    signal(SIGABRT, SIG_DFL);
    log_fatal("corrupt block %p in %s", (void *)0x200000010000, "pool.x");
    _exit(0); // not reached
  }
  close(p[1]);
  char buf[600];
  size_t n = 0;
  ssize_t r;
  while (n + 1 < sizeof buf &&
         (r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = 0;
  close(p[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGABRT);
  assert_string_equal(buf, "mmpool: corrupt block 0x200000010000 in pool.x\n");
}

// Control bytes in echoed text (issue 11, item 4) come out as \xNN, in
// fmt_escape, in the kept error and on the sink; an escape is never cut.
static void test_escape(void **state) {
  (void)state;
  char b[64];
  const char in[] = "a\x1b[31mb\n\t\x7f\x01z\x80\xc3\xa9";
  size_t n = fmt_escape(b, sizeof b, in, sizeof in - 1);
  assert_string_equal(b, "a\\x1b[31mb\\x0a\\x09\\x7f\\x01z\x80\xc3\xa9");
  assert_int_equal(n, strlen(b));
  // Cut: "ab" then an escape that does not fit whole is left out.
  assert_int_equal(fmt_escape(b, 5, "ab\x1b" "c", 4), 2);
  assert_string_equal(b, "ab");
  assert_int_equal(fmt_escape(b, 7, "ab\x1b" "c", 4), 6);
  assert_string_equal(b, "ab\\x1b");
  assert_int_equal(fmt_escape(b, 0, "x", 1), 0);

  log_fail(EINVAL, "pool 'p': bad size in '%s'", "size=1\x1b[31mQ\n");
  const char *e = log_last_error();
  assert_null(strchr(e, 0x1b));
  assert_null(strchr(e, '\n'));
  assert_string_equal(e, "pool 'p': bad size in 'size=1\\x1b[31mQ\\x0a'");

  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK), 0);
  log_set_fd(p[1]);
  log_print(LOG_ERROR, "file %s", "/tmp/x\x1b]0;owned\x07");
  log_set_fd(2);
  char buf[256];
  ssize_t r = read(p[0], buf, sizeof buf - 1);
  assert_true(r > 0);
  buf[r] = 0;
  close(p[0]);
  close(p[1]);
  assert_string_equal(buf, "mmpool: file /tmp/x\\x1b]0;owned\\x07\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_conversions),
      cmocka_unit_test(test_pointers_and_null),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_vformat),
      cmocka_unit_test(test_print_levels),
      cmocka_unit_test(test_fail_per_thread),
      cmocka_unit_test(test_fatal_aborts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
