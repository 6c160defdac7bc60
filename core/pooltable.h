// pooltable.h: the open pools of the process, by id and by address.
//
// An open pool is a struct mmpool (the public mmpool_t), process-local:
// nothing of it is in the pool's memory. Pools live in pool_table[id], id
// 1..MMPOOL_MAX_POOLS; the address-space ledger's table (vmmap.h) maps any
// address to the id of the pool reserved there, so pool_of_addr is two
// loads. Entry 0 is a permanent empty pool: an address no pool owns lands
// on bounds that fail, so the fast paths need no NULL test.
//
// pool.c opens and closes the entries; the heap and page layers only read
// them, and so sit below pool.c.
#ifndef MMPOOL_POOLTABLE_H
#define MMPOOL_POOLTABLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "mmpool.h"
#include "poolfile.h"
#include "spec.h"
#include "vmmap.h"

enum { POOL_CLOSED = 0, POOL_OPEN = 1 };

struct mmpool {
  // --- read by the fast paths -----------------------------------------
  uintptr_t base;        // address of the header
  uintptr_t data;        // base + data_off
  size_t data_len;       // committed data bytes (grows; relaxed atomic)
  struct pdesc *desc;    // base + desc_off
  unsigned id;           // index in pool_table
  uint32_t gen;          // bumped at each open of this slot
  // --- everything else -------------------------------------------------
  int state;             // POOL_*
  struct poolfile_header *hdr;
  pthread_mutex_t lock;  // spans, avail lists, growth, roots
  int fd;                // file pools, else -1
  int is_file, shared;   // file pool; mapped MAP_SHARED
  int fork_frozen;       // a shared file pool seen from a fork child
  int spec_full, spec_brk;
  uint64_t capacity;
  uint64_t dev, ino;      // file pools: the file's identity
  size_t meta_mapped;    // descriptor bytes mapped, from desc_off
  // Data pages held by slabs and large blocks: now, and at most since the
  // pool was opened (pool lock).
  uint32_t pages_used, pages_peak;
  char name[MMPOOL_NAME_MAX + 1];
  char path[SPEC_PATH_MAX];
};

extern struct mmpool pool_table[MMPOOL_MAX_POOLS + 1] HIDDEN;

// The open pool that owns address a (its reservation), or NULL.
static inline struct mmpool *pool_of_addr(uintptr_t a) {
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  return a - p->base < p->capacity && p->state == POOL_OPEN ? p : NULL;
}

#endif
