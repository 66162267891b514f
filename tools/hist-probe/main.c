/*
 * hist-probe: drives chat-history over NATS for tests and benchmarks, and
 * prints what it gets as JSON lines.  One rt_loop on the main thread.
 *
 *   hist-probe publish [--n N] [--concurrency C] [--rate R] [--channels K] [--channel NAME]
 *                      [--ids] [--id-prefix P] [--id-mod M] [--user U] [--size B] [--print] [--timeout MS]
 *       N publishes with at most C in flight (closed loop), or started at R per second
 *       (open loop, C still bounds what is in flight); channel NAME or NAME-0..K-1;
 *       --ids gives message i the idempotency key P<i> (P<i mod M> with --id-mod M).  --print: one line per reply
 *       {"i","channel","id","code","offset","duplicate","us"}; always a summary line
 *       {"summary":1,"sent","ok","duplicate","unavailable","failed","timeout","secs","rate","p50_us","p99_us","max_us"}.
 *   hist-probe query --channel NAME [--after N | --before N] [--limit L] [--all]
 *       one line {"code","latest","messages":[{"offset","event","data","from","id","ts","conn","edge"}]};
 *       --all pages forward from --after through the whole channel.
 *   hist-probe qbench --channel NAME [--n N] [--concurrency C] [--limit L]
 *       query latency summary.
 *   hist-probe garbage [--n N]
 *       random bytes as requests to rt.hist.publish and rt.hist.query; prints reply codes.
 *   hist-probe listen --channel NAME [--count N] [--timeout MS]
 *       prints {"ready":1}, then each fan-out message {"offset","id","data"} until N arrived.
 *
 * Environment: RT_NATS_URL (default nats://127.0.0.1:4222).
 */
#include "rt/bus.h"
#include "rt/common.h"
#include "rt/log.h"
#include "rtsync/v1/channel.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *mode, *channel, *id_prefix, *user;
    long n, concurrency, rate, channels, size, limit, timeout_ms, count, id_mod;
    long long after, before;
    int ids, print, all, has_after, has_before;
} opts_t;

typedef struct probe probe_t;

typedef struct slot {
    probe_t *p;
    long i;
    uint64_t t0;
} slot_t;

struct probe {
    opts_t o;
    rt_loop_t *loop;
    rt_bus_t *bus;
    rt_bus_requester_t *req;
    slot_t *slots;
    uint32_t *lat_us;
    long started, done, inflight;
    long ok, dup, unavail, failed, timeouts;
    uint64_t t_start;
    rt_buf_t buf;
    int finished;
};

static void json_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static long id_of(const probe_t *p, long i)
{
    return p->o.id_mod > 0 ? i % p->o.id_mod : i;
}

