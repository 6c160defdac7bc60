// test_poolfile.c: the pool file header (core/poolfile.h): layout
// arithmetic, the checksum, and poolfile_validate, which must refuse every
// foreign, damaged or out-of-range header with its own reason.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hash.h"
#include "poolfile.h"
#include "sizeclass.h"

#define GiB ((uint64_t)1 << 30)
#define TiB ((uint64_t)1 << 40)
#define BASE ((uint64_t)0x200000000000)

// A header buffer the size of the on-disk header page.
static union {
  struct poolfile_header h;
  uint8_t bytes[POOLFILE_HEADER_SIZE];
} hb;
static char why[256];

// A header as a freshly created pool has it: identity from poolfile_init,
// the mapped length covering the header and descriptors area, nothing used.
static struct poolfile_header *fresh(uint64_t capacity, uint64_t *file_size) {
  memset(&hb, 0x5a, sizeof hb);
  poolfile_init(&hb.h, "unit.pool", BASE, capacity);
  hb.h.st.length = hb.h.data_off;
  *file_size = hb.h.st.length;
  return &hb.h;
}

static int validate(const struct poolfile_header *h, uint64_t file_size) {
  memset(why, 'X', sizeof why);
  why[sizeof why - 1] = 0;
  int r = poolfile_validate(h, file_size, why, sizeof why);
  if (r == 0) return 0;
  // Every refusal gives a one-line, NUL-terminated reason.
  assert_true(strlen(why) > 0 && strlen(why) < sizeof why);
  assert_null(strchr(why, '\n'));
  assert_null(strstr(why, "XXXX")); // the buffer was written, not left
  return r;
}

// Asserts that h is refused with code err and a reason containing text.
#define REFUSED(h, size, err, text)                                            \
  do {                                                                         \
    int r_ = validate((h), (size));                                            \
    if (r_ != -(err) || strstr(why, (text)) == NULL)                           \
      fail_msg("expected %d \"%s\", got %d \"%s\"", -(err), (text), r_,        \
               r_ ? why : "");                                                 \
  } while (0)

#define ACCEPTED(h, size)                                                      \
  do {                                                                         \
    int r_ = validate((h), (size));                                            \
    if (r_ != 0) fail_msg("refused (%d): %s", r_, why);                        \
  } while (0)

// ---------------------------------------------------------------------------

static void test_header_fits(void **state) {
  (void)state;
  assert_true(sizeof(struct poolfile_header) <= POOLFILE_HEADER_SIZE);
  assert_int_equal(sizeof(struct pdesc), 64);
  assert_int_equal(offsetof(struct poolfile_header, magic), 0);
  // The checksum covers everything before it and nothing of the state.
  assert_true(offsetof(struct poolfile_header, checksum) <
              offsetof(struct poolfile_header, st));
  // Version 2: one page, the identity sealed in its first half.
  assert_int_equal(sizeof(struct poolfile_header), POOLFILE_HEADER_SIZE);
  assert_int_equal(offsetof(struct poolfile_header, checksum) + 8,
                   POOLFILE_IDENT_SIZE);
}

static void test_layout(void **state) {
  (void)state;
  static const uint64_t caps[] = {POOL_MIN_CAPACITY,
                                  2 << 20,
                                  64 << 20,
                                  256 << 20,
                                  GiB,
                                  64 * GiB,
                                  TiB,
                                  POOL_MAX_CAPACITY,
                                  (64 << 20) + PAGE_BYTES};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
    uint64_t cap = caps[i], desc_off, data_off, npages;
    poolfile_layout(cap, &desc_off, &data_off, &npages);
    assert_int_equal(desc_off, POOLFILE_HEADER_SIZE);
    assert_int_equal(data_off % PAGE_BYTES, 0);
    assert_true(npages > 0);
    // The descriptors fit before the data, the data fits in the capacity...
    assert_true(desc_off + npages * sizeof(struct pdesc) <= data_off);
    assert_true(data_off + npages * PAGE_BYTES <= cap);
    // ...and no further page would.
    uint64_t n1 = npages + 1;
    uint64_t d1 = (desc_off + n1 * sizeof(struct pdesc) + PAGE_BYTES - 1) &
                  ~(uint64_t)(PAGE_BYTES - 1);
    assert_true(d1 + n1 * PAGE_BYTES > cap);
  }
  // 1 MiB: one page of header and descriptors, 15 data pages.
  uint64_t a, b, n;
  poolfile_layout(POOL_MIN_CAPACITY, &a, &b, &n);
  assert_int_equal(b, PAGE_BYTES);
  assert_int_equal(n, 15);
}

