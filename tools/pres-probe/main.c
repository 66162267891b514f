/*
 * pres-probe: drives the presence service over NATS for tests, speaking the
 * protobuf contract of proto/rtsync/v1/presence.proto, and prints JSON lines.
 * One rt_loop on the main thread.
 *
 *   pres-probe edge --edge ID [--epoch E] [--channel C] [--channels K] [--members N] [--batch B]
 *                   [--part P] [--hb-ms MS] [--lose-one] [--draining] [--duration MS] [--state-pad B]
 *       a fake edge: members <ID>-c<i> (user u<i>, state {"n":i} or {"n":i,"pad":"xx..."} with B
 *       x's, since base+i) in channel C
 *       (or C-<i mod K>), announced as joins in batches of B, then heartbeats every MS; answers
 *       ResyncRequests with a snapshot (in parts of P members if given).  --lose-one: after the
 *       first heartbeat, a join of <ID>-lost is counted (seq) but never sent, and a join of
 *       <ID>-after is sent.  Prints {"ready":1,...} when its joins are out, {"resync":1,...}
 *       per snapshot; runs until killed or MS pass.
 *   pres-probe query --channel C [--expect N] [--wait MS] [--full]
 *       {"code","count","total","truncated","digest","first","last"[,"members"]}; with --expect,
 *       asks again until count == N (or MS pass); code -2 is a timeout, 5 no responder.
 *   pres-probe watch --channel C [--timeout MS]
 *       prints {"ready":1}, then each presence or signal message on rt.ch.C, then a summary
 *       {"summary":1,"leaves","distinct_leaves","signals"} after MS.
 *   pres-probe signal --channel C --to CONN [--from-user U] [--from-conn X] [--data JSON]
 *       {"code"}.
 *   pres-probe garbage [--n N]
 *       random and truncated bytes on every presence subject; {"sent","replies","bad_request","timeout"}.
 *
 * Environment: RT_NATS_URL (default nats://127.0.0.1:4222).
 */
#include "rt/bus.h"
#include "rt/common.h"
#include "rt/log.h"
#include "rt/map.h"
#include "rtsync/v1/channel.pb-c.h"
#include "rtsync/v1/presence.pb-c.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *mode, *edge, *channel, *to, *from_user, *from_conn, *data;
    long members, channels, batch, part, hb_ms, duration_ms, expect, wait_ms, timeout_ms, n, state_pad;
    unsigned long long epoch;
    int lose_one, draining, full;
} opts_t;

typedef struct probe {
    opts_t o;
    rt_loop_t *loop;
    rt_bus_t *bus;
    rt_bus_requester_t *req;
    rt_buf_t buf;
    /* fake edge */
    uint64_t seq;
    int64_t since_base;
    long extra; /* members added by --lose-one (0 or 2) */
    /* query, signal, garbage */
    int done, code;
    long replies, bad_request, timeouts, pending;
    /* watch */
    rt_map_t left;
    long leaves, signals;
} probe_t;

