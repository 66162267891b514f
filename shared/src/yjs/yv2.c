/*
 * yv2.c: the V2 update decoder (UpdateDecoderV2: nine column decoders with
 * run-length and diff coding, a key table, and a rest section), producing the
 * same decoded form as the V1 decoder.  Every column read is bounds-checked.
 */
#include "yjs_int.h"

#include <string.h>

/* A column: lib0 RleDecoder / UintOptRleDecoder / IntDiffOptRleDecoder state. */
typedef struct ycol {
    yreader_t r;
    int64_t s;
    int64_t diff;
    uint64_t count;
    bool forever;
} ycol_t;

static int col_init(yreader_t *rest, ycol_t *c)
{
    rt_slice_t s;
    memset(c, 0, sizeof *c);
    if (yread_bytes(rest, &s) < 0)
        return RT_EINVAL;
    yreader_init(&c->r, s);
    return 0;
}

static int read_signed(yreader_t *r, int64_t *v, bool *neg)
{
    uint64_t mag;
    if (yread_varint(r, &mag, neg) < 0)
        return RT_EINVAL;
    *v = *neg ? -(int64_t)mag : (int64_t)mag;
    return 0;
}

/* RleDecoder of uint8 */
static int rle_u8(ycol_t *c, uint8_t *out)
{
    if (c->count == 0 && !c->forever) {
        uint8_t b;
        if (yread_u8(&c->r, &b) < 0)
            return RT_EINVAL;
        c->s = b;
        if (yreader_left(&c->r) > 0) {
            uint64_t n;
            if (yread_varuint(&c->r, &n) < 0)
                return RT_EINVAL;
            c->count = n + 1;
        } else {
            c->forever = true;
        }
    }
    if (!c->forever)
        c->count--;
    *out = (uint8_t)c->s;
    return 0;
}

/* UintOptRleDecoder */
static int uint_opt(ycol_t *c, uint64_t *out)
{
    if (c->count == 0) {
        int64_t v;
        bool neg;
        if (read_signed(&c->r, &v, &neg) < 0)
            return RT_EINVAL;
        c->s = neg ? -v : v;
        c->count = 1;
        if (neg) {
            uint64_t n;
            if (yread_varuint(&c->r, &n) < 0)
                return RT_EINVAL;
            c->count = n + 2;
        }
    }
    c->count--;
    *out = (uint64_t)c->s;
    return 0;
}

/* IntDiffOptRleDecoder; the values must be valid clocks. */
static int int_diff(ycol_t *c, uint64_t *out)
{
    if (c->count == 0) {
        int64_t v;
        bool neg;
        if (read_signed(&c->r, &v, &neg) < 0)
            return RT_EINVAL;
        int64_t flag = v & 1;
        c->diff = (v - flag) / 2;
        c->count = 1;
        if (flag) {
            uint64_t n;
            if (yread_varuint(&c->r, &n) < 0)
                return RT_EINVAL;
            c->count = n + 2;
        }
    }
    c->s += c->diff;
    c->count--;
    if (c->s < 0 || (uint64_t)c->s > YJS_MAX_SAFE)
        return RT_EINVAL;
    *out = (uint64_t)c->s;
    return 0;
}

typedef struct yv2 {
    yreader_t rest;
    ycol_t key_clock, client, left_clock, right_clock, info, parent_info, type_ref, len;
    ycol_t str_len;
    rt_slice_t str; /* the joined strings */
    size_t str_pos;
    rt_slice_t *keys;
    size_t n_keys, cap_keys;
    struct yarena **arena;
    size_t max_structs; /* run-length coding can describe endless structs: cap them */
} yv2_t;

/* StringDecoder.read: the next string, its length given in UTF-16 units. */
static int v2_string(yv2_t *d, rt_slice_t *out)
{
    uint64_t units;
    if (uint_opt(&d->str_len, &units) < 0)
        return RT_EINVAL;
    bool mid;
    const uint8_t *p = d->str.data + d->str_pos;
    size_t left = d->str.len - d->str_pos;
    size_t n = yutf8_pos(p, left, units, &mid);
    if (mid || yutf8_utf16_len(p, n) != units)
        return RT_EINVAL; /* a cut surrogate pair or a length beyond the column */
    *out = (rt_slice_t){p, n};
    d->str_pos += n;
    return 0;
}

static int v2_key(yv2_t *d, rt_slice_t *out)
{
    uint64_t k;
    if (int_diff(&d->key_clock, &k) < 0)
        return RT_EINVAL;
    if (k < d->n_keys) {
        *out = d->keys[k];
        return 0;
    }
    if (v2_string(d, out) < 0)
        return RT_EINVAL;
    if (d->n_keys == d->cap_keys) {
        d->cap_keys = d->cap_keys ? d->cap_keys * 2 : 8;
        d->keys = rt_xrealloc(d->keys, d->cap_keys * sizeof *d->keys);
    }
    d->keys[d->n_keys++] = *out;
    return 0;
}

