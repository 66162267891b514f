/*
 * rtctl.h: the pieces of rtctl, the command-line client of rtsync: a small
 * blocking HTTP/1.1 client (http.c), a WebSocket client on wslay (ws.c),
 * backoff and shared option handling (common.c), and one file per subcommand.
 *
 * rtctl is single-threaded and blocking: every wait is a poll() with a
 * deadline, and SIGINT/SIGTERM set ctl_stop, which ends the waits (EINTR).
 */
#ifndef RTCTL_H
#define RTCTL_H

#include "rt/common.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit codes: success, a failure (the server said no, not ready, unreachable), bad usage. */
enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

/* Set by SIGINT/SIGTERM; streams then end cleanly. */
extern volatile sig_atomic_t ctl_stop;

/* ---- URLs and connections (http.c) ------------------------------------------ */

/* http://host:port/prefix or ws://...; the prefix (no trailing '/') is put
 * before every path, for an edge behind a path-routing proxy. */
typedef struct ctl_url {
    char text[512]; /* as given, for messages */
    char host[256];
    char port[8];
    char hostport[272]; /* the Host header */
    char prefix[256];
} ctl_url_t;

/* Parses an edge URL (http://, ws://, or bare host:port); 0 or RT_EINVAL. */
int ctl_url_parse(const char *s, ctl_url_t *out);
/* Appends s to buf percent-encoded as one path segment or query value. */
void ctl_url_escape(rt_buf_t *buf, const char *s);

/* A blocking TCP connection with a read buffer. */
typedef struct ctl_conn {
    int fd;
    rt_buf_t in; /* received, not consumed yet */
    bool eof;        /* the peer closed its side */
    char error[128]; /* why the last call failed */
} ctl_conn_t;

/* Connects within timeout_ms; 0, or RT_EIO / RT_ETIMEOUT with c->error set. */
int ctl_conn_open(ctl_conn_t *c, const ctl_url_t *url, int timeout_ms);
void ctl_conn_close(ctl_conn_t *c);
/* Writes all of data before the deadline (rt_now_mono_ns() scale); 0 or RT_EIO / RT_ETIMEOUT. */
int ctl_conn_write(ctl_conn_t *c, const void *data, size_t len, uint64_t deadline_ns);
/* Reads what is available into c->in, waiting until the deadline; 0, RT_EIO (closed, c->error "closed
 * by peer" or the errno), RT_ETIMEOUT, or RT_ESTATE when ctl_stop was set. */
int ctl_conn_fill(ctl_conn_t *c, uint64_t deadline_ns);

/* A response: the status line and headers, and how its body is framed. */
typedef struct ctl_response {
    int status;
    char *head; /* owned: the header block, NUL-terminated */
    enum { CTL_BODY_LENGTH, CTL_BODY_CHUNKED, CTL_BODY_CLOSE } framing;
    uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in the chunk */
    int chunk_state;    /* CHUNKED: where the decoder is */
    rt_buf_t body;      /* ctl_http_read_body's result */
} ctl_response_t;

/* Sends "METHOD prefix+path" with Host, Authorization (if token), extra header lines (each ending
 * in \r\n, may be NULL) and body (Content-Type when ctype is not NULL).  0 or negative. */
int ctl_http_send(ctl_conn_t *c, const ctl_url_t *url, const char *method, const char *path, const char *token,
                  const char *extra_headers, const char *ctype, rt_slice_t body, uint64_t deadline_ns);
/* Reads the status line and headers into r (owned by r afterwards); 0 or negative. */
int ctl_http_read_head(ctl_conn_t *c, ctl_response_t *r, uint64_t deadline_ns);
/* A header's value (NUL-terminated copy into out, truncated to outsize); true if present. */
bool ctl_response_header(const ctl_response_t *r, const char *name, char *out, size_t outsize);
/* Appends the next decoded body bytes to out, reading when none are buffered:
 * 0 when some were appended, 1 at the end of the body, or negative. */
int ctl_http_read_some(ctl_conn_t *c, ctl_response_t *r, rt_buf_t *out, uint64_t deadline_ns);
/* Reads the whole body into r->body (at most 64 MiB); 0 or negative. */
int ctl_http_read_body(ctl_conn_t *c, ctl_response_t *r, uint64_t deadline_ns);
void ctl_response_dispose(ctl_response_t *r);

/* One request on a fresh connection, whole response read into *r (dispose it).
 * 0 (whatever the status), RT_EUNAVAIL when the connection failed (nothing was sent),
 * or another negative code; `error` (128 bytes) says why. */
int ctl_http_fetch(const ctl_url_t *url, const char *method, const char *path, const char *token, const char *ctype,
                   rt_slice_t body, int timeout_ms, ctl_response_t *r, char *error);

/* ---- WebSocket client (ws.c) ------------------------------------------------------ */

typedef struct ctl_ws ctl_ws_t;

/* Opens ws://url/prefix+path.  On a refused upgrade returns RT_EINVAL with *refused
 * holding the response and its body (dispose it); other failures: negative with error set. */
int ctl_ws_connect(const ctl_url_t *url, const char *path, const char *token, int timeout_ms, ctl_ws_t **out,
                   ctl_response_t *refused, char *error);