static void test_init(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  assert_memory_equal(h->magic, POOLFILE_MAGIC, 8);
  assert_int_equal(h->version, POOLFILE_VERSION);
  assert_int_equal(h->header_size, POOLFILE_HEADER_SIZE);
  assert_int_equal(h->ident_size, POOLFILE_IDENT_SIZE);
  assert_int_equal(h->word_size, sizeof(void *));
  assert_int_equal(h->page_shift, PAGE_SHIFT);
  assert_int_equal(h->nclasses, SC_COUNT);
  assert_int_equal(h->desc_size, sizeof(struct pdesc));
  assert_int_equal(h->layout_hash, sc_layout_hash());
  assert_int_equal(h->base, BASE);
  assert_int_equal(h->capacity, GiB);
  assert_string_equal(h->name, "unit.pool");
  assert_int_equal(h->flags, 0);
  assert_int_equal(h->generation, 0);
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    assert_int_equal(h->roots[k], 0);
  uint64_t d, o, n;
  poolfile_layout(GiB, &d, &o, &n);
  assert_int_equal(h->desc_off, d);
  assert_int_equal(h->data_off, o);
  assert_int_equal(h->npages, n);
  // The allocator state starts empty.
  assert_int_equal(h->st.top, 0);
  assert_int_equal(h->st.hiwater, 0);
  for (unsigned i = 0; i < POOL_NBINS; i++)
    assert_int_equal(h->st.bins[i], 0);

  // A name of MMPOOL_NAME_MAX characters is kept whole and terminated.
  char longname[MMPOOL_NAME_MAX + 1];
  memset(longname, 'n', MMPOOL_NAME_MAX);
  longname[MMPOOL_NAME_MAX] = 0;
  memset(&hb, 0x5a, sizeof hb);
  poolfile_init(&hb.h, longname, BASE, GiB);
  assert_string_equal(hb.h.name, longname);
  hb.h.st.length = hb.h.data_off;
  ACCEPTED(&hb.h, hb.h.data_off);
}

static void test_fresh_accepted(void **state) {
  (void)state;
  static const uint64_t caps[] = {POOL_MIN_CAPACITY, 64 << 20, GiB, 64 * GiB,
                                  POOL_MAX_CAPACITY};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
    uint64_t fs;
    struct poolfile_header *h = fresh(caps[i], &fs);
    ACCEPTED(h, fs);
    // A larger file than recorded is fine (e.g. preallocated).
    ACCEPTED(h, fs + 12345);
  }
  // A used pool: some pages, free spans and slabs on the lists, a root.
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->st.top = 10;
  h->st.hiwater = 12;
  h->st.length = h->data_off + 12 * PAGE_BYTES;
  h->st.meta_committed = 4096;
  h->st.bins[0] = 10; // page 9, the last under top
  h->st.bins[POOL_NBINS - 1] = 1;
  h->st.avail[SC_COUNT - 1] = 10;
  h->roots[3] = BASE + h->data_off + 100;
  h->roots[MMPOOL_ROOTS - 1] = BASE + h->st.length - 16; // last committed
  h->flags = POOLFILE_CLEAN;
  h->generation = 7;
  poolfile_seal(h);
  ACCEPTED(h, h->st.length);
}

// ---------------------------------------------------------------------------
// Foreign files

static void test_bad_magic(void **state) {
  (void)state;
  uint64_t fs;
  for (int i = 0; i < 8; i++) {
    struct poolfile_header *h = fresh(GiB, &fs);
    h->magic[i] ^= 0x20;
    REFUSED(h, fs, ENOEXEC, "not an mmpool pool file");
    poolfile_seal(h); // a valid checksum does not help
    REFUSED(h, fs, ENOEXEC, "not an mmpool pool file");
  }
  // A file of zeros (e.g. a preallocated file) and one of text.
  memset(&hb, 0, sizeof hb);
  REFUSED(&hb.h, 1 << 20, ENOEXEC, "not an mmpool pool file");
  memset(&hb, 'a', sizeof hb);
  REFUSED(&hb.h, 1 << 20, ENOEXEC, "not an mmpool pool file");
}

