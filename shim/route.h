// route.h: which pool each allocation of the preload library goes to.
//
// The routes of the configuration (size=, lib=, thread=) are tried in
// order; the first that matches names the pool, else the default pool. The
// slow path evaluates them; malloc's fast path never does: it reads the pool
// id of its exact size (n <= SC_DIRECT_MAX) from a table made for the
// calling thread and, with lib= routes, for the calling module:
//
//   - no lib= route: the thread's table tl_route.tab0, one indexed load;
//     and for the sizes below route_main_limit, which tab0 sends to one
//     pool, not even that: the engine's main heap of the thread
//     (heap_set_main, heap_try_main), which tab0's filling names;
//   - lib= routes: the exported malloc does not read tab0; the return
//     address of malloc picks the table through a per-thread cache of 256
//     return addresses (tl_route.rc, indexed by the low byte of the
//     address; one compare), filled by the slow path from the
//     table of loaded modules (dl_iterate_phdr; rebuilt when an address is
//     in no known module and the loader's counters moved, and after every
//     dlclose, which this library wraps). Modules whose PLT calls malloc
//     and calloc are sent to entry points made for their class instead
//     (got.c), which read their table from a fixed place: tab0 for class 0,
//     tl_ctab[k] for class k < GOT_CLASSES.
//
// A table holds, per size up to SC_DIRECT_MAX, the pool id, the route taken
// and the number of blocks the fast path handed out (which the MMPOOL_STATS
// report adds up), so that any size boundary of a route is exact at no cost.
// The size classes above (up to SC_SMALL_MAX), which the slow path's first
// lane serves, are held per class, each in two parts split at one size, so
// that one route boundary inside a class costs a compare; a class that two
// boundaries cut takes the full slow path. Every table is made for one
// thread name (thread= routes) and one "class" of modules: the set of lib=
// routes a module matches. They are refilled when the thread's name
// changes, and when a pool they name was closed through the API (then the
// slow path sees the closed pool and refills).
//
// Invariant: a table only ever names a pool that was open when it was
// filled; memory of a table is never returned to the system, so a stale
// entry read by a racing thread is still a valid table (routing is then
// late by one call, never unsafe).
#ifndef MMPOOL_ROUTE_H
#define MMPOOL_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "got.h"
#include "route_stats.h"
#include "rtable.h"
#include "shim.h"

#define ROUTE_RA_CACHE 256 // return addresses cached per thread

// lib= routes are configured.
extern int route_by_lib SHIM_HIDDEN;
// Sizes below this take tab0 on malloc's fast path: SC_DIRECT_MAX + 1
// without lib= routes, 0 with them.
extern size_t route_tab0_limit SHIM_HIDDEN;
// Sizes below this take the thread's main heap on malloc's fast path
// (heap_try_main): the sizes below the first size boundary of a size=
// route, up to SC_DIRECT_MAX + 1, which every table sends to one pool (the
// table's pid[0], made the main heap whenever tab0 is filled); 0 with lib=
// routes.
extern size_t route_main_limit SHIM_HIDDEN;
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
  // The table without lib= routes; with them, the table of class 0
  // (callers that no lib= route matches), which the exported malloc does
  // not read but the class-0 entry point does.
  struct rtable tab0;
  struct rcache rc; // with lib= routes
};
extern __thread struct tl_route tl_route SHIM_HIDDEN;
// The table of class k (1 <= k < GOT_CLASSES) for its entry points,
// or route_empty_table before the thread has one. Apart from tl_route,
// which then needs no initial image (each new thread gets its TLS zeroed,
// not copied).
extern __thread struct rtable *tl_ctab[GOT_CLASSES] SHIM_HIDDEN;
// A table with no pool (every size asks the slow path).
extern struct rtable route_empty_table SHIM_HIDDEN;

// Entry points by class (preload.c): malloc and calloc for callers of
// class k, which got.c puts into the GOT slots of the modules of class k.
extern void *const route_malloc_entry[GOT_CLASSES] SHIM_HIDDEN;
extern void *const route_calloc_entry[GOT_CLASSES] SHIM_HIDDEN;

// Called once at the end of initialisation, when the pools are open;
// entries: the entry points (and exported functions) that got.c writes
// into modules' GOT slots for lib= routes.
void route_init(const struct got_entries *entries) SHIM_HIDDEN;

// Whether p is open and still the pool its slot held when route_init ran
// (not another pool the program opened there since): routes may use it,
// and the report counts it as configured.
int route_pool_ok(const struct mmpool *p) SHIM_HIDDEN;
// 1 when tab0's lane for pool id still says where this thread's blocks go,
// so that a block may come from that pool's slow path without routing
// again: the thread's tables are filled, no thread= route exists (the
// thread's name may have changed since), and the pool is the one they were
// made for (route_pool_ok).
int route_lane_ok(unsigned id) SHIM_HIDDEN;

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

// Adds up every thread's counts. Takes the registry lock unless this thread
// holds an engine lock (then the live threads' counts are left out; 0 is
// returned instead of 1).
int route_totals(struct route_totals *out) SHIM_HIDDEN;

#endif
