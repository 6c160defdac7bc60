// thread_probe.c: under the preload library, prints the pools that a thread
// named "worker-1" and the main thread allocate small and large blocks in
// ("main=A/B worker=C/D"); the preload_config_thread_route test matches it.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmpool.h"

static const char *pool_of(size_t n) {
  void *p = calloc(1, n);
  mmpool_t *pool = p ? mmpool_of(p) : NULL;
  const char *name = pool ? mmpool_name(pool) : "(none)";
  free(p);
  return name;
}

static void *worker(void *arg) {
  pthread_setname_np(pthread_self(), "worker-1");
  const char **out = arg;
  out[0] = pool_of(100);
  out[1] = pool_of(1 << 20);
  return NULL;
}

int main(void) {
  const char *w[2];
  pthread_t t;
  const char *m0 = pool_of(100), *m1 = pool_of(1 << 20);
  pthread_create(&t, NULL, worker, w);
  pthread_join(t, NULL);
  printf("main=%s/%s worker=%s/%s\n", m0, m1, w[0], w[1]);
  return 0;
}
