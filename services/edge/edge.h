/*
 * edge.h: the edge's internal types, shared by its files.
 *
 * Threads: RT_EDGE_THREADS event-loop threads, each with its own h2o context,
 * SO_REUSEPORT listener, connections, channel table and NATS connection;
 * nothing in an edge_thread_t is touched by another thread.  NATS messages
 * reach a thread through its rt_loop task queue (rt_bus does the hand-off).
 * A thread's connection has no echo: a message a client publishes reaches the
 * thread's own subscribers at once, and every other thread and edge through
 * NATS, so a round trip through NATS is paid only where it crosses threads.
 * The main thread only waits for signals and asks the loops to drain.
 */
#ifndef EDGE_H
#define EDGE_H

#include "rt/auth.h"
#include "rt/bus.h"
#include "rt/common.h"
#include "rt/loop.h"
#include "rt/map.h"
#include "rt/pb.h"

#include <h2o.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "rtsync/v1/channel.pb-c.h"

typedef struct edge_config {
    const char *nats_url;
    const char *listen;
    const char *edge_id;
    int log_level; /* rt_log_level_t */
    int64_t threads;
    int64_t heartbeat_ms;
    int64_t send_queue;
    int64_t max_frame;
    int64_t max_doc_update;
    int64_t max_conns;
    int64_t max_subscriptions;
    int64_t drain_ms;
    int64_t request_timeout_ms;
    int64_t presence_ttl_ms;
    const char *jwt_secret; /* empty: open */
    const char *allowed_origins;
    int64_t rate_limit;
    int64_t rate_window_ms;
    int64_t max_user_conns;
    int64_t handshake_timeout_ms;
    int64_t io_uring; /* 1: a loop turn's socket writes go out in batches (sender.c) */
} edge_config_t;

typedef struct edge_server edge_server_t;
typedef struct edge_thread edge_thread_t;
typedef struct edge_channel edge_channel_t;
typedef struct edge_client edge_client_t;
typedef struct edge_sub edge_sub_t;
typedef struct edge_presence edge_presence_t;
typedef struct edge_guard edge_guard_t;

/* ---- frames: immutable, reference-counted output bytes (one thread only) ---- */

typedef struct edge_frame {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} edge_frame_t;

/* Returns an owned frame (refs 1) holding a WebSocket frame with `payload`. */
edge_frame_t *edge_frame_ws(int opcode, const void *payload, size_t len);
/* Returns an owned frame (refs 1) holding `len` raw bytes. */
edge_frame_t *edge_frame_raw(const void *data, size_t len);
/* A WebSocket close frame with `code` and a short reason. */
edge_frame_t *edge_frame_ws_close(uint16_t code, const char *reason);
static inline edge_frame_t *edge_frame_ref(edge_frame_t *f)
{
    f->refs++;
    return f;
}
void edge_frame_release(edge_frame_t *f);

/* A queue of frames waiting to be written, plus the ones being written. */
typedef struct edge_outq {
    edge_frame_t **frames;
    uint32_t head, count, cap;
    uint32_t inflight; /* the first `inflight` frames are in h2o's hands */
    size_t bytes;      /* every queued byte, in flight included */
} edge_outq_t;

void edge_outq_push(edge_outq_t *q, edge_frame_t *frame); /* takes the frame */
/* Fills up to `max` iovecs with the frames not yet in flight and marks them in flight. */
size_t edge_outq_take(edge_outq_t *q, h2o_iovec_t *vecs, size_t max);
/* Releases the frames that were in flight. */
void edge_outq_written(edge_outq_t *q);
/* Releases the frames not in flight (a connection that is closing drops them). */
void edge_outq_drop_pending(edge_outq_t *q);
void edge_outq_dispose(edge_outq_t *q);

/* ---- channel messages, encoded once per thread for every subscriber ---- */

typedef struct edge_message {
    Rtsync__V1__ChannelMessage *pb; /* owned, unpacked */
    edge_frame_t *ws;               /* lazily encoded WebSocket text frame */
    edge_frame_t *sse;              /* lazily encoded SSE event */
} edge_message_t;

