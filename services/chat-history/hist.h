/*
 * hist.h: the chat-history service's internal interfaces.
 *
 * Threads:
 *   - the loop thread (main) runs the rt_loop: rt_bus callbacks decode and
 *     validate requests (request.c), hand publishes to the sequencer and
 *     queries to the query worker, and send every reply and fan-out message
 *     (api.c) when a worker posts its results back with rt_loop_post;
 *   - the sequencer thread (sequencer.c) commits publishes in groups on its
 *     own PostgreSQL connection (store.c);
 *   - the query thread (query.c) answers history queries on its own connection;
 *   - the retention thread (retention.c) trims old messages on its own connection.
 */
#ifndef HIST_H
#define HIST_H

#include "rt/bus.h"
#include "rt/common.h"
#include "rt/loop.h"
#include "rt/map.h"
#include "rt/pb.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

#define HIST_MAX_CHANNEL 128
#define HIST_MAX_FIELD 256 /* event, user, id, conn, origin edge */
#define HIST_MAX_DATA (1 << 20)
#define HIST_DEFAULT_EVENT "message"
#define HIST_MAX_LIMIT 1000
#define HIST_MAX_REPLY (768 * 1024)                  /* a HistoryReply stays below NATS's 1 MiB payload limit */
#define HIST_MAX_BATCH 256                           /* messages in one rt.hist.publish_batch request */
#define HIST_MAX_BATCH_BYTES (HIST_MAX_DATA + 65536) /* its size: 1 MiB of data plus the fields */
#define HIST_BATCH_MAX_BYTES (8u << 20)              /* a batch closes at this much message data */

typedef struct hist_config {
    const char *nats_url;
    const char *database_url;
    const char *instance_id;
    int log_level; /* rt_log_level_t */
    const char *migrations_dir;
    int64_t retain;
    int64_t trim_interval_ms;
    int64_t batch_max;
    int64_t queue_max;
    int64_t queue_bytes;
    int64_t query_queue_max;
} hist_config_t;

/* ---- request.c: pure decoding and validation of untrusted bytes -------------- */

/* A bump allocator for protobuf-c (rt/pb.h): one per loop thread, reset after each message. */
typedef rt_pb_arena_t hist_arena_t;

/* A publish, borrowed from the arena (strings are NUL-terminated). */
typedef struct hist_publish {
    const char *channel, *event, *user, *id, *conn, *origin;
    rt_slice_t data;
    int64_t ts_ms; /* 0: not given */
} hist_publish_t;

/* The messages of a batch request: err[i] is RT_OK and items[i] the publish, or
 * err[i] and why[i] tell what is wrong with message i. */
typedef struct hist_publish_batch {
    size_t n;
    hist_publish_t items[HIST_MAX_BATCH];
    int err[HIST_MAX_BATCH];
    const char *why[HIST_MAX_BATCH];
} hist_publish_batch_t;

typedef enum hist_cursor { HIST_AFTER, HIST_BEFORE } hist_cursor_t;

typedef struct hist_query {
    const char *channel;
    hist_cursor_t cursor;
    uint64_t position; /* after: offset > position; before: offset < position (0 = no bound) */
    uint32_t limit;    /* 0..HIST_MAX_LIMIT; 0 = only the latest offset */
} hist_query_t;

/* Any thread.  Decode and validate; on success the out-values borrow the arena until
 * its next reset.  RT_EINVAL (garbage or invalid fields, *why set to a static reason)
 * or RT_ETOOBIG.  Never aborts on any input. */
int hist_publish_decode(hist_arena_t *arena, rt_slice_t bytes, hist_publish_t *out, const char **why);
/* A batch request: RT_OK with each message checked on its own (out->err), or the
 * request refused as a whole. */
int hist_publish_batch_decode(hist_arena_t *arena, rt_slice_t bytes, hist_publish_batch_t *out, const char **why);
int hist_query_decode(hist_arena_t *arena, rt_slice_t bytes, hist_query_t *out, const char **why);

int hist_utf8_valid(const uint8_t *s, size_t len);

/* ---- batch.c: one group of publishes committed in one transaction (pure) ------ */

