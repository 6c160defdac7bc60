// mmpool.h: the one public header of mmpool, the control API.
//
// A pool is one contiguous range of address space (its capacity), reserved
// as the pool grows and committed as it fills. Everything the allocator knows
// about a pool lives inside that range as offsets from its base, so a pool
// kept in a file can be closed, mapped again by a later process at the same
// address, and used on where it was left off (GNU mmalloc's principle).
//
// Conventions
// - Functions that return a pointer return NULL on failure; functions that
//   return int return 0 on success and -1 on failure. Every failure sets
//   errno and leaves a one-line message for mmpool_last_error().
// - A NULL pool argument means the calling thread's current pool
//   (mmpool_push), or else the default pool: under the preload library the
//   configured default, otherwise an anonymous pool named "default" that is
//   opened on first use.
// - Every function is thread-safe. Blocks may be freed by any thread.
#ifndef MMPOOL_H
#define MMPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMPOOL_VERSION_MAJOR 0
#define MMPOOL_VERSION_MINOR 1
#define MMPOOL_VERSION_PATCH 0

// Symbols of the API are the only ones the libraries export.
#if defined(MMPOOL_STATIC_DEFINE)
#define MMPOOL_API
#else
#define MMPOOL_API __attribute__((visibility("default")))
#endif

// Pools open at once in one process (the ids of pools are 1..MMPOOL_MAX_POOLS).
#define MMPOOL_MAX_POOLS 63
// Root slots per pool: keys 0..MMPOOL_ROOTS-1.
#define MMPOOL_ROOTS 32
// Longest pool name, without the terminating NUL.
#define MMPOOL_NAME_MAX 47

// A pool handle: an opaque value, not a pointer to anything the program may
// read. A handle stays valid until its pool is closed; after that every
// function refuses it with EBADF, even when another pool has been opened
// since. NULL as a pool argument means the current pool (see above).
typedef struct mmpool_handle mmpool_t;

// ---------------------------------------------------------------------------
// Opening and closing pools

// Opens a pool, or attaches an existing pool file.
//
// name: 1..MMPOOL_NAME_MAX characters of [A-Za-z0-9_.-], unique among the
//   open pools of the process. A file pool records its name; attaching it
//   under another name is allowed (the file's name is replaced).
// options: NULL or the words of a configuration `pool` statement, separated
//   by blanks (see docs/configuration.md):
//   anon            volatile memory (the default).
//   file=PATH       the pool lives in PATH. A missing file is created (mode
//                   0600, O_EXCL); an existing one is attached after every
//                   field of its header has been checked. An existing empty
//                   file is refused (EINVAL), and so is a path with a
//                   symbolic link in any component (ELOOP). In PATH, %p
//                   is the process id, %e the program's name, %% a '%'.
//                   A file that
//                   group or others may write, or (without trust=any) that
//                   another user owns, is refused with EACCES: root too
//                   attaches only root's files by default.
//   mode=shared     (default for files) the mapping is the file: stores reach
//                   the file as the program runs. A fork child gets its own
//                   copy of the pool; the file stays the parent's.
//   mode=private    the file is mapped copy-on-write: the program sees its
//                   contents, nothing it does is written back.
//   size=SIZE       capacity (reserved address space), e.g. 64K, 512M, 8G, 1T.
//                   Default 64G. Memory is committed only as it is used. An
//                   attached file keeps its recorded capacity unless size= is
//                   given explicitly and differs (then the open fails).
//   base=ADDR|auto  where to map: a hexadecimal address aligned to 1 GiB,
//                   or auto (default) to take a free 1 GiB-aligned range in
//                   0x200000000000..0x3fffffffffff. An attached file goes to
//                   its recorded base. A fixed base never replaces an
//                   existing mapping: the open fails with EEXIST and a
//                   message that names the mapping in the way.
//   relocate=no|yes for mmpool_restore: a pool whose range is taken here is
//                   moved (yes) or the restore fails (no, the default);
//                   a plain open ignores it (mmpool relocate moves a file).
//   full=fallback|null|abort, brk: accepted and recorded for the preload
//                   library; the API itself always returns NULL/ENOMEM when a
//                   pool is full.
//   thp=yes|no      ask for transparent huge pages on the pool's range
//                   (default no): mmpool_snapshot's pause, a copy of the
//                   page tables, is then one entry per 2 MiB, not 512.
//   recover         attach a file that was not closed cleanly, after a full
//                   check of its metadata (otherwise such a file is refused).
//   trust=owner|any owner (default): attach only files the effective user
//                   owns; any: any owner's file (still not one that group or
//                   others may write).
// A file pool can be attached by one process at a time (the file is locked).
// fork: anonymous and mode=private pools are copied into the child (copy on
// write) and work there as usual. A mode=shared pool stays shared memory: in
// the child its blocks can be read and written, but the child does not
// manage it (allocations fail with EBUSY, frees are ignored, closing only
// unmaps it); the parent keeps using it normally.
MMPOOL_API mmpool_t *mmpool_open(const char *name, const char *options);

