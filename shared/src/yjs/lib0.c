/*
 * lib0.c: the lib0 encoding primitives Yjs updates are made of (varUint,
 * varInt, varString, varUint8Array, `any`), with strict validation, plus the
 * canonical re-encodings Yjs applies when it decodes and re-encodes values
 * (`any` numbers and object keys, JSON text) and the UTF-8 / UTF-16 helpers.
 */
#include "yjs_int.h"

#include <math.h>
#include <stdio.h>
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
    if (yread_bytes(r, &s) < 0 || !yutf8_valid(s.data, s.len))
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

bool yutf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

uint64_t yutf8_utf16_len(const uint8_t *s, size_t n)
{
    uint64_t units = 0;
    for (size_t i = 0; i < n; i++) {
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

/* ---- numbers as JS prints them -------------------------------------------- */

/* Number.prototype.toString for finite doubles. */
static void js_number(rt_buf_t *out, double d)
{
    if (d == 0) {
        rt_buf_append_byte(out, '0');
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp: [-]d[.ddd]e[+-]xx */
    char digits[24];
    int k = 0;
    const char *p = tmp;
    if (*p == '-') {
        rt_buf_append_byte(out, '-');
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[k++] = *p;
    int e = atoi(p + 1);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = e + 1;
    if (k <= n && n <= 21) {
        rt_buf_append(out, digits, (size_t)k);
        for (int i = 0; i < n - k; i++)
            rt_buf_append_byte(out, '0');
    } else if (0 < n && n <= 21) {
        rt_buf_append(out, digits, (size_t)n);
        rt_buf_append_byte(out, '.');
        rt_buf_append(out, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        rt_buf_append_str(out, "0.");
        for (int i = 0; i < -n; i++)
            rt_buf_append_byte(out, '0');
        rt_buf_append(out, digits, (size_t)k);
    } else {
        rt_buf_append_byte(out, digits[0]);
        if (k > 1) {
            rt_buf_append_byte(out, '.');
            rt_buf_append(out, digits + 1, (size_t)(k - 1));
        }
        rt_buf_printf(out, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
}

static void json_number(rt_buf_t *out, double d)
{
    if (!isfinite(d))
        rt_buf_append_str(out, "null");
    else
        js_number(out, d);
}

static bool is_float32(double d)
{
    return (double)(float)d == d;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put_be(rt_buf_t *b, uint64_t v, int n)
{
    uint8_t *p = rt_buf_reserve(b, (size_t)n);
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    b->len += (size_t)n;
}

/* lib0 writeAny for a JS number. */
static void write_number(rt_buf_t *out, double d, bool negzero)
{
    if (isfinite(d) && d == trunc(d) && fabs(d) <= 2147483647.0) {
        rt_buf_append_byte(out, 125);
        ywrite_varint(out, (uint64_t)fabs(d), d < 0 || (d == 0 && negzero));
    } else if (is_float32(d)) {
        float f = (float)d;
        uint32_t u;
        ymemcpy(&u, &f, 4);
        rt_buf_append_byte(out, 124);
        put_be(out, u, 4);
    } else {
        uint64_t u;
        ymemcpy(&u, &d, 8);
        if (isnan(d))
            u = UINT64_C(0x7ff8000000000000);
        rt_buf_append_byte(out, 123);
        put_be(out, u, 8);
    }
}

/* ---- any ------------------------------------------------------------------ */

/* A canonical array index key ("0", "17"; < 2^32-1) orders first in JS objects. */
static bool index_key(const uint8_t *k, size_t n, uint64_t *val)
{
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    *val = v;
    return v < UINT64_C(4294967295);
}

typedef struct obj_entry {
    const uint8_t *key;
    size_t key_len;
    size_t val_off, val_len; /* in the scratch buffer */
    uint64_t index;
    bool is_index;
    bool dead;
} obj_entry_t;

static int cmp_entry(const void *a, const void *b)
{
    const obj_entry_t *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index)
        return x->index < y->index ? -1 : x->index > y->index;
    return x->key < y->key ? -1 : x->key > y->key; /* insertion order */
}

static bool key_eq(const obj_entry_t *a, const obj_entry_t *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Orders object entries the way Object.keys does: duplicates keep the first
 * position and the last value; index keys first, ascending.  Keys must be
 * distinct pointers in insertion order (they point into the input). */
static size_t order_entries(obj_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        e[i].is_index = index_key(e[i].key, e[i].key_len, &e[i].index);
        for (size_t j = 0; j < i; j++) {
            if (!e[j].dead && key_eq(&e[i], &e[j])) {
                e[j].val_off = e[i].val_off;
                e[j].val_len = e[i].val_len;
                e[i].dead = true;
                break;
            }
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!e[i].dead)
            e[m++] = e[i];
    ysort(e, m, sizeof *e, cmp_entry);
    return m;
}

static int canon_object(yreader_t *r, rt_buf_t *out, int depth)
{
    uint64_t n;
    if (yread_varuint(r, &n) < 0 || n > yreader_left(r) / 2)
        return RT_EINVAL;
    rt_buf_t scratch = {0};
    obj_entry_t *e = rt_xcalloc(n ? n : 1, sizeof *e);
    size_t m = 0;
    int rc = 0;
    for (uint64_t i = 0; i < n; i++) {
        rt_slice_t key;
        if ((rc = yread_string(r, &key)) < 0)
            goto out;
        size_t off = scratch.len;
        if ((rc = yany_canon(r, &scratch, depth + 1)) < 0)
            goto out;
        /* obj.__proto__ = v never creates an own property */
        if (key.len == 9 && memcmp(key.data, "__proto__", 9) == 0)
            continue;
        e[m] = (obj_entry_t){key.data, key.len, off, scratch.len - off, 0, false, false};
        m++;
    }
    m = order_entries(e, m);
    rt_buf_append_byte(out, 118);
    ywrite_varuint(out, m);
    for (size_t i = 0; i < m; i++) {
        ywrite_bytes(out, e[i].key, e[i].key_len);
        rt_buf_append(out, scratch.data + e[i].val_off, e[i].val_len);
    }
out:
    free(e);
    rt_buf_dispose(&scratch);
    return rc;
}

int yany_canon(yreader_t *r, rt_buf_t *out, int depth)
{
    uint8_t tag;
    const uint8_t *p;
    rt_slice_t s;
    if (depth > RT_YJS_MAX_DEPTH || yread_u8(r, &tag) < 0)
        return RT_EINVAL;
    switch (tag) {
    case 127: case 126: case 121: case 120:
        rt_buf_append_byte(out, tag);
        return 0;
    case 125: {
        uint64_t mag;
        bool neg;
        if (yread_varint(r, &mag, &neg) < 0)
            return RT_EINVAL;
        if (mag <= 2147483647u) {
            rt_buf_append_byte(out, 125);
            ywrite_varint(out, mag, neg);
        } else {
            write_number(out, neg ? -(double)mag : (double)mag, false);
        }
        return 0;
    }
    case 124: {
        if (yread_fixed(r, 4, &p) < 0)
            return RT_EINVAL;
        uint32_t u = (uint32_t)get_be(p, 4);
        float f;
        ymemcpy(&f, &u, 4);
        write_number(out, (double)f, signbit(f));
        return 0;
    }
    case 123: {
        if (yread_fixed(r, 8, &p) < 0)
            return RT_EINVAL;
        uint64_t u = get_be(p, 8);
        double d;
        ymemcpy(&d, &u, 8);
        write_number(out, d, signbit(d));
        return 0;
    }
    case 122:
        if (yread_fixed(r, 8, &p) < 0)
            return RT_EINVAL;
        rt_buf_append_byte(out, 122);
        rt_buf_append(out, p, 8);
        return 0;
    case 119:
        if (yread_string(r, &s) < 0)
            return RT_EINVAL;
        rt_buf_append_byte(out, 119);
        ywrite_bytes(out, s.data, s.len);
        return 0;
    case 118:
        return canon_object(r, out, depth);
    case 117: {
        uint64_t n;
        if (yread_varuint(r, &n) < 0 || n > yreader_left(r))
            return RT_EINVAL;
        rt_buf_append_byte(out, 117);
        ywrite_varuint(out, n);
        for (uint64_t i = 0; i < n; i++)
            if (yany_canon(r, out, depth + 1) < 0)
                return RT_EINVAL;
        return 0;
    }
    case 116:
        if (yread_bytes(r, &s) < 0)
            return RT_EINVAL;
        rt_buf_append_byte(out, 116);
        ywrite_bytes(out, s.data, s.len);
        return 0;
    default:
        return RT_EINVAL;
    }
}

/* Trusted (validated) readers: the input was checked by yany_canon. */
static uint64_t tr_varuint(yreader_t *r)
{
    uint64_t v = 0;
    yread_varuint(r, &v);
    return v;
}

void yany_skip(yreader_t *r)
{
    uint8_t tag = *r->p++;
    uint64_t n, mag;
    bool neg;
    switch (tag) {
    case 125: yread_varint(r, &mag, &neg); break;
    case 124: r->p += 4; break;
    case 123: case 122: r->p += 8; break;
    case 119: case 116: n = tr_varuint(r); r->p += n; break;
    case 118:
        n = tr_varuint(r);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t kl = tr_varuint(r);
            r->p += kl;
            yany_skip(r);
        }
        break;
    case 117:
        n = tr_varuint(r);
        for (uint64_t i = 0; i < n; i++)
            yany_skip(r);
        break;
    default: break;
    }
}

void yjson_string(rt_buf_t *out, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    rt_buf_append_byte(out, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '"': rt_buf_append_str(out, "\\\""); break;
        case '\\': rt_buf_append_str(out, "\\\\"); break;
        case '\b': rt_buf_append_str(out, "\\b"); break;
        case '\f': rt_buf_append_str(out, "\\f"); break;
        case '\n': rt_buf_append_str(out, "\\n"); break;
        case '\r': rt_buf_append_str(out, "\\r"); break;
        case '\t': rt_buf_append_str(out, "\\t"); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                rt_buf_append(out, e, 6);
            } else {
                rt_buf_append_byte(out, c);
            }
        }
    }
    rt_buf_append_byte(out, '"');
}

static double tr_float(yreader_t *r, int n)
{
    uint64_t u = get_be(r->p, n);
    r->p += n;
    if (n == 4) {
        uint32_t u32 = (uint32_t)u;
        float f;
        ymemcpy(&f, &u32, 4);
        return f;
    }
    double d;
    ymemcpy(&d, &u, 8);
    return d;
}

void yany_to_json(yreader_t *r, rt_buf_t *out)
{
    uint8_t tag = *r->p++;
    uint64_t n, mag;
    bool neg;
    switch (tag) {
    case 127: case 126: rt_buf_append_str(out, "null"); break;
    case 121: rt_buf_append_str(out, "false"); break;
    case 120: rt_buf_append_str(out, "true"); break;
    case 125:
        yread_varint(r, &mag, &neg);
        rt_buf_printf(out, "%s%llu", neg && mag ? "-" : "", (unsigned long long)mag);
        break;
    case 124: json_number(out, tr_float(r, 4)); break;
    case 123: json_number(out, tr_float(r, 8)); break;
    case 122: json_number(out, (double)(int64_t)get_be(r->p, 8)); r->p += 8; break;
    case 119: n = tr_varuint(r); yjson_string(out, r->p, n); r->p += n; break;
    case 116:
        n = tr_varuint(r);
        rt_buf_append_byte(out, '[');
        for (uint64_t i = 0; i < n; i++)
            rt_buf_printf(out, "%s%u", i ? "," : "", r->p[i]);
        rt_buf_append_byte(out, ']');
        r->p += n;
        break;
    case 117:
        n = tr_varuint(r);
        rt_buf_append_byte(out, '[');
        for (uint64_t i = 0; i < n; i++) {
            if (i)
                rt_buf_append_byte(out, ',');
            yany_to_json(r, out);
        }
        rt_buf_append_byte(out, ']');
        break;
    case 118: {
        n = tr_varuint(r);
        rt_buf_append_byte(out, '{');
        bool first = true;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t kl = tr_varuint(r);
            const uint8_t *k = r->p;
            r->p += kl;
            if (!first)
                rt_buf_append_byte(out, ',');
            first = false;
            yjson_string(out, k, kl);
            rt_buf_append_byte(out, ':');
            yany_to_json(r, out);
        }
        rt_buf_append_byte(out, '}');
        break;
    }
    default: break;
    }
}

/* ---- JSON text canonicalisation (JSON.stringify(JSON.parse(text))) ------- */

typedef struct jparser {
    const uint8_t *p, *end;
} jparser_t;

static void jws(jparser_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jhex4(jparser_t *j, uint32_t *out)
{
    if (j->end - j->p < 4)
        return RT_EINVAL;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = j->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return RT_EINVAL;
    }
    j->p += 4;
    *out = v;
    return 0;
}

static void put_utf8(rt_buf_t *b, uint32_t cp)
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

/* Appends one code point the way JSON.stringify escapes it (lone surrogates
 * as \u escapes, as well-formed JSON.stringify writes them). */
static void jput_cp(rt_buf_t *out, uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    if (cp >= 0x20 && cp != '"' && cp != '\\' && (cp < 0xd800 || cp > 0xdfff)) {
        put_utf8(out, cp);
        return;
    }
    if (cp < 0x80) {
        size_t at = out->len;
        uint8_t c = (uint8_t)cp;
        yjson_string(out, &c, 1); /* "esc" */
        memmove(out->data + at, out->data + at + 1, out->len - at - 2);
        out->len -= 2;
        return;
    }
    char e[6] = {'\\', 'u', hex[cp >> 12], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15], hex[cp & 15]};
    rt_buf_append(out, e, 6);
}

/* Parses a JSON string and appends its JSON.stringify form.  The text was
 * already checked to be valid UTF-8. */
static int jstring(jparser_t *j, rt_buf_t *out)
{
    if (j->p >= j->end || *j->p != '"')
        return RT_EINVAL;
    j->p++;
    rt_buf_append_byte(out, '"');
    for (;;) {
        if (j->p >= j->end)
            return RT_EINVAL;
        uint8_t c = *j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return RT_EINVAL;
        if (c != '\\') {
            rt_buf_append_byte(out, c);
            continue;
        }
        if (j->p >= j->end)
            return RT_EINVAL;
        c = *j->p++;
        uint32_t cp;
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (jhex4(j, &cp) < 0)
                return RT_EINVAL;
            if (cp >= 0xd800 && cp <= 0xdbff && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                jparser_t save = *j;
                uint32_t lo;
                j->p += 2;
                if (jhex4(j, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    *j = save;
            }
            break;
        default:
            return RT_EINVAL;
        }
        jput_cp(out, cp);
    }
    rt_buf_append_byte(out, '"');
    return 0;
}

static int jvalue(jparser_t *j, rt_buf_t *out, int depth);

static int jnumber(jparser_t *j, rt_buf_t *out)
{
    const uint8_t *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return RT_EINVAL;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return RT_EINVAL;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return RT_EINVAL;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return RT_EINVAL;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    size_t n = (size_t)(j->p - s);
    if (n > 400)
        return RT_EINVAL;
    char tmp[401];
    ymemcpy(tmp, s, n);
    tmp[n] = 0;
    json_number(out, strtod(tmp, NULL));
    return 0;
}

static int jobject(jparser_t *j, rt_buf_t *out, int depth)
{
    rt_buf_t keys = {0}, vals = {0};
    obj_entry_t *e = NULL;
    size_t n = 0, cap = 0;
    int rc = RT_EINVAL;
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        rt_buf_append_str(out, "{}");
        return 0;
    }
    for (;;) {
        jws(j);
        size_t koff = keys.len;
        if (jstring(j, &keys) < 0)
            goto out;
        jws(j);
        if (j->p >= j->end || *j->p != ':')
            goto out;
        j->p++;
        size_t voff = vals.len;
        if (jvalue(j, &vals, depth + 1) < 0)
            goto out;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            e = rt_xrealloc(e, cap * sizeof *e);
        }
        /* key pointer stored as an offset for now (the buffer may move) */
        e[n++] = (obj_entry_t){(const uint8_t *)(uintptr_t)koff, keys.len - koff, voff,
                               vals.len - voff, 0, false, false};
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        e[i].key = keys.data + (uintptr_t)e[i].key;
    /* index keys compare on the unquoted text */
    for (size_t i = 0; i < n; i++) {
        e[i].key += 1;
        e[i].key_len -= 2;
    }
    n = order_entries(e, n);
    rt_buf_append_byte(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            rt_buf_append_byte(out, ',');
        rt_buf_append(out, e[i].key - 1, e[i].key_len + 2);
        rt_buf_append_byte(out, ':');
        rt_buf_append(out, vals.data + e[i].val_off, e[i].val_len);
    }
    rt_buf_append_byte(out, '}');
    rc = 0;
out:
    free(e);
    rt_buf_dispose(&keys);
    rt_buf_dispose(&vals);
    return rc;
}

static int jvalue(jparser_t *j, rt_buf_t *out, int depth)
{
    if (depth > RT_YJS_MAX_DEPTH)
        return RT_EINVAL;
    jws(j);
    if (j->p >= j->end)
        return RT_EINVAL;
    switch (*j->p) {
    case '{':
        return jobject(j, out, depth);
    case '[':
        j->p++;
        rt_buf_append_byte(out, '[');
        jws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            rt_buf_append_byte(out, ']');
            return 0;
        }
        for (bool first = true;; first = false) {
            if (!first)
                rt_buf_append_byte(out, ',');
            if (jvalue(j, out, depth + 1) < 0)
                return RT_EINVAL;
            jws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                rt_buf_append_byte(out, ']');
                return 0;
            }
            return RT_EINVAL;
        }
    case '"':
        return jstring(j, out);
    case 't':
    case 'f':
    case 'n': {
        static const char *const lits[] = {"true", "false", "null"};
        for (size_t i = 0; i < 3; i++) {
            size_t l = strlen(lits[i]);
            if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) == 0) {
                j->p += l;
                rt_buf_append_str(out, lits[i]);
                return 0;
            }
        }
        return RT_EINVAL;
    }
    default:
        return jnumber(j, out);
    }
}