static void test_bad_version(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->version = 99;
  REFUSED(h, fs, ENOEXEC, "unsupported format version");
  REFUSED(h, fs, ENOEXEC, "99");
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "unsupported format version");
  h = fresh(GiB, &fs);
  h->version = 0;
  REFUSED(h, fs, ENOEXEC, "unsupported format version");
  h = fresh(GiB, &fs);
  h->header_size += 8;
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "header layout");
  h = fresh(GiB, &fs);
  h->ident_size = 1024;
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "header layout");
  // A version 1 file is named as such, with the way to convert it.
  h = fresh(GiB, &fs);
  h->version = 1;
  REFUSED(h, fs, ENOEXEC, "format version 1");
  REFUSED(h, fs, ENOEXEC, "mmpool upgrade");
}

// ext4's scheme: unknown incompatible bits refuse the file; unknown
// compatible and read-only-compatible bits do not (the read-only ones are
// reported for the caller to refuse a writing attach).
static void test_features(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  assert_int_equal(h->feature_compat, 0);
  assert_int_equal(h->feature_ro_compat, 0);
  assert_int_equal(h->feature_incompat, 0);
  assert_int_equal(poolfile_ro_unknown(h), 0);
  h->feature_incompat = 0x80000000u;
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "incompatible feature bits 0x80000000");
  h = fresh(GiB, &fs);
  h->feature_compat = 0x40u;
  poolfile_seal(h);
  ACCEPTED(h, fs);
  h = fresh(GiB, &fs);
  h->feature_ro_compat = 0x100u;
  poolfile_seal(h);
  ACCEPTED(h, fs);
  assert_int_equal(poolfile_ro_unknown(h), 0x100u);
  // Each is under the checksum.
  h = fresh(GiB, &fs);
  h->feature_compat = 1;
  REFUSED(h, fs, EUCLEAN, "header checksum");
}

// The program break's record is left to pool_brk_get (test_pool_brk): a
// damaged one, which the header checksum does not cover, must not make the
// whole file unattachable.
static void test_brk_record(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->st.brk_start = h->data_off;
  h->st.brk_cur = 0;
  ACCEPTED(h, fs);
  h->st.brk_start = 4096;  // in the descriptors
  h->st.brk_cur = ~(uint64_t)0;
  ACCEPTED(h, fs);
}
static void test_other_machine(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->word_size = 4;
  REFUSED(h, fs, ENOEXEC, "made for another");
  REFUSED(h, fs, ENOEXEC, "word size");
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "made for another");

  h = fresh(GiB, &fs);
  h->byte_order = 2;
  REFUSED(h, fs, ENOEXEC, "byte order");
  h = fresh(GiB, &fs);
  h->page_shift = 12;
  REFUSED(h, fs, ENOEXEC, "page size");
  h = fresh(GiB, &fs);
  h->os_page_size = 16384;
  REFUSED(h, fs, ENOEXEC, "OS page size");
  h = fresh(GiB, &fs);
  h->desc_size = 32;
  REFUSED(h, fs, ENOEXEC, "descriptor size");
  h = fresh(GiB, &fs);
  h->nclasses = SC_COUNT - 1;
  REFUSED(h, fs, ENOEXEC, "size classes");
  h = fresh(GiB, &fs);
  h->layout_hash ^= 1;
  poolfile_seal(h);
  REFUSED(h, fs, ENOEXEC, "size classes");
}

// ---------------------------------------------------------------------------
// Damage

static void test_checksum(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  // Every byte of the identity part after the ABI fields is covered: flip
  // each in turn (one bit, then all bits).
  // (layout_hash is refused earlier, as "size classes": skip it.)
  size_t from = offsetof(struct poolfile_header, flags);
  size_t to = offsetof(struct poolfile_header, checksum);
  size_t lh = offsetof(struct poolfile_header, layout_hash);
  for (size_t off = from; off < to; off++) {
    if (off >= lh && off < lh + 8) continue;
    for (int pass = 0; pass < 2; pass++) {
      h = fresh(GiB, &fs);
      ((uint8_t *)h)[off] ^= pass ? 0xff : 0x01;
      int r = validate(h, fs);
      if (r != -EUCLEAN || strstr(why, "header checksum") == NULL)
        fail_msg("byte %zu flipped: got %d \"%s\"", off, r, r ? why : "");
    }
  }
  // The checksum itself.
  h = fresh(GiB, &fs);
  h->checksum ^= (uint64_t)1 << 40;
  REFUSED(h, fs, EUCLEAN, "header checksum");
  // The state part is not covered: changing it keeps the checksum valid.
  h = fresh(GiB, &fs);
  h->st.meta_committed = 8192;
  ACCEPTED(h, fs);
}

