/* input.c: reading ydoc's inputs (raw or length-prefixed updates), hex, JSON content. */
#include "ydoc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ydoc_read_file(const char *path, rt_buf_t *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "ydoc: %s: %s\n", path, strerror(errno));
        return RT_EIO;
    }
    size_t n;
    do {
        uint8_t *p = rt_buf_reserve(out, 1 << 16);
        n = fread(p, 1, out->cap - out->len, f);
        out->len += n;
    } while (n > 0);
    int rc = ferror(f) ? RT_EIO : 0;
    if (rc != 0)
        fprintf(stderr, "ydoc: %s: read error\n", path);
    if (f != stdin)
        fclose(f);
    return rc;
}

static void input_push(ydoc_input_t *in, rt_slice_t u, size_t *cap)
{
    if (in->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        in->updates = rt_xrealloc(in->updates, *cap * sizeof *in->updates);
    }
    in->updates[in->n++] = u;
}

/* Splits one stream of (u32 LE length, bytes) records. */
static int input_split(ydoc_input_t *in, const char *path, rt_slice_t s, size_t *cap)
{
    size_t off = 0;
    while (off < s.len) {
        if (s.len - off < 4) {
            fprintf(stderr, "ydoc: %s: update %zu (offset %zu): truncated length prefix (%zu bytes left)\n",
                    path, in->n, off, s.len - off);
            return RT_EINVAL;
        }
        const uint8_t *p = s.data + off;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        if (len > s.len - off - 4) {
            fprintf(stderr, "ydoc: %s: update %zu (offset %zu): length %zu exceeds the %zu bytes left\n",
                    path, in->n, off, len, s.len - off - 4);
            return RT_EINVAL;
        }
        input_push(in, (rt_slice_t){p + 4, len}, cap);
        off += 4 + len;
    }
    return 0;
}

int ydoc_input_load(ydoc_input_t *in, char **paths, size_t n, const ydoc_opts_t *opts)
{
    static char *stdin_path[] = {"-"};
    if (n == 0) {
        paths = stdin_path;
        n = 1;
    }
    memset(in, 0, sizeof *in);
    in->files = rt_xcalloc(n, sizeof *in->files);
    in->n_files = n;
    for (size_t i = 0; i < n; i++) {
        int rc = ydoc_read_file(paths[i], &in->files[i]);
        if (rc != 0)
            return rc;
    }
    /* slices are taken only after every file is read: the buffers no longer move */
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        rt_slice_t s = {in->files[i].data, in->files[i].len};
        if (opts->raw) {
            input_push(in, s, &cap);
            continue;
        }
        int rc = input_split(in, paths[i], s, &cap);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void ydoc_input_dispose(ydoc_input_t *in)
{
    for (size_t i = 0; i < in->n_files; i++)
        rt_buf_dispose(&in->files[i]);
    free(in->files);
    free(in->updates);
    memset(in, 0, sizeof *in);
}

void ydoc_hex_append(rt_buf_t *out, rt_slice_t s)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t *p = rt_buf_reserve(out, s.len * 2 + 1);
    for (size_t i = 0; i < s.len; i++) {
        p[2 * i] = (uint8_t)digits[s.data[i] >> 4];
        p[2 * i + 1] = (uint8_t)digits[s.data[i] & 15];
    }
    p[s.len * 2] = '\0';
    out->len += s.len * 2;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ydoc_hex_decode(const char *hex, size_t len, rt_buf_t *out)
{
    if (len % 2 != 0)
        return RT_EINVAL;
    uint8_t *p = rt_buf_reserve(out, len / 2);
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return RT_EINVAL;
        p[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    out->len += len / 2;
    return 0;
}

int ydoc_apply(rt_ydoc_t *doc, rt_slice_t u, bool v2, rt_buf_t *changed)
{
    return v2 ? rt_ydoc_apply_update_v2(doc, u, changed) : rt_ydoc_apply_update(doc, u, changed);
}

int ydoc_kind_parse(const char *s, rt_ykind_t *out)
{
    static const struct {
        const char *name;
        rt_ykind_t kind;
    } kinds[] = {{"auto", RT_YKIND_AUTO}, {"text", RT_YKIND_TEXT}, {"map", RT_YKIND_MAP},
                 {"array", RT_YKIND_ARRAY}, {"xml", RT_YKIND_XML_FRAGMENT}};
    for (size_t i = 0; i < RT_ARRAY_SIZE(kinds); i++) {
        if (strcmp(s, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return RT_EINVAL;
}

static const char *kind_empty_json(rt_ykind_t kind)
{
    switch (kind) {
    case RT_YKIND_MAP: return "{}";
    case RT_YKIND_ARRAY: return "[]";
    case RT_YKIND_TEXT:
    case RT_YKIND_XML_FRAGMENT: return "\"\"";
    default: return "null";
    }
}

/* Appends `s` as a JSON string literal (names are UTF-8 from the command line). */
static void json_string_append(rt_buf_t *out, const char *s)
{
    rt_buf_append_byte(out, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rt_buf_printf(out, "\\%c", c);
        else if (c < 0x20)
            rt_buf_printf(out, "\\u%04x", c);
        else
            rt_buf_append_byte(out, c);
    }
    rt_buf_append_byte(out, '"');
}

int ydoc_json(const rt_ydoc_t *doc, const rt_ykind_hint_t *hints, size_t n_hints, rt_buf_t *out)
{
    if (n_hints == 0)
        return rt_ydoc_to_json(doc, NULL, 0, out);
    rt_buf_append_byte(out, '{');
    for (size_t i = 0; i < n_hints; i++) {
        if (i > 0)
            rt_buf_append_byte(out, ',');
        json_string_append(out, hints[i].name);
        rt_buf_append_byte(out, ':');
        int rc = rt_ydoc_root_to_json(doc, hints[i].name, hints[i].kind, out);
        if (rc == RT_ENOTFOUND)
            rt_buf_append_str(out, kind_empty_json(hints[i].kind));
        else if (rc != 0)
            return rc;
    }
    rt_buf_append_byte(out, '}');
    return 0;
}
