// got.h: the lib= shortcut (got.c): a module's GOT slots of malloc and
// calloc pointed at the entry points made for the module's class.
#ifndef MMPOOL_GOT_H
#define MMPOOL_GOT_H

#include "shim.h"

// Classes (sets of matching lib= routes) with their own entry points.
#define GOT_CLASSES 8

// What got_patch writes, and what a slot must hold to be rewritten: given
// by the preload library's initialisation (preload.c), which defines them.
struct got_entries {
  void *malloc_exported, *calloc_exported; // the exported malloc, calloc
  void *const *malloc_entry;               // [GOT_CLASSES]
  void *const *calloc_entry;               // [GOT_CLASSES]
};

// Points the GOT slots of malloc and calloc of the module info (named
// name, of class cls) that the loader bound to this library at the class's
// entry points. Returns 1 when such a slot is not bound yet (lazy binding),
// so that a later call may patch it. Call from a dl_iterate_phdr callback.
struct dl_phdr_info;
int got_patch(const struct dl_phdr_info *info, const char *name,
              unsigned cls, const struct got_entries *e) SHIM_HIDDEN;

#endif