static void test_ranges_after_seal(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h;

  // Base: not 1 GiB aligned, zero, beyond user space.
  static const uint64_t bad_bases[] = {BASE + 4096, BASE + (GiB >> 1), 0,
                                       0x800000000000ull,
                                       POOL_USER_ADDR_END - (1 << 20)};
  for (size_t i = 0; i < sizeof bad_bases / sizeof *bad_bases; i++) {
    h = fresh(GiB, &fs);
    h->base = bad_bases[i];
    poolfile_seal(h);
    REFUSED(h, fs, EUCLEAN, "base");
  }
  // Aligned, but the capacity would pass the end of user space.
  h = fresh(GiB, &fs);
  h->base = 0x7fffc0000000ull;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "base");

  // Capacity: 0, below the minimum, above 16 TiB, not a page multiple.
  static const uint64_t bad_caps[] = {0,
                                      POOL_MIN_CAPACITY - PAGE_BYTES,
                                      POOL_MAX_CAPACITY + PAGE_BYTES,
                                      POOL_MAX_CAPACITY * 2,
                                      GiB + 4096,
                                      UINT64_MAX};
  for (size_t i = 0; i < sizeof bad_caps / sizeof *bad_caps; i++) {
    h = fresh(GiB, &fs);
    h->capacity = bad_caps[i];
    poolfile_seal(h);
    REFUSED(h, fs, EUCLEAN, "capacity");
  }
  // The layout must match the capacity.
  h = fresh(GiB, &fs);
  h->data_off += PAGE_BYTES;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "data_off");
  h = fresh(GiB, &fs);
  h->data_off -= PAGE_BYTES;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "data_off");
  h = fresh(GiB, &fs);
  h->desc_off = 0;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "desc_off");
  h = fresh(GiB, &fs);
  h->npages++;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "npages");
  // Capacity changed alone: the recorded layout no longer matches.
  h = fresh(GiB, &fs);
  h->capacity = 2 * GiB;
  poolfile_seal(h);
  int r = validate(h, fs);
  assert_int_equal(r, -EUCLEAN);

  // Name: empty, a bad character, not terminated.
  h = fresh(GiB, &fs);
  h->name[0] = 0;
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "name");
  h = fresh(GiB, &fs);
  h->name[2] = '/';
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "name");
  h = fresh(GiB, &fs);
  memset(h->name, 'a', sizeof h->name);
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "name");

  // Roots must point into the committed data (st.length), not only below
  // the capacity: the rest is not mapped (issue 11).
  h = fresh(GiB, &fs);
  h->roots[5] = BASE + 8; // the header
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "root 5");
  h = fresh(GiB, &fs);
  h->roots[0] = BASE + GiB; // one past the end
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "root 0");
  h = fresh(GiB, &fs);
  h->st.length = h->data_off + 2 * PAGE_BYTES;
  h->st.meta_committed = 4096;
  h->roots[1] = BASE + h->st.length; // one past the committed data
  poolfile_seal(h);
  REFUSED(h, h->st.length, EUCLEAN, "root 1");
  h = fresh(GiB, &fs);
  h->roots[2] = BASE + h->data_off; // a fresh pool has no data at all
  poolfile_seal(h);
  REFUSED(h, fs, EUCLEAN, "root 2");
}

