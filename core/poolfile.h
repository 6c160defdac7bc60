// poolfile.h: the on-disk (and in-memory) layout of a pool, and its checks.
//
// A pool is laid out the same in memory and in its file, at offsets from its
// base:
//
//   [0, 4096)             header (struct poolfile_header)
//   [4096, data_off)      page descriptors, one per data page, committed as
//                         the data grows (the rest of the range is a hole)
//   [data_off, capacity)  data pages of 64 KiB, committed as they are used
//
// Invariant: nothing in a pool holds an absolute address of allocator state;
// every link is an offset from the base or a page index, so the bytes mean
// the same wherever and whenever the pool is mapped. One exception, a hint
// that nothing trusts: the free mark in the second word of a free block (the
// address of its slab's descriptor, heap.h) is checked against the slab's
// free lists before it means anything; after a move it simply never matches. Every field read from a
// file is checked by poolfile_validate before any other code touches it.
#ifndef MMPOOL_POOLFILE_H
#define MMPOOL_POOLFILE_H

#include <stddef.h>
#include <stdint.h>

#include "mmpool.h"
#include "sizeclass.h"  // PAGE_SHIFT, SC_COUNT

#define POOLFILE_MAGIC "MMPOOL\n\032"  // 8 bytes, no NUL
#define POOLFILE_VERSION 2u
#define POOLFILE_HEADER_SIZE 4096u     // bytes reserved for the header
#define POOLFILE_IDENT_SIZE 2048u      // the part the header checksum covers
#define POOLFILE_BYTE_ORDER_LE 1u


// Pool bases are multiples of 1 GiB, so the address-to-pool table has one
// entry per GiB and two pools never share an entry.
#define POOL_BASE_ALIGN ((uint64_t)1 << 30)
#define POOL_MIN_CAPACITY ((uint64_t)1 << 20)      // 1 MiB
#define POOL_MAX_CAPACITY ((uint64_t)1 << 44)      // 16 TiB
#define POOL_USER_ADDR_END ((uint64_t)0x7ffffffff000)

#define POOL_NBINS 48        // free-span bins of the page allocator
#define POOL_NCLASSES_MAX 64 // size classes a pool file may record

// header.flags
#define POOLFILE_CLEAN 1u    // closed cleanly: metadata checksum is valid

// Feature bits, ext4's scheme. A reader that finds a bit it does not know in
// - feature_compat: attaches the file as usual (the feature adds
//   information an older reader may ignore);
// - feature_ro_compat: attaches it only without writing it (mode=private;
//   the tool reads it);
// - feature_incompat: refuses it.
// This build knows the bits of the *_KNOWN masks. A feature that changes the
// meaning of existing bytes takes an incompat bit, one that adds bytes in the
// reserved areas a compat or ro_compat bit.
#define POOLFILE_COMPAT_KNOWN POOLFILE_COMPAT_META_DESC
// meta_checksum covers the descriptors below top only, not the slabs' slack
// arrays (which the close would have to read: its cost was the heap's).
// Set by every clean close of this build; a file without it (closed by an
// older build) has the slack arrays under its checksum too.
#define POOLFILE_COMPAT_META_DESC 1u
#define POOLFILE_RO_COMPAT_KNOWN 0u
#define POOLFILE_INCOMPAT_KNOWN 0u

// Page descriptor kinds (pdesc.kind).
enum {
  PD_UNUSED = 0,   // above the high-water mark: never handed out
  PD_FREE = 1,     // first page of a free span (npages = span length)
  PD_FREE_LAST = 2,// last page of a free span of 2+ pages (head_delta)
  PD_SLAB = 3,     // first page of a slab of one size class
  PD_LARGE = 4,    // first page of a large block (req = requested size)
  PD_TAIL = 5,     // a following page of a slab or large block (head_delta)
  PD_FREE_MID = 6, // a page inside a free span, neither its first nor last
};

// pdesc.owner values besides thread ids.
#define OWNER_DETACHED 0u          // slab owned by no thread
#define OWNER_NONE 0xffffffffu     // not a slab

// pdesc.thread_free: the pool offset of the first block (bits 4-47) | its
// blocks' count (bits 48-63) | this bit when detached. The count lets the
// owner take the whole list without walking it (heap.c, collect): every
// link is a block another core wrote, one cache miss each. A count of 0
// with a first block means "not counted" (files of earlier builds): the
// list is walked.
#define TF_DETACHED ((uint64_t)1)
#define TF_COUNT_SHIFT 48
#define TF_COUNT_ONE ((uint64_t)1 << TF_COUNT_SHIFT)
#define TF_HEAD(x) ((x) & (TF_COUNT_ONE - 1) & ~TF_DETACHED)
#define TF_COUNT(x) ((uint32_t)((x) >> TF_COUNT_SHIFT))

