// relocmd.h: `mmpool relocate` (relocmd.c); exit statuses as poolcmd.h's.
#ifndef MMPOOL_TOOLS_RELOCMD_H
#define MMPOOL_TOOLS_RELOCMD_H

#include <stdint.h>

// Moves the pool file, or the snapshot directory, at path to base addr.
int relocmd_relocate(const char *path, uint64_t addr);

#endif
