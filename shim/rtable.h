// rtable.h: a routing table of the preload library (route.h tells how
// they are used): for one thread and one class of callers, the pool id and
// the route of each size, and the blocks the fast path handed out.
#ifndef MMPOOL_RTABLE_H
#define MMPOOL_RTABLE_H

#include <stdint.h>

#include "shim.h"

#define ROUTE_NSIZES (SC_DIRECT_MAX + 1) // sizes with their own entry
#define ROUTE_DEFAULT CONFIG_MAX_ROUTES // "no route matched": the default
#define ROUTE_NONE 0xff                // no route known: slow path

// Pool ids are 1..MMPOOL_MAX_POOLS: 0 in a table means "ask the slow path"
// (a table that is empty, or a class cut twice by routes).
_Static_assert(MMPOOL_MAX_POOLS < 256, "pool ids are stored in a byte");

// Layout: the tables come page-aligned from the engine's arena, like the
// slabs whose first blocks every program uses most. A load that follows a
// store to an address a multiple of 4096 bytes away waits for that store
// (4K aliasing), so the entries of the smallest sizes (pid, count) are put
// in the second half of the page, after the cold fields: a page-aligned
// table ran the bench's 16-byte pair 20 % slower than the same table at
// another offset.
struct rtable {
  uint8_t route[ROUTE_NSIZES];  // route index or ROUTE_DEFAULT
  // Size classes above SC_DIRECT_MAX (the slow path's first lane; entries
  // of smaller classes are unused), in two parts: sizes <= ccut[c], and
  // the others. Without a route boundary inside the class both parts are
  // the same.
  uint32_t ccut[SC_COUNT];
  uint8_t cpid[SC_COUNT][2];
  uint8_t croute[SC_COUNT][2];
  uint64_t ccount[SC_COUNT][2];
  uint64_t lib_mask;            // bit i: lib= route i matches the caller
  struct rtable *next_free;     // recycled tables
  int recycled;                 // from the table arena, not tl_route
  uint8_t pid[ROUTE_NSIZES];    // pool id by size (0: slow path); fast path
  uint64_t count[ROUTE_NSIZES]; // blocks the fast path handed out, by size
};

#endif