edge_frame_t *edge_message_ws(edge_message_t *m);
edge_frame_t *edge_message_sse(edge_message_t *m);

/* ---- clients: a WebSocket connection or an SSE stream ---- */

typedef struct edge_client_ops {
    /* Queues a channel message; the client takes a reference of what it keeps. */
    void (*deliver)(edge_client_t *client, edge_channel_t *ch, edge_message_t *msg);
    /* The subscription is live: latest is the channel's newest offset, if sub->known. */
    void (*subscribed)(edge_client_t *client, edge_sub_t *sub, uint64_t latest);
    /* The replay a subscription asked for is impossible; the subscription is gone. */
    void (*replay_failed)(edge_client_t *client, const char *channel);
} edge_client_ops_t;

/* Who a request or connection is: the user, and the token's claims when auth is on. */
typedef struct edge_identity {
    char user[129];
    int authenticated;
    rt_auth_claims_t claims;
} edge_identity_t;

struct edge_client {
    const edge_client_ops_t *ops;
    edge_thread_t *thread;
    h2o_linklist_t subs; /* edge_sub_t.client_link */
    uint32_t nsubs;
    char conn_id[48];
    char *user;
    edge_identity_t *identity; /* owned */
};

/*
 * A client's subscription to a channel.  Durable messages reach it in offset
 * order, each once: `delivered` is the last offset it got; a message past a
 * gap is held until the gap is filled from chat-history (or found to be gone).
 */
struct edge_sub {
    edge_client_t *client;
    edge_channel_t *channel;
    h2o_linklist_t channel_link;
    h2o_linklist_t client_link;
    h2o_linklist_t held; /* held messages, ascending offsets */
    uint64_t delivered;
    unsigned known : 1;     /* delivered is meaningful */
    unsigned replaying : 1; /* waiting for the first history answer; everything is held */
    unsigned has_since : 1;
    unsigned announced : 1;     /* the client was told it is subscribed */
    unsigned member : 1;        /* announced as a member of the channel (presence) */
    unsigned want_presence : 1; /* send a member snapshot once subscribed */
    unsigned probe : 1;         /* ask history whether anything was missed (after a NATS outage) */
};

struct edge_channel {
    edge_thread_t *thread;
    char *name;
    h2o_linklist_t subs; /* edge_sub_t.channel_link */
    uint32_t nsubs;
    uint64_t generation; /* tells a late history answer from one for this channel */
    rt_bus_sub_t *bus_sub;
    h2o_timeout_entry_t gap_entry; /* a gap is given a moment to fill by itself */
    unsigned filling : 1;
};

/* Subscribes the client to the channel (creating the channel and its NATS
 * subscription if it is the first local subscriber); an existing subscription
 * is returned as it is.  The new subscription replays from `since` (when
 * has_since) once edge_channel_start_replay is called.  RT_EUNAVAIL if NATS
 * refuses. */
int edge_channel_subscribe(edge_thread_t *t, edge_client_t *client, const char *name, int has_since, uint64_t since,
                           edge_sub_t **out);
/* NATS has the subscription: ask chat-history where the channel stands (and for
 * the replay); the client hears back through ops->subscribed or replay_failed. */
void edge_channel_start_replay(edge_sub_t *sub);
/* NATS came back: messages may have been lost meanwhile; every subscription
 * with a known position asks chat-history for what follows it. */
void edge_channels_probe(edge_thread_t *t);
/* Unsubscribes; drops the channel (and its NATS subscription) with its last subscriber. */
void edge_channel_unsubscribe(edge_sub_t *sub);
/* Offers a message this thread published (borrowed) to its own subscribers of the
 * channel: its NATS connection does not echo it back. */
void edge_channel_deliver_local(edge_thread_t *t, Rtsync__V1__ChannelMessage *pb);
edge_sub_t *edge_client_find_sub(edge_client_t *client, const char *channel);
void edge_client_unsubscribe_all(edge_client_t *client);

