/*
 * rt/bus.h: the NATS bus every service talks through.
 *
 * cnats delivers messages on its own threads; the bus hands each one to the
 * rt_loop that owns the subscription, so callbacks always run on that loop's
 * thread.  Connecting never fails for a server that is down: the bus keeps
 * retrying and reconnecting in the background (see rt_bus_is_connected).
 */
#ifndef RT_BUS_H
#define RT_BUS_H

#include "rt/common.h"
#include "rt/loop.h"

#include <stdint.h>

typedef struct rt_bus rt_bus_t;
typedef struct rt_bus_sub rt_bus_sub_t;
typedef struct rt_bus_requester rt_bus_requester_t;

typedef struct rt_bus_msg {
    const char *subject;
    const char *reply; /* NULL when the sender expects no reply */
    rt_slice_t data;
} rt_bus_msg_t;

/* Runs on the subscription's loop thread; borrows msg for the call only. */
typedef void (*rt_bus_msg_cb)(void *ctx, const rt_bus_msg_t *msg);
/* Runs on the requester's loop thread: err is RT_OK (data = the reply),
 * RT_ETIMEOUT, or RT_EUNAVAIL (nobody listens on the subject). */
typedef void (*rt_bus_reply_cb)(void *ctx, int err, rt_slice_t data);
/* Runs on a cnats thread: the connection was lost (0) or is back (1). */
typedef void (*rt_bus_state_cb)(void *ctx, int connected);

/* Flags of rt_bus_create. */
enum {
    /* The server does not deliver this connection's own publishes to its own
     * subscriptions: the publisher delivers them locally, without the round trip. */
    RT_BUS_NO_ECHO = 1u << 0,
};

/* Returns an owned bus in *out; borrows url and name; flags: RT_BUS_*.  RT_EINVAL for a bad URL. */
int rt_bus_create(const char *url, const char *name, unsigned flags, rt_bus_t **out);
/* Flushes and closes.  Every subscription and requester must be gone.  Accepts NULL. */
void rt_bus_destroy(rt_bus_t *bus);
/* Any thread.  Called on every loss and recovery of the connection; set before traffic starts. */
void rt_bus_set_state_cb(rt_bus_t *bus, rt_bus_state_cb cb, void *ctx);
/* Any thread. */
int rt_bus_is_connected(rt_bus_t *bus);
/* Any thread.  How many times the connection was re-established.  cnats counts a
 * reconnect before it reports the connection up again, so whoever sees it
 * connected sees the count too (the state callback comes later, from another
 * thread): polling both tells reliably whether the connection was lost since. */
uint64_t rt_bus_reconnects(rt_bus_t *bus);
/* On `loop`'s thread, for tools and tests: runs the loop until the bus is
 * connected or timeout_ms has passed; RT_OK or RT_ETIMEOUT. */
int rt_bus_wait_connected(rt_bus_t *bus, rt_loop_t *loop, int64_t timeout_ms);
/* Any thread; borrows the arguments.  RT_EUNAVAIL while disconnected. */
int rt_bus_publish(rt_bus_t *bus, const char *subject, const void *data, size_t len);
/* Any thread: flushes pending publishes to the server, waiting at most timeout_ms. */
int rt_bus_flush(rt_bus_t *bus, int64_t timeout_ms);

/* Subscribes on `loop`'s thread; queue_group may be NULL.  Borrows the strings. */
int rt_bus_subscribe(rt_bus_t *bus, rt_loop_t *loop, const char *subject, const char *queue_group, rt_bus_msg_cb cb,
                     void *ctx, rt_bus_sub_t **out);
/* On the subscription's loop thread: no callback runs after this returns.  Accepts NULL. */
void rt_bus_unsubscribe(rt_bus_sub_t *sub);

/* Requests from one loop share a reply inbox and a timeout. */
int rt_bus_requester_create(rt_bus_t *bus, rt_loop_t *loop, uint32_t timeout_ms, rt_bus_requester_t **out);
/* On its loop thread; pending requests complete with RT_EUNAVAIL.  Accepts NULL. */
void rt_bus_requester_destroy(rt_bus_requester_t *requester);
/* On the requester's loop thread.  The callback runs exactly once, later, on the same
 * thread (a caller whose object may go away meanwhile lets ctx outlive it).  RT_EUNAVAIL
 * if disconnected: then the callback does not run. */
int rt_bus_request(rt_bus_requester_t *requester, const char *subject, const void *data, size_t len, rt_bus_reply_cb cb,
                   void *ctx);

/* On the requester's loop thread: when `reply` is the reply subject of one of its
 * pending requests, completes it with RT_OK and `data` now, as if its reply had
 * come (a service may answer inside another message), and returns 1; else 0. */
int rt_bus_requester_resolve(rt_bus_requester_t *requester, const char *reply, rt_slice_t data);

/* On the requester's loop thread: the callback runs (err RT_OK) once the server has
 * processed everything this connection sent before, subscriptions included (a PING
 * answered); so a client told "subscribed" after it misses nothing published
 * afterwards.  Same lifetime rules as rt_bus_request. */
int rt_bus_barrier(rt_bus_requester_t *requester, rt_bus_reply_cb cb, void *ctx);

/* Writes the NATS subject `prefix.<name>` for a channel or document name, with
 * '.' (valid in names, a token separator in NATS) written as '~'. */
void rt_bus_subject(char *out, size_t outsize, const char *prefix, const char *name);

#endif
