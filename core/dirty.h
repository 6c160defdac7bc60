// dirty.h: which pages of the anonymous pools were written since the
// instant of the last snapshot (the deltas of incremental snapshots,
// docs/snapshots.md).
//
// Userfaultfd write-protect in asynchronous mode: the kernel itself
// resolves a write to a protected page by clearing the page's protection,
// so the program never stops (kernel writes such as read(2) included), and
// PAGEMAP_SCAN returns the pages so cleared and protects them again in one
// step. Each anonymous pool's reserved range is registered at the first
// snapshot; at each snapshot the pool's data is scanned and the pages
// written are added to its map (one bit per 4 KiB page; DIRTY_SETS maps,
// one now: set 0, emptied by each snapshot that is written). The map thus
// holds every page written since the last snapshot's instant, as long as
// it is valid for the pool (valid[s]); anything that breaks the tracking
// of a pool (a failed scan, a closed and reopened slot) makes it invalid,
// and its next image is written whole.
//
// What a scan does not see, the snapshot writer looks for itself: the
// writes between the scan and the copy of the process (dirty_late: the
// scan comes before the hold, and threads outside the allocator run
// through the hold; in a capture, dirty_rescan under the hold), and the
// pages that have none in its copy (purged by the allocator or madvise'd
// by the program: zeros with no write; this kernel reports those as
// written too, dirty_holes_* does not rely on it).
//
// All of it runs in the thread taking a snapshot (one at a time) or in its
// writer; fork children start over (nothing tracked).
#ifndef MMPOOL_DIRTY_H
#define MMPOOL_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#define DIRTY_SHIFT 12   // the kernel's page: the unit of tracking
#define DIRTY_SETS 1   // maps kept: since the last snapshot (set 0)

// Why a pool's image cannot be written incrementally (stored in manifests:
// values are fixed).
enum {
  DIRTY_OK = 0,
  DIRTY_NO_SET = 1,     // no earlier snapshot of this process to follow
  DIRTY_ASKED = 2,      // snapshot-incremental=no
  DIRTY_FILE = 3,       // a file pool: userfaultfd cannot protect its pages
  DIRTY_KERNEL = 4,     // the kernel has no (or refuses) userfaultfd WP_ASYNC
                        // or PAGEMAP_SCAN
  DIRTY_NEW = 5,        // the pool is not in the previous snapshot
  DIRTY_LOST = 6,       // tracking failed (a scan, a registration)
  DIRTY_CHANGED = 7,    // the previous image or delta is not as recorded
  DIRTY_CHAIN = 8,      // the chain of deltas is long enough, or a delta
                        // would be too scattered (core/delta.h)
  DIRTY_WHY_COUNT = 9
};
// A few words for a DIRTY_* value ("the first snapshots", ...).
const char *dirty_why_text(int why) HIDDEN;

// At each snapshot, just before its hold (pre: the registry lock, so that
// no pool opens or closes): registers what is new of each anonymous pool's
// range and scans its data, adding the pages written to every set's map
// and protecting them again. The first call opens the userfaultfd. The
// writes from the scan to the copy of the process are the writer's to find
// (dirty_late): the scan need not be in the pause.
void dirty_scan(void) HIDDEN;
// 0 when set s's map of pool id holds every page written since s's
// instant up to this snapshot's scan (and the pool is the one scanned);
// else a DIRTY_* reason.
int dirty_usable(unsigned id, int s) HIDDEN;
// After set s was written at this snapshot: its maps start empty, valid
// for the pools scanned at this snapshot, invalid for the others.
void dirty_taken(int s) HIDDEN;
// Set s's images were lost (a failed writer): every map of s is invalid.
void dirty_lost(int s) HIDDEN;
// 1 when dirty_scan has a userfaultfd (some pool may be tracked).
int dirty_active(void) HIDDEN;

// In the writer (a copy of the process made at the hold): adds to set s's
// map of pool id the pages written in the parent since this snapshot's scan,
// over [start, end) (the parent's pagemap, inherited). 0 or a negative
// errno.
int dirty_late(unsigned id, int s, uintptr_t start, uintptr_t end) HIDDEN;
// A snapshot taken without a copy of the process (core/snapshot.c,
// "capture"), in the process under the hold: adds to the map of pool id
// the pages written over the range dirty_scan looks at since they were
// last protected, and protects them again. The number of ranges found (0:
// nothing was written since the scan before), or a negative errno.
long dirty_rescan(unsigned id) HIDDEN;
// About how many pages of set 0's map of pool id hold data (present when
// scanned, not purged since written): what a delta copies, or more.
uint64_t dirty_present(unsigned id) HIDDEN;
// 1 when page (DIRTY_SHIFT units from the pool's data) is in s's map.
int dirty_test(unsigned id, int s, uint64_t page) HIDDEN;
// 1 when any of the 16 pages from page (a multiple of 16) is in s's map.
int dirty_any16(unsigned id, int s, uint64_t page) HIDDEN;
// The ranges of [start, end) that have no page (they read as zeros), in
// order: dirty_holes_start, then dirty_holes_next until it returns 0 (1
// with the next range in [*lo, *hi), or a negative errno). In a writer
// (own 0) of its own copy, whose pagemap it opens at the first call; with
// own 1 of the process itself (a capture), through the pagemap dirty_scan
// opened.
int dirty_holes_start(uintptr_t start, uintptr_t end, int own) HIDDEN;
int dirty_holes_next(uintptr_t *lo, uintptr_t *hi) HIDDEN;

#endif
