/*
 * yjson.c: document content as JSON, the way Yjs shows it (Y.Text toString,
 * Y.Map / Y.Array toJSON, Y.XmlFragment / Y.XmlElement / Y.XmlText toString),
 * with the kind of a root type inferred from its items or named by the caller.
 */
#include "ydoc_int.h"

#include <stdlib.h>
#include <string.h>

/* Recursion guard (lists can nest deeper than integration allowed, see ydoc.c). */
static _Thread_local int json_depth;

static void type_json(const ytype_t *t, rt_ykind_t kind, rt_buf_t *out);
static void xml_string(const ytype_t *t, rt_buf_t *out);
static void xml_string_at(const ytype_t *t, rt_buf_t *out);

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
    yreader_t r = yreader_of(it->data, it->size);
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
                    rt_json_append_string(out, it->data + pos, l);
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
        if (!first)
            rt_buf_append_byte(out, ',');
        rt_json_append_string(out, keys[i].k->bytes, keys[i].k->len);
        rt_buf_append_byte(out, ':');
        if (!content_json(it, it->len - 1, out))
            rt_buf_append_str(out, "null"); /* no content (a format item): undefined */
        first = false;
    }
    rt_buf_append_byte(out, '}');
    free(keys);
}

/* String(v) of a validated canonical `any`, as a template literal shows it. */
static void any_string(yreader_t *r, rt_buf_t *out)
{
    uint8_t tag = *r->p;
    uint64_t n;
    switch (tag) {
    case 127: r->p++; rt_buf_append_str(out, "undefined"); break;
    case 119: r->p++; n = 0; yread_varuint(r, &n); rt_buf_append(out, r->p, n); r->p += n; break;
    case 118: yany_skip(r); rt_buf_append_str(out, "[object Object]"); break;
    case 117:
        r->p++;
        n = 0;
        yread_varuint(r, &n);
        for (uint64_t i = 0; i < n; i++) {
            if (i)
                rt_buf_append_byte(out, ',');
            if (*r->p == 126 || *r->p == 127) /* null and undefined join as '' */
                r->p++;
            else
                any_string(r, out);
        }
        break;
    case 116:
        r->p++;
        n = 0;
        yread_varuint(r, &n);
        for (uint64_t i = 0; i < n; i++)
            rt_buf_printf(out, "%s%u", i ? "," : "", r->p[i]);
        r->p += n;
        break;
    default:
        yany_to_json(r, out);
        break;
    }
}

/* Reads one JSON string token of canonical JSON text and appends its value. */
static const uint8_t *jstr_value(const uint8_t *p, const uint8_t *end, rt_buf_t *out)
{
    p++; /* opening quote */
    while (p < end && *p != '"') {
        if (*p != '\\') {
            rt_buf_append_byte(out, *p++);
            continue;
        }
        p++;
        if (p >= end)
            break;
        uint8_t c = *p++;
        switch (c) {
        case 'b': rt_buf_append_byte(out, '\b'); break;
        case 'f': rt_buf_append_byte(out, '\f'); break;
        case 'n': rt_buf_append_byte(out, '\n'); break;
        case 'r': rt_buf_append_byte(out, '\r'); break;
        case 't': rt_buf_append_byte(out, '\t'); break;
        case 'u': {
            uint32_t v = 0;
            for (int i = 0; i < 4 && p < end; i++, p++)
                v = v * 16 + (uint32_t)(*p <= '9' ? *p - '0' : (*p | 32) - 'a' + 10);
            if (v >= 0xd800 && v <= 0xdfff)
                rt_buf_append_str(out, "\xef\xbf\xbd");
            else if (v < 0x80)
                rt_buf_append_byte(out, (uint8_t)v);
            else if (v < 0x800) {
                rt_buf_append_byte(out, (uint8_t)(0xc0 | (v >> 6)));
                rt_buf_append_byte(out, (uint8_t)(0x80 | (v & 0x3f)));
            } else {
                rt_buf_append_byte(out, (uint8_t)(0xe0 | (v >> 12)));
                rt_buf_append_byte(out, (uint8_t)(0x80 | ((v >> 6) & 0x3f)));
                rt_buf_append_byte(out, (uint8_t)(0x80 | (v & 0x3f)));
            }
            break;
        }
        default: rt_buf_append_byte(out, c); break;
        }
    }
    return p < end ? p + 1 : end;
}

/* The end of the canonical JSON value starting at p. */
static const uint8_t *jskip(const uint8_t *p, const uint8_t *end)
{
    if (*p == '"') {
        rt_buf_t tmp = {0};
        p = jstr_value(p, end, &tmp);
        rt_buf_dispose(&tmp);
        return p;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = jskip(p, end);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != ']' && *p != '}')
        p++;
    return p;
}

