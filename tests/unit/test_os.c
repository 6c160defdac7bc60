// test_os.c: os_open_nolinks and its fallback os_open_walk (the path walk
// used where the kernel has no openat2): no symbolic link in any component
// of the path, the file created only with O_CREAT, O_CLOEXEC kept; and
// os_strerror's names of errno values.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "os.h"

static char dir[PATH_MAX];

static const char *in(const char *name) {
  static char buf[2][PATH_MAX + 320];
  static int k;
  k ^= 1;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int (*const opens[2])(const char *, int, int) = {os_open_nolinks,
                                                        os_open_walk};

// Opens path with both functions; both give the same outcome (a
// descriptor, closed here, or the same error), which is returned.
static int both(const char *path, int flags, int mode) {
  int r[2];
  for (int i = 0; i < 2; i++) {
    r[i] = opens[i](path, flags, mode);
    if (r[i] >= 0) {
      int fl = fcntl(r[i], F_GETFD);
      assert_true(fl & FD_CLOEXEC);
      close(r[i]);
      r[i] = 0;
      if (flags & O_EXCL) unlink(path);  // so the second may create it
    }
  }
  if (r[0] != r[1])
    print_error("%s: openat2 %d, walk %d\n", path, r[0], r[1]);
  assert_int_equal(r[0], r[1]);
  return r[0];
}

static void test_plain(void **state) {
  (void)state;
  FILE *f = fopen(in("a/b/file"), "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(both(in("a/b/file"), O_RDONLY, 0), 0);
  assert_int_equal(both(in("a//b/./file"), O_RDWR, 0), 0);
  assert_int_equal(both(in("a/b/../b/file"), O_RDONLY, 0), 0);
  assert_int_equal(both(in("a/b/missing"), O_RDONLY, 0), -ENOENT);
  assert_int_equal(both(in("a/b/file/x"), O_RDONLY, 0), -ENOTDIR);
  assert_int_equal(both(in("a/b/new"), O_RDWR | O_CREAT | O_EXCL, 0600), 0);
  assert_int_equal(both(in("a/b/file"), O_RDWR | O_CREAT | O_EXCL, 0600),
                   -EEXIST);
  // Relative to the working directory.
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  assert_int_equal(both("a/b/file", O_RDONLY, 0), 0);
  assert_int_equal(both("a/lb/file", O_RDONLY, 0), -ELOOP);
  assert_int_equal(chdir(cwd), 0);
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(os_open_walk(in(longname), O_RDONLY, 0), -ENAMETOOLONG);
  assert_int_equal(os_open_walk("", O_RDONLY, 0), -ENOENT);
}

static void test_links(void **state) {
  (void)state;
  // a/lb -> b (a directory), a/lf -> b/file, dangling -> a/b/nothing.
  assert_int_equal(both(in("a/lf"), O_RDONLY, 0), -ELOOP);
  assert_int_equal(both(in("a/lb/file"), O_RDONLY, 0), -ELOOP);
  assert_int_equal(both(in("la/b/file"), O_RDONLY, 0), -ELOOP);
  assert_int_equal(both(in("dangling"), O_RDONLY, 0), -ELOOP);
  // O_EXCL never creates through a link: the link itself exists.
  assert_int_equal(both(in("dangling"), O_RDWR | O_CREAT | O_EXCL, 0600),
                   -EEXIST);
  assert_int_equal(both(in("a/lb/new2"), O_RDWR | O_CREAT | O_EXCL, 0600),
                   -ELOOP);
  struct stat st;
  assert_int_equal(stat(in("a/b/nothing"), &st), -1);
  assert_int_equal(stat(in("a/b/new2"), &st), -1);
}

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/mmpool-os-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return -1;
  char t[PATH_MAX + 16];
  snprintf(t, sizeof t, "%s/a", dir);
  if (mkdir(t, 0700)) return -1;
  snprintf(t, sizeof t, "%s/a/b", dir);
  if (mkdir(t, 0700)) return -1;
  if (symlink("b", in("a/lb")) || symlink("b/file", in("a/lf")) ||
      symlink("a", in("la")) || symlink("a/b/nothing", in("dangling")))
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

// os_strerror: every errno the engine can see as "NAME: text", from a
// static table (no strerror, no allocation); "errno N" for unknown values.
static void test_strerror(void **state) {
  (void)state;
  static const struct { int e; const char *name; } all[] = {
      {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EINTR, "EINTR"}, {EIO, "EIO"},
      {ENXIO, "ENXIO"}, {E2BIG, "E2BIG"}, {EBADF, "EBADF"},
      {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},
      {EFAULT, "EFAULT"}, {EBUSY, "EBUSY"}, {EEXIST, "EEXIST"},
      {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
      {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"}, {EMFILE, "EMFILE"},
      {ETXTBSY, "ETXTBSY"}, {EFBIG, "EFBIG"}, {ENOSPC, "ENOSPC"},
      {ESPIPE, "ESPIPE"}, {EROFS, "EROFS"}, {EMLINK, "EMLINK"},
      {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOSYS, "ENOSYS"}, {ELOOP, "ELOOP"},
      {EOVERFLOW, "EOVERFLOW"}, {EDQUOT, "EDQUOT"}, {EUCLEAN, "EUCLEAN"},
      {ENOEXEC, "ENOEXEC"}, {EOPNOTSUPP, "EOPNOTSUPP"},
      {ETIMEDOUT, "ETIMEDOUT"}};
  char buf[32];
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const char *t = os_strerror(all[i].e, buf, sizeof buf);
    size_t n = strlen(all[i].name);
    if (strncmp(t, all[i].name, n) != 0 || strncmp(t + n, ": ", 2) != 0 ||
        strlen(t) < n + 4)
      fail_msg("os_strerror(%s) = '%s'", all[i].name, t);
  }
  assert_string_equal(os_strerror(EMFILE, buf, sizeof buf),
                      "EMFILE: too many open files");
  assert_string_equal(os_strerror(4000, buf, sizeof buf), "errno 4000");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),
      cmocka_unit_test(test_links),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
