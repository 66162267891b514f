/*
 * sub.c: `rtctl sub URL CHANNEL`: subscribes over /ws and prints every frame
 * as one JSON line; reconnects with backoff when the connection drops and
 * resubscribes with `since` = the last offset seen, so nothing is lost or
 * repeated across drops.  With --sse the same runs over /sse/{ch} (sse.c).
 */
#include "rtctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Silence longer than this ends a connection: the edge pings every RT_HEARTBEAT (25 s by default). */
#define IDLE_MS 60000

static const char usage[] =
    "Usage: rtctl sub [OPTIONS] URL CHANNEL [--since N] [--presence] [--sse] [--count N]\n\n"
    "Subscribes to CHANNEL and prints each frame from the edge as one JSON line, until interrupted.\n"
    "  --since N     first every retained message with an offset greater than N, then live ones\n"
    "  --presence    ask for the presence snapshot (and see join/leave frames)\n"
    "  --sse         use Server-Sent Events (GET /sse/{ch}) instead of the WebSocket; each event\n"
    "                prints as {\"type\":\"message\",\"channel\":...,\"offset\":N,\"event\":...,\"data\":\"<text>\"}\n"
    "                (data as the text of its data: lines; no offset for ephemeral messages)\n"
    "  --count N     exit 0 after N channel messages\n"
    "When the connection drops, rtctl reconnects with backoff and resumes after the last offset it\n"
    "printed (since=, or Last-Event-ID with --sse), so nothing is missed or repeated.\n"
    "Errors from the server are printed on stderr; a refused subscription exits 1.\n\n" CTL_COMMON_HELP;

enum { OPT_SINCE = CTL_OPT_FIRST, OPT_PRESENCE, OPT_SSE, OPT_COUNT };

typedef struct sub {
    ctl_url_t url;
    ctl_common_t co;
    const char *channel;
    bool presence;
    bool have_since;
    uint64_t since; /* the last offset printed (or asked for) */
    uint64_t count; /* 0: no limit */
    uint64_t printed;
} sub_t;

/* What comes next: read on, reconnect (after a backoff), exit 0, exit 1. */
typedef enum { SUB_CONTINUE, SUB_RECONNECT, SUB_DONE, SUB_FAILED } sub_next_t;

/* Error codes worth a reconnect; the others (forbidden, bad_channel ...) will not change. */
static bool code_transient(const char *code)
{
    return code != NULL && (!strcmp(code, "unavailable") || !strcmp(code, "internal") || !strcmp(code, "rate_limited"));
}

static void send_subscribe(sub_t *s, ctl_ws_t *ws)
{
    json_t *req = json_pack("{s:s, s:s}", "type", "subscribe", "channel", s->channel);
    if (s->have_since)
        json_object_set_new(req, "since", json_integer((json_int_t)s->since));
    if (s->presence)
        json_object_set_new(req, "presence", json_true());
    char *text = json_dumps(req, JSON_COMPACT);
    ctl_ws_send_text(ws, text, strlen(text)); /* a failure shows as the connection ending */
    free(text);
    json_decref(req);
}

/* Prints a frame and follows the subscription's state. */
static sub_next_t on_frame(sub_t *s, rt_slice_t msg, bool *subscribed, ctl_backoff_t *backoff)
{
    json_error_t jerr;
    json_t *f = json_loadb((const char *)msg.data, msg.len, 0, &jerr);
    if (f == NULL) {
        fprintf(stdout, "%.*s\n", (int)msg.len, (const char *)msg.data);
        fflush(stdout);
        return SUB_CONTINUE;
    }
    ctl_print_json(f);
    const char *type = json_string_value(json_object_get(f, "type"));
    type = type != NULL ? type : "";
    const char *channel = json_string_value(json_object_get(f, "channel"));
    bool ours = channel != NULL && strcmp(channel, s->channel) == 0;
    json_t *offset = json_object_get(f, "offset");
    sub_next_t next = SUB_CONTINUE;
    if (!strcmp(type, "subscribed") && ours) {
        *subscribed = true;
        backoff->attempt = 0;
        if (!s->have_since && json_is_integer(offset)) { /* a reconnect resumes from here */
            s->since = (uint64_t)json_integer_value(offset);
            s->have_since = true;
        }
    } else if (!strcmp(type, "message") && ours) {
        if (json_is_integer(offset)) {
            s->since = (uint64_t)json_integer_value(offset);
            s->have_since = true;
        }
        if (s->count > 0 && ++s->printed >= s->count)
            next = SUB_DONE;
    } else if (!strcmp(type, "error")) {
        const char *code = json_string_value(json_object_get(f, "code"));
        const char *message = json_string_value(json_object_get(f, "message"));
        fprintf(stderr, "rtctl: server error %s: %s\n", code ? code : "?", message ? message : "");
        if (!*subscribed)
            next = code_transient(code) ? SUB_RECONNECT : SUB_FAILED;
    }
    json_decref(f);
    return next;
}

