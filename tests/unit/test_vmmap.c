// test_vmmap.c: the address-space ledger (core/vmmap.h), directly and
// through the public API.
//
// A fixed base never replaces a mapping the library does not own: the test
// maps a small file of its own at an address, asks for a pool over it, and
// expects EEXIST, a message naming the file, and the file's bytes intact.
// base=auto ranges are 1 GiB aligned inside the auto window, never shared;
// mmpool_of answers for exactly the pools' ranges; the ledger refuses to
// map anything outside the ranges it reserved.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mmpool.h"
#include "pooltable.h"
#include "vmmap.h"

// The reserved part of an open pool's range (it grows with use).
static size_t reserved_of(mmpool_t *p) {
  return pool_from_handle(p)->reserved;
}

#define GiB ((uintptr_t)1 << 30)
#define MiB ((uintptr_t)1 << 20)

// Fixed addresses for this test, high in the auto window (auto placement
// starts at its bottom) so they do not meet the auto pools.
#define FIX_A ((uintptr_t)0x3f0000000000)
#define FIX_B ((uintptr_t)0x3f0100000000)
#define FIX_C ((uintptr_t)0x3f0200000000)
#define FIX_D ((uintptr_t)0x3f0300000000)

static char tmpdir[256];
static char occ_path[320];
static int occ_fd = -1;

static int setup(void **state) {
  (void)state;
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/mmpool-vmmap-XXXXXX",
           t && *t ? t : "/tmp");
  if (mkdtemp(tmpdir) == NULL) return -1;
  snprintf(occ_path, sizeof occ_path, "%s/occupant.bin", tmpdir);
  occ_fd = open(occ_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (occ_fd < 0) return -1;
  uint8_t page[8192];
  for (size_t i = 0; i < sizeof page; i++)
    page[i] = (uint8_t)(i * 31 + 7);
  if (write(occ_fd, page, sizeof page) != (ssize_t)sizeof page) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (occ_fd >= 0) close(occ_fd);
  unlink(occ_path);
  rmdir(tmpdir);
  return 0;
}

// Maps the occupant file (8 KiB, read-write shared) exactly at addr.
static uint8_t *map_occupant(uintptr_t addr) {
  void *p = mmap((void *)addr, 8192, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED_NOREPLACE, occ_fd, 0);
  if (p == MAP_FAILED)
    fail_msg("mmap of the occupant at %#lx: %s", (unsigned long)addr,
             strerror(errno));
  assert_ptr_equal(p, (void *)addr);
  return p;
}

static void expect_occupant_intact(const uint8_t *p) {
  for (size_t i = 0; i < 8192; i++)
    if (p[i] != (uint8_t)(i * 31 + 7))
      fail_msg("occupant byte %zu changed to %#x", i, p[i]);
}

// ---------------------------------------------------------------------------

// The occupant at the very base of the requested range, and in its middle.
static void test_fixed_base_occupied(void **state) {
  (void)state;
  struct {
    uintptr_t base, occ;
  } cases[] = {{FIX_A, FIX_A}, {FIX_B, FIX_B + 512 * MiB - 65536}};
  for (size_t i = 0; i < 2; i++) {
    uint8_t *occ = map_occupant(cases[i].occ);
    char opts[128];
    snprintf(opts, sizeof opts, "size=1G base=%#lx",
             (unsigned long)cases[i].base);
    errno = 0;
    mmpool_t *p = mmpool_open("vm.occupied", opts);
    if (p != NULL)
      fail_msg("mmpool_open(%s) succeeded over a mapping of the test", opts);
    assert_int_equal(errno, EEXIST);
    const char *msg = mmpool_last_error();
    if (strstr(msg, occ_path) == NULL)
      fail_msg("the message does not name the occupant %s: \"%s\"", occ_path,
               msg);
    expect_occupant_intact(occ);
    // The failed open left nothing behind.
    assert_null(mmpool_get("vm.occupied"));
    assert_null(mmpool_of(occ));
    assert_null(mmpool_of((void *)cases[i].base));
    assert_int_equal(mmpool_usable_size(occ), 0);
    assert_int_equal(vmmap_pool_id((uintptr_t)occ), 0);
    assert_int_equal(vmmap_pool_id(cases[i].base), 0);
    // Still writable and ours.
    occ[100] ^= 0xff;
    occ[100] ^= 0xff;
    expect_occupant_intact(occ);

    // Once the occupant is gone, the same open works at that very base.
    assert_int_equal(munmap(occ, 8192), 0);
    p = mmpool_open("vm.occupied", opts);
    if (p == NULL)
      fail_msg("mmpool_open(%s) after munmap: %s", opts, mmpool_last_error());
    assert_ptr_equal(mmpool_base(p), (void *)cases[i].base);
    assert_ptr_equal(mmpool_of((void *)cases[i].base), p);
    // Only the first part of the range is reserved: an address past it
    // belongs to no pool.
    assert_true(reserved_of(p) < 512 * MiB - 65536);
    assert_null(mmpool_of((void *)(FIX_B + 512 * MiB - 65536)));
    // And now the test cannot map its file at the base either.
    void *q = mmap((void *)cases[i].base, 8192, PROT_READ,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, occ_fd, 0);
    assert_ptr_equal(q, MAP_FAILED);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(mmpool_close(p), 0);
    assert_null(mmpool_of((void *)cases[i].occ));
  }
}

