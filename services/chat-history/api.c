/*
 * api.c: the NATS face of chat-history, and the service's lifetime.
 *
 * Everything here runs on the loop thread (the main thread): rt_bus callbacks
 * for rt.hist.publish, rt.hist.publish_batch and rt.hist.query (queue group
 * "hist"), and the tasks the workers post back, which send the replies and,
 * after a commit, publish each new message with its offset on rt.ch.<channel>.
 * Garbage on any subject is counted, answered with CODE_BAD_REQUEST when a
 * reply inbox is given, and otherwise dropped.
 */
#include "hist.h"
#include "rt/log.h"
#include "rtsync/v1/channel.pb-c.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_SIZE (3 * HIST_MAX_DATA)
#define STATS_INTERVAL_NS 10000000000ull
#define DRAIN_TIMEOUT_NS 30000000000ull

struct hist_service {
    const hist_config_t *cfg;
    rt_loop_t *loop;
    rt_bus_t *bus;
    rt_bus_sub_t *publish_sub, *batch_sub, *query_sub;
    hist_arena_t arena;
    hist_publish_batch_t batch; /* the request being decoded */
    hist_stats_t stats;
    hist_retention_t *retention;
    hist_seq_t *seq;
    hist_queries_t *queries;
    rt_buf_t out; /* reused for every encoded message */
    uint64_t next_stats_ns;
};

static Rtsync__V1__Code code_of(int err)
{
    switch (err) {
    case RT_OK: return RTSYNC__V1__CODE__CODE_OK;
    case RT_EINVAL: return RTSYNC__V1__CODE__CODE_BAD_REQUEST;
    case RT_ETOOBIG: return RTSYNC__V1__CODE__CODE_TOO_LARGE;
    case RT_EUNAVAIL: return RTSYNC__V1__CODE__CODE_UNAVAILABLE;
    default: return RTSYNC__V1__CODE__CODE_INTERNAL;
    }
}

/* A PublishReply with the status it points to. */
typedef struct publish_result {
    Rtsync__V1__PublishReply reply;
    Rtsync__V1__Status status;
} publish_result_t;

/* One rt.hist.publish_batch request: its reply goes out once every message has
 * its result (they are all queued in the same commit group). */
typedef struct publish_group {
    char *reply;
    size_t n, pending;
    publish_result_t results[]; /* n */
} publish_group_t;

static void result_set(publish_result_t *r, int err, const char *why, uint64_t offset, int duplicate)
{
    rtsync__v1__status__init(&r->status);
    r->status.code = code_of(err);
    r->status.message = (char *)(why ? why : "");
    rtsync__v1__publish_reply__init(&r->reply);
    r->reply.status = &r->status;
    r->reply.offset = offset;
    r->reply.duplicate = duplicate != 0;
}

static void send_publish_reply(hist_service_t *svc, const char *reply, int err, const char *why, uint64_t offset,
                               int duplicate)
{
    if (reply == NULL || *reply == '\0')
        return;
    publish_result_t r;
    result_set(&r, err, why, offset, duplicate);
    uint8_t buf[512];
    size_t n = rtsync__v1__publish_reply__pack(&r.reply, buf); /* why is a short static text */
    rt_bus_publish(svc->bus, reply, buf, n);
}

/* A batch request refused as a whole. */
static void send_batch_refusal(hist_service_t *svc, const char *reply, int err, const char *why)
{
    if (reply == NULL || *reply == '\0')
        return;
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code_of(err);
    status.message = (char *)why;
    Rtsync__V1__PublishBatchReply r = RTSYNC__V1__PUBLISH_BATCH_REPLY__INIT;
    r.status = &status;
    uint8_t buf[512];
    size_t n = rtsync__v1__publish_batch_reply__pack(&r, buf);
    rt_bus_publish(svc->bus, reply, buf, n);
}

static publish_group_t *group_create(const char *reply, size_t n)
{
    publish_group_t *g = rt_xcalloc(1, sizeof(*g) + n * sizeof(g->results[0]));
    g->reply = rt_xstrdup(reply);
    g->n = n;
    return g;
}