static volatile int stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void json_str(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* ---- fake edge ---------------------------------------------------------------------- */

#define MAX_PAD 8192

typedef struct member_buf {
    char channel[160], conn[160], user[64], state[MAX_PAD + 32];
    Rtsync__V1__Member m;
    Rtsync__V1__PresenceUpdate u;
} member_buf_t;

/* Member i (i >= members: the --lose-one extras). */
static void member_fill(probe_t *p, long i, member_buf_t *mb)
{
    long ch = p->o.channels > 1 ? i % p->o.channels : -1;
    if (ch >= 0)
        snprintf(mb->channel, sizeof(mb->channel), "%s-%ld", p->o.channel, ch);
    else
        snprintf(mb->channel, sizeof(mb->channel), "%s", p->o.channel);
    if (i < p->o.members)
        snprintf(mb->conn, sizeof(mb->conn), "%s-c%ld", p->o.edge, i);
    else
        snprintf(mb->conn, sizeof(mb->conn), "%s-%s", p->o.edge, i == p->o.members ? "lost" : "after");
    snprintf(mb->user, sizeof(mb->user), "u%ld", i);
    int len = snprintf(mb->state, sizeof(mb->state), "{\"n\":%ld", i);
    if (p->o.state_pad > 0) {
        len += snprintf(mb->state + len, sizeof(mb->state) - (size_t)len, ",\"pad\":\"");
        memset(mb->state + len, 'x', (size_t)p->o.state_pad);
        len += (int)p->o.state_pad;
        mb->state[len++] = '"';
    }
    snprintf(mb->state + len, sizeof(mb->state) - (size_t)len, "}");
    rtsync__v1__member__init(&mb->m);
    mb->m.channel = mb->channel;
    mb->m.conn = mb->conn;
    mb->m.user = mb->user;
    mb->m.edge = (char *)p->o.edge;
    mb->m.state.data = (uint8_t *)mb->state;
    mb->m.state.len = strlen(mb->state);
    mb->m.since_ms = p->since_base + i;
    rtsync__v1__presence_update__init(&mb->u);
    mb->u.kind = RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_JOIN;
    mb->u.member = &mb->m;
}

/* Sends members [from, to) as one batch with the next seq (or only counts the seq: lost);
 * part: the snapshot part's number, more: parts follow. */
static void send_batch(probe_t *p, long from, long to, int snapshot, uint32_t part, int more, int lost)
{
    size_t n = (size_t)(to - from);
    member_buf_t *mbs = rt_xcalloc(n ? n : 1, sizeof(*mbs));
    Rtsync__V1__PresenceUpdate **ups = rt_xcalloc(n ? n : 1, sizeof(*ups));
    for (size_t k = 0; k < n; k++) {
        member_fill(p, from + (long)k, &mbs[k]);
        ups[k] = &mbs[k].u;
    }
    Rtsync__V1__PresenceBatch b = RTSYNC__V1__PRESENCE_BATCH__INIT;
    b.edge = (char *)p->o.edge;
    b.edge_epoch = p->o.epoch;
    b.seq = ++p->seq;
    b.snapshot = snapshot;
    b.snapshot_more = more;
    b.snapshot_part = part;
    b.n_updates = n;
    b.updates = ups;
    size_t len = rtsync__v1__presence_batch__get_packed_size(&b);
    p->buf.len = 0;
    rtsync__v1__presence_batch__pack(&b, rt_buf_reserve(&p->buf, len));
    if (!lost)
        rt_bus_publish(p->bus, "rt.pres.updates", p->buf.data, len);
    free(mbs);
    free(ups);
}

/* Which members exist now: 0..members-1, and the extras once --lose-one happened. */
static long member_count(const probe_t *p)
{
    return p->o.members + p->extra;
}

static void send_snapshot(probe_t *p)
{
    long total = member_count(p), part = p->o.part > 0 ? p->o.part : (total > 0 ? total : 1);
    long from = 0;
    uint32_t k = 0;
    do {
        long to = from + part < total ? from + part : total;
        send_batch(p, from, to, 1, k++, to < total, 0);
        from = to;
    } while (from < total);
    printf("{\"resync\":1,\"seq\":%" PRIu64 ",\"members\":%ld}\n", p->seq, total);
    fflush(stdout);
}

static void send_heartbeat(probe_t *p)
{
    Rtsync__V1__EdgeHeartbeat hb = RTSYNC__V1__EDGE_HEARTBEAT__INIT;
    hb.edge = (char *)p->o.edge;
    hb.edge_epoch = p->o.epoch;
    hb.seq = p->seq;
    hb.members = (uint32_t)member_count(p);
    hb.draining = p->o.draining;
    uint8_t buf[256];
    size_t n = rtsync__v1__edge_heartbeat__pack(&hb, buf);
    rt_bus_publish(p->bus, "rt.pres.heartbeat", buf, n);
}

static void on_resync(void *ctx, const rt_bus_msg_t *msg)
{
    probe_t *p = ctx;
    Rtsync__V1__ResyncRequest *r = rtsync__v1__resync_request__unpack(NULL, msg->data.len, msg->data.data);
    if (r == NULL)
        return;
    if (r->edge[0] == '\0' || strcmp(r->edge, p->o.edge) == 0)
        send_snapshot(p);
    rtsync__v1__resync_request__free_unpacked(r, NULL);
}

static int run_edge(probe_t *p)
{
    rt_bus_sub_t *sub = NULL;
    if (rt_bus_subscribe(p->bus, p->loop, "rt.pres.resync", NULL, on_resync, p, &sub) != RT_OK)
        return 1;
    p->since_base = rt_now_wall_ms();
    for (long from = 0; from < p->o.members; from += p->o.batch)
        send_batch(p, from, from + p->o.batch < p->o.members ? from + p->o.batch : p->o.members, 0, 0, 0, 0);
    send_heartbeat(p);
    rt_bus_flush(p->bus, 2000);
    printf("{\"ready\":1,\"edge\":\"%s\",\"seq\":%" PRIu64 ",\"members\":%ld}\n", p->o.edge, p->seq, p->o.members);
    fflush(stdout);
    uint64_t start = rt_now_mono_ns(), next_hb = start + (uint64_t)p->o.hb_ms * 1000000;
    uint64_t end = p->o.duration_ms > 0 ? start + (uint64_t)p->o.duration_ms * 1000000 : UINT64_MAX;
    while (!stop_requested && rt_now_mono_ns() < end) {
        rt_loop_run_once(p->loop, 20);
        uint64_t now = rt_now_mono_ns();
        if (now < next_hb)
            continue;
        send_heartbeat(p);
        next_hb = now + (uint64_t)p->o.hb_ms * 1000000;
        if (p->o.lose_one && p->extra == 0) {
            p->extra = 2;
            send_batch(p, p->o.members, p->o.members + 1, 0, 0, 0, 1); /* lost on the way */
            send_batch(p, p->o.members + 1, p->o.members + 2, 0, 0, 0, 0);
            printf("{\"lost\":1,\"seq\":%" PRIu64 "}\n", p->seq - 1);
            fflush(stdout);
        }
    }
    rt_bus_unsubscribe(sub);
    return 0;
}

/* ---- query ---------------------------------------------------------------------------- */

static void print_reply(const probe_t *p, const Rtsync__V1__PresenceReply *r, int err)
{
    int code = err == RT_ETIMEOUT ? -2 : err != RT_OK ? 5 : r == NULL ? -1 : r->status ? (int)r->status->code : 0;
    size_t n = r ? r->n_members : 0;
    uint64_t digest = 1469598103934665603ull; /* FNV-1a over every field, in order */
    for (size_t i = 0; i < n; i++) {
        const Rtsync__V1__Member *m = r->members[i];
        char line[512];
        int len = snprintf(line, sizeof(line), "%s|%s|%s|%s|%" PRId64 "|", m->channel, m->user, m->conn, m->edge,
                           m->since_ms);
        for (int k = 0; k < len && k < (int)sizeof(line); k++)
            digest = (digest ^ (uint8_t)line[k]) * 1099511628211ull;
        for (size_t k = 0; k < m->state.len; k++)
            digest = (digest ^ m->state.data[k]) * 1099511628211ull;
    }
    printf("{\"code\":%d,\"count\":%zu,\"total\":%u,\"truncated\":%s,\"digest\":\"%016" PRIx64 "\",\"first\":", code, n,
           r ? r->total : 0, r && r->truncated ? "true" : "false", digest);
    n ? json_str(r->members[0]->conn, strlen(r->members[0]->conn)) : (void)printf("null");
    printf(",\"last\":");
    n ? json_str(r->members[n - 1]->conn, strlen(r->members[n - 1]->conn)) : (void)printf("null");
    if (p->o.full) {
        printf(",\"members\":[");
        for (size_t i = 0; i < n; i++) {
            const Rtsync__V1__Member *m = r->members[i];
            printf("%s{\"conn\":", i ? "," : "");
            json_str(m->conn, strlen(m->conn));
            printf(",\"user\":");
            json_str(m->user, strlen(m->user));
            printf(",\"edge\":");
            json_str(m->edge, strlen(m->edge));
            printf(",\"since\":%" PRId64 ",\"state\":", m->since_ms);
            json_str((const char *)m->state.data, m->state.len);
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
}

static void on_query_reply(void *ctx, int err, rt_slice_t data)
{
    probe_t *p = ctx;
    Rtsync__V1__PresenceReply *r = err == RT_OK ? rtsync__v1__presence_reply__unpack(NULL, data.len, data.data) : NULL;
    long count = r ? (long)r->n_members : -1;
    int ok = r && (r->status == NULL || r->status->code == RTSYNC__V1__CODE__CODE_OK);
    int last_try = rt_now_mono_ns() / 1000000 >= (uint64_t)p->o.wait_ms; /* wait_ms holds the deadline here */
    if ((ok && (p->o.expect < 0 || count == p->o.expect)) || last_try) {
        print_reply(p, r, err);
        p->code = ok ? 0 : 1;
        p->done = 1;
    } else {
        p->pending = 1; /* ask again */
    }
    if (r)
        rtsync__v1__presence_reply__free_unpacked(r, NULL);
}

static int run_query(probe_t *p)
{
    Rtsync__V1__PresenceQuery q = RTSYNC__V1__PRESENCE_QUERY__INIT;
    q.channel = (char *)p->o.channel;
    uint8_t buf[256];
    size_t n = rtsync__v1__presence_query__pack(&q, buf);
    p->o.wait_ms = (long)(rt_now_mono_ns() / 1000000) + p->o.wait_ms;
    p->pending = 1;
    while (!p->done) {
        if (p->pending) {
            p->pending = 0;
            if (rt_bus_request(p->req, "rt.pres.query", buf, n, on_query_reply, p) != RT_OK)
                on_query_reply(p, RT_EUNAVAIL, (rt_slice_t){0});
            else if (p->done)
                break;
        }
        rt_loop_run_once(p->loop, 50);
        if (p->pending && !p->done)
            rt_loop_run_once(p->loop, 100); /* a pause between retries */
    }
    return p->code;
}

/* ---- watch ---------------------------------------------------------------------------- */

static void on_channel_message(void *ctx, const rt_bus_msg_t *msg)
{
    probe_t *p = ctx;
    Rtsync__V1__ChannelMessage *m = rtsync__v1__channel_message__unpack(NULL, msg->data.len, msg->data.data);
    if (m == NULL)
        return;
    if (m->presence != NULL && m->presence->member != NULL) {
        const Rtsync__V1__Member *mem = m->presence->member;
        static const char *const kinds[] = {"join", "leave", "state"};
        int kind = (int)m->presence->kind;
        printf("{\"kind\":\"%s\",\"conn\":", kind >= 0 && kind <= 2 ? kinds[kind] : "?");
        json_str(mem->conn, strlen(mem->conn));
        printf(",\"user\":");
        json_str(mem->user, strlen(mem->user));
        printf(",\"edge\":");
        json_str(mem->edge, strlen(mem->edge));
        printf(",\"origin\":");
        json_str(m->origin_edge, strlen(m->origin_edge));
        printf("}\n");
        if (kind == RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE) {
            p->leaves++;
            if (rt_map_get(&p->left, mem->conn, strlen(mem->conn)) == NULL) {
                char *key = rt_xstrdup(mem->conn);
                rt_map_put(&p->left, key, strlen(key), key);
            }
        }
    } else if (m->to_conn[0] != '\0') {
        p->signals++;
        printf("{\"signal\":1,\"to\":");
        json_str(m->to_conn, strlen(m->to_conn));
        printf(",\"from_user\":");
        json_str(m->from_user, strlen(m->from_user));
        printf(",\"from_conn\":");
        json_str(m->from_conn, strlen(m->from_conn));
        printf(",\"event\":");
        json_str(m->event, strlen(m->event));
        printf(",\"data\":");
        json_str((const char *)m->data.data, m->data.len);
        printf("}\n");
    }
    fflush(stdout);
    rtsync__v1__channel_message__free_unpacked(m, NULL);
}

static int run_watch(probe_t *p)
{
    char subject[200];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", p->o.channel);
    rt_bus_sub_t *sub = NULL;
    if (rt_bus_subscribe(p->bus, p->loop, subject, NULL, on_channel_message, p, &sub) != RT_OK)
        return 1;
    rt_bus_flush(p->bus, 2000);
    printf("{\"ready\":1}\n");
    fflush(stdout);
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)p->o.timeout_ms * 1000000;
    while (!stop_requested && rt_now_mono_ns() < deadline)
        rt_loop_run_once(p->loop, 50);
    rt_bus_unsubscribe(sub);
    printf("{\"summary\":1,\"leaves\":%ld,\"distinct_leaves\":%zu,\"signals\":%ld}\n", p->leaves, p->left.len,
           p->signals);
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&p->left, &pos)) != NULL)
        free(ent->value);
    rt_map_dispose(&p->left);
    return 0;
}

