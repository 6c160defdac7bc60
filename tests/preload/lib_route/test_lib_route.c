// test_lib_route.c: `route lib=GLOB` of the preload library.
//
// Runs under LD_PRELOAD=libmmpool-preload.so with an MMPOOL_CONFIG from
// CMakeLists.txt and checks, with mmpool_of(), the pool of blocks that each
// member of the malloc family hands out when called from different modules:
// this executable (route_x_*, route_lib.c compiled in), libroute_a.so
// (linked), and libroute_b.so / libroute_c.so (dlopen'ed by their full
// paths, LIBB_PATH and LIBC_PATH, closed and reopened in turn so that one is
// likely loaded where the other was). The argument selects the expectations:
//   main    lib= routes to pa, pb, pc and pm (the executable); size>=1M to
//           big first; libc's own mallocs (strdup) to the default pool; a
//           second thread is routed the same way
//   thread  the same, with a thread=worker-* route to pw before every other
//           route: a thread named worker-1 gets pw for everything, a thread
//           named other-1 and the main thread follow the lib= routes
//   none    the lib= routes name no loaded module: all to the default pool
//           (but size>=1M still to big)
// Every failed check prints one line starting with "lib_route: FAIL" and the
// program exits 1; it never prints "mmpool:" itself (the ctest fails on any
// line of the preload library).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmpool.h"
#include "route_lib.h"

ROUTE_DECLARE(route_a)
ROUTE_DECLARE(route_x)

#ifndef LIBB_PATH
#error "LIBB_PATH: the path of libroute_b.so"
#endif
#ifndef LIBC_PATH
#error "LIBC_PATH: the path of libroute_c.so"
#endif

// ---------------------------------------------------------------------------
// Checks

static int failures;
static unsigned checks;
#define MAX_SHOWN 80  // failure lines printed; the rest are only counted
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *pool_name(const void *p) {
  mmpool_t *pool = p ? mmpool_of(p) : NULL;
  return !p ? "(NULL block)" : pool ? mmpool_name(pool) : "(no pool)";
}

// pre: ctx and what describe the call, for the failure line.
static void expect_pool(const void *p, const char *expect, const char *ctx,
                        const char *what, size_t n) {
  const char *got = pool_name(p);
  pthread_mutex_lock(&out_lock);
  checks++;
  if (strcmp(got, expect) != 0 && ++failures <= MAX_SHOWN) {
    printf("lib_route: FAIL [%s] %s (%zu bytes): block %p in pool '%s', "
           "expected '%s'\n", ctx, what, n, p, got, expect);
    fflush(stdout);
  }
  pthread_mutex_unlock(&out_lock);
}

static void expect_true(int ok, const char *ctx, const char *what) {
  pthread_mutex_lock(&out_lock);
  checks++;
  if (!ok && ++failures <= MAX_SHOWN) {
    printf("lib_route: FAIL [%s] %s\n", ctx, what);
    fflush(stdout);
  }
  pthread_mutex_unlock(&out_lock);
}

static void expect_aligned(const void *p, size_t align, const char *ctx,
                           const char *what) {
  char buf[160];
  snprintf(buf, sizeof buf, "%s: block %p not aligned to %zu", what, p, align);
  expect_true(p && ((uintptr_t)p & (align - 1)) == 0, ctx, buf);
}

// ---------------------------------------------------------------------------
// The functions of one module

struct family {
  const char *who;  // "executable", "libroute_a.so"...
  void *(*malloc_)(size_t);
  void *(*calloc_)(size_t, size_t);
  void *(*realloc_)(void *, size_t);
  void *(*reallocarray_)(void *, size_t, size_t);
  void *(*memalign_)(size_t, size_t);
  void *(*aligned_alloc_)(size_t, size_t);
  void *(*posix_memalign_)(size_t, size_t);
  void *(*valloc_)(size_t);
  void *(*pvalloc_)(size_t);
  char *(*strdup_)(const char *);
};

#define FAMILY_OF(p, name)                                                 \
  {                                                                        \
    name, p##_malloc, p##_calloc, p##_realloc, p##_reallocarray,           \
        p##_memalign, p##_aligned_alloc, p##_posix_memalign, p##_valloc,   \
        p##_pvalloc, p##_strdup                                            \
  }

static const struct family fam_x = FAMILY_OF(route_x, "executable");
static const struct family fam_a = FAMILY_OF(route_a, "libroute_a.so");

static void *sym(void *h, const char *prefix, const char *fn) {
  char name[64];
  snprintf(name, sizeof name, "%s_%s", prefix, fn);
  void *f = dlsym(h, name);
  if (!f) {
    printf("lib_route: FAIL dlsym(%s): %s\n", name, dlerror());
    exit(1);
  }
  return f;
}