/* Sends the group's reply once nothing is pending, and frees it. */
static void group_finish(hist_service_t *svc, publish_group_t *g)
{
    if (g->pending > 0)
        return;
    Rtsync__V1__PublishReply *ptrs[HIST_MAX_BATCH];
    for (size_t i = 0; i < g->n; i++)
        ptrs[i] = &g->results[i].reply;
    Rtsync__V1__PublishBatchReply r = RTSYNC__V1__PUBLISH_BATCH_REPLY__INIT;
    r.n_replies = g->n;
    r.replies = ptrs;
    size_t len = rtsync__v1__publish_batch_reply__get_packed_size(&r);
    svc->out.len = 0;
    rtsync__v1__publish_batch_reply__pack(&r, rt_buf_reserve(&svc->out, len));
    rt_bus_publish(svc->bus, g->reply, svc->out.data, len);
    free(g->reply);
    free(g);
}

/* Where an item's result goes: its own reply, or its slot of a batch reply. */
static void answer(hist_service_t *svc, const hist_batch_t *b, const hist_item_t *it, int err, const char *why,
                   uint64_t offset, int duplicate)
{
    publish_group_t *g = it->group;
    if (g == NULL) {
        send_publish_reply(svc, hist_batch_str(b, it->reply), err, why, offset, duplicate);
        return;
    }
    result_set(&g->results[it->slot], err, why, offset, duplicate);
    g->pending--;
    group_finish(svc, g);
}

static void count_bad(hist_service_t *svc, const char *subject, const char *why, size_t len)
{
    uint64_t total = atomic_fetch_add(&svc->stats.bad_requests, 1) + 1;
    /* log the first few, then every 1000th: garbage must not flood the log */
    if (total <= 10 || total % 1000 == 0)
        RT_LOG_WARN("bad_request", "subject=%s why=\"%s\" bytes=%zu total=%" PRIu64, subject, why, len, total);
}

static void on_publish(void *ctx, const rt_bus_msg_t *msg)
{
    hist_service_t *svc = ctx;
    hist_publish_t p;
    const char *why = NULL;
    rt_pb_arena_reset(&svc->arena);
    int err = hist_publish_decode(&svc->arena, msg->data, &p, &why);
    if (err != RT_OK) {
        count_bad(svc, msg->subject, why, msg->data.len);
        send_publish_reply(svc, msg->reply, err, why, 0, 0);
        return;
    }
    const hist_publish_t *pp = &p;
    if (hist_seq_submit(svc->seq, &pp, &(hist_reply_to_t){.reply = msg->reply}, 1) != RT_OK) {
        atomic_fetch_add(&svc->stats.overloaded, 1);
        send_publish_reply(svc, msg->reply, RT_EUNAVAIL, "overloaded", 0, 0);
    }
}

/* Queues the valid messages of a batch request together; the invalid ones are
 * answered in their slots at once. */
static void on_publish_batch(void *ctx, const rt_bus_msg_t *msg)
{
    hist_service_t *svc = ctx;
    hist_publish_batch_t *req = &svc->batch;
    const char *why = NULL;
    rt_pb_arena_reset(&svc->arena);
    int err = hist_publish_batch_decode(&svc->arena, msg->data, req, &why);
    if (err != RT_OK || msg->reply == NULL) {
        count_bad(svc, msg->subject, why ? why : "no reply subject", msg->data.len);
        send_batch_refusal(svc, msg->reply, err != RT_OK ? err : RT_EINVAL, why);
        return;
    }
    publish_group_t *g = group_create(msg->reply, req->n);
    const hist_publish_t *valid[HIST_MAX_BATCH];
    hist_reply_to_t to[HIST_MAX_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < req->n; i++) {
        if (req->err[i] != RT_OK) {
            count_bad(svc, msg->subject, req->why[i], msg->data.len);
            result_set(&g->results[i], req->err[i], req->why[i], 0, 0);
            continue;
        }
        valid[n] = &req->items[i];
        to[n++] = (hist_reply_to_t){.group = g, .slot = (uint32_t)i};
    }
    if (n > 0 && hist_seq_submit(svc->seq, valid, to, n) != RT_OK) {
        atomic_fetch_add(&svc->stats.overloaded, n);
        for (size_t k = 0; k < n; k++)
            result_set(&g->results[to[k].slot], RT_EUNAVAIL, "overloaded", 0, 0);
        n = 0;
    }
    g->pending = n;
    group_finish(svc, g);
}

