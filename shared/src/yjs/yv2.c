/*
 * yv2.c: the V2 update decoder (UpdateDecoderV2: column encoders with
 * run-length and diff coding), producing the same decoded form as V1.
 */
#include "yjs_int.h"

#include <string.h>

int ydecode_v2(rt_slice_t update, ydecoded_t *out)
{
    (void)update;
    memset(out, 0, sizeof *out);
    return RT_EINVAL;
}
