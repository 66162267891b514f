/*
 * store.c: documents in PostgreSQL (migrations/0002_docs.sql).
 *
 * Loading runs on the loop thread, on the loader connection: the snapshot,
 * then the log rows in id order, each applied to the engine.
 *
 * The writer thread owns a second connection and commits jobs in groups: the
 * loop thread queues a job per applied update (append to the log) or per
 * compaction (replace snapshot and log by the document's state); the writer
 * takes everything queued, commits it in one transaction, in queue order (so a
 * compaction deletes exactly the rows its state covers: those queued before
 * it), and posts the last committed sequence number back to the loop.  Commits
 * start at most every GROUP_MS: a lone update after a quiet spell commits at
 * once, a steady stream in groups of what arrived within GROUP_MS, so the cost
 * of a commit (a PostgreSQL round trip, a WAL flush, two thread wake-ups) is
 * shared by every update of the group whatever the rate; an update is durable
 * within GROUP_MS plus a commit's time, well inside the second the contract
 * allows.  Only the first job of a group wakes the writer.  A failed commit is
 * retried with the same jobs (nothing is dropped) until it succeeds.
 */
#include "crdt.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETRY_US 200000
/* PostgreSQL's CPU follows the number of commits more than their rows: under a
 * trace replay (about 100 log rows a second) 100 ms instead of 50 took it from
 * 0.08-0.14 s to 0.05-0.08 s. */
#define GROUP_MS 100
#define STOP_ATTEMPTS 25

enum { JOB_APPEND, JOB_COMPACT };

typedef struct job {
    struct job *next;
    int kind;
    uint64_t seq;
    size_t len;
    char doc[CRDT_MAX_NAME + 1];
    uint8_t data[];
} job_t;

typedef struct committed_task {
    rt_task_t task;
    crdt_writer_t *w;
    uint64_t seq;
} committed_task_t;

struct crdt_writer {
    const crdt_config_t *cfg;
    rt_loop_t *loop;
    crdt_committed_cb cb;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    job_t *head, *tail;
    size_t backlog;
    uint64_t next_seq;
    int stopping;
    int idle; /* the writer waits for a first job: enqueue wakes it */
    /* writer thread only */
    PGconn *conn;
};

/* ---- loading ------------------------------------------------------------------------ */

static int apply_rows(PGresult *res, rt_ydoc_t *doc, const char *name, int64_t *bytes)
{
    for (int i = 0; i < PQntuples(res); i++) {
        rt_slice_t u = {(const uint8_t *)PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0)};
        *bytes += (int64_t)u.len;
        if (rt_ydoc_apply_update(doc, u, NULL) != RT_OK)
            RT_LOG_ERROR("stored_update_invalid", "doc=%s row=%d bytes=%zu", name, i, u.len);
    }
    return PQntuples(res);
}

int crdt_store_load(PGconn *conn, const char *name, rt_ydoc_t *doc, int64_t *rows, int64_t *bytes, int *found)
{
    const char *params[1] = {name};
    PGresult *snap =
        PQexecParams(conn, "SELECT state FROM doc_snapshots WHERE doc = $1", 1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(snap) != PGRES_TUPLES_OK) {
        int err = rt_pg_error(conn, snap, "load_snapshot");
        PQclear(snap);
        return err == RT_EUNAVAIL ? RT_EUNAVAIL : RT_EINVAL;
    }
    PGresult *log =
        PQexecParams(conn, "SELECT data FROM doc_updates WHERE doc = $1 ORDER BY id", 1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(log) != PGRES_TUPLES_OK) {
        int err = rt_pg_error(conn, log, "load_log");
        PQclear(snap);
        PQclear(log);
        return err == RT_EUNAVAIL ? RT_EUNAVAIL : RT_EINVAL;
    }
    int64_t snap_bytes = 0, log_bytes = 0;
    int nsnap = apply_rows(snap, doc, name, &snap_bytes);
    int nlog = apply_rows(log, doc, name, &log_bytes);
    PQclear(snap);
    PQclear(log);
    *rows = nlog;
    *bytes = log_bytes;
    *found = nsnap + nlog > 0;
    RT_LOG_DEBUG("doc_loaded", "doc=%s snapshot_bytes=%lld log_rows=%d log_bytes=%lld", name, (long long)snap_bytes,
                 nlog, (long long)log_bytes);
    return RT_OK;
}

