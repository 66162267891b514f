/* bus.c: cnats connection, subscriptions handed to loops, async requests. */
#include "rt/bus.h"
#include "rt/log.h"
#include "rt/map.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bus_barrier bus_barrier_t;

struct rt_bus {
    natsConnection *conn;
    rt_bus_state_cb state_cb;
    void *state_ctx;
    atomic_bool closed; /* cnats ran its closed callback: no callback of ours runs any more */
    /* Barriers wait for a PING's PONG (cnats has no asynchronous flush, and a
     * connection without echo cannot send itself a message): a thread of the
     * bus's own, started by the first barrier, flushes for all that wait. */
    pthread_mutex_t barrier_lock;
    pthread_cond_t barrier_cond;
    bus_barrier_t *barriers, **barriers_tail; /* waiting for the next flush, in the order they came */
    pthread_t barrier_thread;
    bool barrier_started, barrier_stopping;
};

/* Shared by the owner, the cnats subscription (until its on-complete callback)
 * and every message in flight to the loop. */
struct rt_bus_sub {
    natsSubscription *nsub;
    rt_loop_t *loop;
    rt_bus_msg_cb cb;
    void *ctx;
    atomic_int refs;
    atomic_bool closed;
};

/* Larger messages are destroyed at once, not held for a bulk release. */
#define RELEASE_LATER_MAX (16 << 10) /* at most 256 of them wait: 4 MiB */

typedef struct bus_msg_task {
    rt_task_t task;
    rt_bus_sub_t *sub;
    natsMsg *nmsg;
} bus_msg_task_t;

struct rt_bus_requester {
    rt_bus_t *bus;
    rt_loop_t *loop;
    rt_bus_sub_t *inbox_sub;
    char inbox[64];
    uint64_t next_id;
    rt_map_t pending; /* id text -> rt_bus_request_t */
    h2o_timeout_t timeout;
};

/* A barrier waiting for its flush: then its reply comes as a real one would. */
struct bus_barrier {
    bus_barrier_t *next;
    rt_bus_sub_t *inbox_sub; /* a reference */
    char reply[96];
};

/* A flush of the barriers' connection has to answer in this time; if it does not,
 * their requests time out. */
#define BARRIER_FLUSH_MS 10000

typedef struct rt_bus_request {
    rt_bus_requester_t *requester;
    h2o_timeout_entry_t timer;
    rt_bus_reply_cb cb;
    void *ctx;
    char id[24];
    size_t idlen;
} rt_bus_request_t;

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    rt_bus_t *bus = closure;
    RT_LOG_WARN("nats_disconnected", "reconnecting=1");
    if (bus->state_cb)
        bus->state_cb(bus->state_ctx, 0);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    rt_bus_t *bus = closure;
    RT_LOG_INFO("nats_connected", "reconnected=1");
    if (bus->state_cb)
        bus->state_cb(bus->state_ctx, 1);
}

/* The last connection callback cnats delivers (they run in order on one thread). */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    rt_bus_t *bus = closure;
    atomic_store(&bus->closed, true);
}

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    RT_LOG_WARN("nats_async_error", "error=\"%s\"", natsStatus_GetText(err));
}

