// poolfile_v1.h: the header of pool file format version 1, for reading old
// files only (`mmpool upgrade`, core/inspect.c).
//
// Version 1 is the layout of core/poolfile.h as of commit d661015. Its page
// descriptors and data are laid out exactly as in version 2 (desc_off 4096,
// the same struct pdesc, the same data_off arithmetic and the same
// metadata checksum); only the header differs: it is 880 bytes at the start
// of the 4096-byte header page, its checksum covers every byte before the
// checksum field (roots, name and flags included), and it has no feature
// bits, times, uuid or program-break record. Nothing in this build writes
// it but the tests, which make version 1 files from version 2 ones.
#ifndef MMPOOL_POOLFILE_V1_H
#define MMPOOL_POOLFILE_V1_H

#include <stddef.h>
#include <stdint.h>

#include "mmpool.h"
#include "poolfile.h"

#define POOLFILE_V1_VERSION 1u

struct pool_state_v1 {
  uint64_t length;         // bytes of the pool mapped (= the file's size)
  uint64_t meta_committed; // descriptor bytes usable from desc_off
  uint32_t top;            // data pages below the high-water mark
  uint32_t hiwater;        // pages at and above this were never used
  uint32_t bins[POOL_NBINS];         // free spans: page index + 1
  uint32_t avail[POOL_NCLASSES_MAX]; // detached slabs with room
};

struct poolfile_header_v1 {
  // --- identity and layout: covered by checksum -------------------------
  uint8_t magic[8];        // POOLFILE_MAGIC
  uint32_t version;        // 1
  uint32_t header_size;    // sizeof(struct poolfile_header_v1): 880
  uint8_t word_size;       // sizeof(void *)
  uint8_t byte_order;      // POOLFILE_BYTE_ORDER_LE
  uint8_t page_shift;      // PAGE_SHIFT
  uint8_t nclasses;        // size classes in use
  uint32_t os_page_size;   // 4096
  uint32_t desc_size;      // sizeof(struct pdesc)
  uint32_t flags;          // POOLFILE_CLEAN
  uint64_t layout_hash;    // hash of the size-class table
  uint64_t base;           // address the pool is mapped at
  uint64_t capacity;       // bytes reserved
  uint64_t generation;     // attaches so far
  uint64_t desc_off;       // POOLFILE_HEADER_SIZE
  uint64_t data_off;       // first data page, 64 KiB aligned
  uint64_t npages;         // data pages that fit in capacity
  uint64_t meta_checksum;  // descriptors [0, top), slack arrays; if CLEAN
  uint64_t roots[MMPOOL_ROOTS]; // addresses in the committed data, or 0
  char name[MMPOOL_NAME_MAX + 1];
  uint64_t checksum;       // of every byte before this field
  // --- allocator state ----------------------------------------------------
  struct pool_state_v1 st;
};
_Static_assert(sizeof(struct poolfile_header_v1) == 880,
               "the version 1 header is 880 bytes");
_Static_assert(offsetof(struct poolfile_header_v1, checksum) == 400,
               "the version 1 checksum covers 400 bytes");

#endif