/* ---- the writer --------------------------------------------------------------------- */

static uint64_t enqueue(crdt_writer_t *w, int kind, const char *doc, rt_slice_t data)
{
    job_t *j = rt_xmalloc(sizeof(*j) + data.len);
    j->next = NULL;
    j->kind = kind;
    j->len = data.len;
    snprintf(j->doc, sizeof(j->doc), "%s", doc);
    memcpy(j->data, data.data, data.len);
    pthread_mutex_lock(&w->mu);
    uint64_t seq = j->seq = ++w->next_seq; /* j is the writer's once the lock is released */
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->backlog++;
    /* one wake-up per group, signalled after the unlock so that the writer does
     * not wake only to wait for the mutex */
    int wake = w->idle;
    w->idle = 0;
    pthread_mutex_unlock(&w->mu);
    if (wake)
        pthread_cond_signal(&w->cv);
    return seq;
}

uint64_t crdt_writer_append(crdt_writer_t *w, const char *doc, rt_slice_t update)
{
    return enqueue(w, JOB_APPEND, doc, update);
}

uint64_t crdt_writer_compact(crdt_writer_t *w, const char *doc, rt_slice_t state)
{
    return enqueue(w, JOB_COMPACT, doc, state);
}

size_t crdt_writer_backlog(crdt_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->backlog;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static int check(PGconn *conn, PGresult *res, const char *what)
{
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    int err = ok ? RT_OK : rt_pg_error(conn, res, what);
    PQclear(res);
    return err;
}

/* Inserts the appends from *j on, up to the next compaction; advances *j. */
static int insert_appends(PGconn *conn, job_t **j, rt_buf_t *docs, rt_buf_t *datas)
{
    docs->len = datas->len = 0;
    for (; *j != NULL && (*j)->kind == JOB_APPEND; *j = (*j)->next) {
        rt_pg_array_add_text(docs, (*j)->doc, strlen((*j)->doc));
        rt_pg_array_add_bytea(datas, (*j)->data, (*j)->len);
    }
    const char *params[2] = {(const char *)docs->data, (const char *)datas->data};
    const int lengths[2] = {(int)docs->len, (int)datas->len}, formats[2] = {1, 1};
    return check(conn,
                 PQexecParams(conn, "INSERT INTO doc_updates (doc, data) SELECT * FROM unnest($1::text[], $2::bytea[])",
                              2, NULL, params, lengths, formats, 0),
                 "insert_updates");
}

static int compact(PGconn *conn, const job_t *j)
{
    char ms[32];
    snprintf(ms, sizeof(ms), "%lld", (long long)rt_now_wall_ms());
    const char *params[3] = {j->doc, (const char *)j->data, ms};
    int lengths[3] = {0, (int)j->len, 0};
    int formats[3] = {0, 1, 0};
    int err =
        check(conn,
              PQexecParams(conn,
                           "INSERT INTO doc_snapshots (doc, state, updated_ms) VALUES ($1, $2, $3::bigint) "
                           "ON CONFLICT (doc) DO UPDATE SET state = EXCLUDED.state, updated_ms = EXCLUDED.updated_ms",
                           3, NULL, params, lengths, formats, 0),
              "write_snapshot");
    if (err == RT_OK)
        err = check(conn, PQexecParams(conn, "DELETE FROM doc_updates WHERE doc = $1", 1, NULL, params, NULL, NULL, 0),
                    "delete_log");
    return err;
}

static int commit_jobs(crdt_writer_t *w, job_t *jobs, rt_buf_t *docs, rt_buf_t *datas)
{
    if (w->conn == NULL || PQstatus(w->conn) != CONNECTION_OK) {
        PQfinish(w->conn);
        w->conn = NULL;
        if (rt_pg_connect(w->cfg->database_url, &w->conn) != RT_OK)
            return RT_EUNAVAIL;
    }
    /* appends alone are one INSERT: a transaction by itself, one round trip */
    int single = 1;
    for (const job_t *j = jobs; j != NULL; j = j->next)
        single &= j->kind == JOB_APPEND;
    int err = single ? RT_OK : rt_pg_exec(w->conn, "BEGIN", "begin");
    for (job_t *j = jobs; err == RT_OK && j != NULL;) {
        if (j->kind == JOB_APPEND) {
            err = insert_appends(w->conn, &j, docs, datas);
        } else {
            err = compact(w->conn, j);
            j = j->next;
        }
    }
    if (err == RT_OK && !single)
        err = rt_pg_exec(w->conn, "COMMIT", "commit");
    if (err != RT_OK) {
        PQfinish(w->conn); /* a clean slate: the next attempt reconnects */
        w->conn = NULL;
    }
    return err;
}

static void on_committed(rt_task_t *task)
{
    committed_task_t *t = RT_CONTAINER_OF(task, committed_task_t, task);
    t->w->cb(t->w->ctx, t->seq);
    free(t);
}

/* Under mu: waits for a job, then until GROUP_MS after the previous commit's start. */
static void wait_for_group(crdt_writer_t *w, uint64_t last_start_ns)
{
    while (w->head == NULL && !w->stopping) {
        w->idle = 1;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    w->idle = 0;
    struct timespec until = rt_timespec_of_ns(last_start_ns + GROUP_MS * 1000000ull);
    while (!w->stopping && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {
    }
}

static void *writer_main(void *arg)
{
    crdt_writer_t *w = arg;
    rt_buf_t docs = {0}, datas = {0};
    uint64_t last_start_ns = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        wait_for_group(w, last_start_ns);
        last_start_ns = rt_now_mono_ns();
        job_t *jobs = w->head;
        int stopping = w->stopping;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        if (jobs == NULL)
            break;
        size_t n = 0;
        uint64_t last = 0;
        for (job_t *j = jobs; j != NULL; j = j->next, n++)
            last = j->seq;
        int attempts = 0;
        while (commit_jobs(w, jobs, &docs, &datas) != RT_OK) {
            if (stopping && ++attempts >= STOP_ATTEMPTS) {
                RT_LOG_ERROR("updates_not_persisted", "jobs=%zu", n);
                break;
            }
            usleep(RETRY_US);
        }
        while (jobs != NULL) {
            job_t *next = jobs->next;
            free(jobs);
            jobs = next;
        }
        pthread_mutex_lock(&w->mu);
        w->backlog -= n;
        stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        committed_task_t *t = rt_xcalloc(1, sizeof(*t));
        t->task.cb = on_committed;
        t->w = w;
        t->seq = last;
        rt_loop_post(w->loop, &t->task);
    }
    rt_buf_dispose(&docs);
    rt_buf_dispose(&datas);
    PQfinish(w->conn);
    w->conn = NULL;
    return NULL;
}

crdt_writer_t *crdt_writer_create(const crdt_config_t *cfg, rt_loop_t *loop, crdt_committed_cb cb, void *ctx)
{
    crdt_writer_t *w = rt_xcalloc(1, sizeof(*w));
    w->cfg = cfg;
    w->loop = loop;
    w->cb = cb;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the group deadline ignores wall-clock steps */
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        RT_LOG_ERROR("thread_create_failed", "worker=writer");
        abort();
    }
    return w;
}

void crdt_writer_destroy(crdt_writer_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
