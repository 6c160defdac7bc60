// scratch.h: a scratch directory for one test program, for cmocka group
// fixtures: scratch_setup(tag) makes $TMPDIR/mmpool-TAG-XXXXXX (or /tmp),
// scratch_path(name) names a file in it (the string lives until teardown),
// scratch_teardown() removes the directory with everything in it.
// The including file defines _GNU_SOURCE first (asprintf).
#ifndef MMPOOL_TEST_SCRATCH_H
#define MMPOOL_TEST_SCRATCH_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[512];
static char *scratch_paths[64];
static unsigned scratch_npaths;

static int scratch_rm_one(const char *path, const struct stat *sb, int type,
                          struct FTW *ftw) {
  (void)sb, (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

static inline int scratch_setup(const char *tag) {
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/mmpool-%s-XXXXXX",
           tmp && *tmp ? tmp : "/tmp", tag);
  return mkdtemp(scratch) ? 0 : -1;
}

static inline int scratch_teardown(void) {
  nftw(scratch, scratch_rm_one, 16, FTW_DEPTH | FTW_PHYS);
  while (scratch_npaths)
    free(scratch_paths[--scratch_npaths]);
  return 0;
}

// scratch/name; NULL only when out of slots or memory.
static inline char *scratch_path(const char *name) {
  char *p;
  if (scratch_npaths >= 64 || asprintf(&p, "%s/%s", scratch, name) < 0)
    return NULL;
  return scratch_paths[scratch_npaths++] = p;
}

#endif