// The functions of the library opened as h, whose symbols start with prefix.
static struct family family_of(void *h, const char *prefix, const char *who) {
  struct family f;
  f.who = who;
  // POSIX: a function pointer may hold dlsym's result.
  *(void **)&f.malloc_ = sym(h, prefix, "malloc");
  *(void **)&f.calloc_ = sym(h, prefix, "calloc");
  *(void **)&f.realloc_ = sym(h, prefix, "realloc");
  *(void **)&f.reallocarray_ = sym(h, prefix, "reallocarray");
  *(void **)&f.memalign_ = sym(h, prefix, "memalign");
  *(void **)&f.aligned_alloc_ = sym(h, prefix, "aligned_alloc");
  *(void **)&f.posix_memalign_ = sym(h, prefix, "posix_memalign");
  *(void **)&f.valloc_ = sym(h, prefix, "valloc");
  *(void **)&f.pvalloc_ = sym(h, prefix, "pvalloc");
  *(void **)&f.strdup_ = sym(h, prefix, "strdup");
  return f;
}

// ---------------------------------------------------------------------------
// What one module's calls must give

struct expect {
  const char *pool;    // the pool of every call below 1 MiB
  const char *big;     // the pool of a 2 MiB block
  const char *libc;    // the pool of strdup's copy (libc called malloc)
};

static const size_t sizes[] = {1, 24, 100, 1024, 5000, 100000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

// Every member of the family, called from f's module.
static void check_family(const struct family *f, const struct expect *e,
                         const char *ctx) {
  char c[128];
  snprintf(c, sizeof c, "%s, from %s", ctx, f->who);
  const char *pool = e->pool;
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes[i];
    void *p = f->malloc_(n);
    expect_pool(p, pool, c, "malloc", n);
    free(p);
    p = f->calloc_(1, n);
    expect_pool(p, pool, c, "calloc(1, n)", n);
    free(p);
    p = f->calloc_(n, 3);
    expect_pool(p, pool, c, "calloc(n, 3)", 3 * n);
    free(p);
    p = f->realloc_(NULL, n);
    expect_pool(p, pool, c, "realloc(NULL, n)", n);
    free(p);
    p = f->reallocarray_(NULL, n, 2);
    expect_pool(p, pool, c, "reallocarray(NULL, n, 2)", 2 * n);
    free(p);
  }
  // Growing a block of this module (realloc keeps a block in its pool, and
  // this one was made here): small to large, moved.
  void *p = f->malloc_(24);
  expect_pool(p, pool, c, "malloc before realloc", 24);
  p = f->realloc_(p, 300000);
  expect_pool(p, pool, c, "realloc growing a block", 300000);
  p = f->realloc_(p, 40);
  expect_pool(p, pool, c, "realloc shrinking a block", 40);
  free(p);
  p = f->reallocarray_(NULL, 10, 30);
  p = f->reallocarray_(p, 1000, 100);
  expect_pool(p, pool, c, "reallocarray growing a block", 100000);
  free(p);

  static const size_t aligns[] = {32, 64, 4096, 65536};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    size_t a = aligns[i];
    p = f->memalign_(a, 200);
    expect_pool(p, pool, c, "memalign", 200);
    expect_aligned(p, a, c, "memalign");
    free(p);
    p = f->aligned_alloc_(a, 2 * a);
    expect_pool(p, pool, c, "aligned_alloc", 2 * a);
    expect_aligned(p, a, c, "aligned_alloc");
    free(p);
    p = f->posix_memalign_(a, 5000);
    expect_pool(p, pool, c, "posix_memalign", 5000);
    expect_aligned(p, a, c, "posix_memalign");
    free(p);
  }
  p = f->valloc_(100);
  expect_pool(p, pool, c, "valloc", 100);
  expect_aligned(p, 4096, c, "valloc");
  free(p);
  p = f->valloc_(20000);
  expect_pool(p, pool, c, "valloc", 20000);
  free(p);
  p = f->pvalloc_(100);
  expect_pool(p, pool, c, "pvalloc", 100);
  expect_aligned(p, 4096, c, "pvalloc");
  free(p);

  // size>=1M: the size route, before the lib= routes.
  size_t big = (size_t)2 << 20;
  p = f->malloc_(big);
  expect_pool(p, e->big, c, "malloc of 2 MiB", big);
  free(p);
  p = f->calloc_(2, big / 2);
  expect_pool(p, e->big, c, "calloc of 2 MiB", big);
  free(p);
  p = f->memalign_(4096, big);
  expect_pool(p, e->big, c, "memalign of 2 MiB", big);
  free(p);
  p = f->realloc_(NULL, big);
  expect_pool(p, e->big, c, "realloc(NULL) of 2 MiB", big);
  free(p);

  // strdup: libc.so.6 calls malloc.
  char *s = f->strdup_("a string copied by libc");
  expect_pool(s, e->libc, c, "strdup (malloc called by libc)", 24);
  expect_true(s && strcmp(s, "a string copied by libc") == 0, c,
              "strdup's copy differs");
  free(s);
}

