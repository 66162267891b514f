/*
 * lib0.c: the lib0 encoding primitives Yjs updates are made of (varUint,
 * varInt, varString, varUint8Array) with strict validation, and the UTF-8 /
 * UTF-16 helpers (Yjs counts string lengths in UTF-16 units).
 */
#include "yjs_int.h"

#include <stdlib.h>
#include <string.h>

int yread_u8(yreader_t *r, uint8_t *out)
{
    if (r->p >= r->end)
        return RT_EINVAL;
    *out = *r->p++;
    return 0;
}

int yread_varuint(yreader_t *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 56; shift += 7) {
        if (r->p >= r->end)
            return RT_EINVAL;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v > YJS_MAX_SAFE)
                return RT_EINVAL;
            *out = v;
            return 0;
        }
    }
    return RT_EINVAL;
}

int yread_varint(yreader_t *r, uint64_t *mag, bool *neg)
{
    if (r->p >= r->end)
        return RT_EINVAL;
    uint8_t b = *r->p++;
    uint64_t v = b & 0x3f;
    *neg = (b & 0x40) != 0;
    if (b & 0x80) {
        int shift = 6;
        for (;;) {
            if (r->p >= r->end || shift > 55)
                return RT_EINVAL;
            b = *r->p++;
            v |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
    }
    if (v > YJS_MAX_SAFE)
        return RT_EINVAL;
    *mag = v;
    return 0;
}

int yread_fixed(yreader_t *r, size_t n, const uint8_t **out)
{
    if (yreader_left(r) < n)
        return RT_EINVAL;
    *out = r->p;
    r->p += n;
    return 0;
}

int yread_bytes(yreader_t *r, rt_slice_t *out)
{
    uint64_t n;
    if (yread_varuint(r, &n) < 0 || n > yreader_left(r))
        return RT_EINVAL;
    out->data = r->p;
    out->len = (size_t)n;
    r->p += n;
    return 0;
}

int yread_string(yreader_t *r, rt_slice_t *out)
{
    rt_slice_t s;
    if (yread_bytes(r, &s) < 0 || !rt_utf8_valid(s.data, s.len))
        return RT_EINVAL;
    *out = s;
    return 0;
}

void ywrite_varuint(rt_buf_t *b, uint64_t v)
{
    uint8_t *p = rt_buf_reserve(b, 10);
    size_t n = 0;
    while (v > 0x7f) {
        p[n++] = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    b->len += n;
}

void ywrite_varint(rt_buf_t *b, uint64_t mag, bool neg)
{
    uint8_t *p = rt_buf_reserve(b, 10);
    size_t n = 0;
    p[n++] = (uint8_t)((mag > 0x3f ? 0x80 : 0) | (neg ? 0x40 : 0) | (mag & 0x3f));
    mag >>= 6;
    while (mag > 0) {
        p[n++] = (uint8_t)((mag > 0x7f ? 0x80 : 0) | (mag & 0x7f));
        mag >>= 7;
    }
    b->len += n;
}

void ywrite_bytes(rt_buf_t *b, const uint8_t *data, size_t len)
{
    ywrite_varuint(b, len);
    rt_buf_append(b, data, len);
}

/* ---- UTF-8 --------------------------------------------------------------- */

uint64_t yutf8_utf16_len(const uint8_t *s, size_t n)
{
    uint64_t units = 0;
    size_t i = 0;
    for (; n - i >= 8 && rt_ascii8(s + i); i += 8)
        units += 8;
    for (; i < n; i++) {
        uint8_t c = s[i];
        if ((c & 0xc0) != 0x80)
            units += (c >= 0xf0) ? 2 : 1;
    }
    return units;
}

size_t yutf8_pos(const uint8_t *s, size_t n, uint64_t units, bool *mid)
{
    size_t i = 0;
    *mid = false;
    /* ASCII runs, 8 bytes at a time */
    while (units >= 8 && n - i >= 8 && rt_ascii8(s + i)) {
        i += 8;
        units -= 8;
    }
    while (units > 0 && i < n) {
        uint8_t c = s[i];
        if (c >= 0xf0) {
            if (units == 1) {
                *mid = true;
                return i;
            }
            units -= 2;
            i += 4;
        } else {
            units -= 1;
            i += c < 0x80 ? 1 : c < 0xe0 ? 2 : 3;
        }
    }
    return i < n ? i : n;
}

void yutf8_put(rt_buf_t *b, uint32_t cp)
{
    if (cp < 0x80) {
        rt_buf_append_byte(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        rt_buf_append_byte(b, (uint8_t)(0xc0 | (cp >> 6)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        rt_buf_append_byte(b, (uint8_t)(0xe0 | (cp >> 12)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3f)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    } else {
        rt_buf_append_byte(b, (uint8_t)(0xf0 | (cp >> 18)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 12) & 0x3f)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3f)));
        rt_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    }
}
