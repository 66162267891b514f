/* yproto.c: y-websocket message framing and awareness updates (rt/yproto.h). */
#include "rt/yproto.h"

#include <jansson.h>
#include <string.h>

#define VAR_MAX ((1ull << 53) - 1)

int rt_yvar_read(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p + shift / 7 < end && shift <= 49; shift += 7) {
        uint8_t b = (*p)[shift / 7];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v > VAR_MAX)
                return RT_EINVAL;
            *p += shift / 7 + 1;
            *out = v;
            return RT_OK;
        }
    }
    return RT_EINVAL; /* truncated, or longer than 53 bits */
}

void rt_yvar_write(rt_buf_t *out, uint64_t v)
{
    while (v >= 0x80) {
        rt_buf_append_byte(out, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    rt_buf_append_byte(out, (uint8_t)v);
}

/* Reads varUint8Array: a length and that many bytes. */
static int read_bytes(const uint8_t **p, const uint8_t *end, rt_slice_t *out)
{
    uint64_t len;
    if (rt_yvar_read(p, end, &len) != RT_OK || len > (uint64_t)(end - *p))
        return RT_EINVAL;
    out->data = *p;
    out->len = (size_t)len;
    *p += len;
    return RT_OK;
}

int rt_ymsg_decode(rt_slice_t in, rt_ymsg_t *out)
{
    if (in.len == 0)
        return RT_EINVAL;
    const uint8_t *p = in.data, *end = in.data + in.len;
    uint64_t type, sync_type = 0;
    rt_slice_t payload = {NULL, 0};
    if (rt_yvar_read(&p, end, &type) != RT_OK)
        return RT_EINVAL;
    switch (type) {
    case RT_YMSG_SYNC:
        if (rt_yvar_read(&p, end, &sync_type) != RT_OK || sync_type > RT_YSYNC_UPDATE)
            return RT_EINVAL;
        /* both carry one varUint8Array */
        /* fall through */
    case RT_YMSG_AWARENESS:
        if (read_bytes(&p, end, &payload) != RT_OK || p != end)
            return RT_EINVAL;
        break;
    case RT_YMSG_AUTH:
    case RT_YMSG_QUERY_AWARENESS: break;
    default: return RT_EINVAL;
    }
    out->type = (uint32_t)type;
    out->sync_type = (uint32_t)sync_type;
    out->payload = payload;
    return RT_OK;
}

void rt_ymsg_encode_sync(rt_buf_t *out, uint32_t sync_type, rt_slice_t payload)
{
    rt_buf_append_byte(out, RT_YMSG_SYNC);
    rt_yvar_write(out, sync_type);
    rt_yvar_write(out, payload.len);
    rt_buf_append(out, payload.data, payload.len);
}

void rt_ymsg_encode_awareness(rt_buf_t *out, rt_slice_t update)
{
    rt_buf_append_byte(out, RT_YMSG_AWARENESS);
    rt_yvar_write(out, update.len);
    rt_buf_append(out, update.data, update.len);
}

int rt_ysv_validate(rt_slice_t sv)
{
    if (sv.len == 0)
        return RT_EINVAL;
    const uint8_t *p = sv.data, *end = sv.data + sv.len;
    uint64_t n, v;
    if (rt_yvar_read(&p, end, &n) != RT_OK || n > sv.len / 2)
        return RT_EINVAL;
    for (uint64_t i = 0; i < 2 * n; i++)
        if (rt_yvar_read(&p, end, &v) != RT_OK)
            return RT_EINVAL;
    return p == end ? RT_OK : RT_EINVAL;
}

int rt_yaw_begin(rt_yaw_reader_t *r, rt_slice_t update)
{
    if (update.len == 0)
        return RT_EINVAL;
    r->p = update.data;
    r->end = update.data + update.len;
    if (rt_yvar_read(&r->p, r->end, &r->remaining) != RT_OK || r->remaining > update.len / 3)
        return RT_EINVAL; /* an entry takes at least 3 bytes */
    return RT_OK;
}

int rt_yaw_next(rt_yaw_reader_t *r, rt_yaw_entry_t *e)
{
    if (r->remaining == 0)
        return r->p == r->end ? 0 : RT_EINVAL;
    if (rt_yvar_read(&r->p, r->end, &e->client) != RT_OK || rt_yvar_read(&r->p, r->end, &e->clock) != RT_OK ||
        read_bytes(&r->p, r->end, &e->state) != RT_OK)
        return RT_EINVAL;
    r->remaining--;
    return 1;
}

bool rt_yaw_state_is_null(rt_slice_t state)
{
    return state.len == 4 && memcmp(state.data, "null", 4) == 0;
}

static int json_valid(rt_slice_t text)
{
    if (rt_yaw_state_is_null(text))
        return RT_OK;
    json_error_t jerr;
    json_t *v = json_loadb((const char *)text.data, text.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v == NULL)
        return RT_EINVAL;
    json_decref(v);
    return RT_OK;
}

int rt_yaw_validate(rt_slice_t update)
{
    rt_yaw_reader_t r;
    rt_yaw_entry_t e;
    int n;
    if (rt_yaw_begin(&r, update) != RT_OK)
        return RT_EINVAL;
    while ((n = rt_yaw_next(&r, &e)) == 1)
        if (json_valid(e.state) != RT_OK)
            return RT_EINVAL;
    return n == 0 ? RT_OK : RT_EINVAL;
}

void rt_yaw_encode_entry(rt_buf_t *out, uint64_t client, uint64_t clock, rt_slice_t state)
{
    rt_yvar_write(out, client);
    rt_yvar_write(out, clock);
    rt_yvar_write(out, state.len);
    rt_buf_append(out, state.data, state.len);
}
