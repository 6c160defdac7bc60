// test_misuse.c: misuse of free and realloc is caught on every thread
// (docs/engine.md, "Misuse"): a double free, an interior pointer, a block
// never handed out, a pointer into a pool's header or free pages, and a
// realloc of a freed block end the program with one line naming the call,
// the address and the pool, then SIGABRT; a pointer no pool owns is reported
// and ignored; a live block whose data looks like the free mark is freed
// normally.
//
// Each case runs in a fresh process: this program re-executes itself as
// `test_misuse case NAME` (with MMPOOL_CHECK in its environment for the
// cases of the full mode, which the engine reads at start) and the test
// checks the status and the stderr of that run.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../common/scratch.h"
#include "../common/child.h"
#include "heap.h"
#include "mmpool.h"
#include "pooltable.h"

static mmpool_t *pool;

static void *must(void *b) {
  if (b == NULL) {
    fprintf(stderr, "case: allocation failed\n");
    exit(90);
  }
  return b;
}

static void *free_in_thread(void *b) {
  mmpool_free(b);
  return NULL;
}

// Frees b on a thread of its own (which owns no slab of it).
static void free_elsewhere(void *b) {
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, b) != 0) exit(91);
  pthread_join(t, NULL);
}

// A thread with a heap of its own in the pool (it allocates first), whose
// free of another thread's block is batched (heap.c, "Batches of remote
// frees"): frees b (twice when twice), then waits at the barrier (if any)
// and for good, keeping its batch.
struct batcher {
  void *b;
  int twice;
  pthread_barrier_t *bar;
};
static void *batch_free(void *arg) {
  struct batcher *t = arg;
  must(mmpool_malloc(pool, 64));
  mmpool_free(t->b);
  if (t->twice) mmpool_free(t->b);
  if (t->bar) {
    pthread_barrier_wait(t->bar);
    for (;;) pause();
  }
  return NULL;
}

// ---------------------------------------------------------------------------
// The cases, run in the re-executed process. Each returns the exit status
// when the program was not stopped (0: the case expects to survive).

