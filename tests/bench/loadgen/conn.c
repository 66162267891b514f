/*
 * conn.c: one WebSocket client connection of rt-loadgen: non-blocking
 * connect, the RFC 6455 client handshake (with the Sec-WebSocket-Accept
 * check), masked client frames, and parsing of the server's frames
 * (fragments, ping, close).  Text messages go to lg_on_text().
 *
 * Reads go into one static scratch buffer; only the tail of an incomplete
 * frame is copied into the connection, so 10,000 idle connections cost the
 * generator almost nothing and a busy one costs one read() per wake-up.
 */
#include "lg.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_FRAME (16u << 20)
#define LG_MAX_HEADER 8192
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

static uint8_t scratch[1 << 18];
static int64_t real_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns, taken once */

/* xorshift64*: masking keys and handshake nonces need no cryptographic strength here */
static uint64_t rng_next(void)
{
    static uint64_t s;
    if (s == 0 && (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s || s == 0))
        s = rt_now_mono_ns() | 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

int lg_url_parse(const char *s, lg_url_t *out)
{
    lg_url_t u;
    memset(&u, 0, sizeof u);
    if (strncmp(s, "ws://", 5) == 0) {
        s += 5;
    } else if (strncmp(s, "http://", 7) == 0) {
        s += 7;
        u.http = true;
    } else {
        return RT_EINVAL;
    }
    const char *slash = strchr(s, '/');
    const char *colon = strchr(s, ':');
    size_t hostlen = slash ? (size_t)(slash - s) : strlen(s);
    if (hostlen == 0 || hostlen >= sizeof u.hostport)
        return RT_EINVAL;
    memcpy(u.hostport, s, hostlen);
    snprintf(u.path, sizeof u.path, "%s", slash ? slash : "/");
    u.eio = strncmp(u.path, "/socket.io/", 11) == 0;
    if (colon && (!slash || colon < slash)) {
        size_t hl = (size_t)(colon - s), pl = hostlen - hl - 1;
        if (hl >= sizeof u.host || pl == 0 || pl >= sizeof u.port)
            return RT_EINVAL;
        memcpy(u.host, s, hl);
        memcpy(u.port, colon + 1, pl);
    } else {
        if (hostlen >= sizeof u.host)
            return RT_EINVAL;
        memcpy(u.host, s, hostlen);
        strcpy(u.port, "80");
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(u.host, u.port, &hints, &ai) != 0)
        return RT_EINVAL;
    memcpy(&u.addr, ai->ai_addr, ai->ai_addrlen);
    u.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    *out = u;
    return 0;
}

void lg_conn_set_state(lg_conn_t *c, lg_state_t s)
{
    lg_state_t old = c->state;
    c->state = (uint8_t)s;
    lg_on_state(c, old);
}

static void watch(lg_conn_t *c, int epfd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void lg_conn_close(lg_conn_t *c, int epfd)
{
    (void)epfd; /* close() drops the registration */
    if (c->state == LG_CLOSED || c->state == LG_IDLE)
        return;
    close(c->fd);
    c->fd = -1;
    rt_buf_dispose(&c->in);
    rt_buf_dispose(&c->out);
    rt_buf_dispose(&c->frag);
    lg_conn_set_state(c, LG_CLOSED);
}

int lg_conn_open(lg_conn_t *c, int epfd, const lg_url_t *url)
{
    if (real_minus_mono == 0) {
        struct timespec r;
        clock_gettime(CLOCK_REALTIME, &r);
        uint64_t m = rt_now_mono_ns();
        real_minus_mono = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec - (int64_t)m;
    }
    c->fd = socket(url->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = LG_CLOSED;
        return RT_EIO;
    }
    c->url = url;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    c->state = LG_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if ((connect(c->fd, (const struct sockaddr *)&url->addr, url->addrlen) < 0 && errno != EINPROGRESS) ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        lg_conn_close(c, epfd);
        return RT_EIO;
    }
    return 0;
}

/* Writes now what the socket takes and queues the rest. */
static void conn_write(lg_conn_t *c, int epfd, const uint8_t *data, size_t len)
{
    if (c->out.len == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n == (ssize_t)len)
            return;
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                lg_conn_close(c, epfd);
                return;
            }
            n = 0;
        }
        data += n;
        len -= (size_t)n;
        watch(c, epfd, EPOLLIN | EPOLLOUT);
    }
    rt_buf_append(&c->out, data, len);
}

