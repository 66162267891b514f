/*
 * sequencer.c: group commit of publishes.
 *
 * The loop thread appends validated publishes to the open batch (under the
 * mutex); a batch closes when it holds RT_HIST_BATCH_MAX publishes or
 * HIST_BATCH_MAX_BYTES of data.  The sequencer thread takes the oldest closed
 * batch, or the open one when none is closed, and commits it in one
 * transaction on its own connection (store.c), synchronously.  So while one transaction runs, the next batch fills up:
 * one fsync covers everything that arrived meanwhile, and an idle service commits a lone publish at once.  The finished
 * batch goes back to the loop thread with rt_loop_post, where its replies and fan-out are sent (api.c); only then is
 * the batch recycled.  Batches are posted in commit order.
 *
 * PostgreSQL down: the batch fails with RT_EUNAVAIL (no false ack), the
 * connection is dropped, and the next batch reconnects (at most every 100 ms
 * while the server stays away; batches in between fail at once).
 */
#include "hist.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <pthread.h>
#include <stdlib.h>

#define RECONNECT_INTERVAL_NS 100000000ull
#define MAX_ATTEMPTS 3

struct hist_seq {
    const hist_config_t *cfg;
    rt_loop_t *loop;
    hist_stats_t *stats;
    hist_retention_t *retention;
    hist_batch_done_cb done;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    hist_batch_t *open;
    hist_batch_t *closed_head, *closed_tail;
    hist_batch_t *free_list;
    size_t queued; /* publishes in open and closed batches */
    size_t queued_bytes;
    size_t inflight; /* batches taken by the worker and not yet recycled */
    int stopping;
    int waiting; /* the worker waits for a batch: submit wakes it */
    /* sequencer thread only */
    PGconn *conn;
    uint64_t next_connect_ns;
};

static hist_batch_t *batch_get_locked(hist_seq_t *seq)
{
    hist_batch_t *b = seq->free_list;
    if (b != NULL) {
        seq->free_list = b->next;
    } else {
        b = rt_xmalloc(sizeof(*b));
        hist_batch_init(b);
        b->owner = seq;
    }
    b->next = NULL;
    return b;
}

int hist_seq_submit(hist_seq_t *seq, const hist_publish_t *const *p, const hist_reply_to_t *to, size_t n)
{
    int64_t now_ms = rt_now_wall_ms();
    pthread_mutex_lock(&seq->mu);
    if (seq->queued + n > (size_t)seq->cfg->queue_max || seq->queued_bytes >= (size_t)seq->cfg->queue_bytes ||
        seq->stopping) {
        pthread_mutex_unlock(&seq->mu);
        return RT_ETOOBIG;
    }
    if (seq->open == NULL)
        seq->open = batch_get_locked(seq);
    for (size_t i = 0; i < n; i++) {
        hist_batch_add(seq->open, p[i], &to[i], now_ms);
        seq->queued_bytes += p[i]->data.len;
    }
    seq->queued += n;
    if (seq->open->n >= (size_t)seq->cfg->batch_max || seq->open->data_bytes >= HIST_BATCH_MAX_BYTES) {
        if (seq->closed_tail)
            seq->closed_tail->next = seq->open;
        else
            seq->closed_head = seq->open;
        seq->closed_tail = seq->open;
        seq->open = NULL;
    }
    /* wake the worker only if it waits, and after the unlock so that it does not
     * wake only to wait for the mutex */
    int wake = seq->waiting;
    seq->waiting = 0;
    pthread_mutex_unlock(&seq->mu);
    if (wake)
        pthread_cond_signal(&seq->cv);
    return RT_OK;
}

/* Sequencer thread: a usable connection, or NULL while the server is away. */
static PGconn *ensure_conn(hist_seq_t *seq)
{
    if (seq->conn != NULL && PQstatus(seq->conn) == CONNECTION_OK)
        return seq->conn;
    PQfinish(seq->conn);
    seq->conn = NULL;
    uint64_t now = rt_now_mono_ns();
    if (now < seq->next_connect_ns)
        return NULL;
    if (rt_pg_connect(seq->cfg->database_url, &seq->conn) != RT_OK || hist_store_prepare(seq->conn) != RT_OK) {
        PQfinish(seq->conn);
        seq->conn = NULL;
        seq->next_connect_ns = now + RECONNECT_INTERVAL_NS;
        return NULL;
    }
    RT_LOG_INFO("pg_connected", "worker=sequencer");
    return seq->conn;
}

static void note_retention(hist_seq_t *seq, const hist_batch_t *b)
{
    for (size_t c = 0; c < b->nchans; c++)
        if (b->chans[c].count > 0)
            hist_retention_note(seq->retention, hist_batch_str(b, b->chans[c].name), b->chans[c].name.len,
                                b->chans[c].last);
}