typedef struct hist_span {
    uint32_t off, len;
} hist_span_t;

/* Where an item's result goes: a reply subject of its own, or slot `slot` of a
 * batch request's reply (`group`, owned by api.c). */
typedef struct hist_reply_to {
    const char *reply; /* may be NULL: nobody to answer */
    void *group;
    uint32_t slot;
} hist_reply_to_t;

typedef struct hist_item {
    hist_span_t reply, channel, event, data, user, id, conn, origin; /* in the batch arena, NUL-terminated */
    void *group;                                                     /* hist_reply_to_t.group and .slot */
    uint32_t slot;
    int64_t ts_ms;
    uint32_t chan;   /* index into batch->chans (after prepare) */
    int32_t first;   /* index of the first item with the same key in this batch, or -1 */
    uint64_t offset; /* result */
    uint8_t duplicate;
} hist_item_t;

typedef struct hist_chan {
    hist_span_t name;
    uint32_t claimed; /* offsets claimed: items that are not repeats inside the batch */
    uint32_t count;   /* new messages in this batch (after assign) */
    uint64_t last;    /* the channel's newest offset */
} hist_chan_t;

typedef struct hist_batch {
    rt_task_t task; /* posted back to the loop with the results */
    struct hist_batch *next;
    void *owner;
    hist_item_t *items;
    size_t n, cap;
    hist_chan_t *chans;
    size_t nchans, chans_cap;
    rt_buf_t arena;
    size_t data_bytes; /* sum of the messages' data */
    rt_map_t keys;     /* "channel\0user\0id" -> first item index + 1 */
    rt_buf_t keybuf;
    int status;      /* RT_OK: committed; else every item failed with this */
    int commit_sent; /* the second round trip (with COMMIT) went out: a failure is ambiguous */
    uint64_t commit_ns;
} hist_batch_t;

/* Caller-owned storage; any one thread at a time. */
void hist_batch_init(hist_batch_t *b);
void hist_batch_dispose(hist_batch_t *b);
/* Empties the batch for reuse, keeping its storage. */
void hist_batch_clear(hist_batch_t *b);
/* Copies the publish and where its result goes into the batch. */
void hist_batch_add(hist_batch_t *b, const hist_publish_t *p, const hist_reply_to_t *to, int64_t now_ms);
/* Groups items by channel (chans sorted by name, bytewise), finds repeats of a
 * non-empty (channel, user, id) key inside the batch, and clears the results. */
void hist_batch_prepare(hist_batch_t *b);
/* Borrowed pointer to a span's bytes. */
const char *hist_batch_str(const hist_batch_t *b, hist_span_t s);
/* The index of a channel name in chans, or -1. */
int hist_batch_find_chan(const hist_batch_t *b, const char *name, size_t len);
/* A key already stored with `offset`: its first item becomes a duplicate of it.
 * Returns 1 if the key belongs to the batch, 0 if not. */
int hist_batch_mark_existing(hist_batch_t *b, const char *channel, const char *user, const char *id, uint64_t offset);
/* Given chans[].last as the store returned it after claiming chans[].claimed
 * offsets, numbers every new item in order from the first claimed offset, sets
 * chans[].count and chans[].last (lower than claimed when stored duplicates were
 * found), and copies offsets to in-batch repeats. */
void hist_batch_assign(hist_batch_t *b);
/* Number of items that are new (stored and fanned out). */
size_t hist_batch_new_count(const hist_batch_t *b);

/* ---- store.c: SQL, on the calling worker's own connection --------------------- */

/* Prepares the statements of commits and queries on a new connection. */
int hist_store_prepare(PGconn *conn);
/* Prepares and commits a batch in one transaction: claims offsets (locking its
 * channels), finds stored duplicates, assigns offsets, inserts the new rows.
 * RT_OK, RT_EUNAVAIL (see b->commit_sent), RT_ESTATE (retry) or RT_EINVAL. */
