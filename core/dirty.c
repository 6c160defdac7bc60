// dirty.c: the pages of the anonymous pools written between snapshots
// (see dirty.h).
#include "dirty.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "os.h"
#include "pooltable.h"
#include "vmmap.h"

#define SCAN_VEC 256

struct track {
  uint32_t gen;        // the open of the slot that is tracked; 0: none
  uintptr_t data;      // that pool's data
  uintptr_t reg_end;   // registered from data up to here
  uint64_t *map;       // DIRTY_SETS maps of `words` words each
  size_t words;
  uint64_t present;    // pages of set 0's map present when scanned (data,
                       // not purged), or more (counted at each scan)
  uint8_t valid[DIRTY_SETS];
  uint8_t scanned;     // scanned at the last hold
  uint8_t why;         // DIRTY_* when not
};

static struct track tracks[MMPOOL_MAX_POOLS + 1];
static int uffd = -1;     // the process's userfaultfd
static int pagemap = -1;  // /proc/self/pagemap, opened in this process
static int refused;       // the kernel's answer when it refused uffd
static struct os_region vec[SCAN_VEC];

// A fork child has the parent's descriptors, but its pools are not
// registered (the kernel clears that in a copy made without
// UFFD_FEATURE_EVENT_FORK), and the pagemap descriptor would scan the
// parent: it starts over, and its first snapshots are whole.
static void dirty_fork_child(void) {
  if (uffd >= 0) os_close(uffd);
  if (pagemap >= 0) os_close(pagemap);
  uffd = pagemap = -1;
  refused = 0;
  for (unsigned i = 0; i <= MMPOOL_MAX_POOLS; i++) {
    struct track *t = &tracks[i];
    t->gen = 0;
    t->scanned = 0;
    memset(t->valid, 0, sizeof t->valid);
  }
}

__attribute__((constructor)) static void dirty_ctor(void) {
  pthread_atfork(NULL, NULL, dirty_fork_child);
}

RARE const char *dirty_why_text(int why) {
  static const char *const text[DIRTY_WHY_COUNT] = {
      "incremental",
      "no earlier snapshot of this process in the directory",
      "snapshot-incremental=no",
      "a file pool (userfaultfd cannot protect its pages)",
      "the kernel refuses userfaultfd write-protect (WP_ASYNC) or has no "
      "PAGEMAP_SCAN",
      "the pool is new since the previous snapshot",
      "the tracking of written pages failed",
      "the previous image is not the one recorded",
      "its deltas since its last whole image are many, large or scattered"};
  return why >= 0 && why < DIRTY_WHY_COUNT ? text[why] : "unknown";
}

RARE int dirty_active(void) { return uffd >= 0; }

RARE static void set_bits(uint64_t *m, uint64_t lo, uint64_t hi) {
  while (lo < hi && (lo & 63)) m[lo >> 6] |= 1ull << (lo & 63), lo++;
  while (lo + 64 <= hi) m[lo >> 6] = ~0ull, lo += 64;
  while (lo < hi) m[lo >> 6] |= 1ull << (lo & 63), lo++;
}

// Adds [lo, hi) (addresses) to every map of t.
RARE static void mark(struct track *t, uint64_t lo, uint64_t hi) {
  uint64_t limit = t->data + ((uint64_t)t->words << (6 + DIRTY_SHIFT));
  if (lo < t->data) lo = t->data;
  if (hi > limit) hi = limit;
  if (lo >= hi) return;
  lo = (lo - t->data) >> DIRTY_SHIFT;
  hi = (hi - t->data + (1u << DIRTY_SHIFT) - 1) >> DIRTY_SHIFT;
  for (int s = 0; s < DIRTY_SETS; s++) set_bits(t->map + s * t->words, lo, hi);
}

RARE static void untrack(struct track *t, int why) {
  t->gen = 0;
  t->scanned = 0;
  t->why = (uint8_t)why;
  memset(t->valid, 0, sizeof t->valid);
}

