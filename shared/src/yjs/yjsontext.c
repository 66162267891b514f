/*
 * yjsontext.c: JSON text as Yjs round-trips it (JSON.parse then
 * JSON.stringify): legacy ContentJSON, Embed and Format values arrive as text
 * and are re-encoded canonically.
 */
#include "../json_int.h"
#include "yjs_int.h"

#include <stdlib.h>
#include <string.h>

/* Appends one code point the way JSON.stringify escapes it (lone surrogates
 * as \u escapes, as well-formed JSON.stringify writes them). */
static void jput_cp(rt_buf_t *out, uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    if (cp >= 0x20 && cp != '"' && cp != '\\' && (cp < 0xd800 || cp > 0xdfff)) {
        yutf8_put(out, cp);
        return;
    }
    if (cp < 0x80) {
        size_t at = out->len;
        uint8_t c = (uint8_t)cp;
        rt_json_append_string(out, &c, 1); /* "esc" */
        memmove(out->data + at, out->data + at + 1, out->len - at - 2);
        out->len -= 2;
        return;
    }
    char e[6] = {'\\', 'u', hex[cp >> 12], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15], hex[cp & 15]};
    rt_buf_append(out, e, 6);
}

/* Parses a JSON string and appends its JSON.stringify form.  The text was
 * already checked to be valid UTF-8. */
static int jstring(rt_jscan_t *j, rt_buf_t *out)
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
            if (rt_jscan_hex4(j, &cp) < 0)
                return RT_EINVAL;
            if (cp >= 0xd800 && cp <= 0xdbff && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                rt_jscan_t save = *j;
                uint32_t lo;
                j->p += 2;
                if (rt_jscan_hex4(j, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
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

static int jvalue(rt_jscan_t *j, rt_buf_t *out, int depth);

static int jnumber(rt_jscan_t *j, rt_buf_t *out)
{
    const uint8_t *s = j->p;
    if (rt_jscan_number(j) < 0)
        return RT_EINVAL;
    size_t n = (size_t)(j->p - s);
    if (n > 400)
        return RT_EINVAL;
    char tmp[401];
    ymemcpy(tmp, s, n);
    tmp[n] = 0;
    yjson_number(out, strtod(tmp, NULL));
    return 0;
}

static int jobject(rt_jscan_t *j, rt_buf_t *out, int depth)
{
    rt_buf_t keys = {0}, vals = {0};
    yobj_entry_t *e = NULL;
    size_t n = 0, cap = 0;
    int rc = RT_EINVAL;
    j->p++;
    rt_jscan_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        rt_buf_append_str(out, "{}");
        return 0;
    }
    for (;;) {
        rt_jscan_ws(j);
        size_t koff = keys.len;
        if (jstring(j, &keys) < 0)
            goto out;
        rt_jscan_ws(j);
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
        e[n++] = (yobj_entry_t){(const uint8_t *)(uintptr_t)koff, keys.len - koff, voff,
                               vals.len - voff, 0, false, false};
        rt_jscan_ws(j);
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
    n = yobj_order(e, n);
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

static int jvalue(rt_jscan_t *j, rt_buf_t *out, int depth)
{
    if (depth > RT_YJS_MAX_DEPTH)
        return RT_EINVAL;
    rt_jscan_ws(j);
    if (j->p >= j->end)
        return RT_EINVAL;
    switch (*j->p) {
    case '{':
        return jobject(j, out, depth);
    case '[':
        j->p++;
        rt_buf_append_byte(out, '[');
        rt_jscan_ws(j);
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
            rt_jscan_ws(j);
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
    rt_jscan_t j = {text.data, text.data ? text.data + text.len : text.data};
    size_t start = out->len;
    if (jvalue(&j, out, 0) < 0)
        goto fail;
    rt_jscan_ws(&j);
    if (j.p != j.end)
        goto fail;
    return 0;
fail:
    out->len = start;
    return RT_EINVAL;
}