int hist_store_commit(PGconn *conn, hist_batch_t *b);
/* Runs a history query; packs a HistoryReply into out.  RT_OK or RT_EUNAVAIL/RT_EINVAL. */
int hist_store_query(PGconn *conn, const hist_query_t *q, rt_buf_t *out);
/* Deletes messages at or below upto[i] of channels[i] (binary text[] and bigint[]
 * arrays, rt_pg_array_*); with both NULL, trims every channel to `retain`.
 * Returns rows deleted or a negative RT_E*. */
int64_t hist_store_trim(PGconn *conn, const rt_buf_t *channels, const rt_buf_t *upto, int64_t retain);

/* ---- counters ------------------------------------------------------------------ */

typedef struct hist_stats {
    atomic_uint_fast64_t published, duplicates, bad_requests, unavailable, overloaded, batches, queries, trimmed;
} hist_stats_t;

/* ---- sequencer.c: the group-commit worker ---------------------------------------- */

typedef struct hist_seq hist_seq_t;
typedef struct hist_retention hist_retention_t;

/* Runs on the loop thread with a finished batch; must hand it back with hist_seq_recycle. */
typedef void (*hist_batch_done_cb)(void *ctx, hist_batch_t *b);

/* Loop thread.  Starts the worker thread; borrows everything. */
hist_seq_t *hist_seq_create(const hist_config_t *cfg, rt_loop_t *loop, hist_stats_t *stats, hist_retention_t *retention,
                            hist_batch_done_cb done, void *ctx);
/* Loop thread: queues validated publishes, all in the same batch; RT_ETOOBIG (and
 * none queued) when the queue is full. */
int hist_seq_submit(hist_seq_t *seq, const hist_publish_t *const *p, const hist_reply_to_t *to, size_t n);
/* Loop thread: returns a batch whose results were sent. */
void hist_seq_recycle(hist_seq_t *seq, hist_batch_t *b);
/* Loop thread: 1 while publishes are queued, being committed or not yet answered. */
int hist_seq_busy(hist_seq_t *seq);
/* Loop thread: stops taking publishes, lets the worker commit what is queued, runs
 * the loop until all of it is answered, joins the worker.  Accepts NULL. */
void hist_seq_destroy(hist_seq_t *seq);

/* ---- query.c: the query worker ----------------------------------------------------- */

typedef struct hist_queries hist_queries_t;
typedef struct hist_query_job {
    rt_task_t task;
    struct hist_query_job *next;
    hist_queries_t *owner;
    hist_query_t q;
    char channel[HIST_MAX_CHANNEL + 1];
    char *reply;
    rt_buf_t out; /* the packed HistoryReply, or empty on failure */
    int status;
} hist_query_job_t;
typedef void (*hist_query_done_cb)(void *ctx, hist_query_job_t *job);

hist_queries_t *hist_queries_create(const hist_config_t *cfg, rt_loop_t *loop, hist_stats_t *stats,
                                    hist_query_done_cb done, void *ctx);
/* Loop thread: copies q and reply; RT_ETOOBIG when the queue is full. */
int hist_queries_submit(hist_queries_t *qs, const hist_query_t *q, const char *reply);
/* Loop thread: frees a finished job. */
void hist_queries_release(hist_queries_t *qs, hist_query_job_t *job);
int hist_queries_busy(hist_queries_t *qs);
void hist_queries_destroy(hist_queries_t *qs);

/* ---- retention.c: background trimming -------------------------------------------- */

hist_retention_t *hist_retention_create(const hist_config_t *cfg, hist_stats_t *stats);
/* Any thread: the channel's newest offset is now `last`. */
void hist_retention_note(hist_retention_t *r, const char *channel, size_t len, uint64_t last);
void hist_retention_destroy(hist_retention_t *r);

/* ---- api.c: the NATS face ------------------------------------------------------------ */

typedef struct hist_service hist_service_t;

/* Main thread. */
int hist_service_create(const hist_config_t *cfg, hist_service_t **out);
/* Runs the loop until *stop becomes nonzero (set by a signal handler). */
void hist_service_run(hist_service_t *svc, volatile int *stop);
/* Stops taking requests, answers everything in flight. */
void hist_service_drain(hist_service_t *svc);
void hist_service_destroy(hist_service_t *svc);

#endif
