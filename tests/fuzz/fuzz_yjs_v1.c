/*
 * fuzz_yjs_v1.c: libFuzzer target for the V1 update decoder and the update
 * algebra.  Whatever the bytes, validation must not crash; an update that
 * validates must also go through mergeUpdates, diffUpdate and
 * encodeStateVectorFromUpdate, merging it alone must return it unchanged (as
 * Yjs does), and merging it with itself must validate.
 */
#include "rt/yjs.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_slice_t u = {data, size};
    if (rt_yupdate_validate(u) != 0)
        return 0;
    rt_buf_t merged = {0}, out = {0};
    if (rt_yupdate_merge(&u, 1, &out) != 0 || out.len != size || memcmp(out.data, data, size) != 0)
        abort(); /* mergeUpdates([u]) is u */
    out.len = 0;
    rt_slice_t twice[2] = {u, u};
    if (rt_yupdate_merge(twice, 2, &merged) != 0 || rt_yupdate_validate((rt_slice_t){merged.data, merged.len}) != 0)
        abort(); /* a valid update must merge into a valid update */
    if (rt_yupdate_state_vector(u, &out) != 0)
        abort();
    out.len = 0;
    if (rt_yupdate_diff(u, (rt_slice_t){0}, &out) != 0 || rt_yupdate_validate((rt_slice_t){out.data, out.len}) != 0)
        abort();
    rt_buf_dispose(&merged);
    rt_buf_dispose(&out);
    return 0;
}
