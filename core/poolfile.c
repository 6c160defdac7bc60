// poolfile.c: layout arithmetic, checksums and the checks of a pool header.
//
// poolfile_validate is the gate every pool file passes before the engine
// reads anything else from it: each field is checked against the layout this
// build computes, in an order that gives the most telling reason first
// (foreign file, then damage, then individual ranges).
#include "poolfile.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <sys/stat.h>

#include "compiler.h"
#include "fmt.h"
#include "hash.h"
#include "sizeclass.h"

void poolfile_layout(uint64_t capacity, uint64_t *desc_off, uint64_t *data_off,
                     uint64_t *npages) {
  uint64_t n = capacity / (PAGE_BYTES + sizeof(struct pdesc));
  uint64_t d;
  for (;; n--) {
    d = (POOLFILE_HEADER_SIZE + n * sizeof(struct pdesc) + PAGE_BYTES - 1) &
        ~(uint64_t)(PAGE_BYTES - 1);
    if (d + n * PAGE_BYTES <= capacity || n == 0) break;
  }
  *desc_off = POOLFILE_HEADER_SIZE;
  *data_off = d;
  *npages = n;
}


static uint64_t header_hash(const struct poolfile_header *h) {
  return hash_bytes(h, offsetof(struct poolfile_header, checksum), 0);
}

void poolfile_seal(struct poolfile_header *h) { h->checksum = header_hash(h); }

void poolfile_init(struct poolfile_header *h, const char *name, uint64_t base,
                   uint64_t capacity) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, POOLFILE_MAGIC, 8);
  h->version = POOLFILE_VERSION;
  h->header_size = POOLFILE_HEADER_SIZE;
  h->ident_size = POOLFILE_IDENT_SIZE;
  h->word_size = sizeof(void *);
  h->byte_order = POOLFILE_BYTE_ORDER_LE;
  h->page_shift = PAGE_SHIFT;
  h->nclasses = SC_COUNT;
  h->os_page_size = 4096;
  h->desc_size = sizeof(struct pdesc);
  h->layout_hash = sc_layout_hash();
  h->base = base;
  h->capacity = capacity;
  poolfile_layout(capacity, &h->desc_off, &h->data_off, &h->npages);
  size_t nl = strlen(name);
  memcpy(h->name, name, nl < MMPOOL_NAME_MAX ? nl : MMPOOL_NAME_MAX);
  poolfile_seal(h);
}

uint32_t poolfile_ro_unknown(const struct poolfile_header *h) {
  return h->feature_ro_compat & ~POOLFILE_RO_COMPAT_KNOWN;
}

uint64_t poolfile_meta_hash(const struct poolfile_header *h) {
  const char *base = (const char *)h;
  return poolfile_meta_hash_at(h, base + h->desc_off, base + h->data_off);
}

uint64_t poolfile_meta_hash_at(const struct poolfile_header *h,
                               const void *descs, const void *data) {
  const struct pdesc *d = descs;
  uint32_t top = h->st.top;
  uint64_t sum = hash_bytes(d, (size_t)top * sizeof(struct pdesc),
                            h->generation);
  if (h->feature_compat & POOLFILE_COMPAT_META_DESC) return sum;
  // Then the slack array of every slab: it lives in the slab's last bytes,
  // among the data, and usable_size and realloc's copy trust it. The walk
  // follows the heads as the descriptors tell them; where they do not tile
  // (a damaged file, which page_check refuses) it stops, the same way at
  // close and at attach. The class table, not the descriptor, gives where
  // the array is.
  for (uint32_t i = 0; i < top;) {
    uint32_t n = d[i].npages;
    if (n == 0 || n > top - i) break;
    if (d[i].kind == PD_SLAB && d[i].cls < SC_COUNT &&
        sc_table[d[i].cls].npages == n) {
      const struct sizeclass *sc = &sc_table[d[i].cls];
      const char *slab = (const char *)data + ((uint64_t)i << PAGE_SHIFT);
      sum = hash_bytes(slab + sc->slack_rel,
                       ((size_t)n << PAGE_SHIFT) - sc->slack_rel, sum);
    }
    i += n;
  }
  return sum;
}