int yjson_canon(rt_slice_t text, rt_buf_t *out, bool allow_undefined)
{
    if (allow_undefined && text.len == 9 && memcmp(text.data, "undefined", 9) == 0) {
        rt_buf_append_str(out, "undefined");
        return 0;
    }
    jparser_t j = {text.data, text.data ? text.data + text.len : text.data};
    size_t start = out->len;
    if (jvalue(&j, out, 0) < 0)
        goto fail;
    jws(&j);
    if (j.p != j.end)
        goto fail;
    return 0;
fail:
    out->len = start;
    return RT_EINVAL;
}

int yany_stringify(yreader_t *r, rt_buf_t *out, bool top)
{
    uint8_t tag = *r->p;
    uint64_t n;
    switch (tag) {
    case 127:
        if (top)
            return RT_EINVAL;
        r->p++;
        rt_buf_append_str(out, "null");
        return 0;
    case 122:
        return RT_EINVAL;
    case 116:
        r->p++;
        n = tr_varuint(r);
        rt_buf_append_byte(out, '{');
        for (uint64_t i = 0; i < n; i++)
            rt_buf_printf(out, "%s\"%llu\":%u", i ? "," : "", (unsigned long long)i, r->p[i]);
        rt_buf_append_byte(out, '}');
        r->p += n;
        return 0;
    case 117:
        r->p++;
        n = tr_varuint(r);
        rt_buf_append_byte(out, '[');
        for (uint64_t i = 0; i < n; i++) {
            if (i)
                rt_buf_append_byte(out, ',');
            if (yany_stringify(r, out, false) < 0)
                return RT_EINVAL;
        }
        rt_buf_append_byte(out, ']');
        return 0;
    case 118: {
        r->p++;
        n = tr_varuint(r);
        rt_buf_append_byte(out, '{');
        bool first = true;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t kl = tr_varuint(r);
            const uint8_t *k = r->p;
            r->p += kl;
            if (*r->p == 127) { /* undefined members are left out */
                r->p++;
                continue;
            }
            if (!first)
                rt_buf_append_byte(out, ',');
            first = false;
            yjson_string(out, k, kl);
            rt_buf_append_byte(out, ':');
            if (yany_stringify(r, out, false) < 0)
                return RT_EINVAL;
        }
        rt_buf_append_byte(out, '}');
        return 0;
    }
    default:
        yany_to_json(r, out);
        return 0;
    }
}
