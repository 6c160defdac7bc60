// route_stats.c: the counts behind the MMPOOL_STATS report's route lines
// (route_stats.h): blocks and bytes per route, from the routing tables' fast-path
// counters, the slow path's per-thread counts, and the counts of threads
// that have exited ("gone", kept with atomic adds so that exiting threads
// and the report need no lock between them). route.c owns the threads and
// their tables; stats.c prints.
#include <errno.h>
#include <string.h>

#include "route_stats.h"

static struct route_totals gone;

// Block size of the class that serves n <= SC_DIRECT_MAX bytes.
static uint64_t direct_bytes(size_t n) {
  return sc_table[sc_direct[(n + 15) >> 4]].bsize;
}

static void add_gone(unsigned r, uint64_t n, uint64_t bytes, uint64_t fb_n,
                     uint64_t fb_bytes) {
  __atomic_fetch_add(&gone.n[r], n, __ATOMIC_RELAXED);
  __atomic_fetch_add(&gone.bytes[r], bytes, __ATOMIC_RELAXED);
  __atomic_fetch_add(&gone.fb_n[r], fb_n, __ATOMIC_RELAXED);
  __atomic_fetch_add(&gone.fb_bytes[r], fb_bytes, __ATOMIC_RELAXED);
}

void route_stats_add_gone(unsigned r, uint64_t b, int fell_back) {
  add_gone(r, 1, b, fell_back ? 1 : 0, fell_back ? b : 0);
}

void route_stats_table(const struct rtable *t, struct route_totals *c) {
  for (unsigned n = 0; n < ROUTE_NSIZES; n++) {
    uint64_t k = __atomic_load_n(&t->count[n], __ATOMIC_RELAXED);
    if (!k || t->route[n] > ROUTE_DEFAULT) continue;
    c->n[t->route[n]] += k;
    c->bytes[t->route[n]] += k * direct_bytes(n);
  }
  for (unsigned k = 0; k < SC_COUNT; k++)
    for (unsigned part = 0; part < 2; part++) {
      uint64_t m = __atomic_load_n(&t->ccount[k][part], __ATOMIC_RELAXED);
      unsigned r = t->croute[k][part];
      if (!m || r > ROUTE_DEFAULT) continue;
      c->n[r] += m;
      c->bytes[r] += m * sc_table[k].bsize;
    }
}

void route_stats_zero(struct rtable *t) {
  memset(t->count, 0, sizeof t->count);
  memset(t->ccount, 0, sizeof t->ccount);
}

void route_stats_fold(struct rtable *t, struct route_totals *c) {
  route_stats_table(t, c);
  route_stats_zero(t);
}

void route_stats_sum(struct route_totals *to, const struct route_totals *c) {
  for (unsigned r = 0; r <= ROUTE_DEFAULT; r++) {
    to->n[r] += __atomic_load_n(&c->n[r], __ATOMIC_RELAXED);
    to->bytes[r] += __atomic_load_n(&c->bytes[r], __ATOMIC_RELAXED);
    to->fb_n[r] += __atomic_load_n(&c->fb_n[r], __ATOMIC_RELAXED);
    to->fb_bytes[r] += __atomic_load_n(&c->fb_bytes[r], __ATOMIC_RELAXED);
  }
}

void route_stats_retire(struct route_totals *c) {
  for (unsigned r = 0; r <= ROUTE_DEFAULT; r++)
    add_gone(r, c->n[r], c->bytes[r], c->fb_n[r], c->fb_bytes[r]);
  memset(c, 0, sizeof *c);
}

void route_stats_gone(struct route_totals *out) { route_stats_sum(out, &gone); }

// Fallbacks by pool slot and reason (route_stats.h).
static uint64_t fallbacks[MMPOOL_MAX_POOLS + 1][FB_REASONS];

const char *const route_fb_name[FB_REASONS] = {
    "ENOMEM", "ENOSPC", "EDQUOT", "EFBIG", "EIO",
    "EBUSY",  "EBADF",  "EINVAL", "other"};

static unsigned fb_reason(int err) {
  switch (err) {
  case ENOMEM: return FB_ENOMEM;
  case ENOSPC: return FB_ENOSPC;
  case EDQUOT: return FB_EDQUOT;
  case EFBIG: return FB_EFBIG;
  case EIO: return FB_EIO;
  case EBUSY: return FB_EBUSY;
  case EBADF: return FB_EBADF;
  case EINVAL: return FB_EINVAL;
  }
  return FB_OTHER;
}

RARE void route_stats_fallback(unsigned id, int err) {
  if (id > MMPOOL_MAX_POOLS) return;
  __atomic_fetch_add(&fallbacks[id][fb_reason(err)], 1, __ATOMIC_RELAXED);
}

uint64_t route_stats_fallbacks(unsigned id, unsigned k) {
  if (id > MMPOOL_MAX_POOLS) return 0;
  if (k < FB_REASONS) return __atomic_load_n(&fallbacks[id][k],
                                             __ATOMIC_RELAXED);
  uint64_t n = 0;
  for (k = 0; k < FB_REASONS; k++)
    n += __atomic_load_n(&fallbacks[id][k], __ATOMIC_RELAXED);
  return n;
}

void route_stats_forget_gone(void) {
  memset(&gone, 0, sizeof gone);
  memset(fallbacks, 0, sizeof fallbacks);
}
