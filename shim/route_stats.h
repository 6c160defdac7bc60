// route_stats.h: the counts behind the MMPOOL_STATS report's route lines
// (route_stats.c).
#ifndef MMPOOL_ROUTE_STATS_H
#define MMPOOL_ROUTE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "rtable.h"
#include "shim.h"

// Cumulative counts since start, per route index (ROUTE_DEFAULT included):
// blocks and bytes (in whole blocks of their class; large blocks in 64 KiB
// pages), and those of them that the default pool took because the route's
// pool was full.
struct route_totals {
  uint64_t n[ROUTE_DEFAULT + 1], bytes[ROUTE_DEFAULT + 1];
  uint64_t fb_n[ROUTE_DEFAULT + 1], fb_bytes[ROUTE_DEFAULT + 1];
};
// Counts one block of b bytes for route r into the exited threads' counts
// (atomic adds).
void route_stats_add_gone(unsigned r, uint64_t b, int fell_back) SHIM_HIDDEN;

// The bytes counted for a block: its class's block size, or whole pages.
static inline uint64_t route_stats_bytes(size_t n, size_t align) {
  if (n <= SC_SMALL_MAX) {
    unsigned c = align > 16 ? sc_of_aligned(n, align) : sc_of(n ? n : 1);
    if (c < SC_COUNT) return sc_table[c].bsize;
  }
  return ((uint64_t)n + PAGE_BYTES - 1) & ~(uint64_t)(PAGE_BYTES - 1);
}

// Counts a block of b bytes (route_stats_bytes) for route r into a
// thread's slow-path counts c. Inline: the slow path of every allocation
// counts.
static inline void route_stats_add(struct route_totals *c, unsigned r,
                                   uint64_t b, int fell_back) {
  c->n[r]++;
  c->bytes[r] += b;
  if (fell_back) c->fb_n[r]++, c->fb_bytes[r] += b;
}
// Adds t's fast-path and lane counts to c, by route (the owner may be
// counting meanwhile: each count is read once, whole).
void route_stats_table(const struct rtable *t, struct route_totals *c)
    SHIM_HIDDEN;
void route_stats_zero(struct rtable *t) SHIM_HIDDEN;
// Moves t's counts into c (t's routes are about to change).
void route_stats_fold(struct rtable *t, struct route_totals *c) SHIM_HIDDEN;
void route_stats_sum(struct route_totals *to, const struct route_totals *c)
    SHIM_HIDDEN;
// Moves a thread's counts c to those of exited threads; zeroes c.
void route_stats_retire(struct route_totals *c) SHIM_HIDDEN;
// Adds the exited threads' counts to out; a fork child forgets them (its
// report tells what the child allocated).
void route_stats_gone(struct route_totals *out) SHIM_HIDDEN;
void route_stats_forget_gone(void) SHIM_HIDDEN;

// Fallbacks per pool and reason: the blocks that a pool could not serve
// and that its full=fallback sent elsewhere (the default pool, or the
// emergency pool), by the errno of the failure. Off the fast path (only a
// failed allocation counts), lock-free (relaxed atomic adds). A fork child
// starts at zero, like the route counts.
enum {
  FB_ENOMEM, FB_ENOSPC, FB_EDQUOT, FB_EFBIG, FB_EIO, FB_EBUSY, FB_EBADF,
  FB_EINVAL, FB_OTHER, FB_REASONS
};
// The name of reason k ("ENOSPC", "other").
extern const char *const route_fb_name[FB_REASONS] SHIM_HIDDEN;
// Counts one fallback of the pool in slot id, for errno err.
void route_stats_fallback(unsigned id, int err) SHIM_HIDDEN;
// The fallbacks of slot id for reason k (k == FB_REASONS: all of them).
uint64_t route_stats_fallbacks(unsigned id, unsigned k) SHIM_HIDDEN;

#endif
