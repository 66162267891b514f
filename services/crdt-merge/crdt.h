/*
 * crdt.h: the crdt-merge service's internal interfaces.
 *
 * Threads:
 *   - the loop thread (main) runs the rt_loop: NATS requests (api.c), the
 *     document table with the Yjs engine and the awareness states (doc.c), and
 *     the loading of a document from PostgreSQL on its own connection (store.c,
 *     synchronous: loads are rare, and a compacted log is short);
 *   - the writer thread (store.c) appends applied updates to the update log and
 *     writes compaction snapshots, in group commits on its own connection, and
 *     posts back how far it has committed.
 *
 * Replicas: every replica hears every request of the queue group "crdt" that
 * NATS gives it, and serves those of the documents it owns; the owner of a
 * document is the live replica with the highest rendezvous hash of
 * (instance, document) (api.c).  Others forward the request to it.
 */
#ifndef CRDT_H
#define CRDT_H

#include "rt/bus.h"
#include "rt/common.h"
#include "rt/loop.h"
#include "rt/map.h"
#include "rt/yjs.h"

#include <libpq-fe.h>
#include <stdint.h>

#define CRDT_MAX_NAME 128
#define CRDT_MAX_ID 128 /* edge and connection ids */

typedef struct crdt_config {
    const char *nats_url;
    const char *database_url;
    const char *instance_id;
    int log_level; /* rt_log_level_t */
    const char *migrations_dir;
    int64_t max_update;
    int64_t idle_ms;         /* unload a document idle this long */
    int64_t compact_updates; /* compact after this many logged updates */
    int64_t compact_bytes;   /* or this many logged bytes */
    int64_t awareness_ttl_ms;
    int64_t edge_ttl_ms;
} crdt_config_t;

/* ---- store.c ------------------------------------------------------------------ */

typedef struct crdt_writer crdt_writer_t;

/* Loop thread: reads the snapshot and the log of `name` on `conn` and applies
 * them to `doc`.  *rows gets the number of log rows, *bytes their size, *found
 * whether anything was stored.  RT_OK or RT_EUNAVAIL. */
int crdt_store_load(PGconn *conn, const char *name, rt_ydoc_t *doc, int64_t *rows, int64_t *bytes, int *found);

/* Runs on the loop thread when the writer has committed every job up to `seq`. */
typedef void (*crdt_committed_cb)(void *ctx, uint64_t seq);

crdt_writer_t *crdt_writer_create(const crdt_config_t *cfg, rt_loop_t *loop, crdt_committed_cb cb, void *ctx);
/* Loop thread: queues an append of `update` to the log of `doc` (copies both);
 * returns the job's sequence number. */
uint64_t crdt_writer_append(crdt_writer_t *w, const char *doc, rt_slice_t update);
/* Loop thread: queues "the state of doc is `state`: replace snapshot and log". */
uint64_t crdt_writer_compact(crdt_writer_t *w, const char *doc, rt_slice_t state);
/* Any thread: jobs queued and not yet committed. */
size_t crdt_writer_backlog(crdt_writer_t *w);
/* Commits everything queued, then stops the thread.  Accepts NULL. */
void crdt_writer_destroy(crdt_writer_t *w);

/* ---- doc.c: loaded documents and their awareness ------------------------------- */

typedef struct crdt_aw_state {
    uint64_t client, clock;
    uint8_t *state; /* JSON text; NULL: removed (the clock is kept) */
    size_t state_len;
    uint64_t updated_ns;
    uint64_t owner_epoch;
    char owner_edge[CRDT_MAX_ID + 1]; /* "" : no owner */
    char owner_conn[CRDT_MAX_ID + 1];
} crdt_aw_state_t;

typedef struct crdt_doc {
    char name[CRDT_MAX_NAME + 1];
    rt_ydoc_t *ydoc;
    int exists; /* something was stored or applied */
    int moving; /* no longer ours: unload once persisted */
    int64_t log_rows, log_bytes;
    uint64_t last_seq; /* the writer job of the last change */
    uint64_t last_used_ns;
    rt_map_t aw;      /* 8-byte client id -> crdt_aw_state_t */
    size_t nchanges;  /* updates that changed it this loop turn (the engine keeps what) */
    rt_buf_t acks;    /* reply subjects the turn's broadcast answers, each NUL-terminated */
    size_t nacks;
    struct crdt_doc *next_dirty;
} crdt_doc_t;