static rt_slice_t arena_copy(yv2_t *d, const rt_buf_t *b)
{
    uint8_t *p = yarena_alloc(d->arena, b->len ? b->len : 1);
    ymemcpy(p, b->data, b->len);
    return (rt_slice_t){p, b->len};
}

/* readJSON of V2: an any, turned into V1's JSON text. */
static int v2_json(yv2_t *d, rt_buf_t *text)
{
    rt_buf_t any = {0};
    int rc = yany_canon(&d->rest, &any, 0);
    if (rc == 0) {
        yreader_t a = yreader_of(any.data, any.len);
        rc = yany_stringify(&a, text, true);
    }
    rt_buf_dispose(&any);
    return rc;
}

static int v2_content(yv2_t *d, ystruct_t *s)
{
    rt_buf_t b = {0};
    rt_slice_t str;
    uint64_t n;
    int rc = RT_EINVAL;
    switch (s->ref) {
    case YC_DELETED:
        if (uint_opt(&d->len, &s->len) < 0 || s->len == 0)
            goto out;
        s->content = (rt_slice_t){NULL, 0};
        break;
    case YC_JSON:
        if (uint_opt(&d->len, &n) < 0 || n == 0 || n > d->str.len + 1)
            goto out;
        for (uint64_t i = 0; i < n; i++) {
            rt_buf_t t = {0};
            if (v2_string(d, &str) < 0 || yjson_canon(str, &t, true) < 0) {
                rt_buf_dispose(&t);
                goto out;
            }
            ywrite_bytes(&b, t.data, t.len);
            rt_buf_dispose(&t);
        }
        s->content = arena_copy(d, &b);
        s->len = n;
        break;
    case YC_BINARY:
        if (yread_bytes(&d->rest, &s->content) < 0)
            goto out;
        s->len = 1;
        break;
    case YC_STRING:
        if (v2_string(d, &s->content) < 0 || s->content.len == 0)
            goto out;
        s->len = yutf8_utf16_len(s->content.data, s->content.len);
        break;
    case YC_EMBED:
        if (v2_json(d, &b) < 0)
            goto out;
        s->content = arena_copy(d, &b);
        s->len = 1;
        break;
    case YC_FORMAT: {
        rt_buf_t t = {0};
        if (v2_key(d, &str) < 0 || v2_json(d, &t) < 0) {
            rt_buf_dispose(&t);
            goto out;
        }
        ywrite_bytes(&b, str.data, str.len);
        ywrite_bytes(&b, t.data, t.len);
        rt_buf_dispose(&t);
        s->content = arena_copy(d, &b);
        s->len = 1;
        break;
    }
    case YC_TYPE:
        if (uint_opt(&d->type_ref, &n) < 0 || n > 6)
            goto out;
        ywrite_varuint(&b, n);
        if (n == 3 || n == 5) {
            if (v2_key(d, &str) < 0)
                goto out;
            ywrite_bytes(&b, str.data, str.len);
        }
        s->content = arena_copy(d, &b);
        s->len = 1;
        break;
    case YC_ANY: {
        if (uint_opt(&d->len, &n) < 0 || n == 0 || n > yreader_left(&d->rest))
            goto out;
        const uint8_t *start = d->rest.p;
        for (uint64_t i = 0; i < n; i++)
            if (yany_canon(&d->rest, &b, 0) < 0)
                goto out;
        s->content = ydecode_keep(start, (size_t)(d->rest.p - start), &b, d->arena);
        s->len = n;
        break;
    }
    case YC_DOC:
        if (v2_string(d, &str) < 0)
            goto out;
        ywrite_bytes(&b, str.data, str.len);
        if (ydecode_doc_opts(&d->rest, &b) < 0)
            goto out;
        s->content = arena_copy(d, &b);
        s->len = 1;
        break;
    default:
        goto out;
    }
    rc = s->content.len > UINT32_MAX ? RT_ETOOBIG : 0; /* items keep 32-bit sizes */
out:
    rt_buf_dispose(&b);
    return rc;
}

static int v2_id(yv2_t *d, ycol_t *clock_col, yid_t *id)
{
    if (uint_opt(&d->client, &id->client) < 0 || id->client > YJS_MAX_SAFE ||
        int_diff(clock_col, &id->clock) < 0)
        return RT_EINVAL;
    return 0;
}

