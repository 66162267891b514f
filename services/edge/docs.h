/*
 * docs.h: collaborative documents on the edge (PROTOCOL.md section 7).
 *
 * yjs.c speaks y-websocket on /yjs/{doc} (an edge_ws_handler_t); doc.c keeps
 * the thread's table of open documents, each holding the NATS subscriptions
 * to its broadcast and awareness subjects while a local client has it open;
 * docs_http.c answers GET /v1/docs/{doc}.  Everything runs on the connection's
 * thread.  The contract with crdt-merge is proto/rtsync/v1/doc.proto.
 */
#ifndef EDGE_DOCS_H
#define EDGE_DOCS_H

#include "ws.h"

#define EDGE_DOC_NAME_MAX 128
/* A streaming connection's update requests leave at most this often (yjs.c).
 * Every request costs each process on its way a few wake-ups, whatever its
 * size: a trace replay took 12 % less server CPU with 10 ms than with 5, for
 * 1 ms more median latency under load (20 ms stalled the client's window). */
#define EDGE_YJS_PACE_MS 10

typedef struct edge_ydoc edge_ydoc_t;

/* One /yjs connection: the ws conn's session. */
typedef struct edge_ysession {
    edge_ws_conn_t *conn; /* NULL once the connection is gone (requests may outlive it) */
    edge_ydoc_t *doc;
    h2o_linklist_t doc_link; /* doc->sessions */
    h2o_linklist_t pending;  /* requests awaiting crdt-merge (yjs.c) */
    uint64_t last_tx_ms;     /* for the keepalive */
    rt_buf_t batch;          /* updates not yet sent: u32 length + update, repeated */
    size_t nbatch;
    h2o_linklist_t batch_link;      /* the thread's sessions with a batch */
    h2o_timeout_entry_t pace_entry; /* a stream's next request: EDGE_YJS_PACE_MS after the last */
    uint64_t last_request_ms;
    unsigned sent_awareness : 1;
    unsigned updating : 1; /* an update request awaits its reply: the batch grows meanwhile */
    char name[EDGE_DOC_NAME_MAX + 1];
} edge_ysession_t;

/* doc.c */
/* Opens the session's document (subscribing on first use).  RT_EUNAVAIL if NATS refuses. */
int edge_ydoc_join(edge_thread_t *t, edge_ysession_t *s);
/* Closes it (unsubscribing after the last local session). */
void edge_ydoc_leave(edge_ysession_t *s);
/* Sends an awareness update (borrowed) to every local session of the document. */
void edge_ydoc_relay_awareness(edge_ydoc_t *doc, rt_slice_t update);
/* Queues a binary frame to the session's connection (takes the frame). */
void edge_ysession_send(edge_ysession_t *s, edge_frame_t *frame);
/* Sends the session's batch at the end of the loop turn (yjs.c's edge_ysession_flush). */
void edge_ysession_schedule_flush(edge_ysession_t *s);
/* Calls edge_ysession_resume EDGE_YJS_PACE_MS from now (unless already due). */
void edge_ysession_flush_later(edge_ysession_t *s);
/* Forgets a session's pending flushes (it is going away). */
void edge_ysession_cancel_flush(edge_ysession_t *s);
/* yjs.c: sends the batched updates as one request, unless one is in flight. */
void edge_ysession_flush(edge_ysession_t *s);
/* yjs.c: reads the connection again (after a pause) and flushes once what waited is read. */
void edge_ysession_resume(edge_ysession_t *s);
/* Any thread: the process's epoch for DocEdgeHeartbeat and awareness ownership. */
uint64_t edge_docs_epoch(edge_thread_t *t);

/* yjs.c: the y-websocket handler; docs_http.c: the routes. */
extern const edge_ws_handler_t edge_yjs_handler;
/* Answers /yjs/... and /v1/docs/...; returns 1 if the request was one of them. */
int edge_docs_route(edge_thread_t *t, h2o_req_t *req);

#endif