/* ---- signal, garbage ---------------------------------------------------------------------- */

static void on_signal_reply(void *ctx, int err, rt_slice_t data)
{
    probe_t *p = ctx;
    Rtsync__V1__SignalReply *r = err == RT_OK ? rtsync__v1__signal_reply__unpack(NULL, data.len, data.data) : NULL;
    int code = err == RT_ETIMEOUT ? -2 : err != RT_OK ? 5 : r == NULL ? -1 : r->status ? (int)r->status->code : 0;
    printf("{\"code\":%d}\n", code);
    p->code = code == 0 ? 0 : 1;
    p->done = 1;
    if (r)
        rtsync__v1__signal_reply__free_unpacked(r, NULL);
}

static int run_signal(probe_t *p)
{
    Rtsync__V1__SignalRequest s = RTSYNC__V1__SIGNAL_REQUEST__INIT;
    s.channel = (char *)p->o.channel;
    s.to_conn = (char *)p->o.to;
    s.from_user = (char *)p->o.from_user;
    s.from_conn = (char *)p->o.from_conn;
    s.data.data = (uint8_t *)p->o.data;
    s.data.len = strlen(p->o.data);
    uint8_t buf[4096];
    size_t n = rtsync__v1__signal_request__pack(&s, buf);
    if (rt_bus_request(p->req, "rt.pres.signal", buf, n, on_signal_reply, p) != RT_OK)
        on_signal_reply(p, RT_EUNAVAIL, (rt_slice_t){0});
    while (!p->done)
        rt_loop_run_once(p->loop, 50);
    return p->code;
}