// A pool whose range only partly overlaps the occupant (the occupant in
// its last page), and a file pool (the file must not be created or touched
// beyond what it was).
static void test_fixed_base_partial(void **state) {
  (void)state;
  uint8_t *occ = map_occupant(FIX_C + 2 * GiB - 8192);
  errno = 0;
  mmpool_t *p = mmpool_open("vm.partial", "size=2G base=0x3f0200000000");
  assert_null(p);
  assert_int_equal(errno, EEXIST);
  assert_non_null(strstr(mmpool_last_error(), occ_path));
  // A smaller pool at the same base fits below the occupant.
  p = mmpool_open("vm.partial", "size=1G base=0x3f0200000000");
  if (p == NULL)
    fail_msg("mmpool_open below the occupant: %s", mmpool_last_error());
  void *b = mmpool_malloc(p, 100);
  assert_non_null(b);
  assert_ptr_equal(mmpool_of(b), p);
  assert_null(mmpool_of(occ));
  mmpool_free(b);
  assert_int_equal(mmpool_close(p), 0);
  expect_occupant_intact(occ);

  char path[400], opts[480];
  snprintf(path, sizeof path, "%s/blocked.pool", tmpdir);
  snprintf(opts, sizeof opts, "file=%s size=2G base=0x3f0200000000", path);
  errno = 0;
  p = mmpool_open("vm.blockedfile", opts);
  assert_null(p);
  assert_int_equal(errno, EEXIST);
  assert_non_null(strstr(mmpool_last_error(), occ_path));
  expect_occupant_intact(occ);
  unlink(path); // whether or not a failed open leaves it
  assert_int_equal(munmap(occ, 8192), 0);
}

