/*
 * fuzz_json_check.c: the tree-free JSON check against jansson on the same
 * bytes.  What jansson reads, the check accepts (up to its one level less of
 * nesting; jansson also ends the text at a NUL byte); what the check accepts, jansson reads, unless a number is past
 * jansson's integer or double range.
 */
#include "rt/json.h"

#include <assert.h>
#include <jansson.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t depth_of(const json_t *v)
{
    size_t d = 0, i;
    const char *key;
    json_t *child;
    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            size_t c = depth_of(child);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            size_t c = depth_of(child);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = rt_json_check(data, size);
    json_error_t err;
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v != NULL)
        assert(rc == RT_OK || depth_of(v) > RT_JSON_MAX_DEPTH || memchr(data, 0, size) != NULL);
    else if (rc == RT_OK)
        assert(strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL);
    json_decref(v);
    /* a string written from the bytes reads back as them, when they are UTF-8 */
    if (rt_utf8_valid(data, size) && memchr(data, 0, size) == NULL) {
        rt_buf_t b = {0};
        rt_json_append_string(&b, data, size);
        json_t *s = json_loadb((const char *)b.data, b.len, JSON_DECODE_ANY, NULL);
        assert(rt_json_check(b.data, b.len) == RT_OK);
        assert(json_is_string(s) && json_string_length(s) == size && memcmp(json_string_value(s), data, size) == 0);
        json_decref(s);
        rt_buf_dispose(&b);
    }
    return 0;
}
