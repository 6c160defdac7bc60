// pattern.h: the generator and the block fill patterns of the stress tests.
//
// Byte j of a block filled with seed s is byte (j % 8) of pat_word(s, j / 8),
// so a prefix keeps its pattern when the block grows (realloc checks).
#ifndef MMPOOL_TEST_PATTERN_H
#define MMPOOL_TEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

// splitmix64: one state word, good enough mixing for tests.
static inline uint64_t rnd_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline uint64_t pat_word(uint64_t seed, size_t i) {
  uint64_t z = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;
  return z ^ (z >> 29);
}

static inline uint8_t pat_byte(uint64_t seed, size_t j) {
  return (uint8_t)(pat_word(seed, j / 8) >> (8 * (j % 8)));
}

// Writes the pattern into bytes [from, to) of a 16-aligned block.
static inline void fill_range(void *p, uint64_t seed, size_t from,
                              size_t to) {
  uint8_t *b = p;
  size_t j = from;
  while (j < to && (j & 7) != 0) {
    b[j] = pat_byte(seed, j);
    j++;
  }
  uint64_t *w = (uint64_t *)(b + j); // j is 8-aligned here
  size_t i = j / 8;
  for (; j + 8 <= to; j += 8, i++)
    *w++ = pat_word(seed, i);
  for (; j < to; j++)
    b[j] = pat_byte(seed, j);
}

// The first offset in [0, n) whose byte differs from the pattern, or n.
static inline size_t check_range(const void *p, uint64_t seed, size_t n) {
  const uint8_t *b = p;
  const uint64_t *w = p;
  size_t i = 0;
  for (; (i + 1) * 8 <= n; i++)
    if (w[i] != pat_word(seed, i))
      break;
  for (size_t j = i * 8; j < n; j++)
    if (b[j] != pat_byte(seed, j))
      return j;
  return n;
}

#endif
