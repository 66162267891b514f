/*
 * yjson.c: document content as JSON, the way Yjs shows it (Y.Text toString,
 * Y.Map / Y.Array toJSON, Y.XmlFragment / Y.XmlElement / Y.XmlText toString),
 * with the kind of a root type inferred from its items or named by the caller.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

static void type_json(const ytype_t *t, rt_ykind_t kind, rt_buf_t *out);
static void xml_string(const ytype_t *t, rt_buf_t *out);

static bool live(const yitem_t *it)
{
    return it && it->kind == YK_ITEM && !(it->flags & YF_DELETED);
}

static rt_ykind_t infer_kind(const ytype_t *t)
{
    for (size_t i = 0; i < t->map.n; i++)
        if (t->map.entries[i]->cur)
            return RT_YKIND_MAP;
    for (const yitem_t *it = t->start; it; it = it->right)
        if (it->ref == YC_STRING || it->ref == YC_FORMAT)
            return RT_YKIND_TEXT;
    return RT_YKIND_ARRAY;
}

static rt_ykind_t nested_kind(const ytype_t *t)
{
    switch (t->type_ref) {
    case 0: return RT_YKIND_ARRAY;
    case 1: case 5: return RT_YKIND_MAP;
    case 2: return RT_YKIND_TEXT;
    case 255: return infer_kind(t);
    default: return RT_YKIND_XML_FRAGMENT;
    }
}

static void text_string(const ytype_t *t, rt_buf_t *out)
{
    for (const yitem_t *it = t->start; it; it = it->right)
        if (live(it) && it->ref == YC_STRING)
            rt_buf_append(out, it->data, it->size);
}

/* One half of a surrogate pair as JSON (str.split('') semantics). */
static void half_json(const uint8_t *s, bool second, rt_buf_t *out)
{
    uint32_t cp = ((uint32_t)(s[0] & 7) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                  ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    uint32_t unit = second ? 0xdc00 + ((cp - 0x10000) & 0x3ff) : 0xd800 + ((cp - 0x10000) >> 10);
    rt_buf_printf(out, "\"\\u%04x\"", unit);
}

/* Appends the JSON of element `k` of an item's content, or of every element
 * (k == UINT64_MAX) separated by commas.  Returns false if nothing was written
 * (an undefined value). */
static bool content_json(const yitem_t *it, uint64_t k, rt_buf_t *out)
{
    bool all = k == UINT64_MAX;
    yreader_t r = {it->data, it->data + it->size};
    switch (it->ref) {
    case YC_ANY:
    case YC_JSON:
        for (uint64_t i = 0; i < it->len; i++) {
            if (!all && i != k) {
                if (it->ref == YC_ANY)
                    yany_skip(&r);
                else {
                    uint64_t n = 0;
                    yread_varuint(&r, &n);
                    r.p += n;
                }
                continue;
            }
            if (all && i)
                rt_buf_append_byte(out, ',');
            if (it->ref == YC_ANY) {
                yany_to_json(&r, out);
            } else {
                rt_slice_t s = {0};
                yread_bytes(&r, &s);
                if (s.len == 9 && memcmp(s.data, "undefined", 9) == 0)
                    rt_buf_append_str(out, "null");
                else
                    rt_buf_append(out, s.data, s.len);
            }
        }
        return true;
    case YC_STRING: {
        size_t pos = 0;
        bool half = false, wrote = false;
        for (uint64_t i = 0; i < it->len && pos < it->size; i++) {
            bool emit = all || i == k;
            if (emit && all && wrote)
                rt_buf_append_byte(out, ',');
            wrote |= emit;
            uint8_t c = it->data[pos];
            if (c >= 0xf0 && pos + 4 <= it->size) {
                if (emit)
                    half_json(it->data + pos, half, out);
                if (half)
                    pos += 4;
                half = !half;
            } else {
                size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : 3;
                if (l > it->size - pos)
                    l = it->size - pos;
                if (emit)
                    yjson_string(out, it->data + pos, l);
                pos += l;
            }
        }
        return true;
    }
    case YC_BINARY: {
        rt_buf_append_byte(out, '[');
        for (size_t i = 0; i < it->size; i++)
            rt_buf_printf(out, "%s%u", i ? "," : "", it->data[i]);
        rt_buf_append_byte(out, ']');
        return true;
    }
    case YC_EMBED:
        rt_buf_append(out, it->data, it->size);
        return true;
    case YC_TYPE:
        if (it->type)
            type_json(it->type, nested_kind(it->type), out);
        else
            rt_buf_append_str(out, "null");
        return true;
    case YC_DOC:
        rt_buf_append_str(out, "{}");
        return true;
    default:
        return false;
    }
}

static void array_json(const ytype_t *t, rt_buf_t *out)
{
    rt_buf_append_byte(out, '[');
    bool first = true;
    for (const yitem_t *it = t->start; it; it = it->right) {
        if (!live(it) || !(it->flags & YF_COUNTABLE))
            continue;
        if (!first)
            rt_buf_append_byte(out, ',');
        first = false;
        content_json(it, UINT64_MAX, out);
    }
    rt_buf_append_byte(out, ']');
}

static bool index_key(const ykey_t *k, uint64_t *v)
{
    if (k->len == 0 || k->len > 10 || (k->len > 1 && k->bytes[0] == '0'))
        return false;
    *v = 0;
    for (size_t i = 0; i < k->len; i++) {
        if (k->bytes[i] < '0' || k->bytes[i] > '9')
            return false;
        *v = *v * 10 + (uint64_t)(k->bytes[i] - '0');
    }
    return *v < UINT64_C(4294967295);
}

typedef struct keyref {
    const ykey_t *k;
    uint64_t index;
    bool is_index;
    size_t order;
} keyref_t;

static int cmp_keyref(const void *a, const void *b)
{
    const keyref_t *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index)
        return x->index < y->index ? -1 : x->index > y->index;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Live map entries in JSON.stringify key order. */
static size_t live_keys(const ytype_t *t, keyref_t **out)
{
    keyref_t *v = rt_xcalloc(t->map.n ? t->map.n : 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < t->map.n; i++) {
        const ykey_t *k = t->map.entries[i];
        if (!live(k->cur))
            continue;
        v[n] = (keyref_t){k, 0, false, i};
        v[n].is_index = index_key(k, &v[n].index);
        n++;
    }
    ysort(v, n, sizeof *v, cmp_keyref);
    *out = v;
    return n;
}

static void map_json(const ytype_t *t, rt_buf_t *out)
{
    keyref_t *keys;
    size_t n = live_keys(t, &keys);
    rt_buf_append_byte(out, '{');
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const yitem_t *it = keys[i].k->cur;
        size_t mark = out->len;
        if (!first)
            rt_buf_append_byte(out, ',');
        yjson_string(out, keys[i].k->bytes, keys[i].k->len);
        rt_buf_append_byte(out, ':');
        if (!content_json(it, it->len - 1, out)) {
            out->len = mark;
            continue;
        }
        first = false;
    }
    rt_buf_append_byte(out, '}');
    free(keys);
}