// The open pool called name, or NULL (ENOENT).
MMPOOL_API mmpool_t *mmpool_get(const char *name);

// The pool that owns the block at ptr (any address inside a pool's range),
// or NULL (ENOENT) for memory mmpool did not hand out. Costs one table load.
MMPOOL_API mmpool_t *mmpool_of(const void *ptr);

// Closes a pool: a file pool is synced, marked clean, unlocked and unmapped;
// an anonymous pool's memory is returned to the system. Every block of the
// pool becomes invalid, and so does every handle of it (EBADF after). pool
// must not be NULL (EINVAL); the default pool and a pool this thread has
// pushed cannot be closed (EBUSY).
MMPOOL_API int mmpool_close(mmpool_t *pool);

// Writes a shared file pool's memory and header to its file (msync +
// fsync) as they were at one instant: no thread of the process is inside
// the allocator meanwhile (other threads that allocate wait for the last,
// short pass). The file stays marked in use: after a crash it is attached
// with `recover`. A no-op returning 0 for other pools.
MMPOOL_API int mmpool_sync(mmpool_t *pool);

// Takes a snapshot of every open pool of the process at one instant into
// the directory dir (made with mode 0700 when missing; it must belong to
// the effective user, and group and others must not be able to write it).
// Blocks of one pool may point into another, so a snapshot is always of the
// whole set: one image per pool (NAME.SERIAL.pool, each a pool file that
// mmpool_open, `mmpool info` and `mmpool check` read) and a file named
// "manifest" that names them. Other threads are held only while a copy of
// the process is made (a fork without its handlers; shared file pools are
// copied then too, so their pause grows with them); that copy writes the
// images while the program runs on, and this call returns when the
// snapshot is on disk (fsync) or has failed. Atomic: a crash or a failure
// at any moment leaves the previous snapshot of dir whole, and what a
// failed one wrote is removed. EBUSY while another snapshot of this
// process, or of another process into dir, is being taken.
MMPOOL_API int mmpool_snapshot(const char *dir);

// Opens every pool of the snapshot in dir, each under its name, from its
// image: mapped privately (copy on write: the snapshot is never written)
// at the base it was taken at, as mmpool_open("NAME", "file=DIR/IMAGE
// mode=private") would; an image that the manifest follows with deltas
// (incremental snapshots) has them applied in its private mapping at attach
// (copied beside it with them applied instead, when one of them shortens
// the image). options (NULL or more words of a pool
// statement, such as trust=any) are added to each. Its roots are then what
// mmpool_get_root gives for mmpool_get("NAME"). Returns the number of
// pools opened, or -1: the manifest is damaged or not one (EUCLEAN,
// ENOEXEC), a pool of that name is open already (EEXIST), an image cannot
// be attached (its reason); then no pool of the snapshot stays open.
MMPOOL_API int mmpool_restore(const char *dir, const char *options);

// ---------------------------------------------------------------------------
// Allocation. Blocks are aligned to 16 bytes at least.

// A block of size bytes in pool; size 0 gives a unique non-NULL block.
// NULL with ENOMEM when the pool is full, EBADF when it is closed (a stale
// handle).
MMPOOL_API void *mmpool_malloc(mmpool_t *pool, size_t size);
// A zeroed block of n * size bytes; NULL with ENOMEM if that overflows.
MMPOOL_API void *mmpool_calloc(mmpool_t *pool, size_t n, size_t size);
// Resizes ptr to size bytes, in place where possible. ptr NULL: like
// mmpool_malloc(pool, size). pool NULL: the block stays in the pool that owns
// it; otherwise the result is in pool (the block moves if ptr lives in
// another pool). size 0 with ptr not NULL frees ptr and returns NULL (as
// glibc does). On failure ptr is untouched.
MMPOOL_API void *mmpool_realloc(mmpool_t *pool, void *ptr, size_t size);
// A block whose address is a multiple of alignment, which must be a power of
// two (EINVAL otherwise); any power of two up to half the capacity works.
MMPOOL_API void *mmpool_memalign(mmpool_t *pool, size_t alignment,
                                 size_t size);
