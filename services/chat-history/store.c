/*
 * store.c: the SQL of chat-history.  Every value travels as a parameter (whole
 * batches as binary arrays unnested by the server); results come back in
 * binary.  Each function runs synchronously on the calling worker thread's own
 * connection.
 */
#include "hist.h"
#include "rt/pg.h"
#include "rtsync/v1/channel.pb-c.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Claims $2[i] offsets of channel $1[i] (creating the channel's row if new): the
 * rows are locked in name order, so that replicas never deadlock, until COMMIT or
 * ROLLBACK (which gives the offsets back). */
static const char SQL_CLAIM[] =
    "INSERT INTO hist_channels AS h (channel, last_offset) "
    "SELECT * FROM unnest($1::text[], $2::bigint[]) AS v(channel, n) ORDER BY channel COLLATE \"C\" "
    "ON CONFLICT (channel) DO UPDATE SET last_offset = h.last_offset + EXCLUDED.last_offset "
    "RETURNING channel, last_offset";
/* Runs after the claim, so every earlier commit to these channels is visible.  The
 * LIMIT keeps the subquery from being flattened into a join: a prepared statement's
 * generic plan, made while the table was small, would otherwise hash the whole
 * table on every batch once it has grown; this way every key is one probe of the
 * idempotency index (which holds at most one row per key anyway). */
static const char SQL_EXISTING[] =
    "SELECT k.channel, k.from_user, k.msg_id, m.msg_offset "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS k(channel, from_user, msg_id) "
    "CROSS JOIN LATERAL (SELECT msg_offset FROM hist_messages m WHERE m.channel = k.channel "
    "AND m.from_user = k.from_user AND m.msg_id = k.msg_id AND m.msg_id <> '' LIMIT 1) m";
static const char SQL_INSERT[] =
    "INSERT INTO hist_messages (channel, msg_offset, event, data, from_user, msg_id, ts_ms, from_conn, origin_edge) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[], "
    "$8::text[], $9::text[])";
/* Gives back the offsets claimed for publishes that turned out to be stored already.
 * The rows are found through the primary key (= ANY), not by a join that a generic
 * plan could turn into a scan of every channel. */
static const char SQL_ADVANCE[] =
    "UPDATE hist_channels h SET last_offset = ($2::bigint[])[array_position($1::text[], h.channel)] "
    "WHERE h.channel = ANY($1::text[])";
static const char SQL_AFTER[] =
    "SELECT c.last_offset, m.msg_offset, m.event, m.data, m.from_user, m.msg_id, m.ts_ms, m.from_conn, "
    "m.origin_edge FROM hist_channels c LEFT JOIN LATERAL (SELECT * FROM hist_messages m WHERE m.channel = "
    "c.channel AND m.msg_offset > $2::bigint ORDER BY m.msg_offset LIMIT $3::int) m ON true WHERE c.channel = $1";
static const char SQL_BEFORE[] =
    "SELECT c.last_offset, m.msg_offset, m.event, m.data, m.from_user, m.msg_id, m.ts_ms, m.from_conn, "
    "m.origin_edge FROM hist_channels c LEFT JOIN LATERAL (SELECT * FROM hist_messages m WHERE m.channel = "
    "c.channel AND m.msg_offset < $2::bigint ORDER BY m.msg_offset DESC LIMIT $3::int) m ON true "
    "WHERE c.channel = $1";
static const char SQL_TRIM[] = "DELETE FROM hist_messages m USING unnest($1::text[], $2::bigint[]) AS t(channel, upto) "
                               "WHERE m.channel = t.channel AND m.msg_offset <= t.upto";
static const char SQL_TRIM_ALL[] = "DELETE FROM hist_messages m USING hist_channels c "
                                   "WHERE m.channel = c.channel AND m.msg_offset <= c.last_offset - $1::bigint";

/* Prepared once per connection (hist_store_prepare); the name is also what a
 * failure is logged as. */
static const struct {
    const char *name, *sql;
} statements[] = {
    {"hist_begin", "BEGIN"},     {"hist_claim", SQL_CLAIM},     {"hist_existing", SQL_EXISTING},
    {"hist_insert", SQL_INSERT}, {"hist_advance", SQL_ADVANCE}, {"hist_commit", "COMMIT"},
    {"hist_after", SQL_AFTER},   {"hist_before", SQL_BEFORE},
};

