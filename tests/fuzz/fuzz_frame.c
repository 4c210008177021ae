/* fuzz_frame.c - libFuzzer target for the inter-node frame decoder and
 * every message body decoder (server/msg.c): any byte string must parse,
 * ask for more, or be rejected; never crash, never read out of bounds,
 * never allocate without bound.  A frame that parses is rebuilt with
 * frame_build and must parse again to the same envelope.  Its body is then
 * given to EVERY row of the message table (not only its own type, so each
 * decoder sees every input), and a body a decoder accepts must encode again
 * into a body the same decoder accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/frame.h"
#include "../../server/msg.h"

static void decode_all(const msgpack_object *body)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < msg_def_count(); i++) {
        const msg_def_t *d = msg_def_at(i);
        msg_any_t m;
        if (msg_decode(d->type, d->dir, body, &m) < 0)
            continue;
        if (msg_encode(&sb, d->type, d->dir, &m) == 0) {
            msgpack_unpacked up;
            msgpack_unpacked_init(&up);
            size_t off = 0;
            msg_any_t again;
            if (msgpack_unpack_next(&up, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS ||
                off != sb.size || msg_decode(d->type, d->dir, &up.data, &again) < 0)
                abort(); /* what we encode we must be able to decode */
            msg_free(d->type, d->dir, &again);
            msgpack_unpacked_destroy(&up);
        }
        msg_free(d->type, d->dir, &m);
    }
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    (void)mp_validate(buf, size);
    frame_t f;
    size_t used = 0;
    /* the authenticated path: any input is refused or parsed, never more */
    static uint8_t key[FRAME_KEY_LEN];
    static int have_key;
    if (!have_key)
        have_key = frame_key("fuzz", key) == 0;
    if (have_key && frame_parse(buf, size, 1u << 20, key, &f, &used) == 1) {
        if (used > size)
            abort();
        frame_release(&f);
    }
    used = 0;
    if (frame_parse(buf, size, 1u << 20, NULL, &f, &used) == 1) {
        if (used > size)
            abort();
        /* the body re-packed must survive a round trip */
        msgpack_sbuffer body, out;
        msgpack_sbuffer_init(&body);
        msgpack_sbuffer_init(&out);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, f.body);
        if (frame_build(&out, f.type, f.kind, f.req_id, f.ttl_ms, body.data, body.size, NULL) == 0) {
            frame_t g;
            size_t used2 = 0;
            if (frame_parse((const uint8_t *)out.data, out.size, 1u << 21, NULL, &g, &used2) != 1)
                abort();
            if (g.type != f.type || g.kind != f.kind || g.req_id != f.req_id ||
                g.ttl_ms != f.ttl_ms || used2 != out.size)
                abort();
            frame_release(&g);
        }
        msgpack_sbuffer_destroy(&body);
        msgpack_sbuffer_destroy(&out);
        decode_all(&f.body);
        frame_release(&f);
    }
    free(buf);
    return 0;
}
