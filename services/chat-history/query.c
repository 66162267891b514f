/*
 * query.c: the query worker.  History and resume queries run one at a time on
 * this thread's own connection, so they never wait behind a group commit; each
 * packed reply goes back to the loop thread with rt_loop_post (api.c sends it).
 * A lost connection fails the query with RT_EUNAVAIL and the next query
 * reconnects.
 */
#include "hist.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hist_queries {
    const hist_config_t *cfg;
    rt_loop_t *loop;
    hist_stats_t *stats;
    hist_query_done_cb done;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    hist_query_job_t *head, *tail;
    size_t queued, inflight;
    int stopping;
    /* worker only */
    PGconn *conn;
};

int hist_queries_submit(hist_queries_t *qs, const hist_query_t *q, const char *reply)
{
    pthread_mutex_lock(&qs->mu);
    int full = qs->queued >= (size_t)qs->cfg->query_queue_max || qs->stopping;
    if (!full) {
        hist_query_job_t *job = rt_xcalloc(1, sizeof(*job));
        job->q = *q;
        snprintf(job->channel, sizeof(job->channel), "%s", q->channel);
        job->q.channel = job->channel;
        job->reply = rt_xstrdup(reply);
        job->owner = qs;
        if (qs->tail)
            qs->tail->next = job;
        else
            qs->head = job;
        qs->tail = job;
        qs->queued++;
        pthread_cond_signal(&qs->cv);
    }
    pthread_mutex_unlock(&qs->mu);
    return full ? RT_ETOOBIG : RT_OK;
}

static hist_query_job_t *job_take(hist_queries_t *qs)
{
    pthread_mutex_lock(&qs->mu);
    while (qs->head == NULL && !qs->stopping)
        pthread_cond_wait(&qs->cv, &qs->mu);
    hist_query_job_t *job = qs->head;
    if (job != NULL) {
        qs->head = job->next;
        if (qs->head == NULL)
            qs->tail = NULL;
        qs->queued--;
        qs->inflight++;
    }
    pthread_mutex_unlock(&qs->mu);
    return job;
}

/* A lost connection is retried once with a fresh one: after a server restart the
 * old connection only shows that it is dead when used. */
static void job_run(hist_queries_t *qs, hist_query_job_t *job)
{
    job->status = RT_EUNAVAIL;
    for (int attempt = 0; attempt < 2 && job->status == RT_EUNAVAIL; attempt++) {
        if (qs->conn != NULL && (attempt > 0 || PQstatus(qs->conn) != CONNECTION_OK)) {
            PQfinish(qs->conn);
            qs->conn = NULL;
        }
        if (qs->conn == NULL && rt_pg_connect(qs->cfg->database_url, &qs->conn) == RT_OK) {
            if (hist_store_prepare(qs->conn) != RT_OK) {
                PQfinish(qs->conn);
                qs->conn = NULL;
                break;
            }
            RT_LOG_INFO("pg_connected", "worker=query");
        }
        if (qs->conn == NULL)
            break;
        job->status = hist_store_query(qs->conn, &job->q, &job->out);
    }
    atomic_fetch_add(&qs->stats->queries, 1);
}

static void on_job_task(rt_task_t *task)
{
    hist_query_job_t *job = RT_CONTAINER_OF(task, hist_query_job_t, task);
    hist_queries_t *qs = job->owner;
    qs->done(qs->ctx, job);
}

static void *queries_main(void *arg)
{
    hist_queries_t *qs = arg;
    hist_query_job_t *job;
    while ((job = job_take(qs)) != NULL) {
        job_run(qs, job);
        job->task.cb = on_job_task;
        rt_loop_post(qs->loop, &job->task);
    }
    PQfinish(qs->conn);
    return NULL;
}

hist_queries_t *hist_queries_create(const hist_config_t *cfg, rt_loop_t *loop, hist_stats_t *stats,
                                    hist_query_done_cb done, void *ctx)
{
    hist_queries_t *qs = rt_xcalloc(1, sizeof(*qs));
    qs->cfg = cfg;
    qs->loop = loop;
    qs->stats = stats;
    qs->done = done;
    qs->ctx = ctx;
    pthread_mutex_init(&qs->mu, NULL);
    pthread_cond_init(&qs->cv, NULL);
    if (pthread_create(&qs->thread, NULL, queries_main, qs) != 0) {
        RT_LOG_ERROR("thread_create_failed", "worker=query");
        abort();
    }
    return qs;
}

void hist_queries_release(hist_queries_t *qs, hist_query_job_t *job)
{
    rt_buf_dispose(&job->out);
    free(job->reply);
    free(job);
    pthread_mutex_lock(&qs->mu);
    qs->inflight--;
    pthread_mutex_unlock(&qs->mu);
}

int hist_queries_busy(hist_queries_t *qs)
{
    pthread_mutex_lock(&qs->mu);
    int busy = qs->queued > 0 || qs->inflight > 0;
    pthread_mutex_unlock(&qs->mu);
    return busy;
}

void hist_queries_destroy(hist_queries_t *qs)
{
    if (qs == NULL)
        return;
    pthread_mutex_lock(&qs->mu);
    qs->stopping = 1;
    pthread_cond_signal(&qs->cv);
    pthread_mutex_unlock(&qs->mu);
    pthread_join(qs->thread, NULL);
    while (hist_queries_busy(qs))
        rt_loop_run_once(qs->loop, 10);
    pthread_mutex_destroy(&qs->mu);
    pthread_cond_destroy(&qs->cv);
    free(qs);
}