static int case_run(const char *name) {
  pool = mmpool_open("m", "size=256M");
  if (pool == NULL) return 92;
  char *a = must(mmpool_malloc(pool, 64));
  char *b = must(mmpool_malloc(pool, 64));
  char *c = must(mmpool_malloc(pool, 100));
  memset(a, 1, 64), memset(b, 2, 64), memset(c, 3, 100);
  if (strcmp(name, "double") == 0) {  // twice in a row, owner thread
    mmpool_free(a);
    mmpool_free(a);
  } else if (strcmp(name, "double_later") == 0) {
    // Other blocks freed and taken in between: a is deep in the list.
    mmpool_free(a);
    mmpool_free(b);
    for (int i = 0; i < 50; i++) must(mmpool_malloc(pool, 200));
    mmpool_free(c);
    mmpool_free(a);
  } else if (strcmp(name, "double_remote") == 0) {
    mmpool_free(a);  // by the owner, then by another thread
    free_elsewhere(a);
  } else if (strcmp(name, "double_remote_first") == 0) {
    free_elsewhere(a);  // by another thread, then by the owner
    mmpool_free(a);
  } else if (strcmp(name, "double_batched") == 0) {
    // Twice by a thread that batches it: the second free finds the mark
    // and no list holding the block; the freeze empties the batch.
    struct batcher t = {a, 1, NULL};
    pthread_t th;
    if (pthread_create(&th, NULL, batch_free, &t) != 0) return 91;
    pthread_join(th, NULL);
  } else if (strcmp(name, "double_batched_owner") == 0) {
    // Batched by a thread that lives on, then freed by the owner.
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct batcher t = {a, 0, &bar};
    pthread_t th;
    if (pthread_create(&th, NULL, batch_free, &t) != 0) return 91;
    pthread_barrier_wait(&bar);
    mmpool_free(a);
  } else if (strcmp(name, "double_large") == 0) {
    char *big = must(mmpool_malloc(pool, 300000));
    char *big2 = must(mmpool_malloc(pool, 300000));  // big is not the top
    (void)big2;
    mmpool_free(big);
    mmpool_free(big);
  } else if (strcmp(name, "misaligned") == 0) {
    mmpool_free(a + 8);
  } else if (strcmp(name, "interior_remote") == 0) {
    free_elsewhere(c + 16);  // 16-aligned, inside c, another thread
  } else if (strcmp(name, "interior_owner") == 0) {
    mmpool_free(c + 16);  // caught with MMPOOL_CHECK=full
  } else if (strcmp(name, "large_inside") == 0) {
    char *big = must(mmpool_malloc(pool, 300000));
    mmpool_free(big + 65536);
  } else if (strcmp(name, "threaded_never_used") == 0) {
    // The slab's first 4 KiB of 64-byte blocks are threaded: block 20 is
    // on the free list, never handed out.
    mmpool_free(a + 20 * 64);
  } else if (strcmp(name, "never_used") == 0) {
    mmpool_free(a + 900 * 64);  // past the threaded part (full mode)
  } else if (strcmp(name, "header") == 0) {
    mmpool_free(mmpool_base(pool));
  } else if (strcmp(name, "descriptors") == 0) {
    mmpool_free((char *)mmpool_base(pool) + 4096 + 64);
  } else if (strcmp(name, "unused_area") == 0) {
    // Inside the reserved part (its first 64 MiB), past the committed data.
    mmpool_free((char *)mmpool_base(pool) + 60 * 1024 * 1024);
  } else if (strcmp(name, "stale_tail") == 0) {
    // A large block's pages freed, its first page taken by a new slab of
    // this thread: a stray free into one of the block's old tail pages
    // must not reach that slab through a stale descriptor.
    char *big = must(mmpool_malloc(pool, 300000));  // 5 pages
    must(mmpool_malloc(pool, 300000));              // big is not the top
    mmpool_free(big);
    char *s = must(mmpool_malloc(pool, 5000));  // a 1-page slab
    if ((uintptr_t)s >> 16 != (uintptr_t)big >> 16) return 80;  // moot
    mmpool_free(big + 2 * 65536 + 64);
  } else if (strcmp(name, "realloc_freed") == 0) {
    mmpool_free(c);
    must(mmpool_realloc(NULL, c, 500));
  } else if (strcmp(name, "realloc_interior") == 0) {
    must(mmpool_realloc(NULL, c + 32, 500));
  } else if (strcmp(name, "foreign") == 0) {
    // A pointer of no pool: reported, ignored, the program goes on.
    int local = 7;
    mmpool_free(&local);
    mmpool_free((void *)(uintptr_t)0x3e0000000000ull);
    if (mmpool_check(pool) != 0) return 93;
    return local == 7 ? 0 : 94;
  } else if (strcmp(name, "lookalike") == 0) {
    // A live block whose second word holds its slab's descriptor address
    // (the free mark) by chance: it is looked up, found live, freed.
    struct mmpool *p = pool_of_addr((uintptr_t)b);
    if (p == NULL) return 95;
    struct pdesc *d = p->desc + (((uintptr_t)b - p->data) >> PAGE_SHIFT);
    d -= d->head_delta;
    ((uint64_t *)b)[1] = (uintptr_t)d;
    mmpool_free(b);
    free_elsewhere(a);  // and on the remote path
    ((uint64_t *)c)[1] = (uintptr_t)d;
    free_elsewhere(c);
    if (mmpool_usable_size(b) != 0 || mmpool_check(pool) != 0) return 96;
    char *again = must(mmpool_malloc(pool, 64));
    mmpool_free(again);
    return mmpool_check(pool) == 0 ? 0 : 97;
  } else if (strcmp(name, "usable_freed") == 0) {
    // malloc_usable_size of a freed block: 0, not a stop.
    mmpool_free(a);
    return mmpool_usable_size(a) == 0 ? 0 : 98;
  } else {
    return 99;
  }
  return 0;  // survived a misuse
}

// ---------------------------------------------------------------------------
// The tests

static const char *self;

static int setup(void **state) {
  (void)state;
  return scratch_setup("misuse");
}

static int teardown(void **state) {
  (void)state;
  return scratch_teardown();
}

// Runs case name (check: NULL or the MMPOOL_CHECK value); returns the
// status and leaves its stderr in *err (malloc'd).
static int run_case(const char *name, const char *check, char **err) {
  const char *argv[] = {self, "case", name, NULL};
  char var[64];
  snprintf(var, sizeof var, "MMPOOL_CHECK=%s", check ? check : "fast");
  const char *env[] = {var, NULL};
  char *errf = path_in(name);
  int st = child_run(argv, env, 0, NULL, errf, NULL);
  *err = slurp(errf);
  assert_non_null(*err);
  return st;
}

