// hash.c: the checksum of pool files and of the size-class table (hash.h).
#include "hash.h"

#include <string.h>

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed) {
  // FNV-1a over 64-bit words, with a final mix; the tail is zero padded.
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (; n >= 8; n -= 8, b += 8) {
    uint64_t w;
    memcpy(&w, b, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  if (n) {
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = (h ^ w) * 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}
