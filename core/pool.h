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
// Exit and exec (docs/engine.md, "Exit, exec and fork"): every shared file
// pool this process owns is made consistent in its file (thread heaps
// given up, metadata checksum, marked clean, written and synced) and let
// go (unlocked, then frozen: readable, serving nothing). when: "exit" or
// "exec", for the one line said when a pool cannot be made consistent
// (other threads still running, a failed write): it stays marked unclean.
// Does nothing in a vfork child. Returns the pools let go.
unsigned pool_release_files(const char *when) HIDDEN;
// After an exec that failed: takes back the pools pool_release_files let go.
void pool_reclaim_files(void) HIDDEN;
// One instant for the whole set of pools (fork, snapshots): the allocator
// frozen, the registry and every open pool locked, and a private copy of
// each shared file pool made (p->fork_meta, p->fork_data: a copy of the
// process made now sees them at this instant; the pool's own pages are
// the file's, shared with every later change). pool_unhold_all drops the
// copies and lets go in the reverse order.
void pool_hold_all(void) HIDDEN;
void pool_unhold_all(void) HIDDEN;
void pool_fork_prepare(void) HIDDEN;
void pool_fork_parent(void) HIDDEN;
void pool_fork_child(void) HIDDEN;

#endif
