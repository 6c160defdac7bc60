// config_probe.c: under the preload library, prints the pool that a
// calloc'ed block lands in ("pool=NAME"); the preload_config_* tests run it
// with different configurations and match its output.
#include <stdio.h>
#include <stdlib.h>

#include "mmpool.h"

int main(void) {
  void *p = calloc(1, 100);
  mmpool_t *pool = mmpool_of(p);
  printf("pool=%s\n", pool ? mmpool_name(pool) : "(none)");
  free(p);
  return pool ? 0 : 1;
}