/* String(v) of a canonical JSON value (a format attribute value). */
static void json_value_string(const uint8_t *p, const uint8_t *end, rt_buf_t *out)
{
    if (p >= end)
        return;
    if (*p == '"') {
        jstr_value(p, end, out);
    } else if (*p == '{') {
        rt_buf_append_str(out, "[object Object]");
    } else if (*p == '[') {
        p++;
        bool first = true;
        while (p < end && *p != ']') {
            if (!first)
                rt_buf_append_byte(out, ',');
            first = false;
            const uint8_t *e = jskip(p, end);
            if (!(e - p == 4 && memcmp(p, "null", 4) == 0))
                json_value_string(p, e, out);
            p = e;
            if (p < end && *p == ',')
                p++;
        }
    } else {
        rt_buf_append(out, p, (size_t)(jskip(p, end) - p));
    }
}

static void attr_value(const yitem_t *it, rt_buf_t *out)
{
    if (it->ref == YC_ANY) {
        yreader_t r = yreader_of(it->data, it->size);
        for (uint64_t i = 0; i + 1 < it->len; i++)
            yany_skip(&r);
        any_string(&r, out);
    } else {
        rt_buf_t j = {0};
        content_json(it, it->len - 1, &j);
        if (j.len)
            json_value_string(j.data, j.data + j.len, out);
        rt_buf_dispose(&j);
    }
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

/* One attribute of a formatting run: key and JSON value text. */
typedef struct runattr {
    rt_slice_t key, val;
} runattr_t;

typedef struct kv {
    rt_buf_t key, val;
} kv_t;

static int cmp_kv(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = n ? memcmp(x->key.data, y->key.data, n) : 0;
    return c ? c : (x->key.len < y->key.len ? -1 : x->key.len > y->key.len);
}

static int cmp_runattr(const void *a, const void *b)
{
    const runattr_t *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = n ? memcmp(x->key.data, y->key.data, n) : 0;
    return c ? c : (x->key.len < y->key.len ? -1 : x->key.len > y->key.len);
}

/* `for (const key in value)` of a JSON value, with String(value[key]). */
static size_t for_in(const uint8_t *p, const uint8_t *end, kv_t **out)
{
    kv_t *v = NULL;
    size_t n = 0, cap = 0;
    if (p < end && (*p == '{' || *p == '[')) {
        bool obj = *p == '{';
        p++;
        size_t idx = 0;
        while (p < end && *p != '}' && *p != ']') {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                v = rt_xrealloc(v, cap * sizeof *v);
            }
            memset(&v[n], 0, sizeof v[n]);
            if (obj) {
                p = jstr_value(p, end, &v[n].key);
                p++; /* ':' */
            } else {
                rt_buf_printf(&v[n].key, "%zu", idx++);
            }
            const uint8_t *e = jskip(p, end);
            json_value_string(p, e, &v[n].val);
            n++;
            p = e;
            if (p < end && *p == ',')
                p++;
        }
    } else if (p < end && *p == '"') {
        rt_buf_t s = {0};
        jstr_value(p, end, &s);
        for (size_t i = 0, idx = 0; i < s.len; idx++) {
            uint8_t c = s.data[i];
            size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            if (l > s.len - i)
                l = s.len - i;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                v = rt_xrealloc(v, cap * sizeof *v);
            }
            memset(&v[n], 0, sizeof v[n]);
            rt_buf_printf(&v[n].key, "%zu", idx);
            rt_buf_append(&v[n].val, s.data + i, l);
            n++;
            i += l;
        }
        rt_buf_dispose(&s);
    }
    *out = v;
    return n;
}

/* One delta op of XmlText.toString: the insert wrapped in its attributes. */
static void xml_text_op(const runattr_t *attrs, size_t n, const uint8_t *ins, size_t ins_len,
                        rt_buf_t *out)
{
    runattr_t *sorted = rt_xcalloc(n ? n : 1, sizeof *sorted);
    ymemcpy(sorted, attrs, n * sizeof *attrs);
    ysort(sorted, n, sizeof *sorted, cmp_runattr);
    for (size_t i = 0; i < n; i++) {
        rt_buf_append_byte(out, '<');
        rt_buf_append(out, sorted[i].key.data, sorted[i].key.len);
        kv_t *kv;
        size_t m = for_in(sorted[i].val.data, sorted[i].val.data + sorted[i].val.len, &kv);
        ysort(kv, m, sizeof *kv, cmp_kv);
        for (size_t k = 0; k < m; k++) {
            rt_buf_append_byte(out, ' ');
            rt_buf_append(out, kv[k].key.data, kv[k].key.len);
            rt_buf_append_str(out, "=\"");
            rt_buf_append(out, kv[k].val.data, kv[k].val.len);
            rt_buf_append_byte(out, '"');
            rt_buf_dispose(&kv[k].key);
            rt_buf_dispose(&kv[k].val);
        }
        free(kv);
        rt_buf_append_byte(out, '>');
    }
    rt_buf_append(out, ins, ins_len);
    for (size_t i = n; i-- > 0;) {
        rt_buf_append_str(out, "</");
        rt_buf_append(out, sorted[i].key.data, sorted[i].key.len);
        rt_buf_append_byte(out, '>');
    }
    free(sorted);
}