int hist_store_prepare(PGconn *conn)
{
    for (size_t i = 0; i < RT_ARRAY_SIZE(statements); i++) {
        PGresult *res = PQprepare(conn, statements[i].name, statements[i].sql, 0, NULL);
        int err = PQresultStatus(res) == PGRES_COMMAND_OK ? RT_OK : rt_pg_error(conn, res, statements[i].name);
        PQclear(res);
        if (err != RT_OK)
            return err;
    }
    return RT_OK;
}

enum { MAX_PARAMS = 9 };

/* Binary array parameters under construction, one per parameter. */
typedef struct params {
    rt_buf_t a[MAX_PARAMS];
    int n;
} params_t;

static void params_open(params_t *p, int n)
{
    memset(p, 0, sizeof(*p));
    p->n = n;
}

static void params_dispose(params_t *p)
{
    for (int i = 0; i < MAX_PARAMS; i++)
        rt_buf_dispose(&p->a[i]);
}

/* One prepared statement of a pipeline: its parameters (NULL: none), the result
 * status it must give, and what to do with its rows. */
typedef struct step {
    const char *name;
    params_t *params;
    ExecStatusType want;
    void (*on_rows)(hist_batch_t *b, const PGresult *res);
} step_t;

/* Points at the arrays of p, every one in binary format. */
static void params_values(const params_t *p, const char **values, int *lengths, int *formats)
{
    for (int i = 0; i < p->n; i++) {
        assert(p->a[i].len > 0); /* a step with no rows is not sent */
        values[i] = (const char *)p->a[i].data;
        lengths[i] = (int)p->a[i].len;
        formats[i] = 1;
    }
}

/* Sends the steps and a sync in one go (one round trip) and reads every result;
 * after a failure the server skips the rest up to the sync. */
static int pipeline_run(PGconn *conn, hist_batch_t *b, const step_t *steps, int n)
{
    for (int i = 0; i < n; i++) {
        const char *values[MAX_PARAMS];
        int lengths[MAX_PARAMS], formats[MAX_PARAMS];
        int nparams = steps[i].params ? steps[i].params->n : 0;
        if (steps[i].params)
            params_values(steps[i].params, values, lengths, formats);
        if (!PQsendQueryPrepared(conn, steps[i].name, nparams, values, lengths, formats, 1))
            return rt_pg_error(conn, NULL, steps[i].name);
    }
    if (!PQpipelineSync(conn))
        return rt_pg_error(conn, NULL, "hist_sync");
    int err = RT_OK;
    for (int i = 0; i < n; i++) {
        PGresult *res;
        while ((res = PQgetResult(conn)) != NULL) {
            if (err == RT_OK && PQresultStatus(res) != steps[i].want)
                err = rt_pg_error(conn, res, steps[i].name);
            else if (err == RT_OK && steps[i].on_rows)
                steps[i].on_rows(b, res);
            PQclear(res);
        }
    }
    PGresult *sync = PQgetResult(conn);
    if (err == RT_OK && PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
        err = rt_pg_error(conn, sync, "hist_sync");
    PQclear(sync);
    return err;
}

static void text_at(params_t *p, int i, const hist_batch_t *b, hist_span_t s)
{
    rt_pg_array_add_text(&p->a[i], hist_batch_str(b, s), s.len);
}

static void claim_params(params_t *p, const hist_batch_t *b)
{
    params_open(p, 2);
    for (size_t c = 0; c < b->nchans; c++) {
        text_at(p, 0, b, b->chans[c].name);
        rt_pg_array_add_int(&p->a[1], b->chans[c].claimed);
    }
}

static void on_claimed(hist_batch_t *b, const PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        int c = hist_batch_find_chan(b, PQgetvalue(res, r, 0), (size_t)PQgetlength(res, r, 0));
        if (c >= 0)
            b->chans[c].last = (uint64_t)rt_pg_get_int(res, r, 1);
    }
}

