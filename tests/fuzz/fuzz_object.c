/*
 * fuzz_object.c - libFuzzer target for storage/object.c's obj_decode().
 *
 * The input (copied into a malloc'ed buffer of exactly its size, so ASan
 * flags overreads) is decoded; when that succeeds the object is encoded,
 * the encoding decoded again and re-encoded, and the two encodings must be
 * identical byte for byte: whatever obj_decode accepts has one canonical
 * form that survives a round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../storage/object.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1), *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;
    obj_t a, b;

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);
    obj_init(&a);
    obj_init(&b);
    if (obj_decode(buf, size, &a) == 0) {
        if (obj_encode(&a, &e1, &l1) != 0)
            __builtin_trap();
        if (obj_decode(e1, l1, &b) != 0)
            __builtin_trap(); /* our own encoding must decode */
        if (obj_encode(&b, &e2, &l2) != 0)
            __builtin_trap();
        if (l1 != l2 || memcmp(e1, e2, l1) != 0)
            __builtin_trap();
        /* decoding is complete: the objects agree field by field too */
        if (a.nsib != b.nsib || a.vc.n != b.vc.n)
            __builtin_trap();
        for (uint32_t i = 0; i < a.nsib; i++)
            if (a.sib[i].len != b.sib[i].len || a.sib[i].tombstone != b.sib[i].tombstone ||
                (a.sib[i].len && memcmp(a.sib[i].value, b.sib[i].value, a.sib[i].len)))
                __builtin_trap();
    }
    free(e1);
    free(e2);
    obj_free(&a);
    obj_free(&b);
    free(buf);
    return 0;
}