static void on_garbage_reply(void *ctx, int err, rt_slice_t data)
{
    probe_t *p = ctx;
    p->pending--;
    if (err == RT_ETIMEOUT) {
        p->timeouts++;
        return;
    }
    if (err != RT_OK)
        return;
    p->replies++;
    /* PresenceReply and SignalReply both carry the status as field 1 */
    Rtsync__V1__SignalReply *r = rtsync__v1__signal_reply__unpack(NULL, data.len, data.data);
    if (r && r->status && r->status->code == RTSYNC__V1__CODE__CODE_BAD_REQUEST)
        p->bad_request++;
    if (r)
        rtsync__v1__signal_reply__free_unpacked(r, NULL);
}

static int run_garbage(probe_t *p)
{
    static const char *const subjects[] = {"rt.pres.updates", "rt.pres.heartbeat", "rt.pres.peer",
                                           "rt.pres.query",   "rt.pres.signal",    "rt.pres.resync"};
    /* valid messages cut short: a batch with one update, a heartbeat, a query */
    static const uint8_t cut[] = {0x0a, 0x02, 'e', '1', 0x10, 0x01, 0x18, 0x05, 0x2a, 0x30, 0x12, 0x2e, 0x0a, 0x02};
    uint64_t seed = rt_now_mono_ns() | 1;
    uint8_t bytes[400];
    long sent = 0;
    for (long i = 0; i < p->o.n; i++) {
        size_t len = (size_t)(seed % sizeof(bytes)) + 1;
        for (size_t k = 0; k < len; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            bytes[k] = (uint8_t)seed;
        }
        if (i % 3 == 0)
            memcpy(bytes, cut, len < sizeof(cut) ? len : sizeof(cut));
        const char *subject = subjects[i % RT_ARRAY_SIZE(subjects)];
        rt_bus_publish(p->bus, subject, bytes, len);
        sent++;
        if (i % RT_ARRAY_SIZE(subjects) == 3 || i % RT_ARRAY_SIZE(subjects) == 4) {
            if (rt_bus_request(p->req, subject, bytes, len, on_garbage_reply, p) == RT_OK)
                p->pending++, sent++;
        }
    }
    while (p->pending > 0)
        rt_loop_run_once(p->loop, 100);
    printf("{\"sent\":%ld,\"replies\":%ld,\"bad_request\":%ld,\"timeout\":%ld}\n", sent, p->replies, p->bad_request,
           p->timeouts);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.edge = "probe-edge", .channel = "room", .to = "", .from_user = "probe", .from_conn = "probe-conn",
                  .data = "{\"sdp\":\"x\"}", .members = 10, .channels = 1, .batch = 500, .hb_ms = 500, .expect = -1,
                  .timeout_ms = 5000, .n = 100, .epoch = 1};
    if (argc < 2)
        return -1;
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--lose-one") || !strcmp(a, "--draining") || !strcmp(a, "--full")) {
            *(a[2] == 'l' ? &o->lose_one : a[2] == 'd' ? &o->draining : &o->full) = 1;
            continue;
        }
        if (v == NULL)
            return -1;
        i++;
        const char **s = !strcmp(a, "--edge")        ? &o->edge
                         : !strcmp(a, "--channel")   ? &o->channel
                         : !strcmp(a, "--to")        ? &o->to
                         : !strcmp(a, "--from-user") ? &o->from_user
                         : !strcmp(a, "--from-conn") ? &o->from_conn
                         : !strcmp(a, "--data")      ? &o->data
                                                     : NULL;
        long *l = !strcmp(a, "--members")    ? &o->members
                  : !strcmp(a, "--channels") ? &o->channels
                  : !strcmp(a, "--batch")    ? &o->batch
                  : !strcmp(a, "--part")     ? &o->part
                  : !strcmp(a, "--hb-ms")    ? &o->hb_ms
                  : !strcmp(a, "--duration") ? &o->duration_ms
                  : !strcmp(a, "--expect")   ? &o->expect
                  : !strcmp(a, "--wait")     ? &o->wait_ms
                  : !strcmp(a, "--timeout")  ? &o->timeout_ms
                  : !strcmp(a, "--n")        ? &o->n
                  : !strcmp(a, "--state-pad") ? &o->state_pad
                                             : NULL;
        if (s != NULL)
            *s = v;
        else if (l != NULL)
            *l = atol(v);
        else if (!strcmp(a, "--epoch"))
            o->epoch = strtoull(v, NULL, 10);
        else
            return -1;
    }
    return o->batch >= 1 && o->channels >= 1 && o->hb_ms >= 1 && o->state_pad >= 0 && o->state_pad <= MAX_PAD ? 0 : -1;
}