int rt_bus_create(const char *url, const char *name, unsigned flags, rt_bus_t **out)
{
    static atomic_flag lib_set = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&lib_set)) {
        /* cnats spins 2000 times on a busy lock before it blocks: between our
         * loop threads and its reader and delivery threads, on few cores that
         * the other services share, the spinning took the time the holder
         * needed (7 % of an edge's CPU under a Yjs replay); block at once */
        if (nats_Open(0) != NATS_OK)
            RT_LOG_WARN("nats_open_failed", "lock_spin=default");
        /* one delivery thread: its only work is to post each message to its
         * loop, and with one, messages of different subscriptions (a reply and
         * a broadcast) reach a loop in the order NATS sent them */
        nats_SetMessageDeliveryPoolSize(1);
    }
    rt_bus_t *bus = rt_xcalloc(1, sizeof(*bus));
    pthread_mutex_init(&bus->barrier_lock, NULL);
    pthread_cond_init(&bus->barrier_cond, NULL);
    bus->barriers_tail = &bus->barriers;
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 200);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(opts, 100, 100);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(opts, 8 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(opts, true);
    if (s == NATS_OK) /* no flusher-thread delay (about 1 ms) on each publish: latency over batching */
        s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPendingMsgs(opts, 1000000);
    if (s == NATS_OK && (flags & RT_BUS_NO_ECHO))
        s = natsOptions_SetNoEcho(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, bus);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, bus);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_nats_error, bus);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_reconnected, bus);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&bus->conn, opts);
        if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK;
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        RT_LOG_ERROR("nats_connect_failed", "url=%s error=\"%s\"", url, natsStatus_GetText(s));
        rt_bus_destroy(bus);
        return RT_EINVAL;
    }
    *out = bus;
    return RT_OK;
}

static void barriers_stop(rt_bus_t *bus);

void rt_bus_destroy(rt_bus_t *bus)
{
    if (bus == NULL)
        return;
    barriers_stop(bus);
    if (bus->conn != NULL) {
        natsConnection_FlushTimeout(bus->conn, 1000);
        natsConnection_Close(bus->conn);
        /* the disconnected callback may still be queued: free the bus only after the
         * closed callback, which comes after it (at most 2 s) */
        for (int i = 0; i < 2000 && !atomic_load(&bus->closed); i++)
            nats_Sleep(1);
        natsConnection_Destroy(bus->conn);
    }
    pthread_cond_destroy(&bus->barrier_cond);
    pthread_mutex_destroy(&bus->barrier_lock);
    free(bus);
}

void rt_bus_set_state_cb(rt_bus_t *bus, rt_bus_state_cb cb, void *ctx)
{
    bus->state_ctx = ctx;
    bus->state_cb = cb;
}

int rt_bus_is_connected(rt_bus_t *bus)
{
    return natsConnection_Status(bus->conn) == NATS_CONN_STATUS_CONNECTED;
}

uint64_t rt_bus_reconnects(rt_bus_t *bus)
{
    natsStatistics *stats = NULL;
    uint64_t reconnects = 0;
    if (natsStatistics_Create(&stats) == NATS_OK && natsConnection_GetStats(bus->conn, stats) == NATS_OK)
        natsStatistics_GetCounts(stats, NULL, NULL, NULL, NULL, &reconnects);
    natsStatistics_Destroy(stats);
    return reconnects;
}

int rt_bus_wait_connected(rt_bus_t *bus, rt_loop_t *loop, int64_t timeout_ms)
{
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)timeout_ms * 1000000;
    while (!rt_bus_is_connected(bus)) {
        if (rt_now_mono_ns() >= deadline)
            return RT_ETIMEOUT;
        rt_loop_run_once(loop, 50);
    }
    return RT_OK;
}

int rt_bus_publish(rt_bus_t *bus, const char *subject, const void *data, size_t len)
{
    if (!rt_bus_is_connected(bus))
        return RT_EUNAVAIL;
    natsStatus s = natsConnection_Publish(bus->conn, subject, data, (int)len);
    return s == NATS_OK ? RT_OK : RT_EUNAVAIL;
}

int rt_bus_flush(rt_bus_t *bus, int64_t timeout_ms)
{
    return natsConnection_FlushTimeout(bus->conn, timeout_ms) == NATS_OK ? RT_OK : RT_ETIMEOUT;
}

static void sub_release(rt_bus_sub_t *sub)
{
    if (atomic_fetch_sub(&sub->refs, 1) == 1) {
        natsSubscription_Destroy(sub->nsub);
        free(sub);
    }
}

static void on_msg_release(rt_task_t *task)
{
    bus_msg_task_t *t = (bus_msg_task_t *)task;
    natsMsg_Destroy(t->nmsg);
    free(t);
}

