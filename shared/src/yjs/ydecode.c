/*
 * ydecode.c: validating V1 update decoder.  Produces the decoded struct list
 * (ystruct_t) and delete set that the document and the update algebra share;
 * content is kept in its canonical payload form, borrowed from the input
 * whenever the input already is canonical.
 */
#include "yjs_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct yarena {
    struct yarena *next;
    size_t used, cap;
    uint8_t data[];
} yarena_t;

uint8_t *yarena_alloc(yarena_t **a, size_t n)
{
    if (!*a || (*a)->cap - (*a)->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        yarena_t *c = rt_xmalloc(sizeof *c + cap);
        c->next = *a;
        c->used = 0;
        c->cap = cap;
        *a = c;
    }
    uint8_t *p = (*a)->data + (*a)->used;
    (*a)->used += n;
    return p;
}

void yarena_free(yarena_t *a)
{
    while (a) {
        yarena_t *n = a->next;
        free(a);
        a = n;
    }
}

/* Borrow the input bytes if the canonical form equals them, else copy. */
rt_slice_t ydecode_keep(const uint8_t *in, size_t in_len, const rt_buf_t *canon,
                             yarena_t **arena)
{
    if (canon->len == in_len && memcmp(canon->data, in, in_len) == 0)
        return (rt_slice_t){in, in_len};
    uint8_t *p = yarena_alloc(arena, canon->len ? canon->len : 1);
    ymemcpy(p, canon->data, canon->len);
    return (rt_slice_t){p, canon->len};
}

/* ContentDoc re-encodes its options as {gc:false?, autoLoad:true?, meta?}. */
int ydecode_doc_opts(yreader_t *r, rt_buf_t *out)
{
    rt_buf_t any = {0};
    int rc = yany_canon(r, &any, 0);
    if (rc < 0 || any.data[0] == 126 || any.data[0] == 127) {
        rt_buf_dispose(&any);
        return RT_EINVAL;
    }
    bool gc_off = false, auto_load = false;
    const uint8_t *meta = NULL;
    size_t meta_len = 0;
    if (any.data[0] == 118) {
        yreader_t a = {any.data + 1, any.data + any.len};
        uint64_t n = 0;
        yread_varuint(&a, &n);
        for (uint64_t i = 0; i < n; i++) {
            rt_slice_t k;
            yread_string(&a, &k);
            const uint8_t *v = a.p;
            yany_skip(&a);
            size_t vl = (size_t)(a.p - v);
            bool falsy = *v == 121 || *v == 126 || (*v == 125 && (v[1] & 0xbf) == 0) ||
                         (*v == 119 && v[1] == 0);
            if (k.len == 2 && memcmp(k.data, "gc", 2) == 0)
                gc_off = *v != 127 && falsy;
            else if (k.len == 8 && memcmp(k.data, "autoLoad", 8) == 0)
                auto_load = !falsy && *v != 127;
            else if (k.len == 4 && memcmp(k.data, "meta", 4) == 0)
                meta = (*v == 126 || *v == 127) ? NULL : v, meta_len = vl;
        }
    }
    rt_buf_append_byte(out, 118);
    ywrite_varuint(out, (uint64_t)gc_off + auto_load + (meta != NULL));
    if (gc_off) {
        ywrite_bytes(out, (const uint8_t *)"gc", 2);
        rt_buf_append_byte(out, 121);
    }
    if (auto_load) {
        ywrite_bytes(out, (const uint8_t *)"autoLoad", 8);
        rt_buf_append_byte(out, 120);
    }
    if (meta) {
        ywrite_bytes(out, (const uint8_t *)"meta", 4);
        rt_buf_append(out, meta, meta_len);
    }
    rt_buf_dispose(&any);
    return 0;
}

static int read_json_text(yreader_t *r, rt_buf_t *canon, bool allow_undefined)
{
    rt_slice_t s;
    if (yread_string(r, &s) < 0)
        return RT_EINVAL;
    return yjson_canon(s, canon, allow_undefined);
}