static void test_state_ranges(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h;

  // File size: below one header page is truncated, whatever the header.
  h = fresh(GiB, &fs);
  REFUSED(h, 0, EUCLEAN, "truncated");
  REFUSED(h, POOLFILE_HEADER_SIZE - 1, EUCLEAN, "truncated");
  // The recorded length beyond the file's size.
  h = fresh(GiB, &fs);
  h->st.length = h->data_off + PAGE_BYTES;
  h->st.top = h->st.hiwater = 1;
  h->st.meta_committed = 4096;
  ACCEPTED(h, h->st.length);
  REFUSED(h, h->st.length - 4096, EUCLEAN, "truncated");
  REFUSED(h, POOLFILE_HEADER_SIZE, EUCLEAN, "truncated");

  // length itself: below data_off, above capacity, not page-aligned.
  h = fresh(GiB, &fs);
  h->st.length = h->data_off - 4096;
  REFUSED(h, GiB, EUCLEAN, "length");
  h->st.length = GiB + PAGE_BYTES;
  REFUSED(h, 2 * GiB, EUCLEAN, "length");
  h->st.length = h->data_off + 100;
  REFUSED(h, GiB, EUCLEAN, "length");

  // top beyond npages (the mapped length allowing it).
  h = fresh(GiB, &fs);
  h->st.length = GiB;
  h->st.top = (uint32_t)h->npages + 1;
  REFUSED(h, GiB, EUCLEAN, "top");
  h->st.top = UINT32_MAX;
  REFUSED(h, GiB, EUCLEAN, "top");
  // top beyond the mapped length.
  h = fresh(GiB, &fs);
  h->st.length = h->data_off + 2 * PAGE_BYTES;
  h->st.top = 3;
  h->st.hiwater = 3;
  h->st.meta_committed = 3 * 64;
  REFUSED(h, h->st.length, EUCLEAN, "top");
  // npages itself is fine as top (all pages used).
  h = fresh(GiB, &fs);
  h->st.length = GiB;
  h->st.top = h->st.hiwater = (uint32_t)h->npages;
  h->st.meta_committed = h->data_off - h->desc_off;
  ACCEPTED(h, GiB);

  // hiwater below top, meta_committed too small or too large.
  h = fresh(GiB, &fs);
  h->st.length = h->data_off + 8 * PAGE_BYTES;
  h->st.top = 4;
  h->st.hiwater = 3;
  h->st.meta_committed = 4096;
  REFUSED(h, h->st.length, EUCLEAN, "hiwater");
  h->st.hiwater = 4;
  h->st.meta_committed = 4 * 64 - 1;
  REFUSED(h, h->st.length, EUCLEAN, "meta_committed");
  // Descriptors for fewer pages than the committed data, or not whole pages.
  h->st.length = h->data_off + 65 * PAGE_BYTES;
  h->st.meta_committed = 4096; // 64 descriptors for 65 pages
  REFUSED(h, h->st.length, EUCLEAN, "meta_committed");
  h->st.meta_committed = 8192 + 64;
  REFUSED(h, h->st.length, EUCLEAN, "meta_committed");
  h->st.length = h->data_off + 8 * PAGE_BYTES;
  h->st.meta_committed = h->data_off; // more than the descriptor area
  REFUSED(h, h->st.length, EUCLEAN, "meta_committed");
  h->st.meta_committed = 4096;
  ACCEPTED(h, h->st.length);
}

// A bin or avail head beyond top: a list that would lead outside the pages
// in use.
static void test_list_heads(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->st.length = h->data_off + 8 * PAGE_BYTES;
  h->st.top = 5;
  h->st.hiwater = 8;
  h->st.meta_committed = 4096;
  for (unsigned i = 0; i < POOL_NBINS; i++) {
    h->st.bins[i] = 5; // page 4: the last page under top
    ACCEPTED(h, h->st.length);
    h->st.bins[i] = 6;
    REFUSED(h, h->st.length, EUCLEAN, "out of range");
    REFUSED(h, h->st.length, EUCLEAN, "bins");
    h->st.bins[i] = UINT32_MAX;
    REFUSED(h, h->st.length, EUCLEAN, "out of range");
    h->st.bins[i] = 0;
  }
  for (unsigned i = 0; i < POOL_NCLASSES_MAX; i++) {
    h->st.avail[i] = 6;
    REFUSED(h, h->st.length, EUCLEAN, "out of range");
    REFUSED(h, h->st.length, EUCLEAN, "avail");
    h->st.avail[i] = 1;
    if (i < SC_COUNT)
      ACCEPTED(h, h->st.length);
    else // no slab of a class the table does not have
      REFUSED(h, h->st.length, EUCLEAN, "avail");
    h->st.avail[i] = 0;
  }
  ACCEPTED(h, h->st.length);
}

