// test_spec.c: the parser of pool statement words (core/spec.h), shared by
// mmpool_open's options and the configuration: sizes, bases, every option,
// and each error, whose message must name the word at fault.
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <cmocka.h>

#include "poolfile.h"
#include "spec.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define TiB ((uint64_t)1 << 40)

static struct pool_spec sp;
static char why[512];

static int parse(const char *words) {
  memset(&sp, 0xa5, sizeof sp);
  memset(why, 0, sizeof why);
  return spec_parse(words, &sp, why, sizeof why);
}

#define OK(words)                                                              \
  do {                                                                         \
    int r_ = parse(words);                                                     \
    if (r_ != 0) fail_msg("spec_parse(\"%s\") = %d: %s", (words), r_, why);    \
  } while (0)

// Refused with -EINVAL and a one-line message containing both texts.
#define BAD(words, text1, text2)                                               \
  do {                                                                         \
    int r_ = parse(words);                                                     \
    if (r_ != -EINVAL || strstr(why, (text1)) == NULL ||                       \
        strstr(why, (text2)) == NULL || strchr(why, '\n') != NULL)             \
      fail_msg("spec_parse(\"%s\") = %d \"%s\"; expected -EINVAL naming "      \
               "\"%s\" and \"%s\"",                                            \
               (words), r_, why, (text1), (text2));                            \
  } while (0)

static void expect_defaults(void) {
  assert_int_equal(sp.file, 0);
  assert_int_equal(sp.path[0], 0);
  assert_int_equal(sp.mode, SPEC_SHARED);
  assert_int_equal(sp.mode_set, 0);
  assert_int_equal(sp.size, SPEC_DEFAULT_SIZE);
  assert_int_equal(sp.size, 64 * GiB);
  assert_int_equal(sp.size_set, 0);
  assert_int_equal(sp.base, 0);
  assert_int_equal(sp.relocate, 0);
  assert_int_equal(sp.full, SPEC_FULL_FALLBACK);
  assert_int_equal(sp.brk, 0);
  assert_int_equal(sp.recover, 0);
}

// ---------------------------------------------------------------------------
// Sizes

static uint64_t size_of(const char *s) {
  uint64_t v = 0xdeadbeef;
  int r = spec_parse_size(s, strlen(s), &v);
  if (r != 0) fail_msg("spec_parse_size(\"%s\") = %d", s, r);
  return v;
}

static void size_bad(const char *s, int err) {
  uint64_t v = 0xdeadbeef;
  int r = spec_parse_size(s, strlen(s), &v);
  if (r != err)
    fail_msg("spec_parse_size(\"%s\") = %d, expected %d", s, r, err);
  assert_int_equal(v, 0xdeadbeef); // untouched on failure
}

static void test_sizes(void **state) {
  (void)state;
  assert_int_equal(size_of("0"), 0);
  assert_int_equal(size_of("4096"), 4096);
  assert_int_equal(size_of("64K"), 64 * KiB);
  assert_int_equal(size_of("64k"), 64 * KiB);
  assert_int_equal(size_of("512M"), 512 * MiB);
  assert_int_equal(size_of("512m"), 512 * MiB);
  assert_int_equal(size_of("8G"), 8 * GiB);
  assert_int_equal(size_of("8g"), 8 * GiB);
  assert_int_equal(size_of("1T"), TiB);
  assert_int_equal(size_of("16t"), 16 * TiB);
  assert_int_equal(size_of("0x1000"), 4096);
  assert_int_equal(size_of("0X200000000000"), 0x200000000000ull);
  assert_int_equal(size_of("0xabcDEF"), 0xabcdef);
  assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
  assert_int_equal(size_of("0xffffffffffffffff"), UINT64_MAX);
  assert_int_equal(size_of("16777215T"), 16777215 * TiB);
  // Only len bytes are read.
  uint64_t v = 0;
  assert_int_equal(spec_parse_size("12Mjunk", 3, &v), 0);
  assert_int_equal(v, 12 * MiB);

  size_bad("", -EINVAL);
  size_bad("K", -EINVAL);
  size_bad("12Q", -EINVAL);
  size_bad("12KB", -EINVAL);
  size_bad("1.5G", -EINVAL);
  size_bad("-1", -EINVAL);
  size_bad(" 1", -EINVAL);
  size_bad("0x", -EINVAL);
  size_bad("0xg", -EINVAL);
  size_bad("0x10K", -EINVAL); // no suffix on hexadecimal
  size_bad("12 ", -EINVAL);
  size_bad("18446744073709551616", -ERANGE);
  size_bad("99999999999999999999999", -ERANGE);
  size_bad("0x10000000000000000", -ERANGE);
  size_bad("16777216T", -ERANGE);
  size_bad("17179869184G", -ERANGE);
}

