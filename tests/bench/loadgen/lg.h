/*
 * lg.h: the pieces of rt-loadgen, the WebSocket load generator of the
 * benchmarks: a latency histogram, /proc sampling of the servers under test,
 * and the client connections (handshake, masked frames, frame parsing).
 *
 * Everything runs on the generator's one thread, on one epoll loop.
 */
#ifndef LG_H
#define LG_H

#include "rt/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- latency histogram (hist.c) ------------------------------------------- */

/* Log buckets with 64 linear sub-buckets each: relative error under 1.6 %,
 * exact below 128 ns, constant memory whatever the sample count. */
#define LG_HIST_BUCKETS (128 + 57 * 64)

typedef struct lg_hist {
    uint64_t counts[LG_HIST_BUCKETS];
    uint64_t n;
    uint64_t sum;
    uint64_t max;
} lg_hist_t;

void lg_hist_record(lg_hist_t *h, uint64_t value);
/* The value at quantile q (0..1): the upper bound of its bucket, capped at the max. */
uint64_t lg_hist_quantile(const lg_hist_t *h, double q);

/* ---- server processes (procstat.c) -------------------------------------- */

typedef struct lg_proc_sample {
    uint64_t cpu_ticks; /* utime + stime of all threads */
    uint64_t syscr;     /* read-like syscalls (read, readv; not recvmsg) */
    uint64_t syscw;     /* write-like syscalls (write, writev; not sendmsg) */
    uint64_t rss_kb;    /* VmRSS */
    uint64_t hwm_kb;    /* VmHWM */
} lg_proc_sample_t;

typedef struct lg_proc {
    char name[32];
    pid_t pid;
    bool aux; /* reported, but not counted in the server totals */
    lg_proc_sample_t before;
    lg_proc_sample_t after;
} lg_proc_t;

/* Parses "name:pid,name:pid" and appends to *procs (owned, free()), marked
 * aux or not; returns the new count, or RT_EINVAL (*procs then unchanged in
 * content but possibly reallocated). */
int lg_procs_parse(const char *spec, bool aux, lg_proc_t **procs, int n);
/* Reads /proc/PID/{stat,io,status}; 0 or RT_EIO (the process is gone). */
int lg_proc_sample(pid_t pid, lg_proc_sample_t *out);
/* Busy clock ticks of one core so far (user, nice, system, irq, softirq,
 * steal from /proc/stat), to see what else ran on the servers' core; 0 or RT_EIO. */
int lg_core_busy(int core, uint64_t *ticks);
/* Clock ticks per second (sysconf(_SC_CLK_TCK)). */
double lg_clk_tck(void);

/* ---- WebSocket client connections (conn.c) ------------------------------ */

typedef enum lg_state {
    LG_IDLE,        /* not opened yet */
    LG_CONNECTING,  /* non-blocking connect in progress */
    LG_HANDSHAKE,   /* upgrade request sent, waiting for 101 */
    LG_OPEN,        /* upgraded; a subscriber then sends its subscribe */
    LG_SUBSCRIBING, /* subscribe sent, waiting for "subscribed" */
    LG_READY,       /* subscribed (or the publisher, open) */
    LG_CLOSED,      /* failed or closed */
} lg_state_t;

typedef struct lg_url {
    char host[64];
    char port[8];
    char path[192]; /* path and query */
    char hostport[80];
    bool http; /* http:// (an SSE reader, or an HTTP POST publisher), else ws:// */
    bool eio;  /* ws://.../socket.io/...: Engine.IO v4 packets, our JSON as the Socket.IO event "rt" */
    struct sockaddr_storage addr; /* resolved once, when parsed */
    socklen_t addrlen;
} lg_url_t;

typedef struct lg_conn {
    int fd;
    uint8_t state; /* lg_state_t */
    bool publisher;
    const lg_url_t *url; /* borrowed from the run's URL table */
    char accept[29];     /* the Sec-WebSocket-Accept we expect */
    rt_buf_t in;         /* bytes of an incomplete frame or header, carried to the next read */
    rt_buf_t out;        /* bytes the socket did not take yet */
    rt_buf_t frag;       /* a fragmented message being assembled */
    uint8_t frag_op;
    uint8_t *seen; /* bitmap of received publish sequence numbers */
    uint64_t received;
    uint64_t last_seq;
    uint64_t t_sent;     /* durable: when the publish awaiting its ack left; churn: when subscribe left */
    uint64_t t_mark;     /* churn: when the subscription was confirmed */
    uint32_t chunk_left; /* SSE over chunked encoding: bytes left in the current chunk */
    bool chunked;
    bool chunk_crlf; /* the CRLF closing a chunk is still to skip */
    bool flag;       /* churn: its join was seen by the observer */
    char connid[48]; /* the conn id of the server's welcome frame */
} lg_conn_t;

/* When the bytes of a read arrived, on CLOCK_MONOTONIC: read_ns when the
 * generator read them; arrival_ns when the kernel queued them on the socket
 * (SO_TIMESTAMPNS of the read's last segment, converted from CLOCK_REALTIME),
 * which does not depend on how long the generator took to get to this socket
 * among the thousand that became readable at once.  Equal to read_ns when the
 * kernel gave no timestamp. */
typedef struct lg_rx {
    uint64_t read_ns;
    uint64_t arrival_ns;
} lg_rx_t;

/* What a connection hands to the scenario: the text frames it receives and
 * its state changes.  Implemented by main.c. */
void lg_on_text(lg_conn_t *c, const uint8_t *data, size_t len, const lg_rx_t *rx);
void lg_on_state(lg_conn_t *c, lg_state_t old_state);
/* An SSE reader's `data:` line (without the field name and its space). */
void lg_on_sse_data(lg_conn_t *c, const uint8_t *data, size_t len, const lg_rx_t *rx);
/* The status of each HTTP response an HTTP publisher receives. */
void lg_on_http_status(lg_conn_t *c, int status);

/* Parses and resolves ws://host:port/path or http://host:port/path; 0 or RT_EINVAL. */
int lg_url_parse(const char *s, lg_url_t *out);
/* Starts a non-blocking connect to url (borrowed for the connection's life) and
 * registers the socket with epoll (data.ptr = c).  0, or RT_EIO with the
 * connection CLOSED. */
int lg_conn_open(lg_conn_t *c, int epfd, const lg_url_t *url);
/* Handles an epoll event of the connection. */
void lg_conn_on_event(lg_conn_t *c, int epfd, uint32_t events);
/* Sends one masked text frame (queued if the socket is full). */
void lg_conn_send_text(lg_conn_t *c, int epfd, const void *data, size_t len);
/* Sends bytes as they are (an HTTP request of an HTTP publisher). */
void lg_conn_send_raw(lg_conn_t *c, int epfd, const void *data, size_t len);
/* Moves the connection to state s and tells lg_on_state(). */
void lg_conn_set_state(lg_conn_t *c, lg_state_t s);
/* Closes the socket and frees the buffers (not c itself). */
void lg_conn_close(lg_conn_t *c, int epfd);

/* ---- HTTP readers and publishers (http.c) -------------------------------- */

/* Sends an SSE reader's GET request. */
void lg_http_send_sse_request(lg_conn_t *c, int epfd);
/* Parses what an http:// connection received: an SSE reader's response
 * header, then its (possibly chunked) event stream, handing every data line
 * to lg_on_sse_data(); an HTTP publisher's responses, each status to
 * lg_on_http_status().  Returns the bytes used (the rest is carried). */
size_t lg_http_on_bytes(lg_conn_t *c, int epfd, uint8_t *p, size_t len, const lg_rx_t *rx);

#endif