static void on_msg_task(rt_task_t *task)
{
    bus_msg_task_t *t = (bus_msg_task_t *)task;
    rt_bus_sub_t *sub = t->sub;
    if (!atomic_load(&sub->closed)) {
        rt_bus_msg_t msg = {
            .subject = natsMsg_GetSubject(t->nmsg),
            .reply = natsMsg_GetReply(t->nmsg),
            .data = {(const uint8_t *)natsMsg_GetData(t->nmsg), (size_t)natsMsg_GetDataLength(t->nmsg)},
        };
        sub->cb(sub->ctx, &msg);
    }
    rt_loop_t *loop = sub->loop;
    sub_release(sub);
    /* cnats frees a destroyed message on its GC thread, and wakes that thread
     * whenever a destroy finds it asleep: once per message received, at the
     * rate messages come one by one.  Small ones are destroyed in bulk. */
    if (natsMsg_GetDataLength(t->nmsg) > RELEASE_LATER_MAX) {
        on_msg_release(task);
    } else {
        t->task.cb = on_msg_release;
        rt_loop_defer(loop, &t->task);
    }
}

/* cnats thread: hand the message to the owning loop. */
static void on_nats_msg(natsConnection *nc, natsSubscription *nsub, natsMsg *nmsg, void *closure)
{
    (void)nc, (void)nsub;
    rt_bus_sub_t *sub = closure;
    if (atomic_load(&sub->closed)) {
        natsMsg_Destroy(nmsg);
        return;
    }
    atomic_fetch_add(&sub->refs, 1);
    bus_msg_task_t *t = rt_xcalloc(1, sizeof(*t)) /* the queue link must start unlinked */;
    t->task.cb = on_msg_task;
    t->sub = sub;
    t->nmsg = nmsg;
    rt_loop_post(sub->loop, &t->task);
}

static void on_sub_complete(void *closure)
{
    sub_release(closure);
}

int rt_bus_subscribe(rt_bus_t *bus, rt_loop_t *loop, const char *subject, const char *queue_group, rt_bus_msg_cb cb,
                     void *ctx, rt_bus_sub_t **out)
{
    rt_bus_sub_t *sub = rt_xcalloc(1, sizeof(*sub));
    sub->loop = loop;
    sub->cb = cb;
    sub->ctx = ctx;
    atomic_init(&sub->refs, 2); /* the owner and the cnats subscription */
    atomic_init(&sub->closed, false);
    natsStatus s = queue_group
                       ? natsConnection_QueueSubscribe(&sub->nsub, bus->conn, subject, queue_group, on_nats_msg, sub)
                       : natsConnection_Subscribe(&sub->nsub, bus->conn, subject, on_nats_msg, sub);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub->nsub, -1, -1);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(sub->nsub, on_sub_complete, sub);
    if (s != NATS_OK) {
        RT_LOG_ERROR("nats_subscribe_failed", "subject=%s error=\"%s\"", subject, natsStatus_GetText(s));
        if (sub->nsub != NULL) {
            natsSubscription_Unsubscribe(sub->nsub);
            natsSubscription_Destroy(sub->nsub);
        }
        free(sub);
        return RT_EUNAVAIL;
    }
    *out = sub;
    return RT_OK;
}

void rt_bus_unsubscribe(rt_bus_sub_t *sub)
{
    if (sub == NULL)
        return;
    atomic_store(&sub->closed, true);
    natsSubscription_Unsubscribe(sub->nsub);
    sub_release(sub);
}

/* ---- requests ---------------------------------------------------------------- */

static void request_finish(rt_bus_request_t *req, int err, rt_slice_t data)
{
    rt_bus_reply_cb cb = req->cb;
    void *ctx = req->ctx;
    rt_map_remove(&req->requester->pending, req->id, req->idlen);
    h2o_timeout_unlink(&req->timer);
    free(req);
    cb(ctx, err, data);
}