/* history.c: asks chat-history; the callback gets the unpacked reply (owned by the
 * caller of the callback) or NULL with err. */
typedef void (*edge_history_cb)(void *ctx, int err, Rtsync__V1__HistoryReply *reply);
void edge_history_query(edge_thread_t *t, const char *channel, int before, uint64_t cursor, uint32_t limit,
                        edge_history_cb cb, void *ctx);

/* ---- sender.c: a loop turn's socket writes in one system call (io_uring) ---- */

#define EDGE_SENDER_VECS 16 /* buffers per send; what is left waits for the next */

typedef struct edge_sender edge_sender_t;
/* What became of a queued send: `res` bytes went out (maybe not all of `vecs`),
 * or -errno (-EAGAIN: none, the socket is full).  `vecs` is borrowed for the call. */
typedef void (*edge_sender_cb)(void *owner, const struct iovec *vecs, size_t nvecs, ssize_t res);

/* Returns 0 and an owned sender in *out, or -errno when the kernel offers no
 * io_uring (an old kernel, a seccomp profile that refuses it). */
int edge_sender_create(edge_sender_cb cb, edge_sender_t **out);
void edge_sender_destroy(edge_sender_t *s);
int edge_sender_full(const edge_sender_t *s);
/* The buffers of the next send, to fill (EDGE_SENDER_VECS); not when full. */
struct iovec *edge_sender_vecs(edge_sender_t *s);
/* Queues a send of the first n of those buffers to fd (borrowed until the
 * batch has run); `owner` goes back to the callback. */
void edge_sender_queue(edge_sender_t *s, int fd, size_t n, void *owner);
/* Sends the batch with one system call, then calls back once per send, in
 * queue order.  Returns how many it sent, or -errno when the ring failed: the
 * callbacks have run (-EAGAIN for what the kernel never took, -EIO for what it
 * took without an answer) and the sender is to be destroyed. */
int edge_sender_run(edge_sender_t *s);

/* ---- metrics: per-thread counters, summed when scraped ---- */

typedef struct edge_counters {
    _Atomic uint64_t connections; /* gauge: open WebSocket connections */
    _Atomic uint64_t sse_streams; /* gauge */
    _Atomic uint64_t frames_in;
    _Atomic uint64_t messages_in; /* publishes accepted */
    _Atomic uint64_t deliveries;  /* messages queued to clients */
    _Atomic uint64_t bad_frames;
    _Atomic uint64_t slow_closes;
    _Atomic uint64_t bus_messages;        /* NATS messages received */
    _Atomic uint64_t bus_bad;             /* undecodable NATS messages */
    _Atomic uint64_t writes;              /* socket writes (each send of a batch counts) */
    _Atomic uint64_t write_batches;       /* system calls that sent a batch of writes */
    _Atomic uint64_t presence_updates;    /* member changes sent to the presence service */
    _Atomic uint64_t latency_buckets[16]; /* publish-to-queue, ms: <=1,2,4,...; last = more */
    _Atomic uint64_t latency_sum_us;
} edge_counters_t;

/* Ticks per heartbeat interval: each pings the clients of one slot, so that a
 * thread's pings are spread over the interval instead of written together. */
#define EDGE_HEARTBEAT_SLOTS 25

#define EDGE_COUNT(t, field, n) atomic_fetch_add_explicit(&(t)->counters.field, (n), memory_order_relaxed)

/* ---- threads and the server ---- */

