// route_edges.c: under the preload library, every size from 0 to 70000
// bytes (and a few large ones) must land in the pool its route names, for
// malloc and calloc, in the main thread and in a thread whose
// name matches a thread= route. The configuration (tests/preload/
// CMakeLists.txt) puts route boundaries where the routing tables must
// split: inside a 16-byte slot (size<250), once inside a size class
// (4000, 4500, 64K), and twice inside one class (20000..20100). Each size is
// asked several times, so that the first call fills the tables and the
// others take the fast path and the lanes.
//
// argv[1]: the pool the main thread's unrouted sizes go to ("default", or
// the pool of a lib= route that matches this executable). Prints "ok" and
// exits 0, or prints every mismatch (up to 20) and exits 1.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmpool.h"

#define REPEAT 3

static const char *main_rest; // argv[1]
static int failures;

// What the configuration says: the size routes first, then (thread) the
// thread= route, then the default or lib= route.
static const char *expected(size_t n, const char *rest) {
  if (n < 250) return "a";
  if (n >= 4000 && n <= 4500) return "b";
  if (n >= 65536) return "b";
  if (n >= 20000 && n <= 20100) return "a";
  return rest;
}

static void check(const char *who, const char *call, size_t n, void *p,
                  const char *want) {
  mmpool_t *pool = p ? mmpool_of(p) : NULL;
  const char *got = pool ? mmpool_name(pool) : "(none)";
  if (strcmp(got, want) == 0) return;
  if (failures++ < 20)
    printf("%s: %s(%zu) went to %s, expected %s\n", who, call, n, got, want);
}

static void run(const char *who, const char *rest) {
  static const size_t large[] = {131072, 131073, 1 << 20, 16 << 20};
  size_t nlarge = sizeof large / sizeof large[0];
  for (size_t i = 0; i <= 70000 + nlarge; i++) {
    size_t n = i <= 70000 ? i : large[i - 70001];
    const char *want = expected(n, rest);
    void *m[REPEAT], *c[REPEAT];
    for (int k = 0; k < REPEAT; k++) {
      m[k] = malloc(n);
      check(who, "malloc", n, m[k], want);
      c[k] = calloc(1, n);
      check(who, "calloc", n, c[k], want);
    }
    for (int k = 0; k < REPEAT; k++) free(m[k]), free(c[k]);
  }
  // realloc keeps a block in the pool that holds it (docs/configuration.md),
  // whatever route its new size would take.
  void *p = malloc(100);
  check(who, "malloc", 100, p, "a");
  size_t steps[] = {249, 250, 3999, 4000, 4500, 4501, 20000, 20101, 65535,
                    65536, 1 << 20, 100, 300};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    void *q = realloc(p, steps[i]);
    if (!q) {
      printf("%s: realloc(%zu) failed\n", who, steps[i]);
      failures++;
      break;
    }
    p = q;
    check(who, "realloc", steps[i], p, "a");
  }
  free(p);
}

static void *worker(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "edge-worker");
  run("thread edge-worker", "b");
  return NULL;
}

int main(int argc, char **argv) {
  main_rest = argc > 1 ? argv[1] : "default";
  run("main", main_rest);
  pthread_t t;
  if (pthread_create(&t, NULL, worker, NULL) != 0) {
    printf("pthread_create failed\n");
    return 1;
  }
  pthread_join(t, NULL);
  // The main thread again, after the worker: its tables are unchanged.
  run("main (again)", main_rest);
  if (failures) {
    printf("%d mismatches\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
