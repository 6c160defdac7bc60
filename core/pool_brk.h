// pool_brk.h: the program break a pool keeps (pool_brk.c).
//
// The preload library's sbrk region in a file pool is one large block of
// that pool, and the pool's header records where the break is
// (poolfile.h: st.brk_start, st.brk_cur, pool offsets), so that the next
// run of the program on the same file finds its break again. The record is
// outside the header checksum and comes from a file: it is trusted only
// once it names a region the way the preload library lays one out, inside
// a live large block of the pool.
#ifndef MMPOOL_POOL_BRK_H
#define MMPOOL_POOL_BRK_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "pooltable.h"

// The region starts this far into its block, so that no break address is
// the start of a block (a stray free() of one is a misuse, not a free of
// the region).
#define POOL_BRK_SKIP ((uintptr_t)4096)

// A break region, as addresses in the mapped pool.
struct pool_brk {
  uintptr_t block;      // the large block holding it
  uintptr_t start, cur; // the region's first byte, the break
  uintptr_t end;        // the block's end: the break's limit
};

// The region p's header records, checked: 0 and *out; -ENOENT when none is
// recorded; -EUCLEAN with a one-line reason in why[0..why_len) when the
// record names no such region (its start is not POOL_BRK_SKIP into a live
// large block of p, or the break lies outside that block).
// pre: p open; its lock not held.
int pool_brk_get(struct mmpool *p, struct pool_brk *out, char *why,
                 size_t why_len) HIDDEN;

// Records the region [start, ...) and the break cur in p's header (0, 0:
// none). A store into the header's state, which the checksum does not
// cover: it may be called at every move of the break. Nothing is written
// when p is frozen (its file is not this process's to change).
// pre: start and cur in p's committed data, or both 0.
void pool_brk_set(struct mmpool *p, uintptr_t start, uintptr_t cur) HIDDEN;

#endif