struct edge_thread {
    edge_server_t *server;
    unsigned index;
    pthread_t tid;
    rt_loop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    rt_bus_t *bus; /* the thread's own NATS connection, without echo: what it publishes it delivers itself */
    rt_bus_requester_t *requester;
    rt_map_t channels;           /* name -> edge_channel_t */
    h2o_linklist_t ws_conns;     /* every open WebSocket connection */
    h2o_linklist_t sse_streams;  /* every open SSE stream */
    h2o_linklist_t dirty;        /* WebSocket connections with frames to write */
    edge_sender_t *sender;       /* writes them in batches; NULL: one writev each through h2o */
    h2o_timeout_t flush_timeout; /* 0 ms: runs at the end of the loop turn */
    h2o_timeout_entry_t flush_entry;
    struct edge_publisher *publisher; /* durable publishes on their way to chat-history (publish.c) */
    h2o_timeout_t heartbeat_timeout;  /* one tick: a slot of the heartbeat interval */
    h2o_timeout_entry_t heartbeat_entry;
    unsigned heartbeat_slot; /* the slot of the next tick */
    /* the connections and streams of each slot (their heartbeat_link) */
    h2o_linklist_t ws_heartbeat[EDGE_HEARTBEAT_SLOTS];
    h2o_linklist_t sse_heartbeat[EDGE_HEARTBEAT_SLOTS];
    h2o_timeout_t close_timeout; /* how long a closing connection waits for the peer */
    edge_frame_t *ping_frame;    /* shared by every connection of the thread */
    edge_frame_t *sse_retry_frame;
    edge_frame_t *sse_hb_frame;
    h2o_timeout_t gap_timeout;    /* how long a gap may fill by itself */
    h2o_timeout_t expiry_timeout; /* every second, with tokens: close what has expired */
    h2o_timeout_entry_t expiry_entry;
    uint64_t next_generation;
    h2o_timeout_t drain_timeout;
    h2o_timeout_entry_t drain_entry;
    uint64_t next_conn;
    int draining;
    int stopped;
    rt_task_t drain_task;
    rt_task_t probe_task;
    atomic_flag probe_pending;
    edge_counters_t counters;
};

struct edge_server {
    edge_config_t config;
    rt_bus_t *bus; /* presence's (with echo: the threads' subscriptions get its events) */
    h2o_globalconf_t globalconf;
    edge_thread_t *threads;
    size_t nthreads;
    _Atomic int draining;
    pthread_barrier_t started;  /* the loop threads and main meet once every loop exists */
    _Atomic int64_t open_conns; /* WebSocket connections on every thread, for RT_MAX_CONNS */
    edge_presence_t *presence;
    edge_guard_t *guard;
    int64_t started_ms;
};

/* server.c */
int edge_server_create(const edge_config_t *config, edge_server_t **out);
/* Runs the loop threads until a drain finishes; blocks the calling (main) thread. */
int edge_server_run(edge_server_t *server);
void edge_server_destroy(edge_server_t *server);
/* Any thread: 1 when every NATS connection of the process is up. */
int edge_server_bus_connected(edge_server_t *server);
/* Arms the end-of-turn flush. */
void edge_thread_schedule_flush(edge_thread_t *t);
/* Names a new client (its connection id); returns its heartbeat slot (round robin). */
unsigned edge_thread_name_client(edge_thread_t *t, edge_client_t *client);
/* A connection or stream closed: a draining thread stops after its last one. */
void edge_thread_on_conn_closed(edge_thread_t *t);

/* http.c: the request handler for every route. */
int edge_http_on_req(h2o_handler_t *self, h2o_req_t *req);
/* Sends a JSON error body {"error": {"code", "message"}} with `status`. */
void edge_http_error(h2o_req_t *req, int status, const char *code, const char *message);

/* ws.c */
int edge_ws_is_upgrade(h2o_req_t *req);
struct edge_ws_handler;
/* Upgrades `req` to a WebSocket connection that speaks what `handler` does; takes `identity`. */
int edge_ws_accept(edge_thread_t *t, h2o_req_t *req, edge_identity_t *identity, const struct edge_ws_handler *handler);
/* Closes with 4001 the connections whose token has expired. */
void edge_ws_expire_tokens(edge_thread_t *t, int64_t now_s);
/* Writes every dirty connection's queue (end of loop turn). */
void edge_ws_flush_dirty(edge_thread_t *t);
/* Pings the connections of heartbeat slot `slot`; closes those silent for two intervals. */
void edge_ws_heartbeat(edge_thread_t *t, unsigned slot);
void edge_ws_drain_all(edge_thread_t *t);