// The same sizes from several modules in turn, so that a pool remembered
// for a size (by one module) would be seen handed to another.
static void check_interleaved(const struct family *const *f,
                              const struct expect *const *e, unsigned nf,
                              const char *ctx) {
  void *keep[NSIZES][4];
  char c[128];
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < NSIZES; i++)
      for (unsigned k = 0; k < nf; k++) {
        snprintf(c, sizeof c, "%s, interleaved, from %s", ctx, f[k]->who);
        void *p = round == 0 ? f[k]->malloc_(sizes[i])
                  : round == 1 ? f[k]->calloc_(1, sizes[i])
                               : f[k]->realloc_(NULL, sizes[i]);
        expect_pool(p, e[k]->pool, c,
                    round == 0   ? "malloc"
                    : round == 1 ? "calloc"
                                 : "realloc(NULL)",
                    sizes[i]);
        keep[i][k] = p;  // freed later: the next module gets fresh blocks
      }
  for (size_t i = 0; i < NSIZES; i++)
    for (unsigned k = 0; k < nf; k++) free(keep[i][k]);
}

// realloc keeps a block in the pool that holds it, whoever calls it.
static void check_realloc_keeps(const struct family *from,
                                const struct family *owner,
                                const struct expect *owner_e,
                                const char *ctx) {
  char c[160];
  snprintf(c, sizeof c, "%s, block of %s resized from %s", ctx, owner->who,
           from->who);
  void *p = owner->malloc_(64);
  expect_pool(p, owner_e->pool, c, "malloc", 64);
  memset(p, 0x5a, 64);
  p = from->realloc_(p, 200000);
  expect_pool(p, owner_e->pool, c, "realloc growing it", 200000);
  expect_true(p && ((unsigned char *)p)[63] == 0x5a, c,
              "realloc lost the block's contents");
  free(p);
}

// ---------------------------------------------------------------------------
// dlopen and dlclose

static void *open_lib(const char *path, const char *ctx) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("lib_route: FAIL [%s] dlopen(%s): %s\n", ctx, path, dlerror());
    exit(1);
  }
  return h;
}

static void close_lib(void *h, const char *path, const char *ctx) {
  char buf[512];
  snprintf(buf, sizeof buf, "dlclose(%s) failed", path);
  expect_true(dlclose(h) == 0, ctx, buf);
  // The library must really be gone, or the reuse below proves nothing.
  void *still = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  snprintf(buf, sizeof buf, "%s still loaded after dlclose", path);
  expect_true(still == NULL, ctx, buf);
  if (still) dlclose(still);
}

// Cycles of: open B or C (in turn), check its calls and those of the
// modules that stay, keep a few of its blocks, close it; after the next
// library is loaded (often where the last one was), the kept blocks are
// still in their pool and can be resized and freed.
static void check_dl_cycles(const struct expect *eb, const struct expect *ec,
                            const struct expect *ea,
                            const struct expect *ex) {
  void *kept[3] = {NULL, NULL, NULL};
  const char *kept_pool = NULL;
  const char *kept_who = NULL;
  uintptr_t last_base = 0;
  char ctx[128];
  for (int cycle = 0; cycle < 6; cycle++) {
    int is_b = cycle % 2 == 0;
    const char *path = is_b ? LIBB_PATH : LIBC_PATH;
    const struct expect *e = is_b ? eb : ec;
    snprintf(ctx, sizeof ctx, "dl cycle %d, %s loaded", cycle,
             is_b ? "libroute_b.so" : "libroute_c.so");
    void *h = open_lib(path, ctx);
    struct family f = family_of(h, is_b ? "route_b" : "route_c",
                                is_b ? "libroute_b.so" : "libroute_c.so");
    Dl_info info;
    uintptr_t base = dladdr(*(void **)&f.malloc_, &info)
                         ? (uintptr_t)info.dli_fbase
                         : 0;
    printf("lib_route: info: cycle %d: %s at %#lx%s\n", cycle, f.who,
           (unsigned long)base,
           base == last_base ? " (where the last library was)" : "");
    last_base = base;

    // The blocks the previous library made before it was closed.
    if (kept[0]) {
      char c[160];
      snprintf(c, sizeof c, "%s, blocks of the closed %s", ctx, kept_who);
      for (int i = 0; i < 3; i++)
        expect_pool(kept[i], kept_pool, c, "kept block", 0);
      kept[0] = realloc(kept[0], 50000);  // grown by the executable
      expect_pool(kept[0], kept_pool, c, "realloc by the executable", 50000);
      kept[1] = f.realloc_(kept[1], 400);  // resized by the new library
      expect_pool(kept[1], kept_pool, c, "realloc by the new library", 400);
      for (int i = 0; i < 3; i++) free(kept[i]);
    }

    check_family(&f, e, ctx);
    const struct family *fs[3] = {&f, &fam_a, &fam_x};
    const struct expect *es[3] = {e, ea, ex};
    check_interleaved(fs, es, 3, ctx);

    kept[0] = f.malloc_(100);
    kept[1] = f.calloc_(1, 3000);
    kept[2] = f.memalign_(256, 150000);
    for (int i = 0; i < 3; i++)
      expect_pool(kept[i], e->pool, ctx, "block kept across dlclose", 0);
    kept_pool = e->pool;
    kept_who = f.who;
    close_lib(h, path, ctx);
  }
  for (int i = 0; i < 3; i++) {
    expect_pool(kept[i], kept_pool, "after the last dlclose", "kept block",
                0);
    free(kept[i]);
  }
}