// Maps for `pages` pages (the range registered), keeping what they hold.
RARE static int fit_maps(struct track *t, uint64_t pages) {
  size_t words = (size_t)((pages + 63) >> 6);
  if (words <= t->words) return 0;
  words += words / 4;  // room to grow without a copy each time
  uint64_t *m = vmmap_scratch(words * DIRTY_SETS * sizeof *m);
  if (!m) return -ENOMEM;
  if (t->map) {
    for (int s = 0; s < DIRTY_SETS; s++)
      memcpy(m + s * words, t->map + s * t->words, t->words * sizeof *m);
    vmmap_scratch_release(t->map);
  }
  t->map = m;
  t->words = words;
  return 0;
}

// Scans [lo, hi): the written pages into t's maps, protected again.
// The number of ranges found, or a negative errno.
RARE static long scan(struct track *t, uintptr_t lo, uintptr_t hi, int what,
                      int fd) {
  long found = 0;
  while (lo < hi) {
    uintptr_t end = hi;
    long n = os_pagemap_scan(fd, what, lo, hi, vec, SCAN_VEC, &end);
    if (n < 0) return n;
    for (long k = 0; k < n; k++) {
      mark(t, vec[k].start, vec[k].end);
      if (vec[k].categories & OS_REGION_PRESENT)
        t->present += (vec[k].end - vec[k].start) >> DIRTY_SHIFT;
    }
    found += n;
    if (end <= lo) return -EIO;  // no progress: never trust it to end
    lo = end;
  }
  return found;
}

// Where the pages of pool p that a scan looks at end: its data committed,
// within what is reserved.
RARE static uintptr_t scan_end(const struct mmpool *p) {
  uintptr_t end = p->base + __atomic_load_n(&p->reserved, __ATOMIC_RELAXED);
  uintptr_t hi = p->data + __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  return hi < end ? hi : end;
}

RARE static void scan_one(unsigned id) {
  struct mmpool *p = &pool_table[id];
  struct track *t = &tracks[id];
  t->scanned = 0;
  if (p->state != POOL_OPEN || p->frozen) {
    untrack(t, DIRTY_NEW);
    return;
  }
  if (p->is_file) {
    untrack(t, DIRTY_FILE);
    return;
  }
  if (uffd < 0) {
    untrack(t, DIRTY_KERNEL);
    return;
  }
  if (t->gen != p->gen || t->data != p->data) {
    // Another open of the slot (or the first look): what the maps say is
    // of no pool now. Its range was registered afresh by nobody.
    untrack(t, DIRTY_NEW);
    t->gen = p->gen;
    t->data = p->data;
    t->reg_end = p->data;
  }
  uintptr_t end = p->base + __atomic_load_n(&p->reserved, __ATOMIC_RELAXED);
  // The range reserved since the last hold: pages in it lie past every
  // earlier image's end, which the writer rewrites whole anyway.
  if (t->reg_end < end) {
    if (os_uffd_register_wp(uffd, t->reg_end, end - t->reg_end) != 0 ||
        fit_maps(t, (end - t->data) >> DIRTY_SHIFT) != 0) {
      untrack(t, DIRTY_LOST);
      return;
    }
    t->reg_end = end;
  }
  uintptr_t hi = scan_end(p);
  long r = scan(t, p->data, hi, OS_SCAN_WRITTEN_PROTECT, pagemap);
  int why = DIRTY_OK;
  if (r > 0) r = 0;
  if (r == -EPERM) {
    // A mapping of the range is not registered (something mapped over it):
    // register it all again; what was written there is unknown.
    untrack(t, DIRTY_LOST);
    t->gen = p->gen;
    if (os_uffd_register_wp(uffd, p->data, end - p->data) != 0) return;
    r = scan(t, p->data, hi, OS_SCAN_WRITTEN_PROTECT, pagemap);
    if (r > 0) r = 0;
    why = DIRTY_LOST;  // this snapshot's images say so
  }
  if (r) {
    untrack(t, DIRTY_LOST);
    return;
  }
  t->scanned = 1;
  t->why = (uint8_t)why;
}