static void on_request_timeout(h2o_timeout_entry_t *entry)
{
    rt_bus_request_t *req = RT_CONTAINER_OF(entry, rt_bus_request_t, timer);
    request_finish(req, RT_ETIMEOUT, (rt_slice_t){NULL, 0});
}

/* Returns 0 for an id not pending: a late reply to a request that timed out. */
static int finish_id(rt_bus_requester_t *r, const char *id, int err, rt_slice_t data)
{
    rt_bus_request_t *req = rt_map_get(&r->pending, id, strlen(id));
    if (req == NULL)
        return 0;
    request_finish(req, err, data);
    return 1;
}

static void on_reply(void *ctx, const rt_bus_msg_t *msg)
{
    const char *id = strrchr(msg->subject, '.');
    /* An empty reply is NATS's "no responders" status message: nothing listens. */
    if (id != NULL)
        finish_id(ctx, id + 1, msg->data.len == 0 ? RT_EUNAVAIL : RT_OK, msg->data);
}

int rt_bus_requester_resolve(rt_bus_requester_t *r, const char *reply, rt_slice_t data)
{
    size_t n = strlen(r->inbox);
    if (strncmp(reply, r->inbox, n) != 0 || reply[n] != '.')
        return 0;
    return finish_id(r, reply + n + 1, RT_OK, data);
}

int rt_bus_requester_create(rt_bus_t *bus, rt_loop_t *loop, uint32_t timeout_ms, rt_bus_requester_t **out)
{
    rt_bus_requester_t *r = rt_xcalloc(1, sizeof(*r));
    r->bus = bus;
    r->loop = loop;
    natsInbox *inbox = NULL;
    if (natsInbox_Create(&inbox) != NATS_OK) {
        free(r);
        return RT_EUNAVAIL;
    }
    snprintf(r->inbox, sizeof(r->inbox), "%s", inbox);
    natsInbox_Destroy(inbox);
    char wildcard[80];
    snprintf(wildcard, sizeof(wildcard), "%s.*", r->inbox);
    int err = rt_bus_subscribe(bus, loop, wildcard, NULL, on_reply, r, &r->inbox_sub);
    if (err != RT_OK) {
        free(r);
        return err;
    }
    h2o_timeout_init(rt_loop_evloop(loop), &r->timeout, timeout_ms);
    *out = r;
    return RT_OK;
}

void rt_bus_requester_destroy(rt_bus_requester_t *r)
{
    if (r == NULL)
        return;
    rt_bus_unsubscribe(r->inbox_sub);
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&r->pending, &pos)) != NULL)
        request_finish(e->value, RT_EUNAVAIL, (rt_slice_t){NULL, 0});
    rt_map_dispose(&r->pending);
    h2o_timeout_dispose(rt_loop_evloop(r->loop), &r->timeout);
    free(r);
}

/* A request not yet pending: its id and reply subject are set. */
static rt_bus_request_t *request_new(rt_bus_requester_t *r, rt_bus_reply_cb cb, void *ctx, char *reply,
                                     size_t replysize)
{
    rt_bus_request_t *req = rt_xcalloc(1, sizeof(*req));
    req->requester = r;
    req->cb = cb;
    req->ctx = ctx;
    req->idlen = (size_t)snprintf(req->id, sizeof(req->id), "%" PRIu64, ++r->next_id);
    snprintf(reply, replysize, "%s.%s", r->inbox, req->id);
    return req;
}

/* Waits for the reply or the timeout. */
static void request_pend(rt_bus_request_t *req)
{
    rt_bus_requester_t *r = req->requester;
    rt_map_put(&r->pending, req->id, req->idlen, req);
    req->timer.cb = on_request_timeout;
    h2o_timeout_link(rt_loop_evloop(r->loop), &r->timeout, &req->timer);
}

