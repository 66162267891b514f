/*
 * http.c: the http:// connections of rt-loadgen: an SSE reader (GET of an
 * event stream, identity or chunked transfer encoding, `data:` lines handed
 * to the scenario) and an HTTP publisher (keep-alive POSTs whose response
 * statuses are counted).
 *
 * An SSE reader's decoded bytes collect in c->frag until a line is complete,
 * so an event split over reads or chunks is parsed whole.
 */
#include "lg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LG_MAX_HEADER 8192

void lg_http_send_sse_request(lg_conn_t *c, int epfd)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                     c->url->path, c->url->hostport);
    lg_conn_send_raw(c, epfd, req, (size_t)n);
}

/* Hands every complete line in c->frag to the scenario and drops it. */
static void sse_lines(lg_conn_t *c, const lg_rx_t *rx)
{
    size_t off = 0;
    for (;;) {
        uint8_t *line = c->frag.data + off;
        uint8_t *nl = memchr(line, '\n', c->frag.len - off);
        if (nl == NULL)
            break;
        size_t ll = (size_t)(nl - line);
        off += ll + 1;
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
            size_t skip = ll > 5 && line[5] == ' ' ? 6 : 5;
            lg_on_sse_data(c, line + skip, ll - skip, rx);
        }
    }
    rt_buf_consume(&c->frag, off);
    if (c->frag.len == 0)
        rt_buf_dispose(&c->frag);
}

/* Decodes chunked transfer encoding into c->frag; returns the bytes used. */
static size_t dechunk(lg_conn_t *c, int epfd, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (c->chunk_left > 0) {
            size_t take = len - off < c->chunk_left ? len - off : c->chunk_left;
            rt_buf_append(&c->frag, p + off, take);
            off += take;
            c->chunk_left -= (uint32_t)take;
            c->chunk_crlf = c->chunk_left == 0;
            continue;
        }
        if (c->chunk_crlf) {
            if (len - off < 2)
                break;
            off += 2;
            c->chunk_crlf = false;
            continue;
        }
        const uint8_t *eol = memmem(p + off, len - off, "\r\n", 2);
        if (eol == NULL)
            break;
        char hex[16] = {0};
        size_t hl = (size_t)(eol - (p + off));
        memcpy(hex, p + off, hl < sizeof hex - 1 ? hl : sizeof hex - 1);
        unsigned long size = strtoul(hex, NULL, 16);
        off += hl + 2;
        if (size == 0 || size > (1u << 24)) {
            lg_conn_close(c, epfd);
            return off;
        }
        c->chunk_left = (uint32_t)size;
    }
    return off;
}

/* The SSE reader's response header: 200 and whether the body is chunked;
 * returns its length, 0 if incomplete, -1 if refused. */
static long sse_header(lg_conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len > LG_MAX_HEADER ? -1 : 0;
    size_t hlen = (size_t)(end - p) + 4;
    if (hlen > LG_MAX_HEADER)
        return -1;
    char head[LG_MAX_HEADER + 1];
    memcpy(head, p, hlen);
    head[hlen] = '\0';
    if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
        fprintf(stderr, "rt-loadgen: SSE request refused: %.*s\n", (int)strcspn(head, "\r\n"), head);
        return -1;
    }
    c->chunked = strcasestr(head, "\r\ntransfer-encoding: chunked") != NULL;
    return (long)hlen;
}

/* Counts the status lines in a publisher's responses (their bodies are
 * short JSON that never holds one); keeps the last 11 bytes, which may be
 * the start of a status line. */
static size_t publisher_bytes(lg_conn_t *c, const uint8_t *p, size_t len)
{
    static const char pat[] = "HTTP/1.1 ";
    const size_t need = sizeof pat - 1 + 3;
    if (len < need)
        return 0;
    size_t off = 0;
    while (off + need <= len) {
        const uint8_t *m = memmem(p + off, len - off, pat, sizeof pat - 1);
        if (m == NULL || (size_t)(m - p) + need > len)
            break;
        const uint8_t *d = m + sizeof pat - 1;
        lg_on_http_status(c, (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
        off = (size_t)(m - p) + need;
    }
    size_t keep = need - 1;
    return len - off > keep ? len - keep : off;
}

size_t lg_http_on_bytes(lg_conn_t *c, int epfd, uint8_t *p, size_t len, const lg_rx_t *rx)
{
    if (c->publisher)
        return publisher_bytes(c, p, len);
    size_t off = 0;
    if (c->state == LG_HANDSHAKE) {
        long h = sse_header(c, p, len);
        if (h <= 0) {
            if (h < 0)
                lg_conn_close(c, epfd);
            return 0;
        }
        off = (size_t)h;
        lg_conn_set_state(c, LG_OPEN);
        if (c->state == LG_CLOSED)
            return 0;
    }
    if (c->chunked) {
        off += dechunk(c, epfd, p + off, len - off);
    } else {
        rt_buf_append(&c->frag, p + off, len - off);
        off = len;
    }
    if (c->state != LG_CLOSED)
        sse_lines(c, rx);
    return off;
}