// ---------------------------------------------------------------------------
// Threads

struct thread_job {
  const char *name;         // the thread's name
  const struct expect *ea;  // for libroute_a.so
  const struct expect *ex;  // for the executable
  const struct expect *eb;  // for libroute_b.so
  const struct family *fb;  // libroute_b.so, open
};

static void *thread_main(void *arg) {
  const struct thread_job *j = arg;
  pthread_setname_np(pthread_self(), j->name);
  char ctx[64];
  snprintf(ctx, sizeof ctx, "thread %s", j->name);
  check_family(&fam_a, j->ea, ctx);
  check_family(&fam_x, j->ex, ctx);
  check_family(j->fb, j->eb, ctx);
  const struct family *fs[3] = {&fam_a, &fam_x, j->fb};
  const struct expect *es[3] = {j->ea, j->ex, j->eb};
  check_interleaved(fs, es, 3, ctx);
  return NULL;
}

static void run_thread(const struct thread_job *j) {
  pthread_t t;
  if (pthread_create(&t, NULL, thread_main, (void *)j) != 0) {
    printf("lib_route: FAIL pthread_create\n");
    exit(1);
  }
  pthread_join(t, NULL);
}

// ---------------------------------------------------------------------------

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  static const struct expect def = {"default", "big", "default"};
  static const struct expect ea = {"pa", "big", "default"};
  static const struct expect eb = {"pb", "big", "default"};
  static const struct expect ec = {"pc", "big", "default"};
  static const struct expect ex = {"pm", "big", "default"};
  static const struct expect ew = {"pw", "pw", "pw"};  // thread=worker-*
  int none = strcmp(mode, "none") == 0;
  if (!none && strcmp(mode, "main") != 0 && strcmp(mode, "thread") != 0) {
    printf("lib_route: usage: %s main|thread|none\n", argv[0]);
    return 2;
  }
  const struct expect *xa = none ? &def : &ea, *xb = none ? &def : &eb,
                      *xc = none ? &def : &ec, *xx = none ? &def : &ex;

  // Calls into the executable and the linked library, main thread.
  check_family(&fam_x, xx, "main thread");
  check_family(&fam_a, xa, "main thread");
  const struct family *fs[2] = {&fam_a, &fam_x};
  const struct expect *es[2] = {xa, xx};
  check_interleaved(fs, es, 2, "main thread");
  check_realloc_keeps(&fam_a, &fam_x, xx, "main thread");
  check_realloc_keeps(&fam_x, &fam_a, xa, "main thread");

  // A library loaded at run time, and threads calling into it.
  void *h = open_lib(LIBB_PATH, "threads");
  struct family fb = family_of(h, "route_b", "libroute_b.so");
  check_family(&fb, xb, "main thread");
  check_realloc_keeps(&fb, &fam_a, xa, "main thread");
  check_realloc_keeps(&fam_a, &fb, xb, "main thread");
  if (strcmp(mode, "thread") == 0) {
    // thread=worker-* comes before every other route.
    struct thread_job w = {"worker-1", &ew, &ew, &ew, &fb};
    run_thread(&w);
    struct thread_job o = {"other-1", xa, xx, xb, &fb};
    run_thread(&o);
  } else {
    struct thread_job o = {"helper-1", xa, xx, xb, &fb};
    run_thread(&o);
  }
  close_lib(h, LIBB_PATH, "threads");

  check_dl_cycles(xb, xc, xa, xx);
  // The modules that stayed are still routed as before.
  check_family(&fam_a, xa, "main thread, after the cycles");
  check_family(&fam_x, xx, "main thread, after the cycles");

  printf("lib_route: %s: %u checks, %d failed\n", mode, checks, failures);
  return failures ? 1 : 0;
}