static void fan_out(hist_service_t *svc, const hist_batch_t *b, const hist_item_t *it)
{
    Rtsync__V1__ChannelMessage m = RTSYNC__V1__CHANNEL_MESSAGE__INIT;
    m.channel = (char *)hist_batch_str(b, it->channel);
    m.offset = it->offset;
    m.event = (char *)hist_batch_str(b, it->event);
    m.data.data = (uint8_t *)hist_batch_str(b, it->data);
    m.data.len = it->data.len;
    m.from_user = (char *)hist_batch_str(b, it->user);
    m.id = (char *)hist_batch_str(b, it->id);
    m.ts_ms = it->ts_ms;
    m.origin_edge = (char *)hist_batch_str(b, it->origin);
    m.from_conn = (char *)hist_batch_str(b, it->conn);
    size_t n = rtsync__v1__channel_message__get_packed_size(&m);
    svc->out.len = 0;
    rtsync__v1__channel_message__pack(&m, rt_buf_reserve(&svc->out, n));
    char subject[HIST_MAX_CHANNEL + 16];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", m.channel);
    rt_bus_publish(svc->bus, subject, svc->out.data, n);
}

/* A committed (or failed) batch: fan out the new messages, then acknowledge. */
static void on_batch_done(void *ctx, hist_batch_t *b)
{
    hist_service_t *svc = ctx;
    for (size_t i = 0; i < b->n; i++) {
        const hist_item_t *it = &b->items[i];
        if (b->status == RT_OK && !it->duplicate)
            fan_out(svc, b, it);
        answer(svc, b, it, b->status, b->status == RT_OK ? NULL : "history store unavailable",
               b->status == RT_OK ? it->offset : 0, b->status == RT_OK && it->duplicate);
    }
    if (b->status == RT_OK) {
        size_t fresh = hist_batch_new_count(b);
        atomic_fetch_add(&svc->stats.published, fresh);
        atomic_fetch_add(&svc->stats.duplicates, b->n - fresh);
    } else {
        atomic_fetch_add(&svc->stats.unavailable, b->n);
    }
    hist_seq_recycle(svc->seq, b);
}

static void send_query_error(hist_service_t *svc, const char *reply, int err, const char *why)
{
    if (reply == NULL || *reply == '\0')
        return;
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    status.code = code_of(err);
    status.message = (char *)why;
    Rtsync__V1__HistoryReply r = RTSYNC__V1__HISTORY_REPLY__INIT;
    r.status = &status;
    uint8_t buf[256];
    size_t n = rtsync__v1__history_reply__pack(&r, buf);
    rt_bus_publish(svc->bus, reply, buf, n);
}

static void on_query(void *ctx, const rt_bus_msg_t *msg)
{
    hist_service_t *svc = ctx;
    hist_query_t q;
    const char *why = NULL;
    rt_pb_arena_reset(&svc->arena);
    int err = hist_query_decode(&svc->arena, msg->data, &q, &why);
    if (err != RT_OK) {
        count_bad(svc, msg->subject, why, msg->data.len);
        send_query_error(svc, msg->reply, err, why);
        return;
    }
    if (msg->reply == NULL)
        return; /* nobody to answer */
    if (hist_queries_submit(svc->queries, &q, msg->reply) != RT_OK)
        send_query_error(svc, msg->reply, RT_EUNAVAIL, "overloaded");
}

static void on_query_done(void *ctx, hist_query_job_t *job)
{
    hist_service_t *svc = ctx;
    if (job->status == RT_OK)
        rt_bus_publish(svc->bus, job->reply, job->out.data, job->out.len);
    else
        send_query_error(svc, job->reply, job->status == RT_EUNAVAIL ? RT_EUNAVAIL : RT_EIO,
                         job->status == RT_EUNAVAIL ? "history store unavailable" : "query failed");
    hist_queries_release(svc->queries, job);
}

