/* json.c: a JSON syntax check and an object writer, on bytes. */
#include "rt/json.h"
#include "json_int.h"

#include <inttypes.h>

void rt_jscan_ws(rt_jscan_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static bool take(rt_jscan_t *j, uint8_t c)
{
    rt_jscan_ws(j);
    if (j->p == j->end || *j->p != c)
        return false;
    j->p++;
    return true;
}

int rt_jscan_hex4(rt_jscan_t *j, uint32_t *out)
{
    if (j->end - j->p < 4)
        return RT_EINVAL;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = j->p[i], lower = c | 0x20;
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (lower >= 'a' && lower <= 'f')
            d = (uint32_t)(lower - 'a' + 10);
        else
            return RT_EINVAL;
        v = v << 4 | d;
    }
    j->p += 4;
    *out = v;
    return RT_OK;
}

/* After the backslash of an escape.  A high surrogate must come with its low half. */
static int scan_escape(rt_jscan_t *j)
{
    if (j->p == j->end)
        return RT_EINVAL;
    uint8_t c = *j->p++;
    if (c != 'u')
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't'
                   ? RT_OK
                   : RT_EINVAL;
    uint32_t cp, lo;
    if (rt_jscan_hex4(j, &cp) < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
        return RT_EINVAL;
    if (cp < 0xd800 || cp > 0xdbff)
        return RT_OK;
    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
        return RT_EINVAL;
    j->p += 2;
    return rt_jscan_hex4(j, &lo) == RT_OK && lo >= 0xdc00 && lo <= 0xdfff ? RT_OK : RT_EINVAL;
}

/* At the opening quote. */
static int scan_string(rt_jscan_t *j)
{
    const uint8_t *start = ++j->p;
    for (;;) {
        if (j->p == j->end)
            return RT_EINVAL;
        uint8_t c = *j->p++;
        if (c == '"')
            break;
        if (c < 0x20 || (c == '\\' && scan_escape(j) < 0))
            return RT_EINVAL;
    }
    /* escapes are ASCII: the raw bytes are valid UTF-8 exactly when the string is */
    return rt_utf8_valid(start, (size_t)(j->p - 1 - start)) ? RT_OK : RT_EINVAL;
}

static bool digits(rt_jscan_t *j)
{
    const uint8_t *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

int rt_jscan_number(rt_jscan_t *j)
{
    if (*j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (j->p == j->end || *j->p < '1' || *j->p > '9' || !digits(j))
        return RT_EINVAL;
    if (j->p < j->end && *j->p == '.' && (j->p++, !digits(j)))
        return RT_EINVAL;
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return RT_EINVAL;
    }
    return RT_OK;
}

static int scan_word(rt_jscan_t *j, const char *word, size_t len)
{
    if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0)
        return RT_EINVAL;
    j->p += len;
    return RT_OK;
}

/* A scalar, at its first byte. */
static int scan_scalar(rt_jscan_t *j)
{
    switch (*j->p) {
    case '"': return scan_string(j);
    case 't': return scan_word(j, "true", 4);
    case 'f': return scan_word(j, "false", 5);
    case 'n': return scan_word(j, "null", 4);
    default: return rt_jscan_number(j);
    }
}

/* An object key and its colon. */
static int scan_key(rt_jscan_t *j)
{
    rt_jscan_ws(j);
    if (j->p == j->end || *j->p != '"' || scan_string(j) < 0 || !take(j, ':'))
        return RT_EINVAL;
    return RT_OK;
}

/* Iterative, with the open containers on a stack of their closing brackets,
 * so that nesting costs no C stack. */
int rt_json_check(const void *text, size_t len)
{
    if (len == 0)
        return RT_EINVAL; /* and text may be NULL */
    rt_jscan_t j = {text, (const uint8_t *)text + len};
    uint8_t open[RT_JSON_MAX_DEPTH];
    size_t depth = 0;
    for (;;) {
        /* a value */
        rt_jscan_ws(&j);
        if (j.p == j.end)
            return RT_EINVAL;
        if (*j.p == '{' || *j.p == '[') {
            if (depth == RT_JSON_MAX_DEPTH)
                return RT_EINVAL;
            uint8_t close = *j.p++ == '{' ? '}' : ']';
            open[depth++] = close;
            if (take(&j, close))
                depth--;
            else if (close == '}' && scan_key(&j) < 0)
                return RT_EINVAL;
            else
                continue;
        } else if (scan_scalar(&j) < 0) {
            return RT_EINVAL;
        }
        /* after a value: close containers until one goes on */
        for (;;) {
            if (depth == 0) {
                rt_jscan_ws(&j);
                return j.p == j.end ? RT_OK : RT_EINVAL;
            }
            if (take(&j, ',')) {
                if (open[depth - 1] == '}' && scan_key(&j) < 0)
                    return RT_EINVAL;
                break;
            }
            if (!take(&j, open[depth - 1]))
                return RT_EINVAL;
            depth--;
        }
    }
}

void rt_json_append_string(rt_buf_t *out, const void *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s; /* may be NULL when len is 0 */
    rt_buf_append_byte(out, '"');
    size_t start = 0; /* bytes from here on need no escape: appended together */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rt_buf_append(out, p + start, i - start);
        start = i + 1;
        char e[6] = {'\\', 0};
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            rt_buf_append(out, e, 6);
            continue;
        }
        rt_buf_append(out, e, 2);
    }
    if (start < len)
        rt_buf_append(out, p + start, len - start);
    rt_buf_append_byte(out, '"');
}

static void field_key(rt_buf_t *out, const char *key)
{
    if (out->len > 0 && out->data[out->len - 1] != '{')
        rt_buf_append_byte(out, ',');
    rt_json_append_string(out, key, strlen(key));
    rt_buf_append_byte(out, ':');
}

void rt_json_field_str(rt_buf_t *out, const char *key, const char *value)
{
    field_key(out, key);
    rt_json_append_string(out, value, strlen(value));
}

void rt_json_field_raw(rt_buf_t *out, const char *key, const void *value, size_t len)
{
    field_key(out, key);
    rt_buf_append(out, value, len);
}

void rt_json_field_int(rt_buf_t *out, const char *key, int64_t value)
{
    field_key(out, key);
    rt_buf_printf(out, "%" PRId64, value);
}