/* String(value) for an attribute value given as JSON-ish content. */
static void attr_value(const yitem_t *it, rt_buf_t *out)
{
    rt_buf_t j = {0};
    if (!content_json(it, it->len - 1, &j)) {
        rt_buf_append_str(out, "undefined");
    } else if (j.len >= 2 && j.data[0] == '"') {
        /* a JSON string: the raw text (escapes are rare in attributes) */
        rt_buf_append(out, j.data + 1, j.len - 2);
    } else if (j.len && (j.data[0] == '{')) {
        rt_buf_append_str(out, "[object Object]");
    } else {
        rt_buf_append(out, j.data, j.len);
    }
    rt_buf_dispose(&j);
}

static int cmp_key_bytes(const void *a, const void *b)
{
    const ykey_t *x = ((const keyref_t *)a)->k, *y = ((const keyref_t *)b)->k;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->bytes, y->bytes, n);
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

static void xml_children(const ytype_t *t, rt_buf_t *out)
{
    for (const yitem_t *it = t->start; it; it = it->right)
        if (live(it) && it->ref == YC_TYPE && it->type)
            xml_string(it->type, out);
}

/* Y.XmlText toString: text runs wrapped in their formatting attributes. */
static void xml_text_string(const ytype_t *t, rt_buf_t *out)
{
    /* current attributes: the last live format value per key */
    const yitem_t **fmt = NULL;
    size_t n_fmt = 0, cap = 0;
    for (const yitem_t *it = t->start; it; it = it->right) {
        if (!live(it))
            continue;
        if (it->ref == YC_FORMAT) {
            yreader_t r = {it->data, it->data + it->size};
            rt_slice_t key, val;
            yread_bytes(&r, &key);
            yread_bytes(&r, &val);
            size_t i;
            for (i = 0; i < n_fmt; i++) {
                yreader_t r2 = {fmt[i]->data, fmt[i]->data + fmt[i]->size};
                rt_slice_t k2;
                yread_bytes(&r2, &k2);
                if (k2.len == key.len && memcmp(k2.data, key.data, key.len) == 0)
                    break;
            }
            bool is_null = val.len == 4 && memcmp(val.data, "null", 4) == 0;
            if (i < n_fmt) {
                if (is_null)
                    fmt[i] = fmt[--n_fmt];
                else
                    fmt[i] = it;
            } else if (!is_null) {
                if (n_fmt == cap) {
                    cap = cap ? cap * 2 : 4;
                    fmt = rt_xrealloc(fmt, cap * sizeof *fmt);
                }
                fmt[n_fmt++] = it;
            }
            continue;
        }
        if (it->ref != YC_STRING)
            continue;
        /* sorted node names */
        keyref_t *names = rt_xcalloc(n_fmt ? n_fmt : 1, sizeof *names);
        ykey_t **tmp = rt_xcalloc(n_fmt ? n_fmt : 1, sizeof *tmp);
        for (size_t i = 0; i < n_fmt; i++) {
            yreader_t r = {fmt[i]->data, fmt[i]->data + fmt[i]->size};
            rt_slice_t key;
            yread_bytes(&r, &key);
            tmp[i] = rt_xcalloc(1, sizeof(ykey_t) + key.len + 1);
            ymemcpy(tmp[i]->bytes, key.data, key.len);
            tmp[i]->len = (uint32_t)key.len;
            names[i].k = tmp[i];
        }
        ysort(names, n_fmt, sizeof *names, cmp_key_bytes);
        for (size_t i = 0; i < n_fmt; i++) {
            rt_buf_append_byte(out, '<');
            rt_buf_append(out, names[i].k->bytes, names[i].k->len);
            rt_buf_append_byte(out, '>');
        }
        rt_buf_append(out, it->data, it->size);
        for (size_t i = n_fmt; i-- > 0;) {
            rt_buf_append_str(out, "</");
            rt_buf_append(out, names[i].k->bytes, names[i].k->len);
            rt_buf_append_byte(out, '>');
        }
        for (size_t i = 0; i < n_fmt; i++)
            free(tmp[i]);
        free(tmp);
        free(names);
    }
    free(fmt);
}