int hist_service_create(const hist_config_t *cfg, hist_service_t **out)
{
    hist_service_t *svc = rt_xcalloc(1, sizeof(*svc));
    svc->cfg = cfg;
    rt_pb_arena_init(&svc->arena, ARENA_SIZE);
    rt_loop_create(&svc->loop);
    int err = rt_bus_create(cfg->nats_url, cfg->instance_id, 0, &svc->bus);
    if (err != RT_OK) {
        hist_service_destroy(svc);
        return err;
    }
    svc->retention = hist_retention_create(cfg, &svc->stats);
    svc->seq = hist_seq_create(cfg, svc->loop, &svc->stats, svc->retention, on_batch_done, svc);
    svc->queries = hist_queries_create(cfg, svc->loop, &svc->stats, on_query_done, svc);
    err = rt_bus_subscribe(svc->bus, svc->loop, "rt.hist.publish", "hist", on_publish, svc, &svc->publish_sub);
    if (err == RT_OK)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.hist.publish_batch", "hist", on_publish_batch, svc,
                               &svc->batch_sub);
    if (err == RT_OK)
        err = rt_bus_subscribe(svc->bus, svc->loop, "rt.hist.query", "hist", on_query, svc, &svc->query_sub);
    if (err != RT_OK) {
        hist_service_destroy(svc);
        return err;
    }
    RT_LOG_INFO("started", "instance=%s nats=%s retain=%lld batch_max=%lld", cfg->instance_id, cfg->nats_url,
                (long long)cfg->retain, (long long)cfg->batch_max);
    *out = svc;
    return RT_OK;
}

static void log_stats(hist_service_t *svc)
{
    hist_stats_t *s = &svc->stats;
    RT_LOG_INFO("stats",
                "published=%" PRIu64 " duplicates=%" PRIu64 " bad_requests=%" PRIu64 " unavailable=%" PRIu64
                " overloaded=%" PRIu64 " batches=%" PRIu64 " queries=%" PRIu64 " trimmed=%" PRIu64,
                (uint64_t)s->published, (uint64_t)s->duplicates, (uint64_t)s->bad_requests, (uint64_t)s->unavailable,
                (uint64_t)s->overloaded, (uint64_t)s->batches, (uint64_t)s->queries, (uint64_t)s->trimmed);
}

void hist_service_run(hist_service_t *svc, volatile int *stop)
{
    svc->next_stats_ns = rt_now_mono_ns() + STATS_INTERVAL_NS;
    while (!*stop) {
        rt_loop_run_once(svc->loop, 100);
        uint64_t now = rt_now_mono_ns();
        if (now >= svc->next_stats_ns) {
            log_stats(svc);
            svc->next_stats_ns = now + STATS_INTERVAL_NS;
        }
    }
}

void hist_service_drain(hist_service_t *svc)
{
    RT_LOG_INFO("draining", "instance=%s", svc->cfg->instance_id);
    rt_bus_unsubscribe(svc->publish_sub);
    rt_bus_unsubscribe(svc->batch_sub);
    rt_bus_unsubscribe(svc->query_sub);
    svc->publish_sub = svc->batch_sub = svc->query_sub = NULL;
    uint64_t deadline = rt_now_mono_ns() + DRAIN_TIMEOUT_NS;
    while ((hist_seq_busy(svc->seq) || hist_queries_busy(svc->queries)) && rt_now_mono_ns() < deadline)
        rt_loop_run_once(svc->loop, 10);
    rt_bus_flush(svc->bus, 2000);
    log_stats(svc);
}

void hist_service_destroy(hist_service_t *svc)
{
    if (svc == NULL)
        return;
    rt_bus_unsubscribe(svc->publish_sub);
    rt_bus_unsubscribe(svc->batch_sub);
    rt_bus_unsubscribe(svc->query_sub);
    hist_seq_destroy(svc->seq);
    hist_queries_destroy(svc->queries);
    hist_retention_destroy(svc->retention);
    rt_bus_destroy(svc->bus);
    rt_loop_destroy(svc->loop);
    rt_pb_arena_dispose(&svc->arena);
    rt_buf_dispose(&svc->out);
    free(svc);
}