int main(int argc, char **argv)
{
    probe_t p = {0};
    if (parse_args(argc, argv, &p.o) != 0) {
        fprintf(stderr, "usage: pres-probe edge|query|watch|signal|garbage [options] (see tools/pres-probe/main.c)\n");
        return 2;
    }
    rt_log_init("pres-probe", RT_LOG_ERROR);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    const char *url = getenv("RT_NATS_URL");
    rt_loop_create(&p.loop);
    if (rt_bus_create(url ? url : "nats://127.0.0.1:4222", "pres-probe", 0, &p.bus) != RT_OK)
        return 1;
    rt_bus_wait_connected(p.bus, p.loop, 5000); /* requests then say whether it worked */
    rt_bus_requester_create(p.bus, p.loop, (uint32_t)p.o.timeout_ms, &p.req);
    int rc = 2;
    if (!strcmp(p.o.mode, "edge"))
        rc = run_edge(&p);
    else if (!strcmp(p.o.mode, "query"))
        rc = run_query(&p);
    else if (!strcmp(p.o.mode, "watch"))
        rc = run_watch(&p);
    else if (!strcmp(p.o.mode, "signal"))
        rc = run_signal(&p);
    else if (!strcmp(p.o.mode, "garbage"))
        rc = run_garbage(&p);
    fflush(stdout);
    rt_bus_requester_destroy(p.req);
    rt_bus_destroy(p.bus);
    rt_loop_destroy(p.loop);
    rt_buf_dispose(&p.buf);
    return rc;
}