int ydecode_content(yreader_t *r, uint8_t ref, yarena_t **arena, rt_slice_t *payload,
                    uint64_t *len)
{
    rt_buf_t canon = {0};
    const uint8_t *start = r->p;
    uint64_t n;
    rt_slice_t s;
    int rc = RT_EINVAL;
    switch (ref) {
    case YC_DELETED:
        if (yread_varuint(r, &n) < 0 || n == 0)
            goto out;
        *payload = (rt_slice_t){NULL, 0};
        *len = n;
        break;
    case YC_JSON:
    case YC_ANY:
        if (yread_varuint(r, &n) < 0 || n == 0 || n > yreader_left(r))
            goto out;
        start = r->p;
        for (uint64_t i = 0; i < n; i++) {
            if (ref == YC_ANY) {
                if (yany_canon(r, &canon, 0) < 0)
                    goto out;
            } else {
                rt_buf_t text = {0};
                if (read_json_text(r, &text, true) < 0) {
                    rt_buf_dispose(&text);
                    goto out;
                }
                ywrite_bytes(&canon, text.data, text.len);
                rt_buf_dispose(&text);
            }
        }
        *payload = ydecode_keep(start, (size_t)(r->p - start), &canon, arena);
        *len = n;
        break;
    case YC_BINARY:
        if (yread_bytes(r, payload) < 0)
            goto out;
        *len = 1;
        break;
    case YC_STRING:
        if (yread_string(r, &s) < 0 || s.len == 0)
            goto out;
        *payload = s;
        *len = yutf8_utf16_len(s.data, s.len);
        break;
    case YC_EMBED:
        if (yread_bytes(r, &s) < 0)
            goto out;
        {
            yreader_t sub = {start, r->p};
            if (read_json_text(&sub, &canon, false) < 0)
                goto out;
        }
        *payload = ydecode_keep(s.data, s.len, &canon, arena);
        *len = 1;
        break;
    case YC_FORMAT: {
        rt_slice_t key;
        if (yread_string(r, &key) < 0)
            goto out;
        ywrite_bytes(&canon, key.data, key.len);
        rt_buf_t text = {0};
        if (read_json_text(r, &text, false) < 0) {
            rt_buf_dispose(&text);
            goto out;
        }
        ywrite_bytes(&canon, text.data, text.len);
        rt_buf_dispose(&text);
        *payload = ydecode_keep(start, (size_t)(r->p - start), &canon, arena);
        *len = 1;
        break;
    }
    case YC_TYPE:
        if (yread_varuint(r, &n) < 0 || n > 6)
            goto out;
        if ((n == 3 || n == 5) && yread_string(r, &s) < 0)
            goto out;
        *payload = (rt_slice_t){start, (size_t)(r->p - start)};
        *len = 1;
        break;
    case YC_DOC:
        if (yread_string(r, &s) < 0)
            goto out;
        ywrite_bytes(&canon, s.data, s.len);
        if (ydecode_doc_opts(r, &canon) < 0)
            goto out;
        *payload = ydecode_keep(start, (size_t)(r->p - start), &canon, arena);
        *len = 1;
        break;
    default:
        goto out;
    }
    rc = payload->len > UINT32_MAX ? RT_ETOOBIG : 0; /* items keep 32-bit sizes */
out:
    rt_buf_dispose(&canon);
    return rc;
}

static int read_id(yreader_t *r, yid_t *id)
{
    if (yread_varuint(r, &id->client) < 0 || yread_varuint(r, &id->clock) < 0)
        return RT_EINVAL;
    return 0;
}

static int read_item(yreader_t *r, uint8_t info, ystruct_t *s, yarena_t **arena)
{
    s->kind = YK_ITEM;
    s->ref = info & 0x1f;
    if (s->ref < 1 || s->ref > 9)
        return RT_EINVAL;
    if ((info & 0x80) && (s->has_origin = true, read_id(r, &s->origin) < 0))
        return RT_EINVAL;
    if ((info & 0x40) && (s->has_rorigin = true, read_id(r, &s->rorigin) < 0))
        return RT_EINVAL;
    if ((info & 0xc0) == 0) {
        uint64_t pinfo;
        if (yread_varuint(r, &pinfo) < 0)
            return RT_EINVAL;
        if (pinfo == 1) {
            s->parent_kind = YP_KEY;
            if (yread_string(r, &s->parent_key) < 0)
                return RT_EINVAL;
        } else {
            s->parent_kind = YP_ID;
            if (read_id(r, &s->parent_id) < 0)
                return RT_EINVAL;
        }
        if ((info & 0x20) && (s->has_psub = true, yread_string(r, &s->psub) < 0))
            return RT_EINVAL;
    }
    return ydecode_content(r, s->ref, arena, &s->content, &s->len);
}

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (arr) = rt_xrealloc((arr), (cap) * sizeof *(arr));                                     \
        }                                                                                          \
    } while (0)

ystruct_t *ydecoded_push_struct(ydecoded_t *d)
{
    GROW(d->structs, d->n_structs, d->cap_structs);
    ystruct_t *s = &d->structs[d->n_structs++];
    memset(s, 0, sizeof *s);
    return s;
}

yblock_t *ydecoded_push_block(ydecoded_t *d)
{
    GROW(d->blocks, d->n_blocks, d->cap_blocks);
    yblock_t *b = &d->blocks[d->n_blocks++];
    memset(b, 0, sizeof *b);
    return b;
}

yrange_t *ydecoded_push_range(ydecoded_t *d)
{
    GROW(d->ds, d->n_ds, d->cap_ds);
    yrange_t *g = &d->ds[d->n_ds++];
    memset(g, 0, sizeof *g);
    return g;
}

