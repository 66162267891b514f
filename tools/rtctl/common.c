/*
 * common.c: what rtctl's subcommands share: the options every one takes,
 * full-jitter backoff, printing JSON lines and the server's errors.
 */
#include "rtctl.h"

#include "rt/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000

volatile sig_atomic_t ctl_stop;

int ctl_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    /* SIGINT/SIGTERM are installed without SA_RESTART: they cut the sleep short */
    while (!ctl_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return ctl_stop ? -1 : 0;
}

static uint64_t random_u64(void)
{
    static uint64_t state;
    if (state == 0 && (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state || state == 0))
        state = rt_now_mono_ns() | 1;
    state ^= state >> 12; /* xorshift64*: jitter needs no cryptographic strength */
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ull;
}

int ctl_backoff_next_ms(ctl_backoff_t *b)
{
    unsigned shift = b->attempt < 10 ? b->attempt : 10;
    uint64_t ceiling = (uint64_t)BACKOFF_BASE_MS << shift;
    if (ceiling > BACKOFF_CAP_MS)
        ceiling = BACKOFF_CAP_MS;
    b->attempt++;
    return (int)(random_u64() % ceiling);
}

int ctl_backoff_sleep(ctl_backoff_t *b)
{
    int ms = ctl_backoff_next_ms(b);
    return ctl_sleep_ms(ms) < 0 ? -1 : ms;
}

void ctl_common_init(ctl_common_t *co)
{
    const char *token = getenv("RT_TOKEN");
    co->token = token != NULL && *token ? token : NULL;
    co->user = NULL;
    co->timeout_ms = 5000;
}

int ctl_parse_millis(const char *s, int64_t *out)
{
    int64_t v;
    if (rt_config_parse_value(RT_CFG_MILLIS, s, &v) != 0 || v < 0)
        return RT_EINVAL;
    *out = v;
    return 0;
}

int ctl_parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return RT_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return RT_EINVAL;
    *out = v;
    return 0;
}

int ctl_common_option(ctl_common_t *co, int opt, const char *arg, const char *usage)
{
    int64_t ms;
    switch (opt) {
    case CTL_OPT_TOKEN:
        co->token = arg;
        return 1;
    case CTL_OPT_USER:
        co->user = arg;
        return 1;
    case CTL_OPT_TIMEOUT:
        if (ctl_parse_millis(arg, &ms) != 0 || ms < 1 || ms > 3600000) {
            fprintf(stderr, "rtctl: bad --timeout '%s' (e.g. 500ms, 5s, 1m)\n", arg);
            return -1;
        }
        co->timeout_ms = (int)ms;
        return 1;
    case 'h':
        fputs(usage, stdout);
        exit(CTL_EXIT_OK);
    default:
        return 0;
    }
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "rtctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'rtctl %s --help'.\n", cmd);
    return CTL_EXIT_USAGE;
}

const char *ctl_path_finish(rt_buf_t *path, const ctl_common_t *co)
{
    if (co->user != NULL) {
        rt_buf_append_str(path, path->len && memchr(path->data, '?', path->len) ? "&user=" : "?user=");
        ctl_url_escape(path, co->user);
    }
    rt_buf_append_byte(path, 0);
    return (const char *)path->data;
}

static int first_line_len(rt_slice_t s)
{
    size_t n = 0;
    while (n < s.len && n < 200 && s.data[n] != '\r' && s.data[n] != '\n')
        n++;
    return (int)n;
}

void ctl_print_http_error(const ctl_response_t *r, const rt_slice_t body)
{
    json_error_t jerr;
    json_t *doc = body.len ? json_loadb((const char *)body.data, body.len, 0, &jerr) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    char retry[32];
    if (code != NULL)
        fprintf(stderr, "rtctl: HTTP %d %s: %s", r->status, code, message ? message : "");
    else
        fprintf(stderr, "rtctl: HTTP %d: %.*s", r->status, first_line_len(body),
                body.len ? (const char *)body.data : "");
    if (ctl_response_header(r, "retry-after", retry, sizeof retry))
        fprintf(stderr, " (retry after %s s)", retry);
    fputc('\n', stderr);
    json_decref(doc);
}

bool ctl_status_retryable(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

void ctl_print_json(const json_t *v)
{
    json_dumpf(v, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    fflush(stdout);
}

int ctl_request(const ctl_url_t *url, const ctl_common_t *co, const char *method, const char *path,
                const char *ctype, rt_slice_t body, bool retry_status, ctl_response_t *r)
{
    ctl_backoff_t backoff = {0};
    for (;;) {
        ctl_response_t resp;
        char error[128];
        int err = ctl_http_fetch(url, method, path, co->token, ctype, body, co->timeout_ms, &resp, error);
        bool last = backoff.attempt >= 3 || ctl_stop;
        if (err == 0 && resp.status >= 200 && resp.status < 300) {
            *r = resp;
            return 0;
        }
        if (err == 0 && (!retry_status || !ctl_status_retryable(resp.status) || last)) {
            ctl_print_http_error(&resp, (rt_slice_t){resp.body.data, resp.body.len});
            ctl_response_dispose(&resp);
            return CTL_EXIT_FAIL;
        }
        if (err != 0 && (err != RT_EUNAVAIL || last)) {
            fprintf(stderr, "rtctl: %s %s%s: %s\n", method, url->prefix, path, error);
            return CTL_EXIT_FAIL;
        }
        if (err == 0)
            ctl_response_dispose(&resp);
        if (ctl_backoff_sleep(&backoff) < 0)
            return CTL_EXIT_FAIL;
    }
}