// base=auto: 1 GiB aligned, inside the window, pools never share a GiB;
// mmpool_of covers exactly each pool's range.
static void test_auto_base(void **state) {
  (void)state;
  static const char *sizes[] = {"size=1G", "size=1M", "size=3G", "size=64M",
                                "size=1M"};
  mmpool_t *p[5];
  for (int i = 0; i < 5; i++) {
    char name[32];
    snprintf(name, sizeof name, "vm.auto%d", i);
    p[i] = mmpool_open(name, sizes[i]);
    if (p[i] == NULL)
      fail_msg("mmpool_open(%s, %s): %s", name, sizes[i], mmpool_last_error());
    uintptr_t base = (uintptr_t)mmpool_base(p[i]);
    size_t cap = mmpool_capacity(p[i]);
    if (base % GiB != 0 || base < VM_AUTO_START || base + cap > VM_AUTO_END)
      fail_msg("%s: base %#lx capacity %zu: not a 1 GiB aligned range in "
               "the auto window",
               name, (unsigned long)base, cap);
    assert_true(base >= 0x200000000000ull && base + cap <= 0x400000000000ull);
    // The first and last byte of the reserved part are the pool's; the
    // byte after is not (the rest of the capacity is reserved as it grows).
    size_t res = reserved_of(p[i]);
    assert_true(res > 0 && res <= cap && res <= 64 * MiB);
    assert_ptr_equal(mmpool_of((void *)base), p[i]);
    assert_ptr_equal(mmpool_of((void *)(base + res - 1)), p[i]);
    mmpool_t *after = mmpool_of((void *)(base + res));
    assert_ptr_not_equal(after, p[i]);
    assert_int_equal(vmmap_pool_id(base), vmmap_pool_id(base + res - 1));
    assert_int_not_equal(vmmap_pool_id(base), 0);
    // No two pools in one GiB.
    for (int j = 0; j < i; j++) {
      uintptr_t bj = (uintptr_t)mmpool_base(p[j]);
      size_t cj = mmpool_capacity(p[j]);
      uintptr_t ej = (bj + cj + GiB - 1) & ~(GiB - 1);
      uintptr_t ei = (base + cap + GiB - 1) & ~(GiB - 1);
      if (base < ej && bj < ei)
        fail_msg("pools %d and %d share address space or a GiB", j, i);
    }
  }
  // A small pool: the rest of its GiB belongs to nobody.
  uintptr_t b1 = (uintptr_t)mmpool_base(p[1]);
  assert_int_equal(mmpool_capacity(p[1]), MiB);
  assert_null(mmpool_of((void *)(b1 + MiB)));
  assert_null(mmpool_of((void *)(b1 + 512 * MiB)));
  assert_int_equal(mmpool_usable_size((void *)(b1 + 2 * MiB)), 0);
  for (int i = 4; i >= 0; i--) {
    uintptr_t b = (uintptr_t)mmpool_base(p[i]);
    assert_int_equal(mmpool_close(p[i]), 0);
    assert_null(mmpool_of((void *)b));
    assert_int_equal(vmmap_pool_id(b), 0);
  }
  // Memory the library did not hand out at all.
  int local;
  assert_null(mmpool_of(&local));
  assert_null(mmpool_of(NULL));
  assert_null(mmpool_of("a string literal"));
}

