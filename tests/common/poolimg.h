// poolimg.h: a pool file's bytes in memory, for the tests that damage pool
// files (test_damaged, test_hostile, test_pooltool): a writable copy, the
// header and the descriptors (bounds checked), and the reseal an attacker
// does after changing a field. Include after cmocka.h and poolfile.h.
#ifndef MMPOOL_TEST_POOLIMG_H
#define MMPOOL_TEST_POOLIMG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct img {
  unsigned char *b;
  size_t len;
};

// A writable copy of len bytes at src; the caller frees b.
static inline struct img img_dup(const unsigned char *src, size_t len) {
  struct img m = {malloc(len), len};
  assert_non_null(m.b);
  memcpy(m.b, src, len);
  return m;
}

static inline struct poolfile_header *img_hdr(struct img *m) {
  return (struct poolfile_header *)m->b;
}

// Descriptor i, which must lie inside the image.
static inline struct pdesc *img_desc(struct img *m, uint64_t i) {
  size_t off = (size_t)(img_hdr(m)->desc_off + i * sizeof(struct pdesc));
  assert_true(off + sizeof(struct pdesc) <= m->len);
  return (struct pdesc *)(m->b + off);
}

// Both checksums made right again, as an attacker would after a change
// (the metadata checksum only where the header still validates).
static inline void img_reseal(struct img *m) {
  struct poolfile_header *h = img_hdr(m);
  char why[256];
  if (poolfile_validate(h, m->len, why, sizeof why) == 0)
    h->meta_checksum = poolfile_meta_hash(h);
  poolfile_seal(h);
}

#endif
