/*
 * bare.c: rt-bare, the floor of the fan-out comparison of `make bench`.
 *
 * A minimal single-threaded WebSocket broadcast server on plain Linux epoll:
 * no framework, no event library, no threads.  It speaks exactly the subset
 * of the /ws JSON protocol that tests/bench/node-ws/server.mjs speaks, which
 * is what rt-loadgen uses (welcome on connect, subscribe -> subscribed,
 * publish -> one `message` frame to every subscriber of the channel, then an
 * `ack` to the publisher, ping -> pong).  Each publish is encoded once and
 * sent with exactly one write() per delivery: no writev, no coalescing of
 * frames, so its write syscalls per delivery are 1.00 and its deliveries per
 * CPU-second are what one core of this machine gives a server that does
 * nothing but that.  rtsync's efficiency is reported as a fraction of it.
 *
 * Client frames must be masked; fragmented and binary messages are refused
 * (close 1003: rt-loadgen sends neither).  What a socket does not take at
 * once waits in the connection's buffer for EPOLLOUT (at most 4 MiB; a
 * connection further behind is dropped).  Client JSON is parsed by jansson.
 *
 * Environment: HOST (127.0.0.1), PORT (8094).  Exits 0 on SIGTERM.  The fd
 * cap is the caller's (tests/bench/lib.sh raises it to 20,000).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_OUT (4u << 20)   /* bytes a connection may have waiting for its socket */
#define MAX_FRAME (1u << 20) /* largest client frame taken */
#define MAX_HEADER 8192      /* largest upgrade request */
#define CHAN_BUCKETS (1u << 16)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };
enum { CLOSE_PROTOCOL = 1002, CLOSE_UNSUPPORTED = 1003, CLOSE_TOO_BIG = 1009 };

typedef struct buf {
    uint8_t *data;
    size_t len, cap;
} buf_t;

typedef struct conn conn_t;
typedef struct chan chan_t;

/* One connection's membership of one channel; idx is its place in chan->subs. */
typedef struct sub {
    conn_t *conn;
    chan_t *chan;
    size_t idx;
} sub_t;

struct chan {
    chan_t *next; /* in its hash bucket */
    char *name;
    sub_t **subs;
    size_t n, cap;
};

struct conn {
    int fd;
    bool upgraded;
    bool dead;     /* failed or closed: freed by reap() after the event batch */
    bool want_out; /* EPOLLOUT is watched */
    unsigned long id;
    char user[32];
    buf_t in;  /* an incomplete request or frame, carried to the next read */
    buf_t out; /* what the socket did not take yet */
    sub_t **subs;
    size_t nsubs, capsubs;
    conn_t *next_dead;
};

static int epfd;
static int spare_fd = -1; /* given up to accept (and drop) a connection when out of fds */
static unsigned long next_id = 1;
static conn_t *doomed; /* connections to free at the end of the event batch */
static chan_t *chans[CHAN_BUCKETS];
static buf_t tx; /* the frame being sent */
static uint8_t scratch[1 << 16];

/* ---- memory ------------------------------------------------------------------ */

static void oom(void)
{
    fputs("rt-bare: out of memory\n", stderr);
    abort();
}

/* Makes room for need elements of size elem in *arr (capacity *cap). */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(arr, n * elem);
    if (p == NULL)
        oom();
    *cap = n;
    return p;
}