/* Y.XmlText toString: toDelta, each op wrapped in its attributes. */
static void xml_text_string(const ytype_t *t, rt_buf_t *out)
{
    runattr_t *attrs = NULL;
    size_t n = 0, cap = 0;
    rt_buf_t str = {0};
    for (const yitem_t *it = t->start;; it = it->right) {
        bool pack = !it || (live(it) && it->ref != YC_STRING);
        if (pack && str.len) {
            xml_text_op(attrs, n, str.data, str.len, out);
            str.len = 0;
        }
        if (!it)
            break;
        if (!live(it))
            continue;
        if (it->ref == YC_STRING) {
            rt_buf_append(&str, it->data, it->size);
        } else if (it->ref == YC_FORMAT) {
            rt_slice_t key, val;
            yreader_t r = yreader_of(it->data, it->size);
            yread_bytes(&r, &key);
            yread_bytes(&r, &val);
            size_t i;
            for (i = 0; i < n && !(attrs[i].key.len == key.len && memcmp(attrs[i].key.data, key.data, key.len) == 0); i++)
                ;
            if (val.len == 4 && memcmp(val.data, "null", 4) == 0) {
                if (i < n) {
                    memmove(attrs + i, attrs + i + 1, (n - i - 1) * sizeof *attrs);
                    n--;
                }
            } else if (i < n) {
                attrs[i].val = val;
            } else {
                if (n == cap) {
                    cap = cap ? cap * 2 : 4;
                    attrs = rt_xrealloc(attrs, cap * sizeof *attrs);
                }
                attrs[n++] = (runattr_t){key, val};
            }
        } else if (it->ref == YC_EMBED || it->ref == YC_TYPE) {
            rt_buf_t ins = {0};
            if (it->ref == YC_EMBED && it->size)
                json_value_string(it->data, it->data + it->size, &ins);
            else if (it->type)
                xml_string(it->type, &ins);
            xml_text_op(attrs, n, ins.data, ins.len, out);
            rt_buf_dispose(&ins);
        }
    }
    rt_buf_dispose(&str);
    free(attrs);
}

static void xml_string(const ytype_t *t, rt_buf_t *out)
{
    if (json_depth > YDOC_MAX_TYPE_DEPTH)
        return;
    json_depth++;
    xml_string_at(t, out);
    json_depth--;
}

static void xml_string_at(const ytype_t *t, rt_buf_t *out)
{
    switch (t->type_ref) {
    case 6:
        xml_text_string(t, out);
        return;
    case 2:
        text_string(t, out);
        return;
    case 0:
    case 1:
    case 5: /* Y.Array, Y.Map, Y.XmlHook have no toString of their own */
        rt_buf_append_str(out, "[object Object]");
        return;
    case 3:
        break;
    default:
        xml_children(t, out);
        return;
    }
    /* XmlElement: <nodename k="v">children</nodename>, attributes sorted */
    yreader_t r = yreader_of(t->item->data, t->item->size);
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
    if (json_depth > YDOC_MAX_TYPE_DEPTH) {
        rt_buf_append_str(out, "null");
        return;
    }
    json_depth++;
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
        rt_json_append_string(out, s.data, s.len);
        break;
    default:
        xml_string(t, &s);
        rt_json_append_string(out, s.data, s.len);
        break;
    }
    rt_buf_dispose(&s);
    json_depth--;
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
        rt_json_append_string(out, k->bytes, k->len);
        rt_buf_append_byte(out, ':');
        rt_ykind_t kind = hint_for(k, hints, n_hints);
        type_json(k->type, kind == RT_YKIND_AUTO ? infer_kind(k->type) : kind, out);
    }
    /* a named root the document lacks is empty (doc.getText(name) would create it) */
    bool first = doc->roots.n == 0;
    for (size_t i = 0; i < n_hints; i++) {
        if (!hints[i].name || ytable_find(&doc->roots, (const uint8_t *)hints[i].name, strlen(hints[i].name)))
            continue;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = hints[j].name && strcmp(hints[j].name, hints[i].name) == 0;
        if (dup)
            continue;
        if (!first)
            rt_buf_append_byte(out, ',');
        first = false;
        rt_json_append_string(out, (const uint8_t *)hints[i].name, strlen(hints[i].name));
        static const char *const empty[] = {"[]", "\"\"", "{}", "[]", "\"\""};
        rt_buf_append_byte(out, ':');
        rt_buf_append_str(out, empty[hints[i].kind <= RT_YKIND_XML_FRAGMENT ? hints[i].kind : 0]);
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