RARE void dirty_scan(void) {
  if (uffd < 0 && !refused) {
    int fd = os_uffd_open();
    int pm = fd >= 0 ? os_pagemap_open() : fd;
    if (fd >= 0 && pm >= 0) {
      uffd = fd;
      pagemap = pm;
    } else {
      if (fd >= 0) os_close(fd);
      refused = pm < 0 ? -pm : 1;
    }
  }
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) scan_one(i);
}

RARE int dirty_usable(unsigned id, int s) {
  const struct track *t = &tracks[id];
  const struct mmpool *p = &pool_table[id];
  if (!t->scanned) return t->why ? t->why : DIRTY_LOST;
  // Opened since the scan (the scan runs before the hold).
  if (t->gen != p->gen || t->data != p->data) return DIRTY_NEW;
  return t->valid[s] ? DIRTY_OK : t->why ? t->why : DIRTY_NEW;
}

RARE void dirty_taken(int s) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct track *t = &tracks[i];
    t->valid[s] = t->scanned && t->gen == pool_table[i].gen;
    if (t->scanned) memset(t->map + s * t->words, 0, t->words * sizeof *t->map);
    if (s == 0) t->present = 0;
  }
}

RARE void dirty_lost(int s) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) tracks[i].valid[s] = 0;
}

RARE int dirty_late(unsigned id, int s, uintptr_t start, uintptr_t end) {
  struct track *t = &tracks[id];
  (void)s;  // every map gets them: this copy uses s's alone
  long r = scan(t, start, end, OS_SCAN_WRITTEN, pagemap);
  return r < 0 ? (int)r : 0;
}

RARE long dirty_rescan(unsigned id) {
  const struct mmpool *p = &pool_table[id];
  return scan(&tracks[id], p->data, scan_end(p), OS_SCAN_WRITTEN_PROTECT,
              pagemap);
}

RARE uint64_t dirty_present(unsigned id) { return tracks[id].present; }

RARE int dirty_test(unsigned id, int s, uint64_t page) {
  const struct track *t = &tracks[id];
  if (page >= (uint64_t)t->words * 64) return 1;
  return (int)(t->map[s * t->words + (page >> 6)] >> (page & 63)) & 1;
}

RARE int dirty_any16(unsigned id, int s, uint64_t page) {
  const struct track *t = &tracks[id];
  if (page + 16 > (uint64_t)t->words * 64) return 1;
  return (t->map[s * t->words + (page >> 6)] >> (page & 63) & 0xffff) != 0;
}

// ---------------------------------------------------------------------------
// The writer's own holes

static struct {
  int fd;               // a writer's own pagemap, opened there
  int use;              // the pagemap this walk scans
  uintptr_t next, end;  // the part not scanned yet
  long n, i;            // vec[i, n) not handed out yet
} holes = {-1, -1, 0, 0, 0, 0};

RARE int dirty_holes_start(uintptr_t start, uintptr_t end, int own) {
  if (own) {
    if (pagemap < 0) return -EBADF;
    holes.use = pagemap;
  } else {
    if (holes.fd < 0) {
      int fd = os_pagemap_open();
      if (fd < 0) return fd;
      holes.fd = fd;
    }
    holes.use = holes.fd;
  }
  holes.next = start;
  holes.end = end;
  holes.n = holes.i = 0;
  return 0;
}

RARE int dirty_holes_next(uintptr_t *lo, uintptr_t *hi) {
  while (holes.i == holes.n) {
    if (holes.next >= holes.end) return 0;
    uintptr_t we = holes.end;
    long n = os_pagemap_scan(holes.use, OS_SCAN_UNPOPULATED, holes.next,
                             holes.end, vec, SCAN_VEC, &we);
    if (n < 0) return (int)n;
    if (we <= holes.next) return -EIO;
    holes.next = we;
    holes.n = n;
    holes.i = 0;
  }
  *lo = vec[holes.i].start;
  *hi = vec[holes.i].end;
  holes.i++;
  return 1;
}