static void buf_append(buf_t *b, const void *p, size_t n)
{
    b->data = grow(b->data, &b->cap, b->len + n, 1);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_consume(buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void buf_free(buf_t *b)
{
    free(b->data);
    *b = (buf_t){0};
}

/* ---- connections --------------------------------------------------------------- */

static void watch(conn_t *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Marks c for closing; it is freed after the current event batch (a
 * broadcast may still hold it). */
static void conn_fail(conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    c->next_dead = doomed;
    doomed = c;
}

static void unsubscribe_all(conn_t *c)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        sub_t *s = c->subs[i];
        chan_t *ch = s->chan;
        ch->subs[s->idx] = ch->subs[--ch->n];
        ch->subs[s->idx]->idx = s->idx;
        free(s);
    }
    free(c->subs);
}

static void reap(void)
{
    while (doomed) {
        conn_t *c = doomed;
        doomed = c->next_dead;
        unsubscribe_all(c);
        close(c->fd);
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

/* One write() of the bytes; what the socket does not take waits for EPOLLOUT. */
static void conn_send(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->dead)
        return;
    if (c->out.len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w == (ssize_t)n)
            return;
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_fail(c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        watch(c, true);
    }
    if (c->out.len + n > MAX_OUT) {
        conn_fail(c);
        return;
    }
    buf_append(&c->out, p, n);
}

static void on_writable(conn_t *c)
{
    ssize_t w = write(c->fd, c->out.data, c->out.len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_fail(c);
        return;
    }
    buf_consume(&c->out, (size_t)w);
    if (c->out.len == 0) {
        buf_free(&c->out);
        watch(c, false);
    }
}

/* ---- frames -------------------------------------------------------------------- */

/* Puts an unmasked server frame of op and payload p into tx. */
static void frame_build(uint8_t op, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl = 2;
    h[0] = 0x80 | op;
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (8 * (7 - i)));
        hl = 10;
    }
    tx.len = 0;
    buf_append(&tx, h, hl);
    buf_append(&tx, p, n);
}

static void send_frame(conn_t *c, uint8_t op, const void *p, size_t n)
{
    frame_build(op, p, n);
    conn_send(c, tx.data, tx.len);
}

/* Sends a close frame with code and drops the connection. */
static void send_close(conn_t *c, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_frame(c, OP_CLOSE, p, sizeof p);
    conn_fail(c);
}

/* Encodes o (a reference taken) into tx as one text frame. */
static void frame_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        oom();
    frame_build(OP_TEXT, s, strlen(s));
    free(s);
}

static void send_json(conn_t *c, json_t *o)
{
    frame_json(o);
    conn_send(c, tx.data, tx.len);
}

static void send_error(conn_t *c, const char *message)
{
    send_json(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code", "bad_request", "message", message));
}

/* ---- channels ------------------------------------------------------------------ */

/* The channel called name; a new one if create, else NULL when there is none. */
static chan_t *chan_get(const char *name, bool create)
{
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    chan_t **b = &chans[h & (CHAN_BUCKETS - 1)];
    for (chan_t *ch = *b; ch; ch = ch->next)
        if (strcmp(ch->name, name) == 0)
            return ch;
    if (!create)
        return NULL;
    chan_t *ch = calloc(1, sizeof *ch);
    if (ch == NULL || (ch->name = strdup(name)) == NULL)
        oom();
    ch->next = *b;
    *b = ch;
    return ch;
}

static void subscribe(conn_t *c, const char *name)
{
    chan_t *ch = chan_get(name, true);
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i]->chan == ch)
            return;
    sub_t *s = malloc(sizeof *s);
    if (s == NULL)
        oom();
    *s = (sub_t){.conn = c, .chan = ch, .idx = ch->n};
    ch->subs = grow(ch->subs, &ch->cap, ch->n + 1, sizeof *ch->subs);
    ch->subs[ch->n++] = s;
    c->subs = grow(c->subs, &c->capsubs, c->nsubs + 1, sizeof *c->subs);
    c->subs[c->nsubs++] = s;
}

/* ---- the JSON protocol ---------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_subscribe(conn_t *c, json_t *channel)
{
    subscribe(c, json_string_value(channel));
    send_json(c, json_pack("{s:s, s:O, s:i}", "type", "subscribed", "channel", channel, "offset", 0));
}

/* The message frame, encoded once into tx, then one write() per subscriber. */
static void broadcast(conn_t *from, json_t *m, json_t *channel)
{
    json_t *event = json_object_get(m, "event"), *data = json_object_get(m, "data");
    json_t *msg = json_pack("{s:s, s:O}", "type", "message", "channel", channel);
    json_object_set_new(msg, "event", event && !json_is_null(event) ? json_incref(event) : json_string("message"));
    if (data)
        json_object_set(msg, "data", data);
    json_object_set_new(msg, "from", json_string(from->user));
    json_object_set_new(msg, "ts", json_integer(now_ms()));
    frame_json(msg);
    chan_t *ch = chan_get(json_string_value(channel), false);
    for (size_t i = 0; ch && i < ch->n; i++)
        conn_send(ch->subs[i]->conn, tx.data, tx.len);
}

static void on_publish(conn_t *c, json_t *m, json_t *channel)
{
    broadcast(c, m, channel);
    json_t *id = json_object_get(m, "id");
    send_json(c, json_pack("{s:s, s:O, s:O}", "type", "ack", "channel", channel, "id", id ? id : json_null()));
}

