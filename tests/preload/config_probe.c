// config_probe.c: under the preload library, prints the pool that a block
// of argv[1] bytes (default 100) lands in ("pool=NAME", or "pool=(none)"
// when the allocation fails); the preload_config_* tests run it with
// different configurations and match its output.
#include <stdio.h>
#include <stdlib.h>

#include "mmpool.h"

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 100;
  void *p = calloc(1, n);
  mmpool_t *pool = p ? mmpool_of(p) : NULL;
  printf("pool=%s\n", pool ? mmpool_name(pool) : "(none)");
  free(p);
  return pool ? 0 : 1;
}