static void flush_out(lg_conn_t *c, int epfd)
{
    ssize_t n = write(c->fd, c->out.data, c->out.len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            lg_conn_close(c, epfd);
        return;
    }
    rt_buf_consume(&c->out, (size_t)n);
    if (c->out.len == 0) {
        rt_buf_dispose(&c->out);
        watch(c, epfd, EPOLLIN);
    }
}

static void send_frame(lg_conn_t *c, int epfd, uint8_t op, const void *data, size_t len)
{
    uint8_t stackbuf[1024];
    rt_buf_t heap = {0};
    uint8_t *f = len + 14 <= sizeof stackbuf ? stackbuf : rt_buf_reserve(&heap, len + 14);
    size_t h = 0;
    f[h++] = 0x80 | op;
    if (len < 126) {
        f[h++] = 0x80 | (uint8_t)len;
    } else if (len < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = (uint32_t)rng_next();
    uint8_t mask[4];
    memcpy(mask, &key, 4);
    memcpy(f + h, mask, 4);
    h += 4;
    const uint8_t *src = data;
    for (size_t i = 0; i < len; i++)
        f[h + i] = src[i] ^ mask[i & 3];
    conn_write(c, epfd, f, h + len);
    rt_buf_dispose(&heap);
}

void lg_conn_send_raw(lg_conn_t *c, int epfd, const void *data, size_t len)
{
    if (c->state != LG_CLOSED)
        conn_write(c, epfd, data, len);
}

void lg_conn_send_text(lg_conn_t *c, int epfd, const void *data, size_t len)
{
    if (c->state != LG_CLOSED)
        send_frame(c, epfd, OP_TEXT, data, len);
}

static void base64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void send_handshake(lg_conn_t *c, int epfd, const lg_url_t *url)
{
    uint8_t nonce[16];
    uint64_t r[2] = {rng_next(), rng_next()};
    memcpy(nonce, r, sizeof nonce);
    char key[25];
    base64(nonce, sizeof nonce, key);
    char cat[64];
    snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
    base64(md, mdlen, c->accept);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     url->path, url->hostport, key);
    conn_write(c, epfd, (const uint8_t *)req, (size_t)n);
}

/* Checks the 101 answer; returns the header length, 0 if incomplete, -1 if refused. */
static long parse_handshake(lg_conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len > LG_MAX_HEADER ? -1 : 0;
    size_t hlen = (size_t)(end - p) + 4;
    char head[LG_MAX_HEADER + 1];
    if (hlen > LG_MAX_HEADER)
        return -1;
    memcpy(head, p, hlen);
    head[hlen] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "rt-loadgen: upgrade refused: %.*s\n", (int)strcspn(head, "\r\n"), head);
        return -1;
    }
    const char *a = strcasestr(head, "\r\nsec-websocket-accept:");
    if (a == NULL)
        return -1;
    a += strlen("\r\nsec-websocket-accept:");
    a += strspn(a, " \t");
    if (strncmp(a, c->accept, 28) != 0) {
        fprintf(stderr, "rt-loadgen: bad Sec-WebSocket-Accept\n");
        return -1;
    }
    return (long)hlen;
}

static void on_message(lg_conn_t *c, uint8_t op, const uint8_t *data, size_t len, const lg_rx_t *rx)
{
    if (op == OP_TEXT)
        lg_on_text(c, data, len, rx);
}

static void on_frame(lg_conn_t *c, int epfd, uint8_t op, bool fin, const uint8_t *data, size_t len, const lg_rx_t *rx)
{
    switch (op) {
    case OP_TEXT:
    case OP_BINARY:
        if (fin) {
            on_message(c, op, data, len, rx);
        } else {
            c->frag.len = 0;
            c->frag_op = op;
            rt_buf_append(&c->frag, data, len);
        }
        break;
    case OP_CONT:
        rt_buf_append(&c->frag, data, len);
        if (fin) {
            on_message(c, c->frag_op, c->frag.data, c->frag.len, rx);
            rt_buf_dispose(&c->frag);
        }
        break;
    case OP_PING: send_frame(c, epfd, OP_PONG, data, len); break;
    case OP_CLOSE:
        send_frame(c, epfd, OP_CLOSE, data, len < 2 ? len : 2);
        lg_conn_close(c, epfd);
        break;
    default: break;
    }
}

