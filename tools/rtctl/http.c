/*
 * http.c: rtctl's HTTP/1.1 client: URL parsing, a blocking connection with
 * deadlines, requests, response heads, and bodies framed by Content-Length,
 * chunked transfer coding (SSE streams) or the end of the connection.
 */
#include "rtctl.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD 16384
#define MAX_BODY (64u << 20)
#define MAX_CHUNK_LINE 1024

enum { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER, CHUNK_DONE };

int ctl_url_parse(const char *s, ctl_url_t *out)
{
    ctl_url_t u;
    memset(&u, 0, sizeof u);
    if (strlen(s) >= sizeof u.text)
        return RT_EINVAL;
    strcpy(u.text, s);
    if (strncmp(s, "http://", 7) == 0 || strncmp(s, "ws://", 5) == 0)
        s = strstr(s, "//") + 2;
    else if (strstr(s, "://") != NULL)
        return RT_EINVAL; /* https, wss: no TLS in rtctl; put a local proxy in front */
    size_t hostlen = strcspn(s, "/?#");
    if (hostlen == 0 || hostlen >= sizeof u.hostport)
        return RT_EINVAL;
    memcpy(u.hostport, s, hostlen);
    const char *rest = s + hostlen;
    if (*rest == '/') {
        size_t plen = strcspn(rest, "?#");
        while (plen > 0 && rest[plen - 1] == '/')
            plen--;
        if (plen >= sizeof u.prefix)
            return RT_EINVAL;
        memcpy(u.prefix, rest, plen);
    }
    const char *host = u.hostport, *port = "80";
    size_t hl = hostlen;
    if (host[0] == '[') { /* [::1]:8080 */
        const char *close = strchr(host, ']');
        if (close == NULL)
            return RT_EINVAL;
        host++;
        hl = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return RT_EINVAL;
    } else {
        const char *colon = strchr(host, ':');
        if (colon != NULL) {
            hl = (size_t)(colon - host);
            port = colon + 1;
        }
    }
    if (hl == 0 || hl >= sizeof u.host || *port == '\0' || strlen(port) >= sizeof u.port ||
        strspn(port, "0123456789") != strlen(port))
        return RT_EINVAL;
    memcpy(u.host, host, hl);
    strcpy(u.port, port);
    *out = u;
    return 0;
}

void ctl_url_escape(rt_buf_t *buf, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("-._~:", ch)) {
            rt_buf_append_byte(buf, ch);
        } else {
            rt_buf_append_byte(buf, '%');
            rt_buf_append_byte(buf, (uint8_t)hex[ch >> 4]);
            rt_buf_append_byte(buf, (uint8_t)hex[ch & 15]);
        }
    }
}

/* Milliseconds until the deadline for poll(), at least 0. */
static int poll_ms(uint64_t deadline_ns)
{
    uint64_t now = rt_now_mono_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Waits for `events` on fd; 0, RT_ETIMEOUT, RT_ESTATE (ctl_stop) or RT_EIO. */
static int wait_fd(ctl_conn_t *c, short events, uint64_t deadline_ns)
{
    for (;;) {
        if (ctl_stop) {
            snprintf(c->error, sizeof c->error, "interrupted");
            return RT_ESTATE;
        }
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, poll_ms(deadline_ns));
        if (n > 0)
            return 0;
        if (n == 0) {
            snprintf(c->error, sizeof c->error, "timed out");
            return RT_ETIMEOUT;
        }
        if (errno != EINTR) {
            snprintf(c->error, sizeof c->error, "poll: %s", strerror(errno));
            return RT_EIO;
        }
    }
}

int ctl_conn_open(ctl_conn_t *c, const ctl_url_t *url, int timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(url->host, url->port, &hints, &ai);
    if (gai != 0) {
        snprintf(c->error, sizeof c->error, "%.80s: %s", url->host, gai_strerror(gai));
        return RT_EIO;
    }
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)timeout_ms * 1000000;
    int err = RT_EIO;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            continue;
        if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && (err = wait_fd(c, POLLOUT, deadline)) == 0)) {
            int soerr = 0;
            socklen_t len = sizeof soerr;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (soerr == 0) {
                int one = 1;
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                freeaddrinfo(ai);
                return 0;
            }
            errno = soerr;
            err = RT_EIO;
        }
        if (err == RT_EIO)
            snprintf(c->error, sizeof c->error, "connect %.80s: %s", url->hostport, strerror(errno));
        close(c->fd);
        c->fd = -1;
        if (err != RT_EIO)
            break;
    }
    freeaddrinfo(ai);
    return err;
}

void ctl_conn_close(ctl_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    rt_buf_dispose(&c->in);
}

