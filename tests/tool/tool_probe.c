// tool_probe.c: run by test_tool through `mmpool run`. It prints, one per
// line, what tells whether it runs under the preload library:
//   pool=NAME      the pool holding a malloc block of argv[1] bytes
//                  (default 100), or "(none)" when no pool owns it (glibc's
//                  malloc served it: no preload library)
//   preload=PATH   the mapped file of the preload library, from
//                  /proc/self/maps, or "none"
//   LD_PRELOAD=... the variable as the program received it, or "(unset)"
//   MMPOOL_CONFIG_FILE=... likewise
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmpool.h"

static void print_preload(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096], found[4096] = "none";
  while (f && fgets(line, sizeof line, f)) {
    char *path = strchr(line, '/');
    if (!path || !strstr(path, "libmmpool-preload")) continue;
    path[strcspn(path, "\n")] = 0;
    snprintf(found, sizeof found, "%s", path);
    break;
  }
  if (f) fclose(f);
  printf("preload=%s\n", found);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 100;
  void *p = malloc(n);
  mmpool_t *pool = p ? mmpool_of(p) : NULL;
  printf("pool=%s\n", pool ? mmpool_name(pool) : "(none)");
  print_preload();
  const char *v = getenv("LD_PRELOAD");
  printf("LD_PRELOAD=%s\n", v ? v : "(unset)");
  v = getenv("MMPOOL_CONFIG_FILE");
  printf("MMPOOL_CONFIG_FILE=%s\n", v ? v : "(unset)");
  free(p);
  return 0;
}
