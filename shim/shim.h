// shim.h: what the parts of the preload library share.
//
// preload.c owns initialisation and the malloc family; brk.c the emulated
// program break; stats.c the MMPOOL_STATS report at exit. The
// configuration is loaded once, before malloc works, and never changes.
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

// stats.c: called at the end of initialisation when shim_cfg.stats is set;
// prepares the report printed at exit (a private copy of stderr).
void shim_stats_start(void) SHIM_HIDDEN;
// brk.c: called during initialisation, after the pools are open.
void shim_brk_init(void) SHIM_HIDDEN;

#endif
