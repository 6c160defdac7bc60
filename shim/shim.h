// shim.h: what the parts of the preload library share.
//
// The files, leaves first: each uses only those listed before it (no
// circles; the ctest lint_layers checks):
//   settings.c  the configuration, loaded once before malloc works, and the
//               configured pools, opened then; read-only after
//   got.c       the lib= shortcut: GOT slots of malloc and calloc
//   module.c    the module table: return address -> module -> lib= class
//   rtable.h    a routing table's layout
//   route_stats.c  the counts per route (blocks, bytes, exited threads')
//   route.c     per-thread routing tables, the routing slow path
//   stats.c     the MMPOOL_STATS report at exit
//   life.c      exit and exec: the file pools let go, consistent
//   snap.c      the snapshots the configuration asks for (signal,
//               interval: a thread of ours; exit: life.c's hook)
//   preload.c   initialisation and the malloc family (the exported entry
//               points), over core's fast path (core/heap.h)
//   brk.c       the emulated program break
// The shim decides which pool a block goes to; core allocates in it.
#ifndef MMPOOL_SHIM_H
#define MMPOOL_SHIM_H

#include "config.h"
#include "heap.h"
#include "pool.h"

#define SHIM_HIDDEN __attribute__((visibility("hidden")))

extern struct mmpool_config shim_cfg SHIM_HIDDEN;
// The open pool of each configured pool (index as in shim_cfg.pools), or
// NULL where it could not be opened.
extern struct mmpool *shim_cfg_pool[CONFIG_MAX_POOLS] SHIM_HIDDEN;
// The errno of each configured pool that could not be opened (0: open).
extern int shim_cfg_open_error[CONFIG_MAX_POOLS] SHIM_HIDDEN;

// settings.c: loads the configuration into shim_cfg and opens its pools
// (shim_cfg_pool), the configured default becoming the default pool.
// Reports every error on the log; stops the program under MMPOOL_STRICT.
void settings_load(void) SHIM_HIDDEN;
// stats.c: called at the end of initialisation when shim_cfg.stats is set;
// prepares the report printed at exit (a private copy of stderr).
void shim_stats_start(void) SHIM_HIDDEN;
// life.c: called at exit (and _exit) before the file pools are let go;
// NULL when unused (snap.c sets it).
extern void (*life_exit_hook)(void) SHIM_HIDDEN;
// snap.c: after initialisation (the preload library's constructor): the
// signal handler and the snapshot thread, when the configuration asks for
// them, and life_exit_hook for the snapshot at exit (taken by the
// configuration's process only).
void snap_start(void) SHIM_HIDDEN;
// preload.c: initialises the preload library now if no allocation has
// (brk.c: a program may call sbrk before any malloc).
void shim_start(void) SHIM_HIDDEN;

#endif