/* Prints why the upgrade was refused; true if trying again may help. */
static bool report_refused(ctl_response_t *r)
{
    ctl_print_http_error(r, (rt_slice_t){r->body.data, r->body.len});
    bool retry = ctl_status_retryable(r->status);
    ctl_response_dispose(r);
    return retry;
}

/* Says why the connection ended (ctl_ws_next's err) and what comes next. */
static sub_next_t connection_ended(const ctl_ws_t *ws, int err)
{
    if (err == RT_ESTATE)
        return SUB_DONE;
    if (err == RT_ETIMEOUT) {
        fprintf(stderr, "rtctl: nothing from the edge for %d s\n", IDLE_MS / 1000);
        return SUB_RECONNECT;
    }
    const char *reason;
    int code = ctl_ws_close_info(ws, &reason);
    if (code != 0)
        fprintf(stderr, "rtctl: connection closed by the edge: %d %s\n", code, reason);
    else
        fprintf(stderr, "rtctl: connection lost\n");
    return code == 4001 ? SUB_FAILED : SUB_RECONNECT; /* 4001: the token expired, a reconnect cannot help */
}

/* One connection: connect, subscribe, print frames until it ends. */
static sub_next_t session(sub_t *s, ctl_backoff_t *backoff)
{
    rt_buf_t path = {0};
    rt_buf_append_str(&path, "/ws");
    ctl_ws_t *ws = NULL;
    ctl_response_t refused;
    char error[128];
    const char *target = ctl_path_finish(&path, &s->co);
    int err = ctl_ws_connect(&s->url, target, s->co.token, s->co.timeout_ms, &ws, &refused, error);
    rt_buf_dispose(&path);
    if (err == RT_EINVAL)
        return report_refused(&refused) ? SUB_RECONNECT : SUB_FAILED;
    if (err != 0) {
        fprintf(stderr, "rtctl: %s\n", error);
        return ctl_stop ? SUB_DONE : SUB_RECONNECT;
    }
    send_subscribe(s, ws);
    bool subscribed = false;
    sub_next_t next = SUB_CONTINUE;
    rt_slice_t msg;
    while (next == SUB_CONTINUE && (err = ctl_ws_next(ws, &msg, IDLE_MS)) == 0)
        next = on_frame(s, msg, &subscribed, backoff);
    if (next == SUB_CONTINUE)
        next = connection_ended(ws, err);
    ctl_ws_destroy(ws);
    return next;
}

static int run_ws(sub_t *s)
{
    ctl_backoff_t backoff = {0};
    for (;;) {
        sub_next_t next = session(s, &backoff);
        if (next == SUB_DONE || ctl_stop)
            return CTL_EXIT_OK;
        if (next == SUB_FAILED)
            return CTL_EXIT_FAIL;
        int ms = ctl_backoff_next_ms(&backoff);
        if (s->have_since)
            fprintf(stderr, "rtctl: reconnecting in %d ms, since %llu\n", ms, (unsigned long long)s->since);
        else
            fprintf(stderr, "rtctl: reconnecting in %d ms\n", ms);
        if (ctl_sleep_ms(ms) < 0)
            return CTL_EXIT_OK;
    }
}

int ctl_cmd_sub(int argc, char **argv)
{
    static const struct option options[] = {CTL_COMMON_OPTIONS,
                                            {"since", required_argument, NULL, OPT_SINCE},
                                            {"presence", no_argument, NULL, OPT_PRESENCE},
                                            {"sse", no_argument, NULL, OPT_SSE},
                                            {"count", required_argument, NULL, OPT_COUNT},
                                            {0}};
    sub_t s = {0};
    ctl_common_init(&s.co);
    bool sse = false;
    const char *since_text = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int r = ctl_common_option(&s.co, opt, optarg, usage);
        if (r < 0)
            return CTL_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case OPT_SINCE:
            if (ctl_parse_u64(optarg, &s.since) != 0)
                return ctl_usage_error("sub", "--since expects an offset, not '%s'", optarg);
            s.have_since = true;
            since_text = optarg;
            break;
        case OPT_PRESENCE:
            s.presence = true;
            break;
        case OPT_SSE:
            sse = true;
            break;
        case OPT_COUNT:
            if (ctl_parse_u64(optarg, &s.count) != 0)
                return ctl_usage_error("sub", "--count expects a number, not '%s'", optarg);
            break;
        default:
            return ctl_usage_error("sub", "bad option");
        }
    }
    if (argc - optind != 2)
        return ctl_usage_error("sub", "expected URL CHANNEL");
    if (ctl_url_parse(argv[optind], &s.url) != 0)
        return ctl_usage_error("sub", "bad URL '%s'", argv[optind]);
    s.channel = argv[optind + 1];
    if (sse && s.presence)
        return ctl_usage_error("sub", "--presence needs the WebSocket (no --sse)");
    if (sse)
        return ctl_sse_run(&s.url, s.channel, &s.co, since_text, s.count);
    return run_ws(&s);
}
