/*
 * retention.c: keeps the newest RT_HISTORY_RETAIN messages per channel.
 *
 * The sequencer notes each channel's newest offset after a commit; this thread
 * wakes every RT_HISTORY_TRIM_INTERVAL, takes the noted channels and deletes
 * what fell out of the window with one statement on its own connection, off
 * the publish path.  At its first connection it also sweeps every channel once
 * (messages left over from before a restart or a lowered limit).
 */
#include "hist.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct noted {
    uint64_t last;
    size_t len;
    char name[HIST_MAX_CHANNEL + 1];
} noted_t;

struct hist_retention {
    const hist_config_t *cfg;
    hist_stats_t *stats;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rt_map_t noted; /* under mu: channel -> noted_t */
    int stopping;   /* under mu */
    /* retention thread only */
    PGconn *conn;
    int swept;
};

void hist_retention_note(hist_retention_t *r, const char *channel, size_t len, uint64_t last)
{
    if (last <= (uint64_t)r->cfg->retain || len > HIST_MAX_CHANNEL)
        return;
    pthread_mutex_lock(&r->mu);
    noted_t *n = rt_map_get(&r->noted, channel, len);
    if (n == NULL) {
        n = rt_xmalloc(sizeof(*n));
        memcpy(n->name, channel, len);
        n->name[len] = '\0';
        n->len = len;
        n->last = 0;
        rt_map_put(&r->noted, n->name, len, n);
    }
    if (last > n->last)
        n->last = last;
    pthread_mutex_unlock(&r->mu);
}

/* Waits one interval; returns 0 when stopping. */
static int wait_interval(hist_retention_t *r, rt_map_t *taken)
{
    struct timespec until = rt_timespec_of_ns((uint64_t)(rt_now_wall_ms() + r->cfg->trim_interval_ms) * 1000000u);
    pthread_mutex_lock(&r->mu);
    if (!r->stopping)
        pthread_cond_timedwait(&r->cv, &r->mu, &until);
    *taken = r->noted;
    memset(&r->noted, 0, sizeof(r->noted));
    int go_on = !r->stopping;
    pthread_mutex_unlock(&r->mu);
    return go_on;
}

static int ensure_conn(hist_retention_t *r)
{
    if (r->conn != NULL && PQstatus(r->conn) == CONNECTION_OK)
        return 1;
    PQfinish(r->conn);
    r->conn = NULL;
    return rt_pg_connect(r->cfg->database_url, &r->conn) == RT_OK;
}

static void count_trimmed(hist_retention_t *r, int64_t deleted)
{
    if (deleted > 0) {
        atomic_fetch_add(&r->stats->trimmed, (uint64_t)deleted);
        RT_LOG_DEBUG("trimmed", "rows=%lld", (long long)deleted);
    }
}

/* Deletes below the window of every channel in `taken`, and frees it; when that
 * fails (PostgreSQL away) the channels are noted again for the next round. */
static void trim_noted(hist_retention_t *r, rt_map_t *taken)
{
    rt_buf_t names = {0}, upto = {0};
    size_t pos = 0, n = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(taken, &pos)) != NULL) {
        noted_t *c = e->value;
        rt_pg_array_add_text(&names, c->name, c->len);
        rt_pg_array_add_int(&upto, (int64_t)(c->last - (uint64_t)r->cfg->retain));
        n++;
    }
    int64_t deleted = RT_EUNAVAIL;
    if (n > 0 && ensure_conn(r))
        deleted = hist_store_trim(r->conn, &names, &upto, 0);
    count_trimmed(r, deleted);
    pos = 0;
    while ((e = rt_map_next(taken, &pos)) != NULL) {
        noted_t *c = e->value;
        if (deleted < 0)
            hist_retention_note(r, c->name, c->len, c->last);
        free(c);
    }
    rt_map_dispose(taken);
    rt_buf_dispose(&names);
    rt_buf_dispose(&upto);
}

static void *retention_main(void *arg)
{
    hist_retention_t *r = arg;
    rt_map_t taken;
    while (wait_interval(r, &taken)) {
        if (!r->swept && ensure_conn(r)) {
            int64_t n = hist_store_trim(r->conn, NULL, NULL, r->cfg->retain);
            r->swept = n >= 0;
            count_trimmed(r, n);
        }
        trim_noted(r, &taken);
    }
    trim_noted(r, &taken);
    PQfinish(r->conn);
    return NULL;
}

hist_retention_t *hist_retention_create(const hist_config_t *cfg, hist_stats_t *stats)
{
    hist_retention_t *r = rt_xcalloc(1, sizeof(*r));
    r->cfg = cfg;
    r->stats = stats;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        RT_LOG_ERROR("thread_create_failed", "worker=retention");
        abort();
    }
    return r;
}

void hist_retention_destroy(hist_retention_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
