/*
 * fuzz_proto.c - libFuzzer target for server/proto.c's mc_parse().
 *
 * The input is one command line (without "\r\n"), copied into a malloc'ed
 * buffer of exactly its size so ASan flags any read past len.  Besides not
 * crashing, a parse must keep proto.h's promises: on MC_OK every key lies
 * inside the line, is 1..MC_KEY_MAX bytes without control characters, and
 * there are at most maxkeys of them; levels given are in range; on
 * MC_ERR_TOO_LARGE the announced length is over max_value; a ctx= text lies
 * inside the line and only set/delete accept one; a data block to swallow
 * is only ever announced by a storage command, with a valid length; a
 * wrong-count ERROR is never silenced by noreply.  The streaming helpers
 * (mc_get_prefix, mc_get_arg) get the same input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/proto.h"

#define FUZZ_MAXKEYS 8
#define FUZZ_MAX_VALUE (1024 * 1024)

static void check_level(mc_level_t lv)
{
    if (lv.kind == MC_LEVEL_NUM && (lv.num < 1 || lv.num > 16))
        __builtin_trap();
    if (lv.kind > MC_LEVEL_NUM)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    mc_key_t keys[FUZZ_MAXKEYS];
    mc_request_t req;

    if (line == NULL)
        return 0;
    if (size)
        memcpy(line, data, size);

    enum mc_cmd cmd;
    size_t pre = mc_get_prefix(line, size, &cmd);
    if (pre > size || (pre && cmd > MC_GATS))
        __builtin_trap();
    if (pre) {
        /* the rest as space-separated argument tokens, as a connection would */
        bool have_exp = false;
        enum mc_get_arg kind;
        memset(&req, 0, sizeof(req));
        req.cmd = cmd;
        for (size_t i = pre, j; i < size; i = j + 1) {
            for (j = i; j < size && line[j] != ' '; j++)
                ;
            if (j > i && mc_get_arg(&req, line + i, j - i, &have_exp, &kind) == MC_OK &&
                kind == MC_ARG_KEY && (j - i > MC_KEY_MAX))
                __builtin_trap();
        }
        check_level(req.r);
        check_level(req.w);
    }

    enum mc_parse_rc rc = mc_parse(line, size, &req, keys, FUZZ_MAXKEYS, FUZZ_MAX_VALUE);
    if (rc == MC_OK) {
        if (req.nkeys > FUZZ_MAXKEYS || (req.nkeys > 0 && req.keys != keys))
            __builtin_trap();
        for (size_t i = 0; i < req.nkeys; i++) {
            const char *p = keys[i].ptr;
            if (p < line || keys[i].len < 1 || keys[i].len > MC_KEY_MAX ||
                keys[i].len > (size_t)(line + size - p))
                __builtin_trap();
            for (size_t j = 0; j < keys[i].len; j++)
                if ((unsigned char)p[j] <= ' ' || (unsigned char)p[j] == 0x7f)
                    __builtin_trap();
        }
        if (req.arg != NULL && req.arg != req.argbuf[0])
            __builtin_trap();
        check_level(req.r);
        check_level(req.w);
        if (req.cmd <= MC_CAS && req.cmd >= MC_SET &&
            (req.nkeys != 1 || req.bytes < 0 || (uint64_t)req.bytes > FUZZ_MAX_VALUE))
            __builtin_trap();
        if (req.ctx != NULL &&
            ((req.cmd != MC_SET && req.cmd != MC_DELETE) || req.ctx < line ||
             req.ctx_len > (size_t)(line + size - req.ctx)))
            __builtin_trap();
    } else if (rc == MC_ERR_TOO_LARGE) {
        if (req.bytes < 0 || (uint64_t)req.bytes <= FUZZ_MAX_VALUE || !req.swallow)
            __builtin_trap();
    }
    if (req.swallow && (req.cmd < MC_SET || req.cmd > MC_CAS || req.bytes < 0 ||
                        req.bytes > INT32_MAX - 2))
        __builtin_trap();
    if ((rc == MC_ERR_UNKNOWN || rc == MC_ERR_HTTP) && req.noreply)
        __builtin_trap();
    free(line);
    return 0;
}