// pdesc.flags
#define PDF_DIRTY 1u   // span pages may hold non-zero bytes
#define PDF_LISTED 2u  // slab is on the pool's avail list of its class

// One descriptor per 64 KiB data page; 64 bytes.
struct pdesc {
  uint8_t kind;       // PD_*
  uint8_t cls;        // size class (PD_SLAB)
  uint8_t flags;      // PDF_*
  uint8_t gshift;     // slab: log2 of the side-array granule (<= block size)
  uint32_t npages;    // heads: pages in the span, slab or block
  uint32_t head_delta;// PD_TAIL, PD_FREE_LAST: page index distance to head
  uint32_t bsize;     // slab: bytes per block
  uint32_t nblocks;   // slab: blocks that fit
  uint32_t inited;    // slab: blocks [0, inited) have been handed out once
  uint32_t used;      // slab: live blocks (kept by the owner), and
                      // PDESC_USED_PIN while it is its owner's current slab
  uint32_t owner;     // slab: owning thread id, OWNER_DETACHED; else NONE
  uint32_t next;      // list link: page index + 1, 0 = none
  uint32_t prev;      // list link: page index + 1, 0 = none
  uint64_t free;      // slab: pool offset of the first free block, 0 = none
  uint64_t thread_free; // slab: frees from other threads (atomic), TF_*
  union {
    // slab: pool offset of the slack array, biased so that the entry of
    // the block at pool offset off is at slack_off + (off >> gshift) * 2
    uint64_t slack_off;
    uint64_t req;     // large block: the requested size
  };
};

// Bit 31 of a slab's used count: set while the slab is the current slab of
// its class for its owning thread (heap.c, set_cur). The free fast path
// tests only "--used == 0", and a pinned count never reaches 0, so the
// current slab, which keeps its place when it empties, costs no second test
// and no branch that a batch of allocations and frees makes unpredictable.
// A reader of a descriptor masks it (pdesc_used); attach clears it (the
// slab is detached then). Files a process left while running (snapshot
// images, a crash) carry it; a clean close does not.
#define PDESC_USED_PIN 0x80000000u
static inline uint32_t pdesc_used(const struct pdesc *d) {
  return __atomic_load_n(&d->used, __ATOMIC_RELAXED) & ~PDESC_USED_PIN;
}

// The slack-array entry (block size - requested size) of the block at pool
// offset off of slab d, in the pool mapped at base.
static inline uint16_t *pdesc_slack(uintptr_t base, const struct pdesc *d,
                                    uint64_t off) {
  return (uint16_t *)(base + d->slack_off + ((off >> d->gshift) << 1));
}

// The part of the header that changes as the pool is used. Not covered by
// the header checksum: its fields are range-checked one by one on attach.
struct pool_state {
  uint64_t length;         // bytes of the pool mapped (= the file's size)
  uint64_t meta_committed; // descriptor bytes usable from desc_off
  uint32_t top;            // data pages below the high-water mark
  uint32_t hiwater;        // pages at and above this were never used
  uint32_t bins[POOL_NBINS];         // free spans: page index + 1
  uint32_t avail[POOL_NCLASSES_MAX]; // detached slabs with room
  // The program break kept in this pool (the preload library's brk pool):
  // pool offsets of its start and of the break, 0 when none. Checked
  // against the block that holds them before use (pool_brk_get).
  uint64_t brk_start;
  uint64_t brk_cur;
  // The largest alignment a block was asked for above POOL_BASE_ALIGN, or
  // 0: a relocation must move the pool by a multiple of it (relocate.c).
  uint64_t align_max;
};