/* sse.c */
/* Starts an SSE stream replaying from `since` when has_since (Last-Event-ID or ?since=). */
int edge_sse_start(edge_thread_t *t, h2o_req_t *req, const char *channel, edge_identity_t *identity, int has_since,
                   uint64_t since);
/* Ends the streams whose token has expired. */
void edge_sse_expire_tokens(edge_thread_t *t, int64_t now_s);
/* Writes the heartbeat comment to the streams of heartbeat slot `slot`. */
void edge_sse_heartbeat(edge_thread_t *t, unsigned slot);
void edge_sse_drain_all(edge_thread_t *t);

/* publish.c: the publish path shared by /ws and the HTTP API. */
typedef struct edge_publish {
    const char *channel;
    const char *event; /* NULL: "message" */
    const char *data;  /* JSON text */
    size_t data_len;
    const char *id; /* NULL: none */
    const char *user;
    const char *conn_id;
    int ephemeral;
} edge_publish_t;
/* Called on the thread once the publish is settled: err 0 with the offset
 * (0 for ephemeral), or RT_EUNAVAIL / RT_ETIMEOUT / RT_EINVAL. */
typedef void (*edge_publish_cb)(void *ctx, int err, uint64_t offset);
/* Publishes; the callback runs exactly once, possibly before this returns.
 * Durable publishes leave at the end of the loop turn (edge_publish_flush), all
 * of the turn's in one request to chat-history. */
void edge_publish(edge_thread_t *t, const edge_publish_t *p, edge_publish_cb cb, void *ctx);
/* End of the loop turn: sends the durable publishes waiting, unless a request
 * is in flight (its reply sends them). */
void edge_publish_flush(edge_thread_t *t);
/* Shutdown, once the requester is gone: fails what still waits with RT_EUNAVAIL
 * and frees the thread's publish state. */
void edge_publish_dispose(edge_thread_t *t);

/* presence.c: this edge's members, reported to subscribers and the presence service.
 * join/leave/state may be called from any loop thread, for that thread's clients. */
int edge_presence_create(edge_server_t *server, edge_presence_t **out);
/* Heartbeats, batching and resync answers run on `loop` (thread 0's). */
void edge_presence_start(edge_presence_t *p, rt_loop_t *loop);
/* On that loop's thread, when draining is done: last batch and heartbeat. */
void edge_presence_stop(edge_presence_t *p);
void edge_presence_destroy(edge_presence_t *p);
void edge_presence_join(edge_presence_t *p, const char *channel, const edge_client_t *client);
void edge_presence_leave(edge_presence_t *p, const char *channel, const edge_client_t *client);
/* Sets a member's state (JSON text); RT_ENOTFOUND if the client is not a member. */
int edge_presence_state(edge_presence_t *p, const char *channel, const edge_client_t *client, const char *state,
                        size_t len);

/* The presence service's answer: err RT_OK with a borrowed JSON object
 * {"members": [{user, conn, edge, state, since}...], "total": N, "truncated"?}
 * (NULL for a signal), RT_ENOTFOUND (signal target absent), or RT_EUNAVAIL /
 * RT_ETIMEOUT.  A channel too large for one reply lists its earliest members. */
typedef void (*edge_presence_reply_cb)(void *ctx, int err, json_t *members);
void edge_presence_query(edge_thread_t *t, const char *channel, edge_presence_reply_cb cb, void *ctx);
void edge_presence_signal(edge_thread_t *t, const char *channel, const edge_client_t *from, const char *to,
                          const char *data, size_t len, edge_presence_reply_cb cb, void *ctx);