// The ledger itself: -EEXIST with the occupant named, and no mapping over
// memory it does not own.
static void test_ledger_refuses(void **state) {
  (void)state;
  uint8_t *occ = map_occupant(FIX_A + 64 * 1024);
  char why[256] = "";
  uintptr_t got = 0;
  size_t len = 0;
  int r = vmmap_reserve_pool(62, FIX_A, GiB, GiB, GiB, &got, &len, why,
                             sizeof why);
  assert_int_equal(r, -EEXIST);
  assert_int_equal(got, 0);
  if (strstr(why, occ_path) == NULL)
    fail_msg("vmmap_reserve_pool: the reason does not name %s: \"%s\"",
             occ_path, why);
  assert_non_null(strstr(why, "0x3f0000000000"));
  assert_int_equal(vmmap_pool_id(FIX_A), 0);
  expect_occupant_intact(occ);

  // Commit, file mapping, purge and sync outside an own range are refused.
  assert_int_equal(vmmap_commit((uintptr_t)occ, 4096), -EFAULT);
  assert_int_equal(vmmap_map_file((uintptr_t)occ, 4096, occ_fd, 0, 1), -EFAULT);
  assert_int_equal(vmmap_purge((uintptr_t)occ, 4096), -EFAULT);
  assert_int_equal(vmmap_sync((uintptr_t)occ, 4096), -EFAULT);
  expect_occupant_intact(occ);
  assert_int_not_equal(vmmap_release(FIX_A), 0);
  expect_occupant_intact(occ);

  // A reservation of its own: the table says so, and commits inside work,
  // commits reaching out of it do not.
  r = vmmap_reserve_pool(62, FIX_B, 2 * GiB, 2 * GiB, 2 * GiB, &got, &len,
                         why, sizeof why);
  if (r != 0)
    fail_msg("vmmap_reserve_pool at %#lx: %d %s", (unsigned long)FIX_B, r, why);
  assert_int_equal(got, FIX_B);
  assert_int_equal(vmmap_pool_id(FIX_B), 62);
  assert_int_equal(vmmap_pool_id(FIX_B + 2 * GiB - 1), 62);
  assert_int_equal(vmmap_pool_id(FIX_B + 2 * GiB), 0);
  assert_int_equal(vmmap_commit(FIX_B + GiB, 65536), 0);
  memset((void *)(FIX_B + GiB), 0x11, 65536);
  assert_int_equal(vmmap_commit(FIX_B + 2 * GiB - 65536, 2 * 65536), -EFAULT);
  assert_int_equal(vmmap_purge(FIX_B + GiB, 65536), 0);
  assert_int_equal(((uint8_t *)(FIX_B + GiB))[100], 0); // reads as zeros
  // A second reservation over it fails and names... something.
  r = vmmap_reserve_pool(61, FIX_B, GiB, GiB, GiB, &got, &len, why,
                         sizeof why);
  assert_int_equal(r, -EEXIST);
  assert_true(strlen(why) > 0);
  assert_int_equal(vmmap_release(FIX_B), 0);
  assert_int_equal(vmmap_pool_id(FIX_B), 0);
  // Released: the range can be mapped by anyone again.
  void *q = mmap((void *)FIX_B, 4096, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  assert_ptr_equal(q, (void *)FIX_B);
  munmap(q, 4096);

  assert_int_equal(munmap(occ, 8192), 0);
}

// A reservation that grows: only its first part is mapped and in the
// table; vmmap_grow_pool extends it in place, a GiB's table entry at a
// time; a mapping right after its reserved part stops it (-ENOMEM, the
// occupant named, the occupant untouched), and the capacity is its limit.
static void test_ledger_grows(void **state) {
  (void)state;
  char why[384] = "";
  uintptr_t got = 0;
  size_t len = 0, res = 0;
  int r = vmmap_reserve_pool(60, FIX_D, 4 * GiB, 64 * MiB, 64 * MiB, &got,
                             &len, why, sizeof why);
  if (r != 0) fail_msg("vmmap_reserve_pool: %d %s", r, why);
  assert_int_equal(got, FIX_D);
  assert_int_equal(len, 64 * MiB);
  assert_int_equal(vmmap_pool_id(FIX_D), 60);
  assert_int_equal(vmmap_pool_id(FIX_D + GiB), 0);
  // Only the first part is mapped: the next page is free for anyone.
  void *q = mmap((void *)(FIX_D + 64 * MiB), 4096, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  assert_ptr_equal(q, (void *)(FIX_D + 64 * MiB));
  munmap(q, 4096);
  assert_int_equal(vmmap_commit(FIX_D + 64 * MiB, 65536), -EFAULT);

  // Growth in place, past a GiB boundary.
  r = vmmap_grow_pool(FIX_D, GiB + 5 * MiB, &res, why, sizeof why);
  if (r != 0) fail_msg("vmmap_grow_pool: %d %s", r, why);
  assert_true(res >= GiB + 5 * MiB);
  assert_int_equal(res % (64 * MiB), 0);
  assert_int_equal(vmmap_pool_id(FIX_D + GiB), 60);
  assert_int_equal(vmmap_commit(FIX_D + GiB, 65536), 0);
  memset((void *)(FIX_D + GiB), 0x22, 65536);

  // Something right after the reserved part: the pool cannot grow.
  uint8_t *occ = map_occupant(FIX_D + res);
  size_t before = res;
  r = vmmap_grow_pool(FIX_D, res + 65536, &res, why, sizeof why);
  assert_int_equal(r, -ENOMEM);
  assert_int_equal(res, before);
  if (strstr(why, occ_path) == NULL)
    fail_msg("vmmap_grow_pool: the reason does not name %s: \"%s\"",
             occ_path, why);
  expect_occupant_intact(occ);
  // Past the capacity: refused.
  assert_int_equal(vmmap_grow_pool(FIX_D, 5 * GiB, &res, why, sizeof why),
                   -ENOMEM);
  assert_int_equal(vmmap_release(FIX_D), 0);
  expect_occupant_intact(occ);
  assert_int_equal(vmmap_pool_id(FIX_D), 0);
  assert_int_equal(vmmap_pool_id(FIX_D + GiB), 0);
  assert_int_equal(munmap(occ, 8192), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_base_occupied),
      cmocka_unit_test(test_fixed_base_partial),
      cmocka_unit_test(test_auto_base),
      cmocka_unit_test(test_ledger_refuses),
      cmocka_unit_test(test_ledger_grows),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