static void on_text(conn_t *c, const uint8_t *p, size_t n)
{
    json_t *m = json_loadb((const char *)p, n, 0, NULL);
    if (m == NULL) {
        send_error(c, "not JSON");
        return;
    }
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *channel = json_object_get(m, "channel");
    if (type && strcmp(type, "ping") == 0)
        send_frame(c, OP_TEXT, "{\"type\":\"pong\"}", strlen("{\"type\":\"pong\"}"));
    else if (type && (strcmp(type, "subscribe") == 0 || strcmp(type, "publish") == 0) && !json_is_string(channel))
        send_error(c, "channel must be a string");
    else if (type && strcmp(type, "subscribe") == 0)
        on_subscribe(c, channel);
    else if (type && strcmp(type, "publish") == 0)
        on_publish(c, m, channel);
    else
        send_error(c, "unknown type");
    json_decref(m);
}

/* ---- the WebSocket protocol -------------------------------------------------------- */

/* Copies the value of header name (without its colon) from the
 * NUL-terminated head into out; false if absent or too long. */
static bool header_value(const char *head, const char *name, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *v = strcasestr(head, pat);
    if (v == NULL)
        return false;
    v += strlen(pat);
    v += strspn(v, " \t");
    size_t n = strcspn(v, "\r\n");
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static void refuse(conn_t *c, const char *status)
{
    char r[128];
    int n = snprintf(r, sizeof r, "HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status);
    conn_send(c, (const uint8_t *)r, (size_t)n);
    conn_fail(c);
}

/* The 101 answer to key, with the first subprotocol the client offers, if any. */
static void accept_upgrade(conn_t *c, const char *key, const char *protocols)
{
    char cat[128], accept[32], proto[128] = "";
    snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
    if (protocols[0])
        snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: %.*s\r\n", (int)strcspn(protocols, ", \t"), protocols);
    char r[512];
    int n = snprintf(r, sizeof r,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n",
                     accept, proto);
    conn_send(c, (const uint8_t *)r, (size_t)n);
    c->upgraded = true;
    char id[24];
    snprintf(id, sizeof id, "%lu", c->id);
    send_json(c, json_pack("{s:s, s:s, s:s, s:s}", "type", "welcome", "conn", id, "user", c->user, "edge", "bare"));
}

/* Answers the upgrade request at p; returns its length, 0 if incomplete, -1 if refused. */
static long on_request(conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len > MAX_HEADER)
            refuse(c, "431 Request Header Fields Too Large");
        return len > MAX_HEADER ? -1 : 0;
    }
    size_t hlen = (size_t)(end - p) + 4;
    char head[MAX_HEADER + 1], key[64], protocols[128] = "";
    if (hlen > MAX_HEADER) {
        refuse(c, "431 Request Header Fields Too Large");
        return -1;
    }
    memcpy(head, p, hlen);
    head[hlen] = '\0';
    if (strncmp(head, "GET /ws ", 8) != 0 && strncmp(head, "GET /ws?", 8) != 0) {
        refuse(c, "404 Not Found");
        return -1;
    }
    if (!header_value(head, "Sec-WebSocket-Key", key, sizeof key) || key[0] == '\0') {
        refuse(c, "400 Bad Request");
        return -1;
    }
    header_value(head, "Sec-WebSocket-Protocol", protocols, sizeof protocols);
    accept_upgrade(c, key, protocols);
    return (long)hlen;
}

static void on_frame(conn_t *c, uint8_t op, bool fin, const uint8_t *p, size_t n)
{
    switch (op) {
    case OP_TEXT:
        if (fin)
            on_text(c, p, n);
        else
            send_close(c, CLOSE_UNSUPPORTED); /* fragmented messages: rt-loadgen sends none */
        break;
    case OP_CONT:
    case OP_BINARY: send_close(c, CLOSE_UNSUPPORTED); break;
    case OP_PING: send_frame(c, OP_PONG, p, n); break;
    case OP_PONG: break;
    case OP_CLOSE:
        send_frame(c, OP_CLOSE, p, n < 2 ? n : 2);
        conn_fail(c);
        break;
    default: send_close(c, CLOSE_PROTOCOL); break;
    }
}