static int v2_item(yv2_t *d, uint8_t info, ystruct_t *s)
{
    s->kind = YK_ITEM;
    s->ref = info & 0x1f;
    if (s->ref < 1 || s->ref > 9)
        return RT_EINVAL;
    if ((info & 0x80) && (s->has_origin = true, v2_id(d, &d->left_clock, &s->origin) < 0))
        return RT_EINVAL;
    if ((info & 0x40) && (s->has_rorigin = true, v2_id(d, &d->right_clock, &s->rorigin) < 0))
        return RT_EINVAL;
    if ((info & 0xc0) == 0) {
        uint8_t pinfo;
        if (rle_u8(&d->parent_info, &pinfo) < 0)
            return RT_EINVAL;
        if (pinfo == 1) {
            s->parent_kind = YP_KEY;
            if (v2_string(d, &s->parent_key) < 0)
                return RT_EINVAL;
        } else {
            s->parent_kind = YP_ID;
            if (v2_id(d, &d->left_clock, &s->parent_id) < 0)
                return RT_EINVAL;
        }
        if ((info & 0x20) && (s->has_psub = true, v2_string(d, &s->psub) < 0))
            return RT_EINVAL;
    }
    return v2_content(d, s);
}

static int v2_structs(yv2_t *d, ydecoded_t *out)
{
    uint64_t n_blocks;
    if (yread_varuint(&d->rest, &n_blocks) < 0 || n_blocks > yreader_left(&d->rest))
        return RT_EINVAL;
    for (uint64_t b = 0; b < n_blocks; b++) {
        uint64_t n, client, clock;
        if (yread_varuint(&d->rest, &n) < 0 || uint_opt(&d->client, &client) < 0 ||
            client > YJS_MAX_SAFE || yread_varuint(&d->rest, &clock) < 0)
            return RT_EINVAL;
        *ydecoded_push_block(out) = (yblock_t){client, out->n_structs, (size_t)n};
        for (uint64_t i = 0; i < n; i++) {
            uint8_t info;
            if (rle_u8(&d->info, &info) < 0)
                return RT_EINVAL;
            if (out->n_structs >= d->max_structs)
                return RT_EINVAL;
            ystruct_t *s = ydecoded_push_struct(out);
            s->id = (yid_t){client, clock};
            if (info == YK_SKIP) {
                s->kind = YK_SKIP;
                if (yread_varuint(&d->rest, &s->len) < 0 || s->len == 0)
                    return RT_EINVAL;
            } else if ((info & 0x1f) == 0) {
                if (info != 0)
                    return RT_EINVAL;
                s->kind = YK_GC;
                if (uint_opt(&d->len, &s->len) < 0 || s->len == 0)
                    return RT_EINVAL;
            } else if (v2_item(d, info, s) < 0) {
                return RT_EINVAL;
            }
            if (s->len > YJS_MAX_SAFE - clock)
                return RT_EINVAL;
            clock += s->len;
        }
    }
    return 0;
}

/* DSDecoderV2: clocks as running differences, lengths minus one. */
static int v2_ds(yv2_t *d, ydecoded_t *out)
{
    uint64_t n_clients;
    if (yread_varuint(&d->rest, &n_clients) < 0 || n_clients > yreader_left(&d->rest))
        return RT_EINVAL;
    for (uint64_t c = 0; c < n_clients; c++) {
        uint64_t client, n, cur = 0;
        if (yread_varuint(&d->rest, &client) < 0 || yread_varuint(&d->rest, &n) < 0 ||
            n > yreader_left(&d->rest))
            return RT_EINVAL;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t dc, dl;
            if (yread_varuint(&d->rest, &dc) < 0 || yread_varuint(&d->rest, &dl) < 0)
                return RT_EINVAL;
            if (dc > YJS_MAX_SAFE - cur)
                return RT_EINVAL;
            cur += dc;
            uint64_t clock = cur, len = dl + 1;
            if (len > YJS_MAX_SAFE - cur)
                return RT_EINVAL;
            cur += len;
            *ydecoded_push_range(out) = (yrange_t){client, clock, len};
        }
    }
    return 0;
}

int ydecode_v2(rt_slice_t update, ydecoded_t *out)
{
    yv2_t d = {0};
    memset(out, 0, sizeof *out);
    d.arena = &out->arena;
    d.max_structs = update.len * 16 + 1024;
    yreader_init(&d.rest, update);
    uint64_t flag;
    ycol_t str_col;
    if (yread_varuint(&d.rest, &flag) < 0 || col_init(&d.rest, &d.key_clock) < 0 ||
        col_init(&d.rest, &d.client) < 0 || col_init(&d.rest, &d.left_clock) < 0 ||
        col_init(&d.rest, &d.right_clock) < 0 || col_init(&d.rest, &d.info) < 0 ||
        col_init(&d.rest, &str_col) < 0 || col_init(&d.rest, &d.parent_info) < 0 ||
        col_init(&d.rest, &d.type_ref) < 0 || col_init(&d.rest, &d.len) < 0)
        goto fail;
    /* the string column: one varString, then the UTF-16 lengths */
    if (yread_string(&str_col.r, &d.str) < 0)
        goto fail;
    d.str_len = str_col;
    if (v2_structs(&d, out) < 0 || v2_ds(&d, out) < 0)
        goto fail;
    free(d.keys);
    return 0;
fail:
    free(d.keys);
    ydecoded_dispose(out);
    return RT_EINVAL;
}