int ctl_conn_write(ctl_conn_t *c, const void *data, size_t len, uint64_t deadline_ns)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            snprintf(c->error, sizeof c->error, "send: %s", strerror(errno));
            return RT_EIO;
        }
        int err = wait_fd(c, POLLOUT, deadline_ns);
        if (err != 0)
            return err;
    }
    return 0;
}

int ctl_conn_fill(ctl_conn_t *c, uint64_t deadline_ns)
{
    for (;;) {
        uint8_t *space = rt_buf_reserve(&c->in, 16384);
        ssize_t n = recv(c->fd, space, 16384, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            return 0;
        }
        if (n == 0) {
            snprintf(c->error, sizeof c->error, "connection closed by the server");
            c->eof = true;
            return RT_EIO;
        }
        if (errno != EAGAIN && errno != EINTR) {
            snprintf(c->error, sizeof c->error, "recv: %s", strerror(errno));
            return RT_EIO;
        }
        int err = wait_fd(c, POLLIN, deadline_ns);
        if (err != 0)
            return err;
    }
}

int ctl_http_send(ctl_conn_t *c, const ctl_url_t *url, const char *method, const char *path, const char *token,
                  const char *extra_headers, const char *ctype, rt_slice_t body, uint64_t deadline_ns)
{
    rt_buf_t req = {0};
    rt_buf_printf(&req, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: rtctl\r\n", method, url->prefix, path,
                  url->hostport);
    if (token != NULL && *token)
        rt_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    if (extra_headers != NULL)
        rt_buf_append_str(&req, extra_headers);
    if (ctype != NULL)
        rt_buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, body.len);
    rt_buf_append_str(&req, "\r\n");
    rt_buf_append(&req, body.data, body.len);
    int err = ctl_conn_write(c, req.data, req.len, deadline_ns);
    rt_buf_dispose(&req);
    return err;
}

/* Parses the status line and the framing headers of a complete head. */
static int parse_head(ctl_response_t *r)
{
    int minor;
    if (sscanf(r->head, "HTTP/1.%d %3d", &minor, &r->status) != 2 || r->status < 100 || r->status > 999)
        return RT_EINVAL;
    char value[64];
    r->framing = CTL_BODY_CLOSE;
    if (ctl_response_header(r, "transfer-encoding", value, sizeof value) && strcasestr(value, "chunked")) {
        r->framing = CTL_BODY_CHUNKED;
        r->chunk_state = CHUNK_SIZE;
    } else if (ctl_response_header(r, "content-length", value, sizeof value)) {
        if (ctl_parse_u64(value, &r->remaining) != 0)
            return RT_EINVAL;
        r->framing = CTL_BODY_LENGTH;
    }
    /* no body whatever the headers say: 1xx, 204, 304 */
    if (r->status < 200 || r->status == 204 || r->status == 304) {
        r->framing = CTL_BODY_LENGTH;
        r->remaining = 0;
    }
    return 0;
}

int ctl_http_read_head(ctl_conn_t *c, ctl_response_t *r, uint64_t deadline_ns)
{
    for (;;) {
        const uint8_t *end = c->in.len ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            size_t hlen = (size_t)(end - c->in.data) + 4;
            ctl_response_t nr = {0};
            nr.head = rt_xstrndup((const char *)c->in.data, hlen);
            if (parse_head(&nr) != 0) {
                free(nr.head);
                snprintf(c->error, sizeof c->error, "malformed HTTP response");
                return RT_EINVAL;
            }
            rt_buf_consume(&c->in, hlen);
            *r = nr;
            return 0;
        }
        if (c->in.len > MAX_HEAD) {
            snprintf(c->error, sizeof c->error, "HTTP response head over %d bytes", MAX_HEAD);
            return RT_ETOOBIG;
        }
        int err = ctl_conn_fill(c, deadline_ns);
        if (err != 0)
            return err;
    }
}

bool ctl_response_header(const ctl_response_t *r, const char *name, char *out, size_t outsize)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        const char *v = line + nlen + 1;
        v += strspn(v, " \t");
        size_t vlen = strcspn(v, "\r\n");
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (outsize > 0) {
            size_t n = vlen < outsize - 1 ? vlen : outsize - 1;
            memcpy(out, v, n);
            out[n] = '\0';
        }
        return true;
    }
    return false;
}

/* Takes one CRLF-terminated line from the front of in: its length without the CRLF, -1 if incomplete,
 * -2 if too long. */
static long take_line(rt_buf_t *in, char *line, size_t linesize)
{
    const uint8_t *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
    if (nl == NULL)
        return in->len > MAX_CHUNK_LINE ? -2 : -1;
    size_t n = (size_t)(nl - in->data);
    if (n >= linesize)
        return -2;
    memcpy(line, in->data, n);
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    rt_buf_consume(in, (size_t)(nl - in->data) + 1);
    return (long)n;
}

