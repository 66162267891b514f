/*
 * rt/common.h: the error codes, slice and growable buffer that the whole tree
 * shares.
 *
 * Errors: fallible functions return 0 or a negative RT_E* code and write their
 * out-parameters only on success.  Out of memory aborts (rt_xmalloc and
 * friends), so callers never check for NULL from them.
 */
#ifndef RT_COMMON_H
#define RT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

enum {
    RT_OK = 0,
    RT_EINVAL = -1,    /* malformed or hostile input */
    RT_ETOOBIG = -2,   /* over a configured limit */
    RT_ENOTFOUND = -3, /* no such thing */
    RT_EUNAVAIL = -4,  /* a peer or back end is unavailable */
    RT_ETIMEOUT = -5,  /* no answer in time */
    RT_EIO = -6,       /* a system call failed */
    RT_ESTATE = -7,    /* not valid in the current state */
};

/* A short static name for an RT_E* code ("invalid input", ...). */
const char *rt_strerror(int err);

/* One slice type: borrowed bytes. */
typedef struct rt_slice {
    const uint8_t *data;
    size_t len;
} rt_slice_t;

#define RT_SLICE_LIT(s) ((rt_slice_t){(const uint8_t *)(s), sizeof(s) - 1})

/* One growable buffer type.  Zero-initialised is an empty buffer. */
typedef struct rt_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} rt_buf_t;

/* Makes room for `extra` more bytes; returns a pointer to the free space. */
uint8_t *rt_buf_reserve(rt_buf_t *buf, size_t extra);
void rt_buf_append(rt_buf_t *buf, const void *data, size_t len);
void rt_buf_append_byte(rt_buf_t *buf, uint8_t byte);
void rt_buf_append_str(rt_buf_t *buf, const char *s);
/* printf-style append. */
void rt_buf_printf(rt_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void rt_buf_consume(rt_buf_t *buf, size_t n);
/* Frees the storage; the buffer is empty afterwards.  Accepts NULL. */
void rt_buf_dispose(rt_buf_t *buf);
/* Hands the storage to the caller (who frees it with free()); the buffer is empty afterwards. */
uint8_t *rt_buf_take(rt_buf_t *buf, size_t *len);

/* True if the 8 bytes at p are ASCII. */
static inline bool rt_ascii8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return !(w & UINT64_C(0x8080808080808080));
}
/* True if s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool rt_utf8_valid(const uint8_t *s, size_t n);

void *rt_xmalloc(size_t size);
void *rt_xcalloc(size_t n, size_t size);
void *rt_xrealloc(void *p, size_t size);
char *rt_xstrdup(const char *s);
char *rt_xstrndup(const char *s, size_t n);

/* Monotonic and wall clocks. */
uint64_t rt_now_mono_ns(void);
int64_t rt_now_wall_ms(void);
/* A time in nanoseconds as a timespec (for pthread_cond_timedwait deadlines). */
struct timespec rt_timespec_of_ns(uint64_t ns);

#define RT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RT_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
