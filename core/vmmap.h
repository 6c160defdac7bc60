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

// Pools reserve their address range as they grow (docs/engine.md, "Address
// space"): the ledger records each pool's capacity and the reserved part,
// [base, base+reserved), which starts at the base and grows in place at its
// end. The address table marks each GiB the reserved part touches.
#define VM_GROW_UNIT ((size_t)64 << 20)  // reservations grow in these
#define VM_GROW_MAX ((size_t)1 << 30)    // at most this much ahead
#define VM_GROW_LIMITED ((size_t)2 << 20)  // ... under a finite RLIMIT_AS
#define VM_FIRST ((size_t)64 << 20)      // a pool's first reservation

// Reserves the first `first` bytes of a pool of capacity cap (multiples of
// 64 KiB, first <= cap) for pool id: at base when base is not 0 (1 GiB
// aligned), else at the first 1 GiB-aligned place of the auto window whose
// whole capacity is free. When the kernel refuses (-ENOMEM: RLIMIT_AS, or
// no address space), first is halved down to min_first before giving up;
// *got_len receives the bytes reserved. -EEXIST with the occupant described
// in why when something is mapped in [base, base+cap); -ENOMEM when the
// window has no room or the kernel refused even min_first.
int vmmap_reserve_pool(unsigned id, uintptr_t base, size_t cap, size_t first,
                       size_t min_first, uintptr_t *out, size_t *got_len,
                       char *why, size_t why_len);
// Extends the reserved part of the pool at base, in place, so that it covers
// [base, base+upto) (upto <= its capacity); *reserved receives its new
// length, which may be more (growth goes by VM_GROW_UNIT, ahead by up to
// VM_GROW_MAX; under a finite RLIMIT_AS by VM_GROW_LIMITED, nothing
// ahead). Never maps over anything: -ENOMEM with why naming the
// mapping in the way, or the address-space limit that refused it.
int vmmap_grow_pool(uintptr_t base, size_t upto, size_t *reserved, char *why,
                    size_t why_len);
// Read-write anonymous memory over [addr, addr+len) of an own reservation.
int vmmap_commit(uintptr_t addr, size_t len);
// File pages over [addr, addr+len) of an own reservation.
int vmmap_map_file(uintptr_t addr, size_t len, int fd, uint64_t off,
                   int shared);
// Drops the pages of committed anonymous memory (reads as zeros after).
int vmmap_purge(uintptr_t addr, size_t len);
// The same by MADV_FREE: the kernel may take the pages later, under memory
// pressure; until then they keep their bytes.
int vmmap_purge_lazy(uintptr_t addr, size_t len);
// Syncs a shared file range.
int vmmap_sync(uintptr_t addr, size_t len);
// Asks for transparent huge pages in an own range (thp=yes): a copy of the
// process (fork, a snapshot's writer) then copies one page-table entry per
// 2 MiB instead of 512. Best effort.
int vmmap_advise_huge(uintptr_t addr, size_t len);
// Unmaps a pool's reserved part and forgets it (table entries too).
int vmmap_release(uintptr_t base);
// A read-write anonymous range for process-local state (thread heaps),
// never released; NULL on failure.
void *vmmap_internal(size_t len);
// Zeroed read-write memory for a short task (the configuration parser's
// work area) or one open of a pool (page.c's record of checked slabs),
// recorded in the ledger until vmmap_scratch_release; NULL on failure
// (errno untouched).
void *vmmap_scratch(size_t len);
// Unmaps a range vmmap_scratch returned; -EFAULT if it is not one.
int vmmap_scratch_release(void *ptr);
// A private (copy-on-write) mapping of [0, len) of file fd anywhere,
// read-only unless writable, zeros past file_len, recorded until
// vmmap_view_release: a pool file read by the tool, no pool of this
// process, or a snapshot's image with its deltas applied (core/inspect.c).
int vmmap_view(int fd, size_t file_len, size_t len, int writable,
               uintptr_t *out);
int vmmap_view_release(uintptr_t addr);

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