/* Parses whole frames (unmasking in place if the server masked); returns the bytes used. */
static size_t parse_frames(lg_conn_t *c, int epfd, uint8_t *p, size_t len, const lg_rx_t *rx)
{
    size_t off = 0;
    while (len - off >= 2 && c->state != LG_CLOSED) {
        uint8_t *f = p + off;
        size_t avail = len - off, hl = 2;
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | f[2 + i];
            hl = 10;
        }
        bool masked = f[1] & 0x80;
        if (masked)
            hl += 4;
        if (plen > LG_MAX_FRAME) {
            fprintf(stderr, "rt-loadgen: frame of %llu bytes\n", (unsigned long long)plen);
            lg_conn_close(c, epfd);
            break;
        }
        if (avail < hl + plen)
            break;
        if (masked)
            for (uint64_t i = 0; i < plen; i++)
                f[hl + i] ^= f[hl - 4 + (i & 3)];
        on_frame(c, epfd, f[0] & 0x0f, f[0] & 0x80, f + hl, (size_t)plen, rx);
        off += hl + (size_t)plen;
    }
    return off;
}

static size_t on_bytes(lg_conn_t *c, int epfd, uint8_t *p, size_t len, const lg_rx_t *rx)
{
    if (c->url->http)
        return lg_http_on_bytes(c, epfd, p, len, rx);
    size_t off = 0;
    if (c->state == LG_HANDSHAKE) {
        long h = parse_handshake(c, p, len);
        if (h <= 0) {
            if (h < 0)
                lg_conn_close(c, epfd);
            return 0;
        }
        off = (size_t)h;
        lg_conn_set_state(c, LG_OPEN);
    }
    if (c->state == LG_CLOSED)
        return 0;
    return off + parse_frames(c, epfd, p + off, len - off, rx);
}

/* read() with the arrival time of the data: recvmsg() and its SCM_TIMESTAMPNS. */
static ssize_t read_timed(int fd, uint8_t *buf, size_t cap, lg_rx_t *rx)
{
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n <= 0)
        return n;
    rx->read_ns = rt_now_mono_ns();
    rx->arrival_ns = rx->read_ns;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            int64_t mono = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - real_minus_mono;
            if (mono > 0 && (uint64_t)mono <= rx->read_ns)
                rx->arrival_ns = (uint64_t)mono;
        }
    }
    return n;
}

static void on_readable(lg_conn_t *c, int epfd)
{
    for (;;) {
        bool carry = c->in.len > 0;
        size_t cap = carry ? 65536 : sizeof scratch;
        uint8_t *buf = carry ? rt_buf_reserve(&c->in, cap) : scratch;
        lg_rx_t rx;
        ssize_t n = read_timed(c->fd, buf, cap, &rx);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                lg_conn_close(c, epfd);
            return;
        }
        if (carry) {
            c->in.len += (size_t)n;
            size_t used = on_bytes(c, epfd, c->in.data, c->in.len, &rx);
            if (c->state == LG_CLOSED)
                return;
            rt_buf_consume(&c->in, used);
            if (c->in.len == 0)
                rt_buf_dispose(&c->in);
        } else {
            size_t used = on_bytes(c, epfd, scratch, (size_t)n, &rx);
            if (c->state == LG_CLOSED)
                return;
            if (used < (size_t)n)
                rt_buf_append(&c->in, scratch + used, (size_t)n - used);
        }
        if ((size_t)n < cap)
            return;
    }
}

void lg_conn_on_event(lg_conn_t *c, int epfd, uint32_t events)
{
    if (c->state == LG_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        if (!(events & EPOLLOUT) || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
            lg_conn_close(c, epfd);
            return;
        }
        watch(c, epfd, EPOLLIN);
        if (c->url->http && c->publisher) {
            lg_conn_set_state(c, LG_OPEN);
            return;
        }
        c->state = LG_HANDSHAKE;
        if (c->url->http)
            lg_http_send_sse_request(c, epfd);
        else
            send_handshake(c, epfd, c->url);
        return;
    }
    if ((events & EPOLLOUT) && c->out.len > 0)
        flush_out(c, epfd);
    if (c->state != LG_CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(c, epfd);
}