/* The keys to look up: the first item of each non-empty (channel, user, id); 0 if none. */
static int existing_params(params_t *p, const hist_batch_t *b)
{
    params_open(p, 3);
    int any = 0;
    for (size_t i = 0; i < b->n; i++) {
        const hist_item_t *it = &b->items[i];
        if (it->id.len == 0 || it->first >= 0)
            continue;
        text_at(p, 0, b, it->channel);
        text_at(p, 1, b, it->user);
        text_at(p, 2, b, it->id);
        any = 1;
    }
    return any;
}

static void on_existing(hist_batch_t *b, const PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++)
        hist_batch_mark_existing(b, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                                 (uint64_t)rt_pg_get_int(res, r, 3));
}

static void insert_params(params_t *p, const hist_batch_t *b)
{
    params_open(p, 9);
    for (size_t i = 0; i < b->n; i++) {
        const hist_item_t *it = &b->items[i];
        if (it->duplicate)
            continue;
        text_at(p, 0, b, it->channel);
        rt_pg_array_add_int(&p->a[1], (int64_t)it->offset);
        text_at(p, 2, b, it->event);
        rt_pg_array_add_bytea(&p->a[3], (const uint8_t *)hist_batch_str(b, it->data), it->data.len);
        text_at(p, 4, b, it->user);
        text_at(p, 5, b, it->id);
        rt_pg_array_add_int(&p->a[6], it->ts_ms);
        text_at(p, 7, b, it->conn);
        text_at(p, 8, b, it->origin);
    }
}

/* The channels that got fewer new messages than they claimed; 0 if none. */
static int advance_params(params_t *p, const hist_batch_t *b)
{
    params_open(p, 2);
    for (size_t c = 0; c < b->nchans; c++) {
        if (b->chans[c].count == b->chans[c].claimed)
            continue;
        text_at(p, 0, b, b->chans[c].name);
        rt_pg_array_add_int(&p->a[1], (int64_t)b->chans[c].last);
    }
    return p->a[0].len > 0;
}

/* Round trip 1: BEGIN, claim offsets (locking the channels), look up stored keys.
 * Round trip 2: insert the new rows, give back what duplicates did not use, COMMIT. */
static int commit_pipelined(PGconn *conn, hist_batch_t *b, params_t *p)
{
    claim_params(&p[0], b);
    int any = existing_params(&p[1], b);
    const step_t first[] = {
        {"hist_begin", NULL, PGRES_COMMAND_OK, NULL},
        {"hist_claim", &p[0], PGRES_TUPLES_OK, on_claimed},
        {"hist_existing", &p[1], PGRES_TUPLES_OK, on_existing},
    };
    int err = pipeline_run(conn, b, first, any ? 3 : 2);
    if (err != RT_OK)
        return err;
    hist_batch_assign(b);
    step_t second[3];
    int n = 0;
    if (hist_batch_new_count(b) > 0) {
        insert_params(&p[2], b);
        second[n++] = (step_t){"hist_insert", &p[2], PGRES_COMMAND_OK, NULL};
    }
    if (advance_params(&p[3], b))
        second[n++] = (step_t){"hist_advance", &p[3], PGRES_COMMAND_OK, NULL};
    second[n++] = (step_t){"hist_commit", NULL, PGRES_COMMAND_OK, NULL};
    b->commit_sent = 1;
    return pipeline_run(conn, b, second, n);
}

int hist_store_commit(PGconn *conn, hist_batch_t *b)
{
    hist_batch_prepare(b);
    b->commit_sent = 0;
    if (!PQenterPipelineMode(conn))
        return rt_pg_error(conn, NULL, "hist_pipeline");
    params_t p[4];
    memset(p, 0, sizeof(p));
    int err = commit_pipelined(conn, b, p);
    for (size_t i = 0; i < RT_ARRAY_SIZE(p); i++)
        params_dispose(&p[i]);
    PQexitPipelineMode(conn);
    if (err != RT_OK && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        rt_pg_exec(conn, "ROLLBACK", "hist_rollback");
    return err;
}

/* ---- queries --------------------------------------------------------------------- */

static const char *col_str(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col); /* libpq NUL-terminates every value */
}

/* How many of the result's rows fit in one NATS message; at least one (a
 * message's data is far below the payload limit, see HIST_MAX_DATA). */
static int rows_that_fit(const PGresult *res, int rows)
{
    size_t total = 64;
    for (int r = 0; r < rows; r++) {
        for (int c = 1; c < PQnfields(res); c++)
            total += (size_t)PQgetlength(res, r, c) + 8;
        if (total > HIST_MAX_REPLY && r > 0)
            return r;
    }
    return rows;
}

