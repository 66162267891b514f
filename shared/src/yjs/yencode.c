/*
 * yencode.c: V1 encoding of structs, content payloads and delete sets, the
 * lazy struct writer of updates.js, and the content splitting rules
 * (ContentString.splice with its U+FFFD repair of split surrogate pairs).
 */
#include "yjs_int.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t FFFD[3] = {0xef, 0xbf, 0xbd};

size_t ypayload_skip(uint8_t ref, const uint8_t *data, size_t size, uint64_t k)
{
    yreader_t r = yreader_of(data, size);
    for (uint64_t i = 0; i < k && r.p < r.end; i++) {
        if (ref == YC_ANY) {
            yany_skip(&r);
        } else {
            uint64_t n = 0;
            yread_varuint(&r, &n);
            r.p += n;
        }
    }
    return (size_t)(r.p - data);
}

void ystring_split(const uint8_t *s, size_t n, uint64_t offset, rt_buf_t *left, rt_buf_t *right)
{
    bool mid;
    size_t pos = yutf8_pos(s, n, offset, &mid);
    if (!mid) {
        rt_buf_append(left, s, pos);
        rt_buf_append(right, s + pos, n - pos);
        return;
    }
    rt_buf_append(left, s, pos);
    rt_buf_append(left, FFFD, 3);
    rt_buf_append(right, FFFD, 3);
    rt_buf_append(right, s + pos + 4, n - pos - 4);
}

void yenc_content(rt_buf_t *out, uint8_t ref, const uint8_t *data, size_t size, uint64_t len,
                  uint64_t offset)
{
    switch (ref) {
    case YC_DELETED:
        ywrite_varuint(out, len - offset);
        break;
    case YC_JSON:
    case YC_ANY: {
        size_t at = offset ? ypayload_skip(ref, data, size, offset) : 0;
        ywrite_varuint(out, len - offset);
        rt_buf_append(out, data + at, size - at);
        break;
    }
    case YC_STRING:
        if (offset) {
            bool mid;
            size_t pos = yutf8_pos(data, size, offset, &mid);
            if (mid) {
                ywrite_varuint(out, size - pos - 1);
                rt_buf_append(out, FFFD, 3);
                rt_buf_append(out, data + pos + 4, size - pos - 4);
            } else {
                ywrite_bytes(out, data + pos, size - pos);
            }
            break;
        }
        /* fallthrough */
    case YC_BINARY:
    case YC_EMBED:
        ywrite_bytes(out, data, size);
        break;
    default: /* Format, Type, Doc: payload is the wire form */
        rt_buf_append(out, data, size);
        break;
    }
}

static void write_id(rt_buf_t *out, yid_t id)
{
    ywrite_varuint(out, id.client);
    ywrite_varuint(out, id.clock);
}

void yenc_struct(rt_buf_t *out, const ystruct_t *s, uint64_t offset)
{
    if (s->kind != YK_ITEM) {
        rt_buf_append_byte(out, s->kind);
        ywrite_varuint(out, s->len - offset);
        return;
    }
    bool has_origin = offset > 0 || s->has_origin;
    yid_t origin = offset > 0 ? (yid_t){s->id.client, s->id.clock + offset - 1} : s->origin;
    uint8_t info = (uint8_t)((s->ref & 0x1f) | (has_origin ? 0x80 : 0) | (s->has_rorigin ? 0x40 : 0) |
                             (s->has_psub ? 0x20 : 0));
    rt_buf_append_byte(out, info);
    if (has_origin)
        write_id(out, origin);
    if (s->has_rorigin)
        write_id(out, s->rorigin);
    if (!has_origin && !s->has_rorigin) {
        if (s->parent_kind == YP_KEY) {
            ywrite_varuint(out, 1);
            ywrite_bytes(out, s->parent_key.data, s->parent_key.len);
        } else {
            ywrite_varuint(out, 0);
            write_id(out, s->parent_id);
        }
        if (s->has_psub)
            ywrite_bytes(out, s->psub.data, s->psub.len);
    }
    yenc_content(out, s->ref, s->content.data, s->content.len, s->len, offset);
}

static void lazy_flush(ylazy_writer_t *w)
{
    if (w->written == 0)
        return;
    ywrite_varuint(&w->blocks, w->written);
    rt_buf_append(&w->blocks, w->cur.data, w->cur.len);
    w->cur.len = 0;
    w->written = 0;
    w->n_blocks++;
}

void ylazy_write(ylazy_writer_t *w, const ystruct_t *s, uint64_t offset)
{
    if (w->written > 0 && w->cur_client != s->id.client)
        lazy_flush(w);
    if (w->written == 0) {
        w->cur_client = s->id.client;
        ywrite_varuint(&w->cur, s->id.client);
        ywrite_varuint(&w->cur, s->id.clock + offset);
        w->next_clock = s->id.clock + offset;
    }
    yenc_struct(&w->cur, s, offset);
    w->written++;
    if (s->len - offset > YJS_MAX_SAFE - w->next_clock)
        w->overflow = true;
    else
        w->next_clock += s->len - offset;
}

int ylazy_finish(ylazy_writer_t *w, rt_buf_t *out)
{
    lazy_flush(w);
    ywrite_varuint(out, w->n_blocks);
    rt_buf_append(out, w->blocks.data, w->blocks.len);
    int rc = w->overflow ? RT_EINVAL : 0;
    rt_buf_dispose(&w->blocks);
    rt_buf_dispose(&w->cur);
    memset(w, 0, sizeof *w);
    return rc;
}

static int cmp_range(const void *a, const void *b)
{
    const yrange_t *x = a, *y = b;
    if (x->client != y->client)
        return x->client > y->client ? -1 : 1; /* clients descending */
    return x->clock < y->clock ? -1 : x->clock > y->clock;
}

void yds_sort_merge(yrange_t *r, size_t *n)
{
    if (*n == 0)
        return;
    ysort(r, *n, sizeof *r, cmp_range);
    size_t j = 0;
    for (size_t i = 1; i < *n; i++) {
        yrange_t *l = &r[j];
        if (r[i].client == l->client && l->clock + l->len >= r[i].clock) {
            uint64_t end = r[i].clock + r[i].len;
            if (end > l->clock + l->len)
                l->len = end - l->clock;
        } else {
            r[++j] = r[i];
        }
    }
    *n = j + 1;
}

void yds_write(rt_buf_t *out, const yrange_t *r, size_t n)
{
    size_t clients = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || r[i].client != r[i - 1].client)
            clients++;
    ywrite_varuint(out, clients);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r[j].client == r[i].client)
            j++;
        ywrite_varuint(out, r[i].client);
        ywrite_varuint(out, j - i);
        for (; i < j; i++) {
            ywrite_varuint(out, r[i].clock);
            ywrite_varuint(out, r[i].len);
        }
    }
}
