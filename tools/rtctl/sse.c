/*
 * sse.c: `rtctl sub --sse`: reads GET /sse/{ch} (a chunked text/event-stream),
 * parses events the way EventSource does, prints each as one JSON line, and
 * after a drop reconnects with backoff, sending Last-Event-ID so that the
 * edge resumes after the last offset printed.
 */
#include "rtctl.h"

#include <stdio.h>
#include <string.h>

#define IDLE_MS 60000 /* the edge sends ": hb" every RT_HEARTBEAT (25 s by default) */
#define MAX_EVENT (16u << 20)

typedef enum { SSE_RECONNECT, SSE_DONE, SSE_FAILED } sse_next_t;

typedef struct sse {
    const ctl_url_t *url;
    const ctl_common_t *co;
    const char *channel;
    uint64_t count, printed;
    char last_id[64]; /* sent as Last-Event-ID; "" before the first id */
    /* the event being read */
    rt_buf_t data;
    bool has_data;
    char event[128];
    char id[64];
    bool has_id;
} sse_t;

/* Prints the event read so far (EventSource's dispatch); true when --count is reached. */
static bool dispatch(sse_t *s)
{
    bool done = false;
    if (s->has_id)
        snprintf(s->last_id, sizeof s->last_id, "%s", s->id);
    if (s->has_data) {
        if (s->data.len > 0)
            s->data.len--; /* the newline after the last data: line */
        json_t *data = json_stringn(s->data.len ? (const char *)s->data.data : "", s->data.len);
        uint64_t offset;
        if (data == NULL) {
            fprintf(stderr, "rtctl: an event whose data is not UTF-8 was skipped\n");
        } else {
            json_t *line = json_pack("{s:s, s:s}", "type", "message", "channel", s->channel);
            if (s->has_id && ctl_parse_u64(s->id, &offset) == 0)
                json_object_set_new(line, "offset", json_integer((json_int_t)offset));
            json_object_set_new(line, "event", json_string(s->event[0] ? s->event : "message"));
            json_object_set_new(line, "data", data);
            ctl_print_json(line);
            json_decref(line);
        }
        done = s->count > 0 && ++s->printed >= s->count;
    }
    s->data.len = 0;
    s->has_data = false;
    s->event[0] = '\0';
    s->has_id = false;
    return done;
}

