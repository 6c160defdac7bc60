// module.h: the module table of the preload library (module.c): which
// loaded module a return address belongs to, and which lib= routes its
// name matches (its class).
#ifndef MMPOOL_MODULE_H
#define MMPOOL_MODULE_H

#include <stdint.h>

#include "got.h"
#include "shim.h"

// Distinct lib= match sets (classes) the table tells apart; class 0 is
// "no lib= route matches".
#define ROUTE_MAX_CLASSES 64

// Builds the table (and patches GOT slots with entries). Called once, when
// lib= routes are configured, at the end of initialisation.
void module_init(const struct got_entries *entries) SHIM_HIDDEN;
// The lib= routes matching the caller at ra: its class, and whether its
// module has GOT slots not bound yet. Rebuilds the table when ra is in no
// known module and the loader's counters moved. Returns -1 when it could
// not be known now (the caller must not cache the answer), else 0.
int module_caller_class(uintptr_t ra, unsigned *cls, int *unbound)
    SHIM_HIDDEN;
// Bit i set: lib= route i matches the modules of class cls.
uint64_t module_class_mask(unsigned cls) SHIM_HIDDEN;
// got_patch once more for the module holding ra, which had slots not bound
// yet: a call from it just reached the exported functions, so the loader
// may have bound one since.
void module_repatch(uintptr_t ra, unsigned cls) SHIM_HIDDEN;
// A module was unloaded (dlclose): the table is rebuilt before it is
// trusted again.
void module_table_stale(void) SHIM_HIDDEN;

#endif
