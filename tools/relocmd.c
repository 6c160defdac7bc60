// relocmd.c: `mmpool relocate FILE|DIR ADDR`, offline relocation.
//
// A pool file moves to base ADDR; a snapshot directory moves as a whole,
// its pools keeping their distances (the lowest base goes to ADDR), since
// blocks of one point into another. The work is core/relocate.c's, on a
// copy: a file's copy (FILE.relocate-PID, O_EXCL) is synced and renamed
// over it, then the directory synced; a snapshot gets new images (the next
// serial) and a new manifest, renamed into place like a snapshot's, and
// then its old images are removed. A crash at any point leaves the
// original, or the moved copy, whole.
#define _GNU_SOURCE
#include "relocmd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect.h"
#include "log.h"
#include "poolcmd.h"
#include "relocate.h"
#include "snapshot.h"

static struct inspect in;          // 8 KiB aligned: static
static struct snap_manifest man;

// The directory of path made durable (poolcmd_fsync_dir): 0 or -errno.
static int sync_dir_of(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  return poolcmd_fsync_dir(dirname(tmp));
}

// Writes the moved copy of the open image `in` to out (created O_EXCL).
static int write_copy(const char *src, const char *out,
                      const struct reloc_range *set, unsigned nset,
                      uint64_t new_base, uint64_t *changed) {
  char why[400];
  if (reloc_check(&in, new_base, why, sizeof why)) {
    fprintf(stderr, "mmpool: relocate: %s: %s\n", src, why);
    return -1;
  }
  int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0600);
  if (fd < 0) {
    fprintf(stderr, "mmpool: relocate: cannot create %s: %s\n", out,
            strerror(errno));
    return -1;
  }
  int r = reloc_write(&in, set, nset, new_base, fd, 1, changed, why,
                      sizeof why);
  if (close(fd) != 0 && !r) {
    snprintf(why, sizeof why, "close: %s", strerror(errno));
    r = -1;
  }
  if (r) {
    fprintf(stderr, "mmpool: relocate: %s: %s\n", out, why);
    unlink(out);
    return -1;
  }
  return 0;
}

static int open_image(const char *path, unsigned flags) {
  char why[512];
  if (inspect_open(&in, path, flags, why, sizeof why)) {
    fprintf(stderr, "mmpool: relocate: %s: %s\n", path, why);
    return -1;
  }
  return 0;
}

static int relocate_file(const char *path, uint64_t addr) {
  if (open_image(path, INSPECT_EXCLUSIVE)) return POOLCMD_BAD;
  uint64_t old = in.hdr.base;
  struct reloc_range r = {old, old + in.hdr.st.length, addr};
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.relocate-%d", path, (int)getpid());
  uint64_t changed = 0;
  int bad = write_copy(path, tmp, &r, 1, addr, &changed);
  inspect_close(&in);
  if (bad) return POOLCMD_BAD;
  if (rename(tmp, path) != 0) {
    fprintf(stderr, "mmpool: relocate: cannot put %s in place: %s\n", tmp,
            strerror(errno));
    unlink(tmp);
    return POOLCMD_BAD;
  }
  int sr = sync_dir_of(path);
  if (sr)
    fprintf(stderr, "mmpool: relocate: %s is moved, but its directory could "
            "not be synced (%s): the move may not survive a crash of the "
            "system\n", path, strerror(-sr));
  printf("%s: moved from 0x%" PRIx64 " to 0x%" PRIx64 ": %" PRIu64
         " words changed (pointers into the pool, and any integer that "
         "looked like one)\n", path, old, addr, changed);
  return fflush(stdout) == 0 ? POOLCMD_OK : POOLCMD_TOOL;
}

static int read_manifest(const char *dir) {
  if (snapshot_read(dir, &man) == 0) return 0;
  fprintf(stderr, "mmpool: relocate: %s\n", log_last_error());
  return -1;
}

