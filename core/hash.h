// hash.h: a 64-bit checksum of byte ranges, a leaf of the engine.
//
// Pool files record it (the header, the page descriptors at a clean close,
// the size-class table's layout), so it is part of the file format: it
// must never change for a given input.
#ifndef MMPOOL_HASH_H
#define MMPOOL_HASH_H

#include <stddef.h>
#include <stdint.h>

// FNV-1a over 8-byte words in the machine's byte order (pool files record
// theirs: only little-endian is accepted), the tail zero padded, then a
// final mix; seed varies the result.
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

#endif
