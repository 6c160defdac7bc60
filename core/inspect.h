// inspect.h: reading a pool file that no process has attached, for the
// tool (`mmpool info`, `check`, `map`, `upgrade`).
//
// The file is opened read-only without following links, its header read
// with pread and validated (poolfile_validate; a version 1 header is
// checked by its own rules and converted in memory), and only then is
// [0, length) mapped, privately, at any address: every link in a pool is an
// offset from its base or a page index, so the bytes read the same anywhere
// (the free mark of a free block, the one absolute value, is never read).
// The walk then trusts nothing: every descriptor field and every list link
// is checked before it is followed, so a lying file gives problems, never a
// fault. Nothing here writes the file: a version 2 file is mapped
// read-only; a version 1 file's mapping is a private copy whose header page
// is replaced by the converted header.
//
// Locking (core/pool.c's scheme: an attach with mode=shared holds the
// file's flock exclusively, mode=private shared): inspect_open takes a
// shared lock without waiting, so it reads alongside mode=private readers
// and refuses a file a process has attached for writing (-EBUSY); with
// INSPECT_EXCLUSIVE (upgrade, which replaces the file) it takes it
// exclusively. The lock goes with inspect_close.
#ifndef MMPOOL_INSPECT_H
#define MMPOOL_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "poolfile.h"
#include "pooltable.h"
#include "sizeclass.h"

enum {
  INSPECT_EXCLUSIVE = 1, // lock exclusively (the caller will replace it)
  // The attach rules of the trust model (poolfile_distrust) for the file
  // and its deltas: what a restore that copies them will attach. With
  // INSPECT_ANY_OWNER too, another user's files (trust=any).
  INSPECT_TRUSTED = 2,
  INSPECT_ANY_OWNER = 4,
};

struct inspect {
  struct mmpool pool;           // points at the mapping; in no pool table
  int fd;                       // -1 when closed
  unsigned version;             // on disk: 1 or POOLFILE_VERSION
  uint64_t file_size;
  struct poolfile_header hdr;   // the header (converted from version 1)
  uintptr_t map;                // [0, hdr.st.length) of the file, or 0
  size_t map_len;
};

// Opens, validates and maps path. 0, or a negative errno with one line in
// why naming what is wrong (without the path): -ENOENT, -EACCES, ... as the
// open says, -ELOOP a symbolic link in the path, -EINVAL not a regular
// file, -EBUSY attached by a process (the lock), -ENODATA empty,
// -ENOEXEC/-EUCLEAN what poolfile_validate or the version 1 checks say,
// -EAGAIN changed while it was read. On failure nothing stays open.
int inspect_open(struct inspect *in, const char *path, unsigned flags,
                 char *why, size_t why_len) HIDDEN;
// The same for an image of a snapshot with its deltas (core/delta.h):
// path's image, then each of the ndelta files of dpaths applied in order,
// in memory (the view is private and writable; nothing reaches a file).
// What is checked and mapped is the image they make: file_size is its
// length. Errors name the delta at fault.
#define INSPECT_DELTAS_MAX 16
int inspect_open_deltas(struct inspect *in, const char *path,
                        unsigned ndelta, const char *const *dpaths,
                        unsigned flags, char *why, size_t why_len) HIDDEN;
void inspect_close(struct inspect *in) HIDDEN;

// What the walk found, for `info` and `map`.
struct inspect_class {
  uint32_t slabs, pages;
  uint64_t live;          // live blocks
  uint64_t req_bytes;     // bytes asked for, by the slack arrays
};
struct inspect_stats {
  struct inspect_class cls[SC_COUNT];
  uint64_t large_blocks, large_pages, large_req;
  uint64_t free_spans, free_pages, largest_free; // free spans below top
  uint64_t slack_bytes;   // slack arrays of the slabs (metadata)
  uint64_t bad_pages;     // pages below top in no valid span
};

// A span of data pages, in address order, as the walk saw it.
enum {
  INSPECT_SPAN_FREE = 1,  // a free span below top
  INSPECT_SPAN_SLAB = 2,  // cls, live of nblocks
  INSPECT_SPAN_LARGE = 3,
  INSPECT_SPAN_BAD = 4,   // no valid span starts here
};
struct inspect_span {
  uint32_t page, npages;
  int kind;               // INSPECT_SPAN_*
  unsigned cls;
  uint32_t live, nblocks;
};

struct inspect_cb {
  // One problem: page index (-1 when the problem is no page's), the
  // address it is about (0 when none) and a line saying what and where.
  void (*problem)(void *arg, int64_t page, uint64_t addr, const char *line);
  void (*span)(void *arg, const struct inspect_span *s); // may be NULL
  void *arg;
};

// The strict walk: every invariant of page_check, each problem reported
// (a slab whose fields or lists are wrong is a problem, not skipped), and
// the walk goes on past it where the pages can still be told apart. Then
// the metadata checksum of a clean file, and the engine's own check
// (page_check) as a second opinion when the walk found nothing. Neither
// the clean mark nor the version is judged here: see inspect.c's callers.
// Returns the number of problems; fills *st when st is not NULL.
unsigned inspect_walk(struct inspect *in, const struct inspect_cb *cb,
                      struct inspect_stats *st) HIDDEN;

// 1 when pool offset off lies inside a live block (a slab block handed out
// and not on its slab's free lists, any byte of its block size; a large
// block, any of its requested bytes), with the block's offset and length.
int inspect_block_at(struct inspect *in, uint64_t off, uint64_t *blk,
                     uint64_t *len) HIDDEN;

// The free blocks of the slab whose head is page head, as bits of bm
// (INSPECT_BM_WORDS words: bit b set when block b is on a free list), and
// its count of blocks handed out once (*inited). 0, or -1 when the slab is
// not sound (inspect_walk names why).
#define INSPECT_BM_WORDS 64
int inspect_slab_free(struct inspect *in, uint32_t head, uint64_t *bm,
                      uint32_t *inited) HIDDEN;

// The version 2 header of a version 1 one (checked first: its magic,
// version, header size, ABI and checksum, then every field by
// poolfile_validate), with created = ctime (the file's mtime when the
// caller has nothing better), a fresh uuid and no feature bits; flags,
// generation, roots and meta_checksum are kept. 0 or -ENOEXEC/-EUCLEAN
// with a reason.
int inspect_v1_convert(const void *page, uint64_t file_size, uint64_t ctime,
                       struct poolfile_header *out, char *why,
                       size_t why_len) HIDDEN;

#endif
