/*
 * hash.h - the one hash function of quorumkv: 64-bit XXH3.
 *
 * Placement (ring tokens, key positions), node ids in version vectors and
 * cas tokens all use it, so every node computes the same value from the same
 * bytes on any machine (XXH3 output is specified and endian-independent).
 */
#ifndef QKV_HASH_H
#define QKV_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash64(const void *data, size_t len);
uint64_t hash64_seed(const void *data, size_t len, uint64_t seed);

#endif
