// pooltable.h: the open pools of the process, by id and by address.
//
// An open pool is a struct mmpool, process-local: nothing of it is in the
// pool's memory. The public mmpool_t * is not a pointer to it but a handle
// (pool_handle) that names the entry and the open it was made by, so a
// handle kept past mmpool_close is refused (EBADF) even after another pool
// reuses the entry. Pools live in pool_table[id], id
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

// Why a pool is frozen: its memory stays mapped and readable, but it serves
// no allocation (EBUSY) and ignores frees (data_len is 0, so every free
// takes the slow path), because the file is not this process's to change.
enum {
  FROZEN_NONE = 0,
  FROZEN_FORK = 1,     // a fork child that could not copy a shared file pool
  FROZEN_RELEASED = 2, // the file was let go at exit or before an exec
};

struct mmpool {
  // --- read by the fast paths -----------------------------------------
  uintptr_t base;        // address of the header
  uintptr_t data;        // base + data_off
  size_t data_len;       // committed data bytes (grows; relaxed atomic)
  // The data bytes whose descriptors the free fast path may read: checked,
  // or written by this process (page.c, "Lazy attach"); at most data_len.
  // Equal to it but in an attached file whose descriptors are still being
  // checked; 0 when data_len is (relaxed atomic).
  size_t fast_len;
  size_t reserved;       // reserved bytes from base (grows; relaxed atomic)
  struct pdesc *desc;    // base + desc_off
  unsigned id;           // index in pool_table
  uint32_t gen;          // bumped at each open of this slot
  uintptr_t handle;      // the public handle while open, else 0
  // --- everything else -------------------------------------------------
  int state;             // POOL_*
  struct poolfile_header *hdr;
  pthread_mutex_t lock;  // spans, avail lists, growth, roots
  int fd;                // file pools, else -1
  int is_file, shared;   // file pool; mapped MAP_SHARED
  int frozen;            // FROZEN_*: no allocation, no byte changed
  int fork_copy;         // a fork child's copy of a shared file pool
  uintptr_t fork_meta, fork_data; // during a fork: the child's copies
  size_t frozen_len;     // data_len when frozen (blocks stay readable)
  int spec_full, spec_brk;
  int thp;               // thp=yes: huge pages asked for the reserved range
  uint64_t capacity;
  uint64_t dev, ino;      // file pools: the file's identity
  size_t meta_mapped;    // descriptor bytes mapped, from desc_off
  // Data pages held by slabs and large blocks, taken less given back since
  // the pool was opened, and the most that ever was (pool lock). Relative:
  // an attached file's own pages are not counted at attach (page_stats
  // counts them and adds them to both).
  int64_t pages_used, pages_peak;
  char name[MMPOOL_NAME_MAX + 1];
  char path[SPEC_PATH_MAX];
  // A power-of-two size, so that the free fast path finds pool_table[id]
  // with a shift (an odd size costs a multiply or three instructions).
} __attribute__((aligned(8192)));
_Static_assert(sizeof(struct mmpool) == 8192,
               "struct mmpool outgrew its 8 KiB: raise the alignment");

extern struct mmpool pool_table[MMPOOL_MAX_POOLS + 1] HIDDEN;

// Public handles. The value is POOL_HANDLE_TAG | gen << 6 | id: it compares
// equal for every handle of one open (mmpool_get, mmpool_of, ...), differs
// between two opens of one entry (until gen wraps after 2^32 opens of the
// entry), and with bit 63 set it is a kernel address, so a program that
// dereferences one faults at once instead of reading the table.
#define POOL_HANDLE_TAG ((uintptr_t)1 << 63)
#define POOL_HANDLE_ID_MASK ((uintptr_t)63)  // MMPOOL_MAX_POOLS + 1 entries

static inline uintptr_t pool_handle_make(unsigned id, uint32_t gen) {
  return POOL_HANDLE_TAG | (uintptr_t)gen << 6 | id;
}

// The public handle of an open pool.
static inline mmpool_t *pool_handle(const struct mmpool *p) {
  return (mmpool_t *)p->handle;
}

// The open pool a handle names, or NULL for a stale handle (its pool was
// closed, even if its entry was opened again since) or any other value.
// One load: entry 0 and closed entries have handle 0.
static inline struct mmpool *pool_from_handle(const mmpool_t *h) {
  uintptr_t v = (uintptr_t)h;
  struct mmpool *p = &pool_table[v & POOL_HANDLE_ID_MASK];
  return likely(v != 0 &&
                __atomic_load_n(&p->handle, __ATOMIC_ACQUIRE) == v)
             ? p
             : NULL;
}

// The open pool that owns address a (the reserved part of its range), or
// NULL. Past the reserved part, the rest of the capacity belongs to no pool
// (another mapping may sit there, in the pool's last table GiB).
static inline struct mmpool *pool_of_addr(uintptr_t a) {
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  return a - p->base < __atomic_load_n(&p->reserved, __ATOMIC_RELAXED) &&
                 p->state == POOL_OPEN
             ? p
             : NULL;
}

#endif