/* Decodes what c->in holds of a chunked body into out: 1 at the end, 0 otherwise, RT_EINVAL when malformed. */
static int decode_chunked(ctl_conn_t *c, ctl_response_t *r, rt_buf_t *out)
{
    char line[MAX_CHUNK_LINE + 1];
    for (;;) {
        switch (r->chunk_state) {
        case CHUNK_SIZE: {
            long n = take_line(&c->in, line, sizeof line);
            if (n == -1)
                return 0;
            char *end;
            errno = 0;
            unsigned long long size = strtoull(line, &end, 16);
            if (n < 0 || end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' '))
                return RT_EINVAL;
            r->remaining = size;
            r->chunk_state = size == 0 ? CHUNK_TRAILER : CHUNK_DATA;
            break;
        }
        case CHUNK_DATA: {
            if (c->in.len == 0)
                return 0;
            size_t n = c->in.len < r->remaining ? c->in.len : (size_t)r->remaining;
            rt_buf_append(out, c->in.data, n);
            rt_buf_consume(&c->in, n);
            r->remaining -= n;
            if (r->remaining == 0)
                r->chunk_state = CHUNK_DATA_END;
            break;
        }
        case CHUNK_DATA_END: {
            long n = take_line(&c->in, line, sizeof line);
            if (n == -1)
                return 0;
            if (n != 0)
                return RT_EINVAL;
            r->chunk_state = CHUNK_SIZE;
            break;
        }
        case CHUNK_TRAILER: {
            long n = take_line(&c->in, line, sizeof line);
            if (n == -1)
                return 0;
            if (n < 0)
                return RT_EINVAL;
            if (n == 0)
                r->chunk_state = CHUNK_DONE;
            break;
        }
        default:
            return 1;
        }
    }
}

/* Moves buffered body bytes to out: 1 at the end of the body, 0 otherwise, negative if malformed. */
static int take_body(ctl_conn_t *c, ctl_response_t *r, rt_buf_t *out)
{
    if (r->framing == CTL_BODY_CHUNKED)
        return decode_chunked(c, r, out);
    size_t n = c->in.len;
    if (r->framing == CTL_BODY_LENGTH && n > r->remaining)
        n = (size_t)r->remaining;
    rt_buf_append(out, c->in.data, n);
    rt_buf_consume(&c->in, n);
    if (r->framing == CTL_BODY_LENGTH) {
        r->remaining -= n;
        return r->remaining == 0;
    }
    return 0;
}

int ctl_http_read_some(ctl_conn_t *c, ctl_response_t *r, rt_buf_t *out, uint64_t deadline_ns)
{
    size_t before = out->len;
    for (;;) {
        int done = take_body(c, r, out);
        if (done < 0) {
            snprintf(c->error, sizeof c->error, "malformed chunked body");
            return done;
        }
        if (done == 1)
            return out->len > before ? 0 : 1;
        if (out->len > before)
            return 0;
        int err = ctl_conn_fill(c, deadline_ns);
        if (err == RT_EIO && r->framing == CTL_BODY_CLOSE && c->eof)
            return 1;
        if (err != 0)
            return err;
    }
}

int ctl_http_read_body(ctl_conn_t *c, ctl_response_t *r, uint64_t deadline_ns)
{
    int err;
    while ((err = ctl_http_read_some(c, r, &r->body, deadline_ns)) == 0) {
        if (r->body.len > MAX_BODY) {
            snprintf(c->error, sizeof c->error, "response body over %u bytes", MAX_BODY);
            return RT_ETOOBIG;
        }
    }
    if (err == 1)
        *rt_buf_reserve(&r->body, 1) = '\0'; /* not counted: lets callers print the body as text */
    return err == 1 ? 0 : err;
}

void ctl_response_dispose(ctl_response_t *r)
{
    free(r->head);
    r->head = NULL;
    rt_buf_dispose(&r->body);
}

int ctl_http_fetch(const ctl_url_t *url, const char *method, const char *path, const char *token, const char *ctype,
                   rt_slice_t body, int timeout_ms, ctl_response_t *r, char *error)
{
    ctl_conn_t c;
    ctl_response_t resp = {0};
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)timeout_ms * 1000000;
    int err = ctl_conn_open(&c, url, timeout_ms);
    if (err != 0)
        err = RT_EUNAVAIL;
    if (err == 0)
        err = ctl_http_send(&c, url, method, path, token, "Connection: close\r\n", ctype, body, deadline);
    if (err == 0)
        err = ctl_http_read_head(&c, &resp, deadline);
    if (err == 0)
        err = ctl_http_read_body(&c, &resp, deadline);
    if (err == 0)
        *r = resp;
    else
        ctl_response_dispose(&resp);
    snprintf(error, 128, "%s", c.error);
    ctl_conn_close(&c);
    return err;
}