// ---------------------------------------------------------------------------
// Statements that parse

static void test_defaults(void **state) {
  (void)state;
  OK(NULL);
  expect_defaults();
  OK("");
  expect_defaults();
  OK("  \t \n ");
  expect_defaults();
  OK("anon");
  expect_defaults();
}

static void test_every_option(void **state) {
  (void)state;
  OK("file=/tmp/x.pool");
  assert_int_equal(sp.file, 1);
  assert_string_equal(sp.path, "/tmp/x.pool");
  assert_int_equal(sp.mode, SPEC_SHARED);
  assert_int_equal(sp.mode_set, 0);

  OK("file=rel/a=b.pool mode=private");
  assert_string_equal(sp.path, "rel/a=b.pool"); // '=' in a value is kept
  assert_int_equal(sp.mode, SPEC_PRIVATE);
  assert_int_equal(sp.mode_set, 1);
  OK("mode=shared file=p");
  assert_int_equal(sp.mode, SPEC_SHARED);
  assert_int_equal(sp.mode_set, 1);
  assert_string_equal(sp.path, "p");

  OK("size=1M");
  assert_int_equal(sp.size, MiB);
  assert_int_equal(sp.size_set, 1);
  OK("size=512M");
  assert_int_equal(sp.size, 512 * MiB);
  OK("size=8G");
  assert_int_equal(sp.size, 8 * GiB);
  OK("size=1T");
  assert_int_equal(sp.size, TiB);
  OK("size=16T");
  assert_int_equal(sp.size, 16 * TiB);
  OK("size=1073741824");
  assert_int_equal(sp.size, GiB);
  OK("size=0x40000000");
  assert_int_equal(sp.size, GiB);

  OK("base=auto");
  assert_int_equal(sp.base, 0);
  OK("base=0x200000000000");
  assert_int_equal(sp.base, 0x200000000000ull);
  OK("base=35184372088832"); // the same, in decimal
  assert_int_equal(sp.base, 0x200000000000ull);
  OK("base=0x3fffc0000000");
  assert_int_equal(sp.base, 0x3fffc0000000ull);
  OK("base=0x40000000 size=1G"); // 1 GiB itself
  assert_int_equal(sp.base, GiB);

  OK("relocate=no");
  assert_int_equal(sp.relocate, 0);
  OK("relocate=yes");
  assert_int_equal(sp.relocate, 1);
  OK("thp=yes");
  assert_true(sp.thp && sp.thp_set);
  OK("thp=no");
  assert_true(!sp.thp && sp.thp_set);
  OK("full=fallback");
  assert_int_equal(sp.full, SPEC_FULL_FALLBACK);
  OK("full=null");
  assert_int_equal(sp.full, SPEC_FULL_NULL);
  OK("full=abort");
  assert_int_equal(sp.full, SPEC_FULL_ABORT);
  OK("brk");
  assert_int_equal(sp.brk, 1);
  OK("file=f recover");
  assert_int_equal(sp.recover, 1);
  assert_int_equal(sp.file, 1);
  assert_int_equal(sp.trust, SPEC_TRUST_OWNER);  // the default
  OK("file=f trust=any");
  assert_int_equal(sp.trust, SPEC_TRUST_ANY);
  OK("trust=owner file=f");
  assert_int_equal(sp.trust, SPEC_TRUST_OWNER);

  // All of them at once, separated by any blanks.
  OK(" file=/var/lib/app/heap.pool\tmode=private \n size=256M  "
     "base=0x240000000000"
     "\r\nrelocate=no full=null brk recover ");
  assert_int_equal(sp.file, 1);
  assert_string_equal(sp.path, "/var/lib/app/heap.pool");
  assert_int_equal(sp.mode, SPEC_PRIVATE);
  assert_int_equal(sp.size, 256 * MiB);
  assert_int_equal(sp.size_set, 1);
  assert_int_equal(sp.base, 0x240000000000ull);
  assert_int_equal(sp.relocate, 0);
  assert_int_equal(sp.full, SPEC_FULL_NULL);
  assert_int_equal(sp.brk, 1);
  assert_int_equal(sp.recover, 1);

  // The longest path that fits.
  static char words[SPEC_PATH_MAX + 16];
  strcpy(words, "file=");
  memset(words + 5, 'p', SPEC_PATH_MAX - 1);
  words[5 + SPEC_PATH_MAX - 1] = 0;
  OK(words);
  assert_int_equal(strlen(sp.path), SPEC_PATH_MAX - 1);
}

