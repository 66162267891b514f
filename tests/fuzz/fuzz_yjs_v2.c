/*
 * fuzz_yjs_v2.c: libFuzzer target for the V2 update decoder.  Any bytes may be
 * offered to the V2 -> V1 conversion and to a document; a successful
 * conversion must produce a valid V1 update.
 */
#include "rt/yjs.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_slice_t u = {data, size};
    rt_buf_t v1 = {0}, changed = {0};
    if (rt_yupdate_v2_to_v1(u, &v1) == 0 && rt_yupdate_validate((rt_slice_t){v1.data, v1.len}) != 0)
        abort(); /* V2 -> V1 must give a valid V1 update */
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    (void)rt_ydoc_apply_update_v2(doc, u, &changed);
    rt_ydoc_destroy(doc);
    rt_buf_dispose(&v1);
    rt_buf_dispose(&changed);
    return 0;
}
