// vmmap.h: the ledger of every address range the library maps.
//
// MMTk's Mmapper lesson: one component owns the address space. Every mapping
// the engine makes goes through here; the ledger knows each reserved range,
// its owner (a pool id, or internal), and refuses any MAP_FIXED that does not
// fall inside a range it reserved itself. Fixed bases are taken with
// MAP_FIXED_NOREPLACE, so an existing mapping is never replaced.
//
// It also keeps the address-to-pool table: one byte per GiB of the 47-bit
// user address space (128 KiB, zero pages until touched), so any address
// finds its pool, or none, with one load.
#ifndef MMPOOL_VMMAP_H
#define MMPOOL_VMMAP_H

#include <stddef.h>
#include <stdint.h>

#define VM_TABLE_SHIFT 30
#define VM_TABLE_SIZE ((size_t)1 << 17)
// The window where base=auto looks for room (PITFALLS 5.5).
#define VM_AUTO_START ((uintptr_t)0x200000000000)
#define VM_AUTO_END ((uintptr_t)0x400000000000)

extern uint8_t vm_table[VM_TABLE_SIZE];

// The id of the pool whose reservation covers the GiB of addr, 0 if none.
// The caller still checks addr against that pool's bounds.
static inline unsigned vmmap_pool_id(uintptr_t addr) {
  return __atomic_load_n(&vm_table[(addr >> VM_TABLE_SHIFT) &
                                   (VM_TABLE_SIZE - 1)],
                         __ATOMIC_RELAXED);
}

// Reserves len bytes (a multiple of 64 KiB) for pool id: at base when base
// is not 0 (1 GiB aligned), else at the first free 1 GiB-aligned place in the
// auto window. -EEXIST with the occupant described in why when base is
// taken; -ENOMEM when the window is full.
int vmmap_reserve_pool(unsigned id, uintptr_t base, size_t len,
                       uintptr_t *out, char *why, size_t why_len);
// Read-write anonymous memory over [addr, addr+len) of an own reservation.
int vmmap_commit(uintptr_t addr, size_t len);
// File pages over [addr, addr+len) of an own reservation.
int vmmap_map_file(uintptr_t addr, size_t len, int fd, uint64_t off,
                   int shared);
// Drops the pages of committed anonymous memory (reads as zeros after).
int vmmap_purge(uintptr_t addr, size_t len);
// Syncs a shared file range.
int vmmap_sync(uintptr_t addr, size_t len);
// Unmaps a whole reservation and forgets it (table entries too).
int vmmap_release(uintptr_t base);
// A read-write anonymous range for process-local state (thread heaps),
// never released; NULL on failure.
void *vmmap_internal(size_t len);
// Zeroed read-write memory for a short task (the configuration parser's
// work area), recorded in the ledger until vmmap_scratch_release; NULL on
// failure (errno untouched).
void *vmmap_scratch(size_t len);
// Unmaps a range vmmap_scratch returned; -EFAULT if it is not one.
int vmmap_scratch_release(void *ptr);

// A fork child's own copy of shared file pages [addr, addr+len) of an own
// range: vmmap_copy_out copies them, in the parent before the fork, into
// fresh private anonymous memory (*copy); the child moves that copy over
// the range (vmmap_copy_in, which also drops it on failure); the parent
// drops its copy after the fork (vmmap_copy_drop).
int vmmap_copy_out(uintptr_t addr, size_t len, uintptr_t *copy);
int vmmap_copy_in(uintptr_t copy, size_t len, uintptr_t addr);
void vmmap_copy_drop(uintptr_t copy, size_t len);

// Fork: the child inherits the ledger; its lock is re-initialised.
void vmmap_lock(void);
void vmmap_unlock(void);
void vmmap_child_reset(void);

#endif