// The reason fits any buffer: truncated and terminated, never overrun.
static void test_short_why(void **state) {
  (void)state;
  uint64_t fs;
  struct poolfile_header *h = fresh(GiB, &fs);
  h->version = 99;
  char small[8 + 8];
  memset(small, '#', sizeof small);
  assert_int_equal(poolfile_validate(h, fs, small, 8), -ENOEXEC);
  assert_int_equal(strlen(small), 7);
  for (size_t i = 8; i < sizeof small; i++)
    assert_int_equal(small[i], '#');
  assert_int_equal(poolfile_validate(h, fs, small, 1), -ENOEXEC);
  assert_int_equal(small[0], 0);
}

static void test_hash(void **state) {
  (void)state;
  uint8_t a[256], b[256];
  for (int i = 0; i < 256; i++)
    a[i] = b[i] = (uint8_t)(i * 7 + 3);
  uint64_t h0 = hash_bytes(a, sizeof a, 0);
  assert_int_equal(hash_bytes(a, sizeof a, 0), h0); // stable
  assert_int_equal(hash_bytes(b, sizeof b, 0), h0); // content, not address
  assert_int_not_equal(hash_bytes(a, sizeof a, 1), h0); // seed matters
  // Any single changed byte changes the hash, tail bytes included.
  for (size_t n = 1; n <= 64; n++) {
    uint64_t hn = hash_bytes(a, n, 42);
    for (size_t i = 0; i < n; i++) {
      b[i] ^= 0x80;
      if (hash_bytes(b, n, 42) == hn)
        fail_msg("hash of %zu bytes unchanged when byte %zu changed", n, i);
      b[i] ^= 0x80;
    }
  }
  // Distinct values over many small inputs.
  enum { N = 4096 };
  static uint64_t seen[N];
  for (uint32_t i = 0; i < N; i++) {
    seen[i] = hash_bytes(&i, sizeof i, 0);
    for (uint32_t j = 0; j < i; j++)
      if (seen[j] == seen[i])
        fail_msg("hash collision between %u and %u", j, i);
  }
  // A known value would pin the format: a change here changes every file.
  uint64_t z1 = hash_bytes("", 0, 0), z2 = hash_bytes("", 0, 0);
  assert_int_equal(z1, z2);
  assert_int_not_equal(hash_bytes(a, 8, 0), hash_bytes(a, 16, 0));
}

static void test_meta_hash(void **state) {
  (void)state;
  // The descriptors live desc_off bytes after the header: give them room.
  size_t len = 2 * POOLFILE_HEADER_SIZE; // header + 16 descriptors
  uint8_t *mem = aligned_alloc(4096, len);
  assert_non_null(mem);
  memset(mem, 0, len);
  struct poolfile_header *h = (struct poolfile_header *)mem;
  poolfile_init(h, "m", BASE, GiB);
  struct pdesc *d = (struct pdesc *)(mem + h->desc_off);
  h->st.top = 16;
  for (int i = 0; i < 16; i++)
    d[i].kind = PD_FREE, d[i].npages = (uint32_t)(16 - i);
  uint64_t m0 = poolfile_meta_hash(h);
  assert_int_equal(poolfile_meta_hash(h), m0);
  d[15].npages++;
  assert_int_not_equal(poolfile_meta_hash(h), m0);
  d[15].npages--;
  assert_int_equal(poolfile_meta_hash(h), m0);
  // Only descriptors under top count.
  h->st.top = 15;
  uint64_t m1 = poolfile_meta_hash(h);
  d[15].kind = PD_SLAB;
  assert_int_equal(poolfile_meta_hash(h), m1);
  free(mem);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_fits),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_fresh_accepted),
      cmocka_unit_test(test_bad_magic),
      cmocka_unit_test(test_bad_version),
      cmocka_unit_test(test_features),
      cmocka_unit_test(test_brk_record),
      cmocka_unit_test(test_other_machine),
      cmocka_unit_test(test_checksum),
      cmocka_unit_test(test_ranges_after_seal),
      cmocka_unit_test(test_state_ranges),
      cmocka_unit_test(test_list_heads),
      cmocka_unit_test(test_short_why),
      cmocka_unit_test(test_hash),
      cmocka_unit_test(test_meta_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