const char *poolfile_abi_differs(unsigned word_size, unsigned byte_order,
                                 unsigned page_shift, unsigned os_page_size,
                                 unsigned desc_size, unsigned nclasses,
                                 uint64_t layout_hash) {
  return word_size != sizeof(void *)            ? "word size"
         : byte_order != POOLFILE_BYTE_ORDER_LE ? "byte order"
         : page_shift != PAGE_SHIFT             ? "page size"
         : os_page_size != 4096                 ? "OS page size"
         : desc_size != sizeof(struct pdesc)    ? "descriptor size"
         : nclasses != SC_COUNT || layout_hash != sc_layout_hash()
             ? "size classes"
             : NULL;
}

#define FAIL(err, ...) \
  (fmt_format(why, why_len, __VA_ARGS__), -(err))

static int name_ok(const char *name, size_t max) {
  size_t i = 0;
  for (; i < max && name[i]; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return i > 0 && i < max;
}

RARE int poolfile_validate(const struct poolfile_header *h, uint64_t file_size,
                           char *why, size_t why_len) {
  // A short file that does not even start with the magic is foreign; one
  // that does is a pool file cut short. (Bytes past file_size read as 0.)
  if (file_size >= 8 && memcmp(h->magic, POOLFILE_MAGIC, 8) != 0)
    return FAIL(ENOEXEC, "not an mmpool pool file (bad magic)");
  if (file_size < POOLFILE_HEADER_SIZE)
    return FAIL(EUCLEAN, "truncated: %llu bytes, a pool file has at least %u",
                (unsigned long long)file_size, POOLFILE_HEADER_SIZE);
  if (h->version == 1)
    return FAIL(ENOEXEC, "format version 1, which this build does not "
                "attach: convert it with 'mmpool upgrade FILE'");
  if (h->version != POOLFILE_VERSION)
    return FAIL(ENOEXEC, "unsupported format version %u (this build reads %u)",
                h->version, POOLFILE_VERSION);
  if (h->header_size != POOLFILE_HEADER_SIZE ||
      h->ident_size != POOLFILE_IDENT_SIZE)
    return FAIL(ENOEXEC, "unsupported header layout (%u bytes, identity %u; "
                "this build: %u, %u)", h->header_size, h->ident_size,
                POOLFILE_HEADER_SIZE, POOLFILE_IDENT_SIZE);
  const char *abi = poolfile_abi_differs(
      h->word_size, h->byte_order, h->page_shift, h->os_page_size,
      h->desc_size, h->nclasses, h->layout_hash);
  if (abi)
    return FAIL(ENOEXEC, "made for another machine or build (%s differs)",
                abi);
  uint64_t sum = header_hash(h);
  if (sum != h->checksum)
    return FAIL(EUCLEAN,
                "header checksum mismatch (stored %016llx, computed %016llx)",
                (unsigned long long)h->checksum, (unsigned long long)sum);

  // Features this build does not know (the read-only ones are the
  // caller's to judge: poolfile_ro_unknown).
  if (h->feature_incompat & ~POOLFILE_INCOMPAT_KNOWN)
    return FAIL(ENOEXEC, "uses features this build does not know "
                "(incompatible feature bits 0x%x)",
                h->feature_incompat & ~POOLFILE_INCOMPAT_KNOWN);

  // From here the header is intact; check each field as if it were hostile.
  uint64_t cap = h->capacity, base = h->base;
  if (cap < POOL_MIN_CAPACITY || cap > POOL_MAX_CAPACITY ||
      cap % PAGE_BYTES != 0)
    return FAIL(EUCLEAN, "capacity %llu out of range",
                (unsigned long long)cap);
  if (base == 0 || base % POOL_BASE_ALIGN != 0 || base > POOL_USER_ADDR_END ||
      cap > POOL_USER_ADDR_END - base)
    return FAIL(EUCLEAN, "base 0x%llx out of range (1 GiB aligned, below "
                "0x%llx with its capacity)", (unsigned long long)base,
                (unsigned long long)POOL_USER_ADDR_END);
  uint64_t desc_off, data_off, npages;
  poolfile_layout(cap, &desc_off, &data_off, &npages);
  if (h->desc_off != desc_off)
    return FAIL(EUCLEAN, "desc_off %llu out of range (expected %llu)",
                (unsigned long long)h->desc_off, (unsigned long long)desc_off);
  if (h->data_off != data_off)
    return FAIL(EUCLEAN, "data_off %llu out of range (expected %llu)",
                (unsigned long long)h->data_off, (unsigned long long)data_off);
  if (h->npages != npages)
    return FAIL(EUCLEAN, "npages %llu out of range (expected %llu)",
                (unsigned long long)h->npages, (unsigned long long)npages);
  if (!name_ok(h->name, sizeof h->name))
    return FAIL(EUCLEAN, "name out of range (not 1..%d of [A-Za-z0-9_.-])",
                MMPOOL_NAME_MAX);
  const struct pool_state *st = &h->st;
  if (st->length < data_off || st->length > cap || st->length % 4096 != 0)
    return FAIL(EUCLEAN, "length %llu out of range",
                (unsigned long long)st->length);
  if (file_size < st->length)
    return FAIL(EUCLEAN, "truncated: the file has %llu bytes, its header "
                "records %llu", (unsigned long long)file_size,
                (unsigned long long)st->length);
  // A root leads into the committed data (what is mapped), or the first use
  // of it faults. It need not be a live block: a program may free the block
  // a root names and leave the root, which must not make the file
  // unattachable (mmpool_set_root only takes addresses in live blocks).
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++) {
    uint64_t r = h->roots[k];
    if (r && (r < base + data_off || r >= base + st->length))
      return FAIL(EUCLEAN, "root %u (0x%llx) out of range (committed data is "
                  "0x%llx-0x%llx)", k, (unsigned long long)r,
                  (unsigned long long)(base + data_off),
                  (unsigned long long)(base + st->length));
  }
  if (st->top > npages || data_off + (uint64_t)st->top * PAGE_BYTES >
                              st->length)
    return FAIL(EUCLEAN, "top %u out of range", st->top);
  if (st->hiwater < st->top || st->hiwater > npages ||
      data_off + (uint64_t)st->hiwater * PAGE_BYTES > st->length)
    return FAIL(EUCLEAN, "hiwater %u out of range", st->hiwater);
  // Descriptors cover every committed data page, in whole OS pages.
  if (st->meta_committed <
          ((st->length - data_off) >> PAGE_SHIFT) * sizeof(struct pdesc) ||
      st->meta_committed > data_off - desc_off ||
      st->meta_committed % 4096 != 0)
    return FAIL(EUCLEAN, "meta_committed %llu out of range",
                (unsigned long long)st->meta_committed);
  for (unsigned i = 0; i < POOL_NBINS; i++)
    if (st->bins[i] > st->top)
      return FAIL(EUCLEAN, "free-span list bins[%u] = %u out of range", i,
                  st->bins[i]);
  for (unsigned i = 0; i < POOL_NCLASSES_MAX; i++)
    if (st->avail[i] > st->top || (i >= SC_COUNT && st->avail[i]))
      return FAIL(EUCLEAN, "slab list avail[%u] = %u out of range", i,
                  st->avail[i]);
  if (st->align_max && (st->align_max & (st->align_max - 1) ||
                        st->align_max <= POOL_BASE_ALIGN ||
                        st->align_max > h->capacity))
    return FAIL(EUCLEAN, "align_max %llu out of range",
                (unsigned long long)st->align_max);
  // The program break's record (st.brk_*) is not checked here: a damaged
  // one must not cost the user the pool. pool_brk_get checks it where it
  // is used, and a bad one starts the break afresh.
  return 0;
}

const char *poolfile_distrust(uint32_t uid, uint32_t mode, uint32_t me,
                              int any_owner) {
  if (mode & (S_IWGRP | S_IWOTH))
    return "group or others may write it (refused: a pool file must be "
           "writable by its owner only; chmod go-w)";
  if (uid != me && !any_owner)
    return "it is not owned by the effective user (refused: attach another "
           "user's pool file with the option trust=any)";
  return NULL;
}