// The header page. Its first POOLFILE_IDENT_SIZE bytes are the identity
// and layout, sealed by `checksum` (their last 8 bytes); the rest is the
// allocator state, range-checked field by field. Both parts end in reserved
// bytes, zero in this version, for fields that feature bits will announce.
struct poolfile_header {
  // --- identity and layout: covered by checksum -------------------------
  uint8_t magic[8];        // POOLFILE_MAGIC
  uint32_t version;        // POOLFILE_VERSION
  uint32_t header_size;    // POOLFILE_HEADER_SIZE
  uint32_t ident_size;     // POOLFILE_IDENT_SIZE
  uint32_t feature_compat;    // POOLFILE_COMPAT_*
  uint32_t feature_ro_compat; // POOLFILE_RO_COMPAT_*
  uint32_t feature_incompat;  // POOLFILE_INCOMPAT_*
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
  uint64_t generation;     // attaches so far (1 at creation)
  uint64_t desc_off;       // POOLFILE_HEADER_SIZE
  uint64_t data_off;       // first data page, 64 KiB aligned
  uint64_t npages;         // data pages that fit in capacity
  uint64_t meta_checksum;  // descriptors [0, top) (slack arrays: see
                           // POOLFILE_COMPAT_META_DESC); if CLEAN
  uint64_t created;        // creation time, seconds since 1970
  uint64_t closed;         // time of the last clean close or sync, or 0
  uint64_t uuid[2];        // random at creation; names the pool's lineage
  uint64_t roots[MMPOOL_ROOTS]; // addresses in the committed data, or 0
  char name[MMPOOL_NAME_MAX + 1];
  // (144: the bytes of the fields before roots; the asserts below check)
  uint8_t ident_reserved[POOLFILE_IDENT_SIZE - 144 - 8 * MMPOOL_ROOTS -
                         (MMPOOL_NAME_MAX + 1) - 8];
  uint64_t checksum;       // of every byte before this field
  // --- allocator state ----------------------------------------------------
  struct pool_state st;
  uint8_t state_reserved[POOLFILE_HEADER_SIZE - POOLFILE_IDENT_SIZE -
                         sizeof(struct pool_state)];
};
_Static_assert(sizeof(struct poolfile_header) == POOLFILE_HEADER_SIZE,
               "the header is one page");
_Static_assert(__builtin_offsetof(struct poolfile_header, checksum) ==
                   POOLFILE_IDENT_SIZE - 8, "the checksum ends the identity");
_Static_assert(__builtin_offsetof(struct poolfile_header, st) ==
                   POOLFILE_IDENT_SIZE, "the state follows the identity");


// Layout arithmetic shared by the engine, the checks and the tool.
// pre: capacity is a multiple of PAGE_BYTES.
void poolfile_layout(uint64_t capacity, uint64_t *desc_off, uint64_t *data_off,
                     uint64_t *npages);

// Fills a new header (identity fields, checksum) for a fresh pool.
void poolfile_init(struct poolfile_header *h, const char *name, uint64_t base,
                   uint64_t capacity);

// The trust model (docs/pool-file-format.md, "Trust model"): why a file
// owned by uid with permission bits mode may not be attached by a process
// of effective uid me (any_owner: trust=any), or NULL when it may. A file
// its group or others may write never; another user's only with any_owner.
const char *poolfile_distrust(uint32_t uid, uint32_t mode, uint32_t me,
                              int any_owner);

// Recomputes h->checksum after an identity field changed.
void poolfile_seal(struct poolfile_header *h);

// Checks a header read from a file of file_size bytes. 0 if every field is in
// range; otherwise a negative errno (-ENOEXEC foreign, -EUCLEAN damaged) and
// a one-line reason in why[0..why_len).
int poolfile_validate(const struct poolfile_header *h, uint64_t file_size,
                      char *why, size_t why_len);

// NULL when a file's ABI fields (of any version's header) match this build,
// else what differs ("word size", "byte order", "page size", "OS page
// size", "descriptor size", "size classes").
const char *poolfile_abi_differs(unsigned word_size, unsigned byte_order,
                                 unsigned page_shift, unsigned os_page_size,
                                 unsigned desc_size, unsigned nclasses,
                                 uint64_t layout_hash);

// The read-only-compatible feature bits of h this build does not know: a
// file with any is attached only without writing it (mode=private).
uint32_t poolfile_ro_unknown(const struct poolfile_header *h);

// The checksum of the descriptors of pages [0, h->st.top), and, unless
// h has POOLFILE_COMPAT_META_DESC, of the slack arrays of the slabs among
// them, as recorded in meta_checksum at a clean close. pre: h passed
// poolfile_validate, and its descriptors and data are mapped (or h is a
// whole file image).
uint64_t poolfile_meta_hash(const struct poolfile_header *h);
// The same, with the descriptors and the data pages at other addresses
// than after h (a snapshot's copies of a pool).
uint64_t poolfile_meta_hash_at(const struct poolfile_header *h,
                               const void *descs, const void *data);

#endif
