/* hash.c - thin wrapper so only this file includes xxhash.h. */
#include "hash.h"

#include <xxhash.h>

uint64_t hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }

uint64_t hash64_seed(const void *data, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(data, len, seed);
}