static void xml_string(const ytype_t *t, rt_buf_t *out)
{
    if (t->type_ref == 6) {
        xml_text_string(t, out);
        return;
    }
    if (t->type_ref != 3) {
        xml_children(t, out);
        return;
    }
    /* XmlElement: <nodename k="v">children</nodename>, attributes sorted */
    yreader_t r = {t->item->data, t->item->data + t->item->size};
    uint64_t ref;
    rt_slice_t name = {0};
    yread_varuint(&r, &ref);
    yread_bytes(&r, &name);
    rt_buf_t lname = {0};
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.data[i];
        rt_buf_append_byte(&lname, (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
    keyref_t *keys;
    size_t n = live_keys(t, &keys);
    ysort(keys, n, sizeof *keys, cmp_key_bytes);
    rt_buf_append_byte(out, '<');
    rt_buf_append(out, lname.data, lname.len);
    for (size_t i = 0; i < n; i++) {
        rt_buf_append_byte(out, ' ');
        rt_buf_append(out, keys[i].k->bytes, keys[i].k->len);
        rt_buf_append_str(out, "=\"");
        attr_value(keys[i].k->cur, out);
        rt_buf_append_byte(out, '"');
    }
    rt_buf_append_byte(out, '>');
    xml_children(t, out);
    rt_buf_append_str(out, "</");
    rt_buf_append(out, lname.data, lname.len);
    rt_buf_append_byte(out, '>');
    free(keys);
    rt_buf_dispose(&lname);
}

static void type_json(const ytype_t *t, rt_ykind_t kind, rt_buf_t *out)
{
    rt_buf_t s = {0};
    switch (kind) {
    case RT_YKIND_MAP:
        map_json(t, out);
        break;
    case RT_YKIND_ARRAY:
        array_json(t, out);
        break;
    case RT_YKIND_TEXT:
        if (t->type_ref == 6)
            xml_text_string(t, &s);
        else
            text_string(t, &s);
        yjson_string(out, s.data, s.len);
        break;
    default:
        xml_string(t, &s);
        yjson_string(out, s.data, s.len);
        break;
    }
    rt_buf_dispose(&s);
}

static rt_ykind_t hint_for(const ykey_t *k, const rt_ykind_hint_t *hints, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hints[i].name && strlen(hints[i].name) == k->len &&
            memcmp(hints[i].name, k->bytes, k->len) == 0)
            return hints[i].kind;
    return RT_YKIND_AUTO;
}

int rt_ydoc_to_json(const rt_ydoc_t *doc, const rt_ykind_hint_t *hints, size_t n_hints,
                    rt_buf_t *out)
{
    rt_buf_append_byte(out, '{');
    for (size_t i = 0; i < doc->roots.n; i++) {
        const ykey_t *k = doc->roots.entries[i];
        if (i)
            rt_buf_append_byte(out, ',');
        yjson_string(out, k->bytes, k->len);
        rt_buf_append_byte(out, ':');
        rt_ykind_t kind = hint_for(k, hints, n_hints);
        type_json(k->type, kind == RT_YKIND_AUTO ? infer_kind(k->type) : kind, out);
    }
    rt_buf_append_byte(out, '}');
    return 0;
}

int rt_ydoc_root_to_json(const rt_ydoc_t *doc, const char *name, rt_ykind_t kind, rt_buf_t *out)
{
    const ykey_t *k = ytable_find(&doc->roots, (const uint8_t *)name, strlen(name));
    if (!k)
        return RT_ENOTFOUND;
    type_json(k->type, kind == RT_YKIND_AUTO ? infer_kind(k->type) : kind, out);
    return 0;
}
