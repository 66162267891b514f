/*
 * yany.c: lib0 `any` values: validation and the canonical form Yjs writes
 * after reading one (readAny + writeAny: numbers re-typed, object keys in
 * Object.keys order), skipping, and JSON output (rtsync's rendering and
 * JSON.stringify's), with numbers printed the way JavaScript prints them.
 */
#include "yjs_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void yjson_number(rt_buf_t *out, double d)
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


static int cmp_entry(const void *a, const void *b)
{
    const yobj_entry_t *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index)
        return x->index < y->index ? -1 : x->index > y->index;
    return x->key < y->key ? -1 : x->key > y->key; /* insertion order */
}

static bool key_eq(const yobj_entry_t *a, const yobj_entry_t *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Orders object entries the way Object.keys does: duplicates keep the first
 * position and the last value; index keys first, ascending.  Keys must be
 * distinct pointers in insertion order (they point into the input). */
size_t yobj_order(yobj_entry_t *e, size_t n)
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
    yobj_entry_t *e = rt_xcalloc(n ? n : 1, sizeof *e);
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
        e[m] = (yobj_entry_t){key.data, key.len, off, scratch.len - off, 0, false, false};
        m++;
    }
    m = yobj_order(e, m);
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
    case 124: yjson_number(out, tr_float(r, 4)); break;
    case 123: yjson_number(out, tr_float(r, 8)); break;
    case 122: yjson_number(out, (double)(int64_t)get_be(r->p, 8)); r->p += 8; break;
    case 119:
        n = tr_varuint(r);
        rt_json_append_string(out, r->p, n);
        r->p += n;
        break;
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
            rt_json_append_string(out, k, kl);
            rt_buf_append_byte(out, ':');
            yany_to_json(r, out);
        }
        rt_buf_append_byte(out, '}');
        break;
    }
    default: break;
    }
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
            rt_json_append_string(out, k, kl);
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