/* Handles one line of the stream (without its end of line); true when --count is reached. */
static bool on_line(sse_t *s, const char *line, size_t len)
{
    if (len == 0)
        return dispatch(s);
    if (line[0] == ':')
        return false; /* a comment: the ": hb" heartbeat */
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    if (v < line + len && *v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    if (nlen == 4 && !memcmp(line, "data", 4)) {
        if (s->data.len + vlen < MAX_EVENT) {
            rt_buf_append(&s->data, v, vlen);
            rt_buf_append_byte(&s->data, '\n');
        }
        s->has_data = true;
    } else if (nlen == 5 && !memcmp(line, "event", 5)) {
        snprintf(s->event, sizeof s->event, "%.*s", (int)vlen, v);
    } else if (nlen == 2 && !memcmp(line, "id", 2) && !memchr(v, '\0', vlen)) {
        snprintf(s->id, sizeof s->id, "%.*s", (int)vlen, v);
        s->has_id = true;
    }
    return false; /* retry: ignored, rtctl's own backoff decides */
}

/* Consumes the complete lines of buf; true when --count is reached. */
static bool on_bytes(sse_t *s, rt_buf_t *buf)
{
    size_t start = 0;
    bool done = false;
    for (size_t i = 0; i < buf->len && !done; i++) {
        if (buf->data[i] != '\n')
            continue;
        size_t end = i > start && buf->data[i - 1] == '\r' ? i - 1 : i;
        done = on_line(s, (const char *)buf->data + start, end - start);
        start = i + 1;
    }
    rt_buf_consume(buf, start);
    if (buf->len > MAX_EVENT) /* a line that never ends: drop it */
        buf->len = 0;
    return done;
}

static int send_request(sse_t *s, ctl_conn_t *c, uint64_t deadline)
{
    rt_buf_t path = {0}, headers = {0};
    rt_buf_append_str(&path, "/sse/");
    ctl_url_escape(&path, s->channel);
    rt_buf_append_str(&headers, "Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
    if (s->last_id[0])
        rt_buf_printf(&headers, "Last-Event-ID: %s\r\n", s->last_id);
    rt_buf_append_byte(&headers, 0);
    const char *target = ctl_path_finish(&path, s->co);
    int err = ctl_http_send(c, s->url, "GET", target, s->co->token, (const char *)headers.data, NULL, (rt_slice_t){0},
                            deadline);
    rt_buf_dispose(&path);
    rt_buf_dispose(&headers);
    return err;
}

/* Reads the stream until it ends. */
static sse_next_t read_stream(sse_t *s, ctl_conn_t *c, ctl_response_t *r)
{
    rt_buf_t raw = {0};
    int err;
    bool done = false;
    while (!done && (err = ctl_http_read_some(c, r, &raw, rt_now_mono_ns() + (uint64_t)IDLE_MS * 1000000)) == 0)
        done = on_bytes(s, &raw);
    rt_buf_dispose(&raw);
    s->data.len = 0; /* a half-read event is read again after the resume */
    s->has_data = s->has_id = false;
    s->event[0] = '\0';
    if (done || err == RT_ESTATE)
        return SSE_DONE;
    if (err == 1)
        fprintf(stderr, "rtctl: the edge ended the stream\n");
    else if (err == RT_ETIMEOUT)
        fprintf(stderr, "rtctl: nothing from the edge for %d s\n", IDLE_MS / 1000);
    else
        fprintf(stderr, "rtctl: stream lost: %s\n", c->error);
    return SSE_RECONNECT;
}

/* One connection: request, check the answer, read events until it ends. */
static sse_next_t session(sse_t *s, ctl_backoff_t *backoff)
{
    ctl_conn_t c;
    ctl_response_t r = {0};
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)s->co->timeout_ms * 1000000;
    int err = ctl_conn_open(&c, s->url, s->co->timeout_ms);
    if (err == 0)
        err = send_request(s, &c, deadline);
    if (err == 0)
        err = ctl_http_read_head(&c, &r, deadline);
    sse_next_t next;
    if (err != 0) {
        fprintf(stderr, "rtctl: %s\n", c.error);
        next = err == RT_ESTATE ? SSE_DONE : SSE_RECONNECT;
    } else if (r.status != 200) {
        ctl_http_read_body(&c, &r, deadline);
        ctl_print_http_error(&r, (rt_slice_t){r.body.data, r.body.len});
        next = ctl_status_retryable(r.status) ? SSE_RECONNECT : SSE_FAILED;
    } else {
        backoff->attempt = 0;
        next = read_stream(s, &c, &r);
    }
    ctl_response_dispose(&r);
    ctl_conn_close(&c);
    return next;
}

int ctl_sse_run(const ctl_url_t *url, const char *channel, const ctl_common_t *co, const char *since, uint64_t count)
{
    sse_t s = {.url = url, .co = co, .channel = channel, .count = count};
    if (since != NULL)
        snprintf(s.last_id, sizeof s.last_id, "%s", since);
    ctl_backoff_t backoff = {0};
    int rc;
    for (;;) {
        sse_next_t next = session(&s, &backoff);
        if (next == SSE_DONE || ctl_stop) {
            rc = CTL_EXIT_OK;
            break;
        }
        if (next == SSE_FAILED) {
            rc = CTL_EXIT_FAIL;
            break;
        }
        int ms = ctl_backoff_next_ms(&backoff);
        fprintf(stderr, "rtctl: reconnecting in %d ms%s%s\n", ms, s.last_id[0] ? ", Last-Event-ID: " : "",
                s.last_id);
        if (ctl_sleep_ms(ms) < 0) {
            rc = CTL_EXIT_OK;
            break;
        }
    }
    rt_buf_dispose(&s.data);
    return rc;
}