// Frees a block of any pool; NULL is ignored. errno is left unchanged. A
// pointer outside every pool, or inside a pool but not in a block, is
// reported (one line on stderr) and ignored; a block freed twice aborts the
// program when it is detected. Freeing a pointer into the middle of a live
// block is undefined: it is detected when the pointer is not 16-byte
// aligned or the block is large, not on the owning thread's fast path.
MMPOOL_API void mmpool_free(void *ptr);
// The usable size of a block: exactly the size it was requested with (the
// last size given to realloc), stable for the block's life. 0 for NULL and
// for pointers that no pool owns.
MMPOOL_API size_t mmpool_usable_size(const void *ptr);

// ---------------------------------------------------------------------------
// Roots: named entry points into a pool's data that survive a re-attach.

// Stores ptr under key (< MMPOOL_ROOTS): NULL, or an address inside a block
// allocated from pool and not freed (its start or any byte of its size; a
// block already freed back to a slab is not always told apart). EINVAL for
// a bad key or any other pointer: outside the pool, in its header, in free
// pages or past its committed data. A root whose block is freed later is
// kept; on attach, roots are only checked to lie in the committed data.
MMPOOL_API int mmpool_set_root(mmpool_t *pool, unsigned key, void *ptr);
// The pointer stored under key, or NULL (unset, or EINVAL for a bad key).
MMPOOL_API void *mmpool_get_root(mmpool_t *pool, unsigned key);

// ---------------------------------------------------------------------------
// Current pool of a thread

// Makes pool the calling thread's current pool (what a NULL pool argument
// means) until the matching mmpool_pop. Pushes nest up to 16 deep. Returns
// pool, or NULL (EOVERFLOW when too deep, EINVAL for NULL, EBADF for a
// closed pool).
MMPOOL_API mmpool_t *mmpool_push(mmpool_t *pool);
// Undoes the last mmpool_push of the thread and returns the pool that is now
// current (NULL when none is pushed, meaning the default pool).
MMPOOL_API mmpool_t *mmpool_pop(void);
// The pool that a NULL pool argument means for the calling thread now.
MMPOOL_API mmpool_t *mmpool_current(void);

// ---------------------------------------------------------------------------
// Facts and statistics

// The pool's name, base address and capacity; NULL or 0 with errno EINVAL
// for a NULL pool and EBADF for a stale handle.
MMPOOL_API const char *mmpool_name(const mmpool_t *pool);
MMPOOL_API void *mmpool_base(const mmpool_t *pool);
MMPOOL_API size_t mmpool_capacity(const mmpool_t *pool);

#define MMPOOL_STATS_CLASSES 64

typedef struct mmpool_class_stats {
  size_t block_size;  // bytes per block of this class (0: unused slot)
  size_t blocks_used; // live blocks
  size_t blocks_free; // free blocks in the class's pages
  size_t pages;       // 64 KiB pages holding this class
} mmpool_class_stats_t;

typedef struct mmpool_stats {
  size_t capacity;      // address space of the pool (reserved as it grows)
  size_t mapped;        // bytes mapped read-write: header, descriptors, data
  size_t metadata;      // header and page descriptors in use
  size_t in_use;        // bytes of live blocks, counted in whole blocks
  size_t in_use_blocks; // number of live blocks
  size_t large_blocks;  // live blocks larger than the largest size class
  size_t free_bytes;    // mapped bytes of the data area holding no block
  size_t peak;          // most data bytes held by slabs and large blocks at
                        // once since the pool was opened or attached
  uint64_t generation;  // bumped at every attach of a file pool
  unsigned nclasses;    // entries used in classes[]
  mmpool_class_stats_t classes[MMPOOL_STATS_CLASSES];
} mmpool_stats_t;

// Fills *out. Figures are exact when no other thread allocates meanwhile.
// Blocks that threads freed count free, those a thread still keeps for
// reuse included: to gather them, every thread is kept out of the
// allocator for a moment.
MMPOOL_API int mmpool_stats(mmpool_t *pool, mmpool_stats_t *out);

// Checks every invariant of the pool's metadata (page descriptors, free
// lists, spans, recorded block sizes). 0 when sound; -1 with EUCLEAN and a
// message naming the first fault otherwise. Other threads must not allocate
// from or free into the pool meanwhile.
MMPOOL_API int mmpool_check(mmpool_t *pool);

// Calls fn(block, usable_size, arg) for every live block of the pool, in
// address order; stops early and returns fn's value when it is not 0.
// Other threads must not allocate from or free into the pool meanwhile.
// A block any thread freed is not visited (gathered first, as by
// mmpool_stats).
MMPOOL_API int mmpool_walk(mmpool_t *pool,
                           int (*fn)(void *block, size_t size, void *arg),
                           void *arg);

// The last failure of the calling thread, in words ("" if none yet). The
// text stays valid until the thread's next failing mmpool call.
MMPOOL_API const char *mmpool_last_error(void);

#ifdef __cplusplus
}
#endif
#endif // MMPOOL_H
