/* common.c: error names, the growable buffer, allocation and clocks. */
#include "rt/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *rt_strerror(int err)
{
    switch (err) {
    case RT_OK: return "ok";
    case RT_EINVAL: return "invalid input";
    case RT_ETOOBIG: return "too large";
    case RT_ENOTFOUND: return "not found";
    case RT_EUNAVAIL: return "unavailable";
    case RT_ETIMEOUT: return "timed out";
    case RT_EIO: return "i/o error";
    case RT_ESTATE: return "invalid state";
    default: return "unknown error";
    }
}

static void oom(size_t size)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", size);
    abort();
}

void *rt_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *rt_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *rt_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom(size);
    return q;
}

char *rt_xstrndup(const char *s, size_t n)
{
    char *d = rt_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *rt_xstrdup(const char *s)
{
    return rt_xstrndup(s, strlen(s));
}

uint8_t *rt_buf_reserve(rt_buf_t *buf, size_t extra)
{
    if (buf->cap - buf->len < extra) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap - buf->len < extra)
            cap *= 2;
        buf->data = rt_xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    return buf->data + buf->len;
}

void rt_buf_append(rt_buf_t *buf, const void *data, size_t len)
{
    if (len == 0)
        return;
    memcpy(rt_buf_reserve(buf, len), data, len);
    buf->len += len;
}

void rt_buf_append_byte(rt_buf_t *buf, uint8_t byte)
{
    *rt_buf_reserve(buf, 1) = byte;
    buf->len++;
}

void rt_buf_append_str(rt_buf_t *buf, const char *s)
{
    rt_buf_append(buf, s, strlen(s));
}

void rt_buf_printf(rt_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *dst = (char *)rt_buf_reserve(buf, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

void rt_buf_consume(rt_buf_t *buf, size_t n)
{
    if (n >= buf->len) {
        buf->len = 0;
        return;
    }
    memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
}

void rt_buf_dispose(rt_buf_t *buf)
{
    if (buf == NULL)
        return;
    free(buf->data);
    *buf = (rt_buf_t){0};
}

uint8_t *rt_buf_take(rt_buf_t *buf, size_t *len)
{
    uint8_t *data = buf->data;
    *len = buf->len;
    *buf = (rt_buf_t){0};
    return data;
}

uint64_t rt_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec rt_timespec_of_ns(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
}

int64_t rt_now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool rt_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8 && rt_ascii8(s + i)) {
            i += 8;
            continue;
        }
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