/* guard.c: identity, origins, rate limits (any thread). */
int edge_guard_create(const edge_config_t *config, edge_guard_t **out);
void edge_guard_destroy(edge_guard_t *g);
/* Resolves who `req` is into *out; on failure it has answered (400, 401, 403). */
int edge_guard_identify(edge_thread_t *t, h2o_req_t *req, const char *anon_suffix, edge_identity_t *out);
void edge_identity_dispose(edge_identity_t *id);
/* 1 if the identity may use the channel or document `name`. */
int edge_identity_allows(const edge_identity_t *id, const char *name);
/* Counts one publish, state or signal of `user`: RT_OK, or RT_ETOOBIG with the wait. */
int edge_guard_rate(edge_guard_t *g, const char *user, int64_t now_ms, int64_t *retry_after_ms);
/* A connection of `user` opens (RT_ETOOBIG over RT_MAX_USER_CONNS) or closes. */
int edge_guard_conn_open(edge_guard_t *g, const char *user);
void edge_guard_conn_close(edge_guard_t *g, const char *user);
/* Forgets the users with no connection and nothing left in their windows (a periodic timer). */
void edge_guard_sweep(edge_guard_t *g, int64_t now_ms);
/* How many users the guard keeps counts for (a gauge of /metrics). */
size_t edge_guard_tracked(edge_guard_t *g);

/* http.c: identifies the request and checks it may use `name` (NULL: no name);
 * returns an owned identity (free with edge_identity_dispose + free), or NULL
 * after answering 400/401/403. */
edge_identity_t *edge_http_identify(edge_thread_t *t, h2o_req_t *req, const char *anon_suffix, const char *name);
#define EDGE_CONN_SUFFIX_SIZE 48
/* http.c: whether a WebSocket upgrade on `route` may go on (an upgrade, the edge
 * not draining nor full); answers 400/503 itself.  Writes the next connection's
 * id suffix (the anonymous user's name ends with it). */
int edge_http_ws_admit(edge_thread_t *t, h2o_req_t *req, const char *route, char suffix[EDGE_CONN_SUFFIX_SIZE]);
/* http.c: a query parameter, percent-decoded: 0, RT_ENOTFOUND or RT_ETOOBIG. */
int edge_http_query_param(h2o_req_t *req, const char *name, char *out, size_t outsize);

/* metrics.c */
void edge_metrics_render(edge_server_t *server, rt_buf_t *out);
void edge_metrics_observe_latency(edge_thread_t *t, int64_t ts_ms);

/* protocol.c: parsing of client JSON frames, shared by /ws and the HTTP API. */
typedef enum edge_frame_type {
    EDGE_FT_SUBSCRIBE,
    EDGE_FT_UNSUBSCRIBE,
    EDGE_FT_PUBLISH,
    EDGE_FT_PING,
    EDGE_FT_STATE,
    EDGE_FT_SIGNAL,
} edge_frame_type_t;

typedef struct edge_request {
    edge_frame_type_t type;
    const char *channel;
    const char *event;
    const char *id;
    json_t *data;   /* borrowed from root: publish and signal data, or the state */
    const char *to; /* signal: the target connection */
    int ephemeral;
    int has_since;
    uint64_t since;
    int presence;
    json_t *root; /* owned */
} edge_request_t;

typedef struct edge_proto_error {
    const char *code;
    char message[160];
    const char *ref; /* borrowed from the request, may be NULL */
} edge_proto_error_t;

/* Parses one client frame.  0: *req filled (caller disposes); otherwise an
 * error described in *err (its ref may point into the frame's parsed id, valid
 * until edge_request_dispose of the partially filled request). */
int edge_request_parse(const char *text, size_t len, size_t max_len, edge_request_t *req, edge_proto_error_t *err);
/* Parses the body of POST /v1/channels/{ch}/publish into a publish request. */
int edge_request_parse_publish_body(const char *text, size_t len, edge_request_t *req, edge_proto_error_t *err);
void edge_request_dispose(edge_request_t *req);
/* Appends the JSON text of an error frame. */
void edge_proto_error_json(const edge_proto_error_t *err, rt_buf_t *out);

#endif