// The case must stop with SIGABRT and exactly one line on stderr:
// "mmpool: CALL(): WHAT 0x... ...in pool 'm'".
static void expect_stop(const char *name, const char *check, const char *what,
                        const char *why) {
  char *err;
  int st = run_case(name, check, &err);
  if (st != 128 + SIGABRT)
    print_error("case %s (MMPOOL_CHECK=%s): status %d, stderr: %s\n", name,
                check ? check : "fast", st, err);
  assert_int_equal(st, 128 + SIGABRT);
  if (strncmp(err, what, strlen(what)) != 0 || strstr(err, " 0x") == NULL ||
      strstr(err, "in pool 'm'\n") == NULL ||
      (why && strstr(err, why) == NULL) ||
      strchr(err, '\n') != err + strlen(err) - 1)
    print_error("case %s: unexpected message: %s\n", name, err);
  assert_memory_equal(err, what, strlen(what));
  assert_non_null(strstr(err, "in pool 'm'\n"));
  if (why) assert_non_null(strstr(err, why));
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
  free(err);
}

static void expect_survive(const char *name, const char *check,
                           const char *err_want) {
  char *err;
  int st = run_case(name, check, &err);
  if (st != 0) print_error("case %s: status %d, stderr: %s\n", name, st, err);
  assert_int_equal(st, 0);
  if (err_want) assert_non_null(strstr(err, err_want));
  else assert_string_equal(err, "");
  free(err);
}

#define DOUBLE "mmpool: free(): double free of 0x"
#define INVALID "mmpool: free(): invalid pointer 0x"

static void test_double_free_owner(void **state) {
  (void)state;
  expect_stop("double", NULL, DOUBLE, NULL);
  expect_stop("double_later", NULL, DOUBLE, NULL);
}

static void test_double_free_remote(void **state) {
  (void)state;
  expect_stop("double_remote", NULL, DOUBLE, NULL);
  expect_stop("double_remote_first", NULL, DOUBLE, NULL);
  expect_stop("double_batched", NULL, DOUBLE, NULL);
  expect_stop("double_batched_owner", NULL, DOUBLE, NULL);
  expect_stop("double_batched_owner", "full", DOUBLE, NULL);
}

static void test_double_free_large(void **state) {
  (void)state;
  expect_stop("double_large", NULL, INVALID, "freed already");
}

static void test_interior(void **state) {
  (void)state;
  expect_stop("misaligned", NULL, INVALID, "not the start of a block");
  expect_stop("interior_remote", NULL, INVALID, "not the start of a block");
  expect_stop("large_inside", NULL, INVALID, "not the start of a block");
  // The owner's fast path leaves an aligned interior pointer to the full
  // checks.
  expect_stop("interior_owner", "full", INVALID, "not the start of a block");
}

static void test_never_handed_out(void **state) {
  (void)state;
  expect_stop("threaded_never_used", NULL, DOUBLE, NULL);
  expect_stop("never_used", "full", INVALID, "never handed out");
  expect_stop("header", NULL, INVALID, "header");
  expect_stop("descriptors", NULL, INVALID, "header");
  expect_stop("unused_area", NULL, INVALID, "unused area");
  expect_stop("stale_tail", NULL, INVALID, "in free pages");
}

static void test_realloc_misuse(void **state) {
  (void)state;
  expect_stop("realloc_freed", NULL, "mmpool: realloc(): invalid pointer 0x",
              "freed already");
  expect_stop("realloc_interior", NULL,
              "mmpool: realloc(): invalid pointer 0x",
              "not the start of a block");
}

static void test_not_misuse(void **state) {
  (void)state;
  expect_survive("foreign", NULL,
                 "mmpool: free(0x3e0000000000) ignored: not a block of any "
                 "pool\n");
  expect_survive("lookalike", NULL, NULL);
  expect_survive("lookalike", "full", NULL);
  expect_survive("usable_freed", NULL, NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "case") == 0) return case_run(argv[2]);
  (void)argv;
  self = "/proc/self/exe";
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_double_free_owner),
      cmocka_unit_test(test_double_free_remote),
      cmocka_unit_test(test_double_free_large),
      cmocka_unit_test(test_interior),
      cmocka_unit_test(test_never_handed_out),
      cmocka_unit_test(test_realloc_misuse),
      cmocka_unit_test(test_not_misuse),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