static int relocate_snapshot(const char *dir, uint64_t addr) {
  if (read_manifest(dir)) return POOLCMD_BAD;
  if (!man.npools) {
    fprintf(stderr, "mmpool: relocate: %s: the snapshot holds no pool\n",
            dir);
    return POOLCMD_BAD;
  }
  uint64_t low = man.pool[0].base;
  for (uint32_t i = 1; i < man.npools; i++)
    if (man.pool[i].base < low) low = man.pool[i].base;
  uint64_t delta = addr - low;  // modulo 2^64
  static struct reloc_range set[MMPOOL_MAX_POOLS];
  for (uint32_t i = 0; i < man.npools; i++) {
    set[i].old_base = man.pool[i].base;
    set[i].old_end = man.pool[i].base + man.pool[i].length;
    set[i].new_base = man.pool[i].base + delta;
  }
  static struct snap_manifest next;
  next = man;
  next.serial = man.serial + 1;
  uint64_t total = 0;
  char src[PATH_MAX], dst[PATH_MAX];
  int bad = 0;
  uint32_t made = 0;
  for (uint32_t i = 0; i < man.npools && !bad; i++) {
    struct snap_entry *e = &next.pool[i];
    snprintf(src, sizeof src, "%s/%s", dir, man.pool[i].file);
    char name[sizeof e->name];
    memcpy(name, e->name, sizeof name);
    snprintf(e->file, sizeof e->file, "%s.%" PRIu64 ".pool", name,
             next.serial);
    snprintf(dst, sizeof dst, "%s/%s", dir, e->file);
    unlink(dst);  // a leftover of a relocation that died
    // The image with its deltas: the copy is whole (no chain).
    char why[4800];
    if (snapshot_image_open(&in, dir, &man, i, why, sizeof why)) {
      fprintf(stderr, "mmpool: relocate: %s\n", why);
      bad = 1;
      break;
    }
    memset(&next.chain[i], 0, sizeof next.chain[i]);
    e->how = SNAP_HOW_FULL;
    next.incremental = 0;
    uint64_t changed = 0;
    bad = write_copy(src, dst, set, man.npools, set[i].new_base, &changed);
    inspect_close(&in);
    if (bad) break;
    made = i + 1;
    total += changed;
    // The new image's header: read back for its checksum.
    if (open_image(dst, 0)) {
      bad = 1;
      break;
    }
    e->base = in.hdr.base;
    e->header_checksum = in.hdr.checksum;
    inspect_close(&in);
    printf("%s: 0x%" PRIx64 " -> 0x%" PRIx64 ", %" PRIu64
           " words changed\n", man.pool[i].name, man.pool[i].base, e->base,
           changed);
  }
  if (!bad) {
    snap_manifest_seal(&next);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int placed = 0;
    int r = dfd < 0 ? -errno : snap_manifest_install(dfd, &next, &placed);
    if (dfd >= 0) close(dfd);
    // Once renamed, the moved snapshot is the one in place: go on.
    bad = r != 0 && !placed;
    if (r)
      fprintf(stderr, "mmpool: relocate: %s %s/%s: %s\n",
              placed ? "renamed, but cannot sync the directory of"
                     : "cannot write",
              dir, SNAP_MANIFEST, strerror(-r));
  }
  if (bad) {
    // The new images are nobody's: the old manifest still stands.
    for (uint32_t i = 0; i < made; i++) {
      snprintf(dst, sizeof dst, "%s/%s", dir, next.pool[i].file);
      unlink(dst);
    }
    return POOLCMD_BAD;
  }
  for (uint32_t i = 0; i < man.npools; i++) {
    snprintf(src, sizeof src, "%s/%s", dir, man.pool[i].file);
    unlink(src);
    for (uint32_t j = 0; j < man.chain[i].n; j++) {
      char name[SNAP_FILE_MAX];
      snap_delta_name(name, sizeof name, man.pool[i].name,
                      man.chain[i].serial[j]);
      snprintf(src, sizeof src, "%s/%s", dir, name);
      unlink(src);
    }
  }
  printf("snapshot %s: moved by 0x%" PRIx64 " (serial %" PRIu64 " now): %"
         PRIu64 " words changed (pointers into its pools, and any integer "
         "that looked like one)\n", dir, delta, next.serial, total);
  return fflush(stdout) == 0 ? POOLCMD_OK : POOLCMD_TOOL;
}

int relocmd_relocate(const char *path, uint64_t addr) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "mmpool: relocate: %s: %s\n", path, strerror(errno));
    return POOLCMD_BAD;
  }
  return S_ISDIR(st.st_mode) ? relocate_snapshot(path, addr)
                             : relocate_file(path, addr);
}