/* Packs the rows that fit, the newest last (a `before` query's result is newest
 * first), as a HistoryReply; the client pages on from the last offset it got. */
static void pack_reply(const PGresult *res, const char *channel, int reversed, rt_buf_t *out)
{
    int rows = PQntuples(res);
    int n = rows > 0 && !PQgetisnull(res, 0, 1) ? rows_that_fit(res, rows) : 0;
    Rtsync__V1__ChannelMessage *msgs = rt_xcalloc((size_t)n + 1, sizeof(*msgs));
    Rtsync__V1__ChannelMessage **ptrs = rt_xcalloc((size_t)n + 1, sizeof(*ptrs));
    for (int i = 0; i < n; i++) {
        int r = reversed ? n - 1 - i : i;
        Rtsync__V1__ChannelMessage *m = &msgs[i];
        rtsync__v1__channel_message__init(m);
        m->channel = (char *)channel;
        m->offset = (uint64_t)rt_pg_get_int(res, r, 1);
        m->event = (char *)col_str(res, r, 2);
        m->data.data = (uint8_t *)PQgetvalue(res, r, 3);
        m->data.len = (size_t)PQgetlength(res, r, 3);
        m->from_user = (char *)col_str(res, r, 4);
        m->id = (char *)col_str(res, r, 5);
        m->ts_ms = rt_pg_get_int(res, r, 6);
        m->from_conn = (char *)col_str(res, r, 7);
        m->origin_edge = (char *)col_str(res, r, 8);
        ptrs[i] = m;
    }
    Rtsync__V1__Status status = RTSYNC__V1__STATUS__INIT;
    Rtsync__V1__HistoryReply reply = RTSYNC__V1__HISTORY_REPLY__INIT;
    reply.status = &status;
    reply.n_messages = (size_t)n;
    reply.messages = ptrs;
    reply.latest = rows > 0 ? (uint64_t)rt_pg_get_int(res, 0, 0) : 0;
    size_t size = rtsync__v1__history_reply__get_packed_size(&reply);
    out->len = 0;
    rtsync__v1__history_reply__pack(&reply, rt_buf_reserve(out, size));
    out->len = size;
    free(ptrs);
    free(msgs);
}

int hist_store_query(PGconn *conn, const hist_query_t *q, rt_buf_t *out)
{
    uint64_t pos = q->cursor == HIST_BEFORE && q->position == 0 ? (uint64_t)INT64_MAX : q->position;
    char pos_text[24], limit_text[16];
    snprintf(pos_text, sizeof(pos_text), "%" PRIu64, pos);
    snprintf(limit_text, sizeof(limit_text), "%u", q->limit);
    const char *values[] = {q->channel, pos_text, limit_text};
    PGresult *res =
        PQexecPrepared(conn, q->cursor == HIST_BEFORE ? "hist_before" : "hist_after", 3, values, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int err = rt_pg_error(conn, res, "hist_query");
        PQclear(res);
        return err;
    }
    pack_reply(res, q->channel, q->cursor == HIST_BEFORE, out);
    PQclear(res);
    return RT_OK;
}

int64_t hist_store_trim(PGconn *conn, const rt_buf_t *channels, const rt_buf_t *upto, int64_t retain)
{
    char retain_text[24];
    snprintf(retain_text, sizeof(retain_text), "%" PRId64, retain);
    const char *all[] = {retain_text};
    PGresult *res;
    if (channels != NULL) {
        const char *values[] = {(const char *)channels->data, (const char *)upto->data};
        const int lengths[] = {(int)channels->len, (int)upto->len}, formats[] = {1, 1};
        res = PQexecParams(conn, SQL_TRIM, 2, NULL, values, lengths, formats, 0);
    } else {
        res = PQexecParams(conn, SQL_TRIM_ALL, 1, NULL, all, NULL, NULL, 0);
    }
    int64_t n = PQresultStatus(res) == PGRES_COMMAND_OK ? strtoll(PQcmdTuples(res), NULL, 10)
                                                        : rt_pg_error(conn, res, "hist_trim");
    PQclear(res);
    return n;
}