/* Sequencer thread: commits b; sets b->status.  Retries a deadlock, and a lost
 * connection (a server restart leaves it stale) when the loss came before COMMIT
 * went out; after that the outcome is unknown, so the batch fails as unavailable
 * (a publisher's resend with its id is then answered from the store). */
static void batch_commit(hist_seq_t *seq, hist_batch_t *b)
{
    int err = RT_EUNAVAIL;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        PGconn *conn = ensure_conn(seq);
        if (conn == NULL)
            break;
        uint64_t t0 = rt_now_mono_ns();
        err = hist_store_commit(conn, b);
        b->commit_ns = rt_now_mono_ns() - t0;
        if (err == RT_EUNAVAIL) {
            PQfinish(seq->conn);
            seq->conn = NULL; /* reconnect right away */
            seq->next_connect_ns = 0;
            if (b->commit_sent)
                break;
        } else if (err != RT_ESTATE) {
            break;
        }
    }
    b->status = err;
    if (err == RT_OK) {
        note_retention(seq, b);
        atomic_fetch_add(&seq->stats->batches, 1);
        RT_LOG_DEBUG("batch_committed", "n=%zu channels=%zu commit_us=%llu", b->n, b->nchans,
                     (unsigned long long)(b->commit_ns / 1000));
    }
}

static void on_batch_task(rt_task_t *task)
{
    hist_batch_t *b = RT_CONTAINER_OF(task, hist_batch_t, task);
    hist_seq_t *seq = b->owner;
    seq->done(seq->ctx, b);
}

/* Takes the next batch to commit, or NULL when stopping with nothing left. */
static hist_batch_t *batch_take(hist_seq_t *seq)
{
    pthread_mutex_lock(&seq->mu);
    while (seq->closed_head == NULL && seq->open == NULL && !seq->stopping) {
        seq->waiting = 1;
        pthread_cond_wait(&seq->cv, &seq->mu);
    }
    seq->waiting = 0;
    hist_batch_t *b = seq->closed_head;
    if (b != NULL) {
        seq->closed_head = b->next;
        if (seq->closed_head == NULL)
            seq->closed_tail = NULL;
    } else {
        b = seq->open;
        seq->open = NULL;
    }
    if (b != NULL) {
        seq->queued -= b->n;
        seq->queued_bytes -= b->data_bytes;
        seq->inflight++;
    }
    pthread_mutex_unlock(&seq->mu);
    return b;
}

static void *seq_main(void *arg)
{
    hist_seq_t *seq = arg;
    hist_batch_t *b;
    while ((b = batch_take(seq)) != NULL) {
        batch_commit(seq, b);
        b->task.cb = on_batch_task;
        rt_loop_post(seq->loop, &b->task);
    }
    PQfinish(seq->conn);
    seq->conn = NULL;
    return NULL;
}

hist_seq_t *hist_seq_create(const hist_config_t *cfg, rt_loop_t *loop, hist_stats_t *stats, hist_retention_t *retention,
                            hist_batch_done_cb done, void *ctx)
{
    hist_seq_t *seq = rt_xcalloc(1, sizeof(*seq));
    seq->cfg = cfg;
    seq->loop = loop;
    seq->stats = stats;
    seq->retention = retention;
    seq->done = done;
    seq->ctx = ctx;
    pthread_mutex_init(&seq->mu, NULL);
    pthread_cond_init(&seq->cv, NULL);
    if (pthread_create(&seq->thread, NULL, seq_main, seq) != 0) {
        RT_LOG_ERROR("thread_create_failed", "worker=sequencer");
        abort();
    }
    return seq;
}

void hist_seq_recycle(hist_seq_t *seq, hist_batch_t *b)
{
    hist_batch_clear(b);
    pthread_mutex_lock(&seq->mu);
    b->next = seq->free_list;
    seq->free_list = b;
    seq->inflight--;
    pthread_mutex_unlock(&seq->mu);
}

int hist_seq_busy(hist_seq_t *seq)
{
    pthread_mutex_lock(&seq->mu);
    int busy = seq->queued > 0 || seq->inflight > 0;
    pthread_mutex_unlock(&seq->mu);
    return busy;
}

void hist_seq_destroy(hist_seq_t *seq)
{
    if (seq == NULL)
        return;
    pthread_mutex_lock(&seq->mu);
    seq->stopping = 1;
    pthread_cond_signal(&seq->cv);
    pthread_mutex_unlock(&seq->mu);
    pthread_join(seq->thread, NULL);
    /* the worker committed everything queued; answer what it posted */
    while (hist_seq_busy(seq))
        rt_loop_run_once(seq->loop, 10);
    for (hist_batch_t *b = seq->free_list, *next; b != NULL; b = next) {
        next = b->next;
        hist_batch_dispose(b);
        free(b);
    }
    pthread_mutex_destroy(&seq->mu);
    pthread_cond_destroy(&seq->cv);
    free(seq);
}