int rt_bus_request(rt_bus_requester_t *r, const char *subject, const void *data, size_t len, rt_bus_reply_cb cb,
                   void *ctx)
{
    if (!rt_bus_is_connected(r->bus))
        return RT_EUNAVAIL;
    char reply[96];
    rt_bus_request_t *req = request_new(r, cb, ctx, reply, sizeof(reply));
    if (natsConnection_PublishRequest(r->bus->conn, subject, reply, data, (int)len) != NATS_OK) {
        free(req);
        return RT_EUNAVAIL;
    }
    request_pend(req);
    return RT_OK;
}

/* ---- barriers ---------------------------------------------------------------- */

/* The barrier thread: one flush answers every barrier queued before it. */
static void *barrier_main(void *arg)
{
    rt_bus_t *bus = arg;
    pthread_mutex_lock(&bus->barrier_lock);
    for (;;) {
        while (bus->barriers == NULL && !bus->barrier_stopping)
            pthread_cond_wait(&bus->barrier_cond, &bus->barrier_lock);
        bus_barrier_t *list = bus->barriers;
        bool stopping = bus->barrier_stopping;
        bus->barriers = NULL;
        bus->barriers_tail = &bus->barriers;
        pthread_mutex_unlock(&bus->barrier_lock);
        /* stopping: the requesters are gone, and their barriers with them */
        bool flushed = !stopping && list != NULL && natsConnection_FlushTimeout(bus->conn, BARRIER_FLUSH_MS) == NATS_OK;
        for (bus_barrier_t *b = list, *next; b != NULL; b = next) {
            next = b->next;
            natsMsg *m = NULL;
            /* one byte: an empty reply would read as "no responders" */
            if (flushed && natsMsg_Create(&m, b->reply, NULL, "b", 1) == NATS_OK)
                on_nats_msg(bus->conn, NULL, m, b->inbox_sub);
            sub_release(b->inbox_sub);
            free(b);
        }
        if (stopping)
            return NULL;
        pthread_mutex_lock(&bus->barrier_lock);
    }
}

static void barriers_stop(rt_bus_t *bus)
{
    pthread_mutex_lock(&bus->barrier_lock);
    bus->barrier_stopping = true;
    bool started = bus->barrier_started;
    pthread_cond_signal(&bus->barrier_cond);
    pthread_mutex_unlock(&bus->barrier_lock);
    if (started)
        pthread_join(bus->barrier_thread, NULL);
}

int rt_bus_barrier(rt_bus_requester_t *r, rt_bus_reply_cb cb, void *ctx)
{
    rt_bus_t *bus = r->bus;
    if (!rt_bus_is_connected(bus))
        return RT_EUNAVAIL;
    bus_barrier_t *b = rt_xcalloc(1, sizeof(*b));
    rt_bus_request_t *req = request_new(r, cb, ctx, b->reply, sizeof(b->reply));
    b->inbox_sub = r->inbox_sub;
    atomic_fetch_add(&b->inbox_sub->refs, 1);
    pthread_mutex_lock(&bus->barrier_lock);
    if (!bus->barrier_started)
        bus->barrier_started = pthread_create(&bus->barrier_thread, NULL, barrier_main, bus) == 0;
    int err = bus->barrier_started && !bus->barrier_stopping ? RT_OK : RT_EUNAVAIL;
    if (err == RT_OK) {
        *bus->barriers_tail = b;
        bus->barriers_tail = &b->next;
        pthread_cond_signal(&bus->barrier_cond);
    }
    pthread_mutex_unlock(&bus->barrier_lock);
    if (err != RT_OK) {
        sub_release(b->inbox_sub);
        free(b);
        free(req);
        return err;
    }
    request_pend(req);
    return RT_OK;
}

void rt_bus_subject(char *out, size_t outsize, const char *prefix, const char *name)
{
    int n = snprintf(out, outsize, "%s.%s", prefix, name);
    if (n < 0)
        return;
    for (char *p = out + strlen(prefix) + 1; *p; p++)
        if (*p == '.')
            *p = '~';
}