/* Queues and sends one text message; 0 or RT_EIO. */
int ctl_ws_send_text(ctl_ws_t *ws, const char *text, size_t len);
/* The next text message (valid until the next call): 0; RT_ETIMEOUT when nothing at all, not even a
 * ping, came for idle_ms; RT_EIO when the connection ended (ctl_ws_close_info says how);
 * RT_ESTATE when ctl_stop was set. */
int ctl_ws_next(ctl_ws_t *ws, rt_slice_t *msg, int idle_ms);
/* The close code and reason the server sent (0 and "" if none). */
int ctl_ws_close_info(const ctl_ws_t *ws, const char **reason);
/* Sends a close (1000) when still open, and frees.  Accepts NULL. */
void ctl_ws_destroy(ctl_ws_t *ws);

/* ---- shared helpers (common.c) ---------------------------------------------------- */

/* Full-jitter exponential backoff: base 200 ms, cap 5 s. */
typedef struct ctl_backoff {
    unsigned attempt;
} ctl_backoff_t;

/* Sleeps a random time in [0, min(cap, base * 2^attempt)) and counts the attempt; returns the
 * milliseconds slept, or -1 when interrupted by ctl_stop. */
int ctl_backoff_sleep(ctl_backoff_t *b);
/* The next delay without sleeping (for the message before the sleep). */
int ctl_backoff_next_ms(ctl_backoff_t *b);
/* Sleeps ms unless ctl_stop; -1 when interrupted. */
int ctl_sleep_ms(int ms);

/* Options every subcommand takes. */
typedef struct ctl_common {
    const char *token;  /* --token or $RT_TOKEN */
    const char *user;   /* --user: ?user= for a stack running without RT_JWT_SECRET */
    int timeout_ms;     /* --timeout: one request or connection attempt */
} ctl_common_t;

/* getopt values of the common options; subcommands number theirs from CTL_OPT_FIRST. */
enum { CTL_OPT_TOKEN = 1000, CTL_OPT_USER, CTL_OPT_TIMEOUT, CTL_OPT_HELP, CTL_OPT_FIRST };
#define CTL_COMMON_OPTIONS                                                                                             \
    {"token", required_argument, NULL, CTL_OPT_TOKEN}, {"user", required_argument, NULL, CTL_OPT_USER},                \
        {"timeout", required_argument, NULL, CTL_OPT_TIMEOUT}, {"help", no_argument, NULL, 'h'}
#define CTL_COMMON_HELP                                                                                                \
    "Common options:\n"                                                                                                \
    "  --token JWT      bearer token (default: $RT_TOKEN)\n"                                                           \
    "  --user NAME      user name of an open (RT_JWT_SECRET unset) stack: ?user=NAME\n"                                \
    "  --timeout DUR    per request or connection attempt (default 5s; 500ms, 2s, 1m)\n"                               \
    "  -h, --help       this help\n"

/* Fills defaults (RT_TOKEN). */
void ctl_common_init(ctl_common_t *co);
/* Handles a common option (getopt's value and optarg): 1 if it was one, 0 if not, -1 on a bad value
 * (message printed).  'h' prints `usage` and exits 0. */
int ctl_common_option(ctl_common_t *co, int opt, const char *arg, const char *usage);
/* Prints "rtctl CMD: message" and the usage hint; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a duration ("1h", "500ms", "30" seconds) into milliseconds; 0 or RT_EINVAL. */
int ctl_parse_millis(const char *s, int64_t *out);
/* Parses a non-negative integer; 0 or RT_EINVAL. */
int ctl_parse_u64(const char *s, uint64_t *out);

/* Ends a request path: appends "?user=NAME" or "&user=NAME" when --user was given, and a NUL;
 * returns the path as a string (borrowed from `path`). */
const char *ctl_path_finish(rt_buf_t *path, const ctl_common_t *co);
/* Prints a failed HTTP answer the way the server put it: "rtctl: HTTP 403 forbidden: message". */
void ctl_print_http_error(const ctl_response_t *r, const rt_slice_t body);
/* A status worth retrying: 429, 502, 503, 504. */
bool ctl_status_retryable(int status);
/* A request for a one-shot command: retries with backoff (3 times) while the edge is unreachable,
 * and on 429/502/503/504 when `retry_status`; prints the failure (the server's error as it sent it).
 * Returns 0 with *r holding a 2xx response (dispose it), or CTL_EXIT_FAIL.  404 is returned as
 * CTL_EXIT_FAIL too, printed. */
int ctl_request(const ctl_url_t *url, const ctl_common_t *co, const char *method, const char *path,
                const char *ctype, rt_slice_t body, bool retry_status, ctl_response_t *r);
/* Writes one JSON value as a line on stdout and flushes; borrows v. */
void ctl_print_json(const json_t *v);

/* ---- subcommands (one file each) --------------------------------------------------- */

int ctl_cmd_health(int argc, char **argv);
int ctl_cmd_sub(int argc, char **argv);
int ctl_cmd_pub(int argc, char **argv);
int ctl_cmd_history(int argc, char **argv);
int ctl_cmd_token(int argc, char **argv);
int ctl_cmd_doc(int argc, char **argv);
/* sub --sse (sse.c): borrows everything. */
int ctl_sse_run(const ctl_url_t *url, const char *channel, const ctl_common_t *co, const char *since, uint64_t count);

#endif