// ---------------------------------------------------------------------------
// Errors

static void test_unknown_word(void **state) {
  (void)state;
  BAD("bogus", "unknown", "'bogus'");
  BAD("size=1G bogus=3", "unknown", "'bogus=3'");
  BAD("Size=1G", "unknown", "'Size=1G'"); // keys are case-sensitive
  BAD("anonymous", "unknown", "'anonymous'");
  BAD("=1G", "unknown", "'=1G'");
  BAD("file", "needs a value", "'file'");
  BAD("file=", "needs a value", "'file='");
  BAD("size", "needs a value", "'size'");
  BAD("anon=1", "takes no value", "'anon=1'");
  BAD("brk=yes", "takes no value", "'brk=yes'");
  BAD("file=x recover=1", "takes no value", "'recover=1'");
  BAD("snapshot=", "needs a value", "'snapshot='");
  BAD("snapshot-on=exit", "needs snapshot=DIR", "snapshot-on");
  BAD("snapshot=/s snapshot-on=", "needs a value", "'snapshot-on='");
  BAD("snapshot=/s snapshot-on=boot", "unknown event", "'boot'");
  BAD("snapshot=/s snapshot-on=exit,exit", "given twice", "'exit'");
  BAD("snapshot=/s snapshot-on=exit,", "empty event", "end");
  BAD("snapshot=/s snapshot-on=signal:KILL", "bad signal", "'signal:KILL'");
  BAD("snapshot=/s snapshot-on=signal:", "unknown event", "'signal:'");
  BAD("snapshot=/s snapshot-on=interval:0s", "out of range", "'interval:0s'");
  BAD("snapshot=/s snapshot-on=interval:8d", "bad interval",
      "'interval:8d'");
  BAD("snapshot=/s snapshot-on=interval:200h", "out of range",
      "'interval:200h'");
  BAD("snapshot=/s snapshot=/t", "given twice", "'snapshot=/t'");
  BAD("snapshot-incremental=no", "needs snapshot=DIR",
      "snapshot-incremental");
  BAD("snapshot=/s snapshot-incremental=off", "bad value",
      "'snapshot-incremental=off'");
  BAD("snapshot=/s snapshot-incremental=", "needs a value",
      "'snapshot-incremental='");
  BAD("snapshot=/s snapshot-incremental=no snapshot-incremental=yes",
      "given twice", "'snapshot-incremental=yes'");
}

static void test_snapshot_words(void **state) {
  (void)state;
  struct pool_spec sp;
  char why[200];
  assert_int_equal(spec_parse("snapshot=/var/snap", &sp, why, sizeof why), 0);
  assert_string_equal(sp.snap_dir, "/var/snap");
  assert_int_equal(sp.snap_on, SPEC_SNAP_ON_EXIT);  // the default
  assert_int_equal(sp.snap_full, 0);  // incremental when it can be
  assert_int_equal(spec_parse("snapshot=d snapshot-incremental=no", &sp, why,
                              sizeof why), 0);
  assert_int_equal(sp.snap_full, 1);
  assert_int_equal(spec_parse("snapshot=d snapshot-incremental=yes", &sp, why,
                              sizeof why), 0);
  assert_int_equal(sp.snap_full, 0);
  assert_int_equal(spec_parse("snapshot=d snapshot-on=signal:SIGUSR1,"
                              "interval:5m,exit",
                              &sp, why, sizeof why),
                   0);
  assert_int_equal(sp.snap_on, SPEC_SNAP_ON_EXIT | SPEC_SNAP_ON_SIGNAL |
                                   SPEC_SNAP_ON_INTERVAL);
  assert_int_equal(sp.snap_signal, SIGUSR1);
  assert_int_equal(sp.snap_interval, 300);
  assert_int_equal(spec_parse("snapshot=d snapshot-on=interval:30", &sp, why,
                              sizeof why),
                   0);
  assert_int_equal(sp.snap_on, SPEC_SNAP_ON_INTERVAL);
  assert_int_equal(sp.snap_interval, 30);
  assert_string_equal(spec_signal_name(SIGUSR2), "USR2");
  assert_int_equal(spec_signal_number("HUP", 3), SIGHUP);
}