static void channel_of(const probe_t *p, long i, char *out, size_t size)
{
    if (p->o.channels > 1)
        snprintf(out, size, "%s-%ld", p->o.channel, i % p->o.channels);
    else
        snprintf(out, size, "%s", p->o.channel);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void print_summary(probe_t *p)
{
    double secs = (double)(rt_now_mono_ns() - p->t_start) / 1e9;
    long n = p->ok + p->dup;
    qsort(p->lat_us, (size_t)n, sizeof(uint32_t), cmp_u32);
    uint32_t p50 = n ? p->lat_us[n / 2] : 0, p99 = n ? p->lat_us[(long)(n * 0.99)] : 0, max = n ? p->lat_us[n - 1] : 0;
    printf("{\"summary\":1,\"sent\":%ld,\"ok\":%ld,\"duplicate\":%ld,\"unavailable\":%ld,\"failed\":%ld,"
           "\"timeout\":%ld,\"secs\":%.3f,\"rate\":%.0f,\"p50_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
           p->started, p->ok, p->dup, p->unavail, p->failed, p->timeouts, secs, secs > 0 ? (double)n / secs : 0, p50,
           p99, max);
}

/* ---- publish --------------------------------------------------------------------- */

static void send_next(probe_t *p);

static void record_reply(slot_t *s, int err, rt_slice_t data)
{
    probe_t *p = s->p;
    uint32_t us = (uint32_t)((rt_now_mono_ns() - s->t0) / 1000);
    Rtsync__V1__PublishReply *r = err == RT_OK ? rtsync__v1__publish_reply__unpack(NULL, data.len, data.data) : NULL;
    int code = r && r->status ? (int)r->status->code : (r ? 0 : -1);
    if (err == RT_EUNAVAIL)
        code = RTSYNC__V1__CODE__CODE_UNAVAILABLE; /* not connected, or no responders */
    if (err == RT_ETIMEOUT)
        p->timeouts++;
    else if (r == NULL && err != RT_EUNAVAIL)
        p->failed++;
    else if (r != NULL && code == RTSYNC__V1__CODE__CODE_OK) {
        p->lat_us[p->ok + p->dup] = us;
        r->duplicate ? p->dup++ : p->ok++;
    } else if (code == RTSYNC__V1__CODE__CODE_UNAVAILABLE)
        p->unavail++;
    else
        p->failed++;
    if (p->o.print) {
        char ch[160];
        channel_of(p, s->i, ch, sizeof(ch));
        printf("{\"i\":%ld,\"channel\":\"%s\",\"id\":\"%s%ld\",\"code\":%d,\"offset\":%" PRIu64
               ",\"duplicate\":%s,\"us\":%u}\n",
               s->i, ch, p->o.ids ? p->o.id_prefix : "", p->o.ids ? id_of(p, s->i) : -1L,
               err == RT_ETIMEOUT ? -2 : code, r ? r->offset : 0, r && r->duplicate ? "true" : "false", us);
    }
    if (r)
        rtsync__v1__publish_reply__free_unpacked(r, NULL);
    p->done++;
    p->inflight--;
}

static void on_publish_reply(void *ctx, int err, rt_slice_t data)
{
    slot_t *s = ctx;
    record_reply(s, err, data);
    if (s->p->o.rate == 0)
        send_next(s->p);
}

static void send_publish(probe_t *p, long i)
{
    char ch[160], id[96], payload[64];
    channel_of(p, i, ch, sizeof(ch));
    snprintf(id, sizeof(id), "%s%ld", p->o.id_prefix, id_of(p, i));
    int plen = snprintf(payload, sizeof(payload), "{\"i\":%ld,\"pad\":\"", i);
    rt_buf_t data = {0};
    rt_buf_append(&data, payload, (size_t)plen);
    while ((long)data.len + 2 < p->o.size)
        rt_buf_append_byte(&data, 'x');
    rt_buf_append(&data, "\"}", 2);
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    m.channel = ch;
    m.event = "message";
    m.data.data = data.data;
    m.data.len = data.len;
    m.from_user = (char *)p->o.user;
    m.id = p->o.ids ? id : "";
    m.ts_ms = rt_now_wall_ms();
    m.origin_edge = "hist-probe";
    Rtsync__V1__PublishRequest req = RTSYNC__V1__PUBLISH_REQUEST__INIT;
    req.message = &m;
    size_t n = rtsync__v1__publish_request__get_packed_size(&req);
    p->buf.len = 0;
    rtsync__v1__publish_request__pack(&req, rt_buf_reserve(&p->buf, n));
    rt_buf_dispose(&data);
    slot_t *s = &p->slots[i];
    s->p = p;
    s->i = i;
    s->t0 = rt_now_mono_ns();
    p->started++;
    p->inflight++;
    if (rt_bus_request(p->req, "rt.hist.publish", p->buf.data, n, on_publish_reply, s) != RT_OK)
        record_reply(s, RT_EUNAVAIL, (rt_slice_t){NULL, 0}); /* the loop refills the slot */
}

static void send_next(probe_t *p)
{
    if (p->started < p->o.n && p->inflight < p->o.concurrency)
        send_publish(p, p->started);
}

/* Open loop: start what the rate allows by now. */
static void pace(probe_t *p)
{
    double secs = (double)(rt_now_mono_ns() - p->t_start) / 1e9;
    long due = (long)(secs * (double)p->o.rate) + 1;
    while (p->started < p->o.n && p->started < due && p->inflight < p->o.concurrency)
        send_publish(p, p->started);
}

static int run_publish(probe_t *p)
{
    p->slots = rt_xcalloc((size_t)p->o.n + 1, sizeof(*p->slots));
    p->lat_us = rt_xcalloc((size_t)p->o.n + 1, sizeof(*p->lat_us));
    p->t_start = rt_now_mono_ns();
    while (p->done < p->o.n) {
        if (p->o.rate > 0)
            pace(p);
        else
            while (p->started < p->o.n && p->inflight < p->o.concurrency)
                send_publish(p, p->started);
        rt_loop_run_once(p->loop, p->o.rate > 0 ? 1 : 100);
    }
    print_summary(p);
    free(p->slots);
    free(p->lat_us);
    return p->ok + p->dup == p->o.n ? 0 : 1;
}

/* ---- query ------------------------------------------------------------------------- */

typedef struct query_state {
    probe_t *p;
    Rtsync__V1__HistoryReply *reply;
    int err;
    int pending;
    uint64_t t0;
} query_state_t;

static void on_query_reply(void *ctx, int err, rt_slice_t data)
{
    query_state_t *q = ctx;
    q->err = err;
    q->reply = err == RT_OK ? rtsync__v1__history_reply__unpack(NULL, data.len, data.data) : NULL;
    q->pending = 0;
}

static int send_query(probe_t *p, query_state_t *q, int before, uint64_t cursor, uint32_t limit)
{
    Rtsync__V1__HistoryRequest r = RTSYNC__V1__HISTORY_REQUEST__INIT;
    r.channel = (char *)p->o.channel;
    r.limit = limit;
    if (before) {
        r.cursor_case = RTSYNC__V1__HISTORY_REQUEST__CURSOR_BEFORE;
        r.before = cursor;
    } else {
        r.cursor_case = RTSYNC__V1__HISTORY_REQUEST__CURSOR_AFTER;
        r.after = cursor;
    }
    uint8_t buf[256];
    size_t n = rtsync__v1__history_request__pack(&r, buf);
    q->p = p;
    q->pending = 1;
    q->reply = NULL;
    q->t0 = rt_now_mono_ns();
    return rt_bus_request(p->req, "rt.hist.query", buf, n, on_query_reply, q);
}

/* One query, waited for; RT_OK and q->reply set, or an error. */
static int query_once(probe_t *p, query_state_t *q, int before, uint64_t cursor, uint32_t limit)
{
    int err = send_query(p, q, before, cursor, limit);
    if (err != RT_OK)
        return err;
    while (q->pending)
        rt_loop_run_once(p->loop, 100);
    return q->reply ? RT_OK : (q->err ? q->err : RT_EINVAL);
}

static void print_messages(const Rtsync__V1__HistoryReply *r, int *first)
{
    for (size_t i = 0; i < r->n_messages; i++) {
        const Rtsync__V1__ChannelMessage *m = r->messages[i];
        printf("%s{\"offset\":%" PRIu64 ",\"event\":", *first ? "" : ",", m->offset);
        json_str(stdout, m->event, strlen(m->event));
        printf(",\"data\":");
        json_str(stdout, (const char *)m->data.data, m->data.len);
        printf(",\"from\":");
        json_str(stdout, m->from_user, strlen(m->from_user));
        printf(",\"id\":");
        json_str(stdout, m->id, strlen(m->id));
        printf(",\"ts\":%" PRId64 ",\"conn\":", m->ts_ms);
        json_str(stdout, m->from_conn, strlen(m->from_conn));
        printf(",\"edge\":");
        json_str(stdout, m->origin_edge, strlen(m->origin_edge));
        printf("}");
        *first = 0;
    }
}

static int run_query(probe_t *p)
{
    query_state_t q;
    int before = p->o.has_before;
    uint64_t cursor = (uint64_t)(before ? p->o.before : p->o.after);
    int first = 1, code = 0;
    uint64_t latest = 0;
    printf("{\"messages\":[");
    for (;;) {
        int err = query_once(p, &q, before, cursor, (uint32_t)p->o.limit);
        if (err != RT_OK) {
            printf("],\"code\":%d,\"error\":\"%s\"}\n", err == RT_ETIMEOUT ? -2 : -1, rt_strerror(err));
            return 1;
        }
        code = q.reply->status ? (int)q.reply->status->code : 0;
        latest = q.reply->latest;
        print_messages(q.reply, &first);
        size_t n = q.reply->n_messages;
        if (n > 0)
            cursor = q.reply->messages[n - 1]->offset;
        rtsync__v1__history_reply__free_unpacked(q.reply, NULL);
        if (!p->o.all || n == 0 || code != 0 || before)
            break;
    }
    printf("],\"code\":%d,\"latest\":%" PRIu64 "}\n", code, latest);
    return code == 0 ? 0 : 1;
}

/* Query latency: C queries in flight, N in all. */
static int run_qbench(probe_t *p)
{
    query_state_t *qs = rt_xcalloc((size_t)p->o.concurrency, sizeof(*qs));
    p->lat_us = rt_xcalloc((size_t)p->o.n + 1, sizeof(*p->lat_us));
    p->t_start = rt_now_mono_ns();
    for (long k = 0; k < p->o.concurrency && p->started < p->o.n; k++, p->started++)
        send_query(p, &qs[k], 1, 0, (uint32_t)p->o.limit);
    while (p->done < p->started) {
        rt_loop_run_once(p->loop, 100);
        for (long k = 0; k < p->o.concurrency; k++) {
            query_state_t *q = &qs[k];
            if (q->pending || q->p == NULL)
                continue;
            q->p = NULL;
            if (q->reply && (!q->reply->status || q->reply->status->code == 0))
                p->lat_us[p->ok++] = (uint32_t)((rt_now_mono_ns() - q->t0) / 1000);
            else
                q->err == RT_ETIMEOUT ? p->timeouts++ : p->failed++;
            if (q->reply)
                rtsync__v1__history_reply__free_unpacked(q->reply, NULL);
            p->done++;
            if (p->started < p->o.n) {
                p->started++;
                send_query(p, q, 1, 0, (uint32_t)p->o.limit);
            }
        }
    }
    print_summary(p);
    free(qs);
    free(p->lat_us);
    return p->failed || p->timeouts;
}

/* ---- garbage and listen ------------------------------------------------------------- */

typedef struct garbage_state {
    long pending, replies, bad_request, timeouts;
} garbage_state_t;

static void on_garbage_reply(void *ctx, int err, rt_slice_t data)
{
    garbage_state_t *g = ctx;
    g->pending--;
    if (err == RT_ETIMEOUT) {
        g->timeouts++;
        return;
    }
    g->replies++;
    /* both reply types carry the Status as field 1 */
    Rtsync__V1__PublishReply *r = rtsync__v1__publish_reply__unpack(NULL, data.len, data.data);
    if (r && r->status && r->status->code == RTSYNC__V1__CODE__CODE_BAD_REQUEST)
        g->bad_request++;
    if (r)
        rtsync__v1__publish_reply__free_unpacked(r, NULL);
}

static int run_garbage(probe_t *p)
{
    garbage_state_t g = {0};
    uint64_t seed = rt_now_mono_ns() | 1;
    uint8_t bytes[300];
    for (long i = 0; i < p->o.n; i++) {
        size_t len = (size_t)(seed % sizeof(bytes)) + 1;
        for (size_t k = 0; k < len; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            bytes[k] = (uint8_t)seed;
        }
        if (i % 4 == 0) /* a valid PublishRequest cut short */
            memcpy(bytes, "\x0a\x40\x0a\x05hello", len < 9 ? len : 9);
        const char *subject = i % 2 ? "rt.hist.query" : "rt.hist.publish";
        rt_bus_publish(p->bus, subject, bytes, len); /* without a reply inbox */
        if (rt_bus_request(p->req, subject, bytes, len, on_garbage_reply, &g) == RT_OK)
            g.pending++;
    }
    while (g.pending > 0)
        rt_loop_run_once(p->loop, 100);
    printf("{\"sent\":%ld,\"replies\":%ld,\"bad_request\":%ld,\"timeout\":%ld}\n", p->o.n * 2, g.replies, g.bad_request,
           g.timeouts);
    return 0;
}

static void on_fanout(void *ctx, const rt_bus_msg_t *msg)
{
    probe_t *p = ctx;
    Rtsync__V1__ChannelMessage *m = rtsync__v1__channel_message__unpack(NULL, msg->data.len, msg->data.data);
    if (m == NULL)
        return;
    printf("{\"offset\":%" PRIu64 ",\"id\":", m->offset);
    json_str(stdout, m->id, strlen(m->id));
    printf(",\"data\":");
    json_str(stdout, (const char *)m->data.data, m->data.len);
    printf("}\n");
    fflush(stdout);
    rtsync__v1__channel_message__free_unpacked(m, NULL);
    if (++p->done >= p->o.count)
        p->finished = 1;
}

static int run_listen(probe_t *p)
{
    char subject[200];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", p->o.channel);
    rt_bus_sub_t *sub = NULL;
    if (rt_bus_subscribe(p->bus, p->loop, subject, NULL, on_fanout, p, &sub) != RT_OK)
        return 1;
    rt_bus_flush(p->bus, 2000);
    printf("{\"ready\":1}\n");
    fflush(stdout);
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)p->o.timeout_ms * 1000000;
    while (!p->finished && rt_now_mono_ns() < deadline)
        rt_loop_run_once(p->loop, 50);
    rt_bus_unsubscribe(sub);
    return p->finished ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.channel = "probe",
                  .id_prefix = "m",
                  .user = "probe",
                  .n = 1,
                  .concurrency = 1,
                  .channels = 1,
                  .size = 32,
                  .limit = 50,
                  .timeout_ms = 5000,
                  .count = 1};
    if (argc < 2)
        return -1;
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int flag = 1;
        if (!strcmp(a, "--ids"))
            o->ids = 1;
        else if (!strcmp(a, "--print"))
            o->print = 1;
        else if (!strcmp(a, "--all"))
            o->all = 1;
        else
            flag = 0;
        if (flag)
            continue;
        if (v == NULL)
            return -1;
        i++;
        if (!strcmp(a, "--channel"))
            o->channel = v;
        else if (!strcmp(a, "--id-prefix"))
            o->id_prefix = v;
        else if (!strcmp(a, "--user"))
            o->user = v;
        else if (!strcmp(a, "--n"))
            o->n = atol(v);
        else if (!strcmp(a, "--concurrency"))
            o->concurrency = atol(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atol(v);
        else if (!strcmp(a, "--channels"))
            o->channels = atol(v);
        else if (!strcmp(a, "--size"))
            o->size = atol(v);
        else if (!strcmp(a, "--limit"))
            o->limit = atol(v);
        else if (!strcmp(a, "--timeout"))
            o->timeout_ms = atol(v);
        else if (!strcmp(a, "--id-mod"))
            o->id_mod = atol(v);
        else if (!strcmp(a, "--count"))
            o->count = atol(v);
        else if (!strcmp(a, "--after"))
            o->after = atoll(v), o->has_after = 1;
        else if (!strcmp(a, "--before"))
            o->before = atoll(v), o->has_before = 1;
        else
            return -1;
    }
    return o->n >= 0 && o->concurrency >= 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    probe_t p = {0};
    if (parse_args(argc, argv, &p.o) != 0) {
        fprintf(stderr,
                "usage: hist-probe publish|query|qbench|garbage|listen [options] (see tools/hist-probe/main.c)\n");
        return 2;
    }
    rt_log_init("hist-probe", RT_LOG_ERROR);
    const char *url = getenv("RT_NATS_URL");
    rt_loop_create(&p.loop);
    if (rt_bus_create(url ? url : "nats://127.0.0.1:4222", "hist-probe", 0, &p.bus) != RT_OK)
        return 1;
    rt_bus_wait_connected(p.bus, p.loop, 5000); /* requests then say whether it worked */
    rt_bus_requester_create(p.bus, p.loop, (uint32_t)p.o.timeout_ms, &p.req);
    int rc = 2;
    if (!strcmp(p.o.mode, "publish"))
        rc = run_publish(&p);
    else if (!strcmp(p.o.mode, "query"))
        rc = run_query(&p);
    else if (!strcmp(p.o.mode, "qbench"))
        rc = run_qbench(&p);
    else if (!strcmp(p.o.mode, "garbage"))
        rc = run_garbage(&p);
    else if (!strcmp(p.o.mode, "listen"))
        rc = run_listen(&p);
    fflush(stdout);
    rt_bus_requester_destroy(p.req);
    rt_bus_destroy(p.bus);
    rt_loop_destroy(p.loop);
    rt_buf_dispose(&p.buf);
    return rc;
}
