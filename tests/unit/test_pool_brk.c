// test_pool_brk.c: the program break record of a pool header
// (core/pool_brk.h). The record is two offsets from a file, so every way it
// can name something other than a region of the preload library's layout
// must be refused with the reason: outside the pool, not one page into a
// block, a small block, a freed block, a break outside its block.
#include <errno.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mmpool.h"
#include "pool_brk.h"
#include "pooltable.h"

#define MiB ((uintptr_t)1 << 20)

static mmpool_t *handle;
static struct mmpool *p;
static char why[256];

static int setup(void **state) {
  (void)state;
  handle = mmpool_open("brkrec", "size=64M");
  p = handle ? pool_from_handle(handle) : NULL;
  return p ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return mmpool_close(handle);
}

static int get(struct pool_brk *b) {
  why[0] = 0;
  memset(b, 0, sizeof *b);
  return pool_brk_get(p, b, why, sizeof why);
}

static void expect_refused(const char *reason) {
  struct pool_brk b;
  assert_int_equal(get(&b), -EUCLEAN);
  if (!strstr(why, reason)) fail_msg("reason '%s', not '%s'", why, reason);
}

static void test_none(void **state) {
  (void)state;
  struct pool_brk b;
  assert_int_equal(get(&b), -ENOENT);
}

static void test_region(void **state) {
  (void)state;
  uintptr_t blk = (uintptr_t)mmpool_malloc(handle, 4 * MiB);
  assert_true(blk != 0);
  uintptr_t s = blk + POOL_BRK_SKIP;
  pool_brk_set(p, s, s + 100);
  // Offsets in the header, as the file holds them.
  assert_int_equal(p->hdr->st.brk_start, s - p->base);
  assert_int_equal(p->hdr->st.brk_cur, s + 100 - p->base);
  struct pool_brk b;
  assert_int_equal(get(&b), 0);
  assert_int_equal(b.block, blk);
  assert_int_equal(b.start, s);
  assert_int_equal(b.cur, s + 100);
  assert_int_equal(b.end, blk + 4 * MiB);
  // The break at either end of the region.
  pool_brk_set(p, s, s);
  assert_int_equal(get(&b), 0);
  pool_brk_set(p, s, blk + 4 * MiB);
  assert_int_equal(get(&b), 0);
  assert_int_equal(b.cur, b.end);

  // Past the block, below the region's start.
  pool_brk_set(p, s, blk + 4 * MiB + 1);
  expect_refused("lies outside the region");
  pool_brk_set(p, s, blk + 100);
  expect_refused("lies outside the region");
  // Not one page into the block.
  pool_brk_set(p, s + 16, s + 100);
  expect_refused("not the start of a block");
  pool_brk_set(p, blk, blk + 100);
  expect_refused("is not 4096 bytes into a live large block");
  // Outside the pool: no address is formed from it.
  p->hdr->st.brk_start = (uint64_t)1 << 62;
  expect_refused("outside the pool");
  p->hdr->st.brk_start = 16;
  expect_refused("outside the pool");

  // A freed block.
  mmpool_free((void *)blk);
  pool_brk_set(p, s, s + 100);
  expect_refused("freed already?");
  pool_brk_set(p, 0, 0);
  assert_int_equal(get(&b), -ENOENT);
}

static void test_small_block(void **state) {
  (void)state;
  // A slab block one page below a block of the same slab: the start names
  // a small block.
  uintptr_t a = (uintptr_t)mmpool_malloc(handle, 64);
  assert_true(a != 0);
  pool_brk_set(p, a + POOL_BRK_SKIP, a + POOL_BRK_SKIP);
  expect_refused("a small block");
  mmpool_free((void *)a);
  pool_brk_set(p, 0, 0);
}

static void test_frozen_writes_nothing(void **state) {
  (void)state;
  uintptr_t blk = (uintptr_t)mmpool_malloc(handle, 2 * MiB);
  assert_true(blk != 0);
  pool_brk_set(p, blk + POOL_BRK_SKIP, blk + POOL_BRK_SKIP);
  uint64_t cur = p->hdr->st.brk_cur;
  p->frozen = FROZEN_RELEASED;
  pool_brk_set(p, blk + POOL_BRK_SKIP, blk + 8192);
  p->frozen = FROZEN_NONE;
  assert_int_equal(p->hdr->st.brk_cur, cur);
  pool_brk_set(p, 0, 0);
  mmpool_free((void *)blk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_none),
      cmocka_unit_test(test_region),
      cmocka_unit_test(test_small_block),
      cmocka_unit_test(test_frozen_writes_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