static void test_bad_size(void **state) {
  (void)state;
  BAD("size=12Q", "bad size", "'size=12Q'");
  BAD("anon size=1GB", "bad size", "'size=1GB'");
  BAD("size=big", "bad size", "'size=big'");
  BAD("size=-1G", "bad size", "'size=-1G'");
  BAD("size=99999999999999999999", "too large", "'size=99999999999999999999'");
  BAD("size=18014398509481984K", "too large", "'size=18014398509481984K'");
  BAD("size=0x10000000000000000", "too large", "'size=0x10000000000000000'");
  // Valid numbers outside what a pool may have.
  BAD("size=64K", "out of range", "'size=64K'");
  BAD("size=0", "out of range", "'size=0'");
  BAD("size=1048575", "out of range", "'size=1048575'");
  BAD("size=17T", "out of range", "'size=17T'");
}

static void test_bad_base(void **state) {
  (void)state;
  BAD("base=0x200000001000", "1 GiB", "'base=0x200000001000'");
  BAD("size=1G base=0x200020000000", "1 GiB", "'base=0x200020000000'");
  BAD("base=12345", "1 GiB", "'base=12345'");
  BAD("base=0", "bad address", "'base=0'");
  BAD("base=nowhere", "bad address", "'base=nowhere'");
  BAD("base=AUTO", "bad address", "'base=AUTO'");
  BAD("base=0x800000000000", "above", "'base=0x800000000000'");
  // Aligned, but the pool would end past the user address space.
  BAD("base=0x7fffc0000000 size=2G", "base", "0x7fffc0000000");
}

static void test_bad_values(void **state) {
  (void)state;
  BAD("file=a mode=weird", "bad mode", "'mode=weird'");
  BAD("file=a mode=Shared", "bad mode", "'mode=Shared'");
  BAD("full=sometimes", "bad value", "'full=sometimes'");
  BAD("relocate=maybe", "bad value", "'relocate=maybe'");
  BAD("relocate=maybe", "(no or yes)", "'relocate=maybe'");
  BAD("thp=always", "(yes or no)", "'thp=always'");
  BAD("mode=private", "mode", "file"); // mode without file=
  BAD("anon mode=shared", "mode", "file");
  BAD("recover", "recover", "file"); // recover without file=
  BAD("trust=any", "trust", "file");  // trust without file=
  BAD("file=f trust=root", "owner or any", "'trust=root'");
  BAD("file=f trust", "needs a value", "'trust'");
  BAD("file=f trust=any trust=owner", "twice", "'trust=owner'");
}

static void test_duplicates(void **state) {
  (void)state;
  BAD("size=1G size=2G", "twice", "'size=2G'");
  BAD("size=1G size=1G", "twice", "'size=1G'");
  BAD("file=a file=b", "twice", "'file=b'");
  BAD("file=a mode=shared mode=private", "twice", "'mode=private'");
  BAD("base=auto base=0x200000000000", "twice", "'base=0x200000000000'");
  BAD("full=null full=abort", "twice", "'full=abort'");
  BAD("relocate=no relocate=no", "twice", "'relocate=no'");
  BAD("brk brk", "twice", "'brk'");
  BAD("anon anon", "twice", "'anon'");
  BAD("file=a recover recover", "twice", "'recover'");
  BAD("anon file=a", "anon and file", "'file=a'");
  BAD("file=a anon", "anon and file", "'anon'");
}

static void test_long_words(void **state) {
  (void)state;
  // A path too long for the struct.
  static char words[SPEC_PATH_MAX + 64];
  strcpy(words, "file=");
  memset(words + 5, 'q', SPEC_PATH_MAX);
  words[5 + SPEC_PATH_MAX] = 0;
  int r = parse(words);
  assert_int_equal(r, -EINVAL);
  assert_non_null(strstr(why, "too long"));
  assert_non_null(strstr(why, "file=qqq"));
  // A long unknown word is cut in the message, which stays one line.
  memset(words, 'z', 1000);
  words[1000] = 0;
  r = parse(words);
  assert_int_equal(r, -EINVAL);
  assert_non_null(strstr(why, "unknown"));
  assert_non_null(strstr(why, "zzzzzzzz"));
  assert_true(strlen(why) < sizeof why);
  // The message is cut to the buffer given.
  char small[16];
  memset(small, '#', sizeof small);
  assert_int_equal(spec_parse("bogus-option-with-a-long-name", &sp, small, 10),
                   -EINVAL);
  assert_int_equal(strlen(small), 9);
  assert_int_equal(small[10], '#');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes),        cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_every_option), cmocka_unit_test(test_unknown_word),
      cmocka_unit_test(test_snapshot_words),
      cmocka_unit_test(test_bad_size),     cmocka_unit_test(test_bad_base),
      cmocka_unit_test(test_bad_values),   cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_long_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
