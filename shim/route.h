// route.h: which pool each allocation of the preload library goes to.
//
// The routes of the configuration (size=, lib=, thread=) are tried in
// order; the first that matches names the pool, else the default pool. The
// slow path evaluates them; malloc's fast path never does: it reads the pool
// of its size slot ((n + 15) >> 4, n <= SC_DIRECT_MAX) from a table made for
// the calling thread and, with lib= routes, for the calling module:
//
//   - no lib= route: the thread's table tl_route.tab0, one indexed load;
//   - lib= routes: tab0 stays empty (every slot NULL), and the return
//     address of malloc picks the table through a per-thread cache of 256
//     return addresses (tl_route.rc, indexed by the low byte of the
//     address; one compare), filled by the slow path from the
//     table of loaded modules (dl_iterate_phdr; rebuilt when an address is
//     in no known module and the loader's counters moved, and after every
//     dlclose, which this library wraps).
//
// A table holds, per slot, the pool, the route taken (sizes of a slot that
// two routes split take the slow path: pool NULL) and the number of blocks
// the fast path handed out, which the MMPOOL_STATS report adds up; and the
// same per size class, which the slow path reads first for sizes up to
// SC_SMALL_MAX. A route boundary that is not a multiple of 16 splits one
// slot (and its class): those 16 sizes always take the full slow path. Every
// table is made for one thread name (thread= routes) and one "class" of
// modules: the set of lib= routes a module matches. They are refilled when
// the thread's name changes, and when a pool they name was closed through
// the API (then the slow path sees the closed pool and refills).
//
// Invariant: a table only ever names a pool that was open when it was
// filled; memory of a table is never returned to the system, so a stale
// entry read by a racing thread is still a valid table (routing is then
// late by one call, never unsafe).
#ifndef MMPOOL_ROUTE_H
#define MMPOOL_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "shim.h"

#define ROUTE_NSLOTS (SC_DIRECT_MAX / 16 + 1)
#define ROUTE_DEFAULT CONFIG_MAX_ROUTES // "no route matched": the default
#define ROUTE_SPLIT 0xff               // slot split by routes: slow path
#define ROUTE_RA_CACHE 256             // return addresses cached per thread
#define ROUTE_MAX_CLASSES 64           // distinct lib= match sets

struct rtable {
  struct mmpool *pool[ROUTE_NSLOTS]; // read by malloc's fast path
  uint64_t count[ROUTE_NSLOTS];      // blocks the fast path handed out
  // The same by size class, for sizes above SC_DIRECT_MAX (the slow
  // path's first lane; entries of smaller classes are unused).
  struct mmpool *cpool[SC_COUNT];
  uint64_t ccount[SC_COUNT];
  uint8_t route[ROUTE_NSLOTS];       // route index, ROUTE_DEFAULT, ROUTE_SPLIT
  uint8_t croute[SC_COUNT];
  uint64_t lib_mask;                 // bit i: lib= route i matches the caller
  struct rtable *next_free;          // recycled tables
  int recycled;                      // from the table arena, not tl_route
};

// lib= routes are configured.
extern int route_by_lib SHIM_HIDDEN;
// Sizes below this take tab0 on malloc's fast path: SC_DIRECT_MAX + 1
// without lib= routes, 0 with them.
extern size_t route_tab0_limit SHIM_HIDDEN;
// The return-address cache: tab[i] serves the caller at ra[i] (i: the low
// byte of the address; 0: empty). One thread-local object, so that the fast
// path finds both arrays from one TLS offset.
struct rcache {
  uintptr_t ra[ROUTE_RA_CACHE];
  struct rtable *tab[ROUTE_RA_CACHE];
};
// What malloc's fast path reads, in one thread-local object so that one
// TLS offset finds it all.
struct tl_route {
  struct rtable tab0; // the table without lib= routes; else all NULL
  struct rcache rc;   // with lib= routes
};
extern __thread struct tl_route tl_route SHIM_HIDDEN;

// Called once at the end of initialisation, when the pools are open.
void route_init(void) SHIM_HIDDEN;

// Whether p is open and still the pool its slot held when route_init ran
// (not another pool the program opened there since): routes may use it,
// and the report counts it as configured.
int route_pool_ok(const struct mmpool *p) SHIM_HIDDEN;

// The slow path: the pool for n bytes asked from return address ra by this
// thread (def: the default pool). *route receives the route index (or
// ROUTE_DEFAULT) for route_count.
struct mmpool *route_pick(size_t n, uintptr_t ra, struct mmpool *def,
                          unsigned *route) SHIM_HIDDEN;
// Counts a block of n bytes (align: the alignment asked, or 0) served by
// the slow path for route r; fell_back: the route's pool was full and the
// default pool took it.
void route_count(unsigned r, size_t n, size_t align, int fell_back)
    SHIM_HIDDEN;

// After a dlclose: the module table is rebuilt, every thread's cache
// emptied.
void route_modules_changed(void) SHIM_HIDDEN;

// Cumulative counts since start, per route index (ROUTE_DEFAULT included):
// blocks and bytes (in whole blocks of their class; large blocks in 64 KiB
// pages), and those of them that the default pool took because the route's
// pool was full.
struct route_totals {
  uint64_t n[ROUTE_DEFAULT + 1], bytes[ROUTE_DEFAULT + 1];
  uint64_t fb_n[ROUTE_DEFAULT + 1], fb_bytes[ROUTE_DEFAULT + 1];
};
// Adds up every thread's counts. Takes the registry lock unless this thread
// holds an engine lock (then the live threads' counts are left out; 0 is
// returned instead of 1).
int route_totals(struct route_totals *out) SHIM_HIDDEN;

#endif
