// pool.h: the lifecycle of pools (pool.c): open (create or attach a file),
// sync, close, the default pool, and fork.
#ifndef MMPOOL_POOL_H
#define MMPOOL_POOL_H

#include "compiler.h"
#include "pooltable.h"
#include "spec.h"

// Opens or attaches; the pool handle or a negative errno with the reason
// recorded by log_fail.
int pool_open(const char *name, const struct pool_spec *sp,
              struct mmpool **out) HIDDEN;
int pool_close(struct mmpool *p) HIDDEN;
int pool_sync(struct mmpool *p) HIDDEN;
// The default pool, opened (anonymous, built-in) on first use; NULL when
// it cannot be.
struct mmpool *pool_default(void) HIDDEN;
// Makes p the default pool (the preload library's configured default).
void pool_set_default(struct mmpool *p) HIDDEN;
struct mmpool *pool_by_name(const char *name) HIDDEN;
// Data bytes above p's top (page_room), read under p's lock: a large
// block of that size is sure to fit. 0 when p is closed.
size_t pool_room(struct mmpool *p) HIDDEN;
// Root updates re-seal the header. pre: p->lock.
void pool_seal(struct mmpool *p) HIDDEN;
void pool_fork_prepare(void) HIDDEN;
void pool_fork_parent(void) HIDDEN;
void pool_fork_child(void) HIDDEN;

#endif