/* Publishes an awareness update for the document's clients (removals). */
typedef void (*crdt_aw_publish_cb)(void *ctx, const crdt_doc_t *doc, rt_slice_t update);
/* Publishes what a document's updates changed (one V1 update), answering the
 * update requests in doc->acks. */
typedef void (*crdt_changes_cb)(void *ctx, const crdt_doc_t *doc, rt_slice_t changed);

typedef struct crdt_docs {
    const crdt_config_t *cfg;
    rt_map_t map; /* name -> crdt_doc_t */
    PGconn *loader;
    crdt_writer_t *writer;
    uint64_t committed_seq;
    crdt_aw_publish_cb aw_publish;
    crdt_changes_cb changes_publish;
    void *ctx;
    rt_buf_t scratch, merged;
    crdt_doc_t *dirty; /* documents with changes not yet published */
} crdt_docs_t;

void crdt_docs_init(crdt_docs_t *d, const crdt_config_t *cfg, crdt_writer_t *writer, crdt_aw_publish_cb cb,
                    crdt_changes_cb changes, void *ctx);
void crdt_docs_dispose(crdt_docs_t *d);
/* The loaded document, loading it if need be.  RT_EUNAVAIL if PostgreSQL is. */
int crdt_docs_get(crdt_docs_t *d, const char *name, crdt_doc_t **out);
/* The loaded document or NULL. */
crdt_doc_t *crdt_docs_find(crdt_docs_t *d, const char *name);
/* Applies a client's update; what it changed (nothing for a duplicate) waits
 * in the document for crdt_docs_flush.  RT_EINVAL: malformed, nothing changed. */
int crdt_doc_apply(crdt_docs_t *d, crdt_doc_t *doc, rt_slice_t update);
/* The turn's broadcast of `doc`, which has changes, answers the update request
 * with reply subject `reply` (copied). */
void crdt_doc_ack_later(crdt_doc_t *doc, const char *reply);
/* End of a loop turn: for every changed document, encodes the turn's changes
 * as one update, logs it with the writer and publishes it (changes_publish). */
void crdt_docs_flush(crdt_docs_t *d);
/* Applies a client's awareness update (validated by its edge) with the Yjs
 * rules; an accepted non-null state attributes the client id to (edge, epoch,
 * conn), an accepted null detaches it. */
void crdt_doc_awareness(crdt_doc_t *doc, rt_slice_t update, const char *edge, uint64_t epoch, const char *conn,
                        uint64_t now_ns);
/* Appends an awareness update with every current state; returns how many. */
size_t crdt_doc_awareness_encode(const crdt_doc_t *doc, rt_buf_t *out);
/* Removes the states owned by a connection, or (conn NULL) by every connection
 * of an edge whose epoch differs from `live_epoch` or that is dead (live_epoch 0),
 * and publishes the removals. */
void crdt_docs_drop_owner(crdt_docs_t *d, crdt_doc_t *doc, const char *edge, uint64_t epoch, const char *conn);
/* Periodic: expires stale awareness states, drops those of dead edges
 * (is_edge_alive), compacts grown logs, unloads idle or moved documents. */
typedef int (*crdt_edge_alive_cb)(void *ctx, const char *edge, uint64_t epoch);
void crdt_docs_sweep(crdt_docs_t *d, uint64_t now_ns, crdt_edge_alive_cb alive, void *ctx);

/* ---- api.c ---------------------------------------------------------------------- */

typedef struct crdt_service crdt_service_t;

int crdt_service_create(const crdt_config_t *cfg, crdt_service_t **out);
void crdt_service_run(crdt_service_t *svc, volatile int *stop);
/* Stops taking requests, persists everything applied. */
void crdt_service_drain(crdt_service_t *svc);
void crdt_service_destroy(crdt_service_t *svc);

/* Pure: the rendezvous weight of (instance, doc). */
uint64_t crdt_owner_weight(const char *instance, const char *doc);

#endif