/* The length of the frame header at f (avail bytes), its payload length in
 * *plen; 0 if incomplete. */
static size_t frame_header(const uint8_t *f, size_t avail, uint64_t *plen)
{
    size_t hl = 2;
    *plen = f[1] & 0x7f;
    if (*plen == 126) {
        hl = 4;
        *plen = avail >= hl ? (uint64_t)f[2] << 8 | f[3] : 0;
    } else if (*plen == 127) {
        hl = 10;
        *plen = 0;
        for (size_t i = 0; i < 8 && avail >= hl; i++)
            *plen = *plen << 8 | f[2 + i];
    }
    hl += 4; /* the mask key */
    return avail >= hl ? hl : 0;
}

/* Handles the whole masked client frames at p (unmasked in place); returns the bytes used. */
static size_t on_frames(conn_t *c, uint8_t *p, size_t len)
{
    size_t off = 0;
    while (len - off >= 2 && !c->dead) {
        uint8_t *f = p + off;
        uint64_t plen;
        size_t hl = frame_header(f, len - off, &plen);
        uint8_t op = f[0] & 0x0f;
        if (!(f[1] & 0x80) || (f[0] & 0x70) || (op >= OP_CLOSE && (plen > 125 || !(f[0] & 0x80)))) {
            send_close(c, CLOSE_PROTOCOL);
            break;
        }
        if (plen > MAX_FRAME) {
            send_close(c, CLOSE_TOO_BIG);
            break;
        }
        if (hl == 0 || len - off < hl + plen)
            break;
        for (uint64_t i = 0; i < plen; i++)
            f[hl + i] ^= f[hl - 4 + (i & 3)];
        on_frame(c, op, f[0] & 0x80, f + hl, (size_t)plen);
        off += hl + (size_t)plen;
    }
    return off;
}

static size_t on_bytes(conn_t *c, uint8_t *p, size_t len)
{
    size_t off = 0;
    if (!c->upgraded) {
        long h = on_request(c, p, len);
        if (h <= 0)
            return 0;
        off = (size_t)h;
    }
    return off + on_frames(c, p + off, len - off);
}

/* Parses n new bytes in scratch, after what c carried from its last read. */
static void on_input(conn_t *c, size_t n)
{
    if (c->in.len == 0) {
        size_t used = on_bytes(c, scratch, n);
        if (!c->dead && used < n)
            buf_append(&c->in, scratch + used, n - used);
        return;
    }
    buf_append(&c->in, scratch, n);
    size_t used = on_bytes(c, c->in.data, c->in.len);
    if (c->dead)
        return;
    buf_consume(&c->in, used);
    if (c->in.len == 0)
        buf_free(&c->in);
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                conn_fail(c);
            return;
        }
        on_input(c, (size_t)n);
        if (c->dead || (size_t)n < sizeof scratch)
            return;
    }
}

/* ---- the server ------------------------------------------------------------------ */

static void add_conn(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        oom();
    c->fd = fd;
    c->id = next_id++;
    snprintf(c->user, sizeof c->user, "anon-%lu", c->id);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(c);
    }
}

/* Out of fds: accepts the next connection on the spare fd's room and drops it,
 * so that the listening socket does not stay readable forever. */
static void shed(int lfd)
{
    static bool told;
    if (!told)
        fprintf(stderr, "rt-bare: out of file descriptors; dropping new connections\n");
    told = true;
    close(spare_fd);
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        close(fd);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_conn(fd);
        } else if (errno == EMFILE || errno == ENFILE) {
            shed(lfd);
            return;
        } else if (errno != EINTR && errno != ECONNABORTED) {
            return;
        }
    }
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "rt-bare: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "rt-bare: listen on %s:%s: %s\n", host, port, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void on_sigterm(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_event(conn_t *c, uint32_t events)
{
    if (c->dead)
        return;
    if ((events & EPOLLOUT) && c->out.len > 0)
        on_writable(c);
    if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(c);
}

int main(void)
{
    const char *host = getenv("HOST") ? getenv("HOST") : "127.0.0.1";
    const char *port = getenv("PORT") ? getenv("PORT") : "8094";
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    int lfd = listen_on(host, port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (lfd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        return 1;
    printf("bare server on ws://%s:%s/ws (pid %ld)\n", host, port, (long)getpid());
    fflush(stdout);
    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                accept_all(lfd);
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
        reap();
    }
}