static int read_structs(yreader_t *r, ydecoded_t *d)
{
    uint64_t n_blocks;
    if (yread_varuint(r, &n_blocks) < 0 || n_blocks > yreader_left(r))
        return RT_EINVAL;
    for (uint64_t b = 0; b < n_blocks; b++) {
        uint64_t n, client, clock;
        if (yread_varuint(r, &n) < 0 || n > yreader_left(r) || yread_varuint(r, &client) < 0 ||
            yread_varuint(r, &clock) < 0)
            return RT_EINVAL;
        *ydecoded_push_block(d) = (yblock_t){client, d->n_structs, (size_t)n};
        for (uint64_t i = 0; i < n; i++) {
            uint8_t info;
            if (yread_u8(r, &info) < 0)
                return RT_EINVAL;
            ystruct_t *s = ydecoded_push_struct(d);
            s->id = (yid_t){client, clock};
            if ((info & 0x1f) == 0 || info == YK_SKIP) {
                if (info != 0 && info != YK_SKIP)
                    return RT_EINVAL;
                s->kind = info;
                if (yread_varuint(r, &s->len) < 0 || s->len == 0)
                    return RT_EINVAL;
            } else if (read_item(r, info, s, &d->arena) < 0) {
                return RT_EINVAL;
            }
            if (s->len > YJS_MAX_SAFE - clock)
                return RT_EINVAL;
            clock += s->len;
        }
    }
    return 0;
}

/* V1 delete set into d->ds (wire order; empty clients dropped). */
static int read_ds(yreader_t *r, ydecoded_t *d)
{
    uint64_t n_clients;
    if (yread_varuint(r, &n_clients) < 0 || n_clients > yreader_left(r))
        return RT_EINVAL;
    for (uint64_t c = 0; c < n_clients; c++) {
        uint64_t client, n;
        if (yread_varuint(r, &client) < 0 || yread_varuint(r, &n) < 0 || n > yreader_left(r))
            return RT_EINVAL;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t clock, len;
            if (yread_varuint(r, &clock) < 0 || yread_varuint(r, &len) < 0 ||
                len > YJS_MAX_SAFE - clock)
                return RT_EINVAL;
            *ydecoded_push_range(d) = (yrange_t){client, clock, len};
        }
    }
    return 0;
}

void ydecoded_dispose(ydecoded_t *d)
{
    free(d->structs);
    free(d->blocks);
    free(d->ds);
    yarena_free(d->arena);
    memset(d, 0, sizeof *d);
}

void ydecoded_clear(ydecoded_t *d)
{
    d->n_structs = d->n_blocks = d->n_ds = 0;
    yarena_free(d->arena);
    d->arena = NULL;
}

int ydecode_v1_reuse(rt_slice_t update, ydecoded_t *d)
{
    yreader_t r;
    yreader_init(&r, update);
    ydecoded_clear(d);
    if (read_structs(&r, d) < 0 || read_ds(&r, d) < 0) {
        ydecoded_clear(d);
        return RT_EINVAL;
    }
    return 0;
}

int ydecode_v1(rt_slice_t update, ydecoded_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = ydecode_v1_reuse(update, out);
    if (rc < 0)
        ydecoded_dispose(out);
    return rc;
}

static int cmp_sv(const void *a, const void *b)
{
    const yid_t *x = a, *y = b;
    if (x->client != y->client)
        return x->client < y->client ? -1 : 1;
    return x->clock < y->clock ? -1 : x->clock > y->clock; /* clock holds the wire index here */
}

int ysv_decode(rt_slice_t sv, ysv_t *out)
{
    yreader_t r;
    yreader_init(&r, sv);
    memset(out, 0, sizeof *out);
    if (sv.len == 0)
        return 0;
    uint64_t n;
    if (yread_varuint(&r, &n) < 0 || n > yreader_left(&r) / 2)
        return RT_EINVAL;
    yid_t *e = rt_xcalloc(n ? n : 1, sizeof *e);
    uint64_t *clocks = rt_xcalloc(n ? n : 1, sizeof *clocks);
    for (uint64_t i = 0; i < n; i++) {
        if (read_id(&r, &e[i]) < 0) {
            free(e);
            free(clocks);
            return RT_EINVAL;
        }
        clocks[i] = e[i].clock;
        e[i].clock = i;
    }
    ysort(e, n, sizeof *e, cmp_sv);
    /* later duplicates win (Map.set) */
    size_t m = 0;
    for (uint64_t i = 0; i < n; i++) {
        yid_t v = {e[i].client, clocks[e[i].clock]};
        if (m > 0 && e[m - 1].client == v.client)
            e[m - 1] = v;
        else
            e[m++] = v;
    }
    free(clocks);
    out->e = e;
    out->n = m;
    return 0;
}

uint64_t ysv_get(const ysv_t *sv, uint64_t client)
{
    size_t lo = 0, hi = sv->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sv->e[mid].client < client)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sv->n && sv->e[lo].client == client ? sv->e[lo].clock : 0;
}

void ysv_dispose(ysv_t *sv)
{
    free(sv->e);
    memset(sv, 0, sizeof *sv);
}
