// smaps.h: what /proc/self/smaps says of the mappings inside a range, for
// tests that check what the kernel did with a pool's memory.
#ifndef MMPOOL_TEST_SMAPS_H
#define MMPOOL_TEST_SMAPS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

// For each mapping inside [lo, hi): *kib += its Shared_Dirty and
// Private_Dirty, *hg |= whether its VmFlags hold `hg` (huge pages asked
// for). Either may be NULL. 0, or -1 when smaps cannot be read.
static inline int smaps_range(uintptr_t lo, uintptr_t hi, long *kib,
                              int *hg) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  int in = 0;
  long v;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
    if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &a, &b) == 2)
      in = a >= lo && b <= hi;  // a mapping's first line
    else if (in && kib && (sscanf(line, "Shared_Dirty: %ld", &v) == 1 ||
                           sscanf(line, "Private_Dirty: %ld", &v) == 1))
      *kib += v;
    else if (in && hg && !strncmp(line, "VmFlags:", 8) && strstr(line, " hg"))
      *hg = 1;
  }
  fclose(f);
  return 0;
}

#endif
