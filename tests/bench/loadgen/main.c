/*
 * main.c: rt-loadgen, the WebSocket load generator of `make bench`.
 *
 * One thread, one epoll loop.  Opens N subscriber connections round-robin
 * over a list of ws:// URLs (at most --open-concurrency handshakes in flight,
 * so the servers' accept queues are never overrun) and subscribes each to one
 * channel.  Then, in mode
 *   fanout: one more connection publishes R ephemeral messages per second for
 *           D seconds; each carries "<seq>:<send CLOCK_MONOTONIC ns>:<pad>",
 *           so receivers measure publish-to-receive latency and detect loss,
 *           duplicates and reordering per subscriber;
 *   idle:   the connections are held for T seconds (or until SIGUSR1);
 *   sse:    fanout to SSE readers (--urls http://host:port/sse/CH) from an HTTP
 *           publisher (--pub-url http://host:port/v1/channels/CH/publish) that
 *           POSTs R ephemeral "token" events per second;
 *   durable: every connection publishes durable messages (with ids) in a
 *           closed loop for D seconds, the next when the previous is acked:
 *           acks/s and publish-to-ack latency;
 *   churn:  an observer (--pub-url, another edge) subscribes with presence;
 *           R times a second a connection opens, subscribes, is held --hold s
 *           and closes (at most --conns at once): subscribe-to-`join` latency
 *           as the observer sees it.
 * The servers named by --pids are sampled from /proc at the start and the end
 * of the measurement window (CPU ticks, read/write syscalls, RSS).
 *
 * A ws:// URL whose path starts with /socket.io/ is a Socket.IO 4 server
 * (tests/bench/peers/socketio-server.mjs): the same JSON objects travel as
 * the event "rt" (`42["rt",{...}]`) after the Engine.IO open and connect.
 *
 * Output: one JSON line on stdout, a human summary on stderr.
 */
#include "lg.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_URLS 16

typedef enum { PH_SETUP, PH_SETTLE, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE } phase_t;

typedef struct opts {
    const char *mode;
    const char *urls;
    const char *pub_url;
    const char *channel;
    const char *pids;
    const char *aux_pids;
    const char *ready_file;
    const char *start_file;
    const char *label;
    long conns;
    double rate;
    double duration;
    long size;
    double drain;
    double settle;
    double hold;
    long open_concurrency;
    long group;
    int server_core;
    bool channel_per_conn;
    double setup_timeout;
    double interval;
} opts_t;

/* The whole state of a run; one per process. */
static struct {
    opts_t o;
    bool fanout; /* fanout or sse */
    bool durable;
    bool churn;
    long nchan; /* fanout --group: channels the messages go round-robin to */
    int epfd;
    int tfd;
    lg_url_t urls[MAX_URLS];
    int nurls;
    lg_url_t pub_url;
    lg_conn_t *conns; /* subscribers, then the publisher at index o.conns */
    lg_conn_t *pub;
    lg_proc_t *procs;
    int nprocs;
    phase_t phase;
    long opened, inflight, ready, failed, closed_late;
    uint64_t total_msgs, sent;
    uint64_t t_setup0, t_ready, t_phase, t_phase_run, t_first_send, t_last_send, t_last_recv, t_end;
    uint64_t delivered, expected_live, dups, reorders, bogus, acks, errors, other;
    uint64_t echoes, churns, churn_busy, joins, joins_unmatched, leaves, next_slot;
    lg_hist_t hist;      /* publish to arrival in the subscriber's socket */
    lg_hist_t hist_read; /* publish to read by the generator */
    lg_hist_t whist;     /* fanout --interval: this window's latencies */
    uint64_t t_window, window_delivered;
    struct rusage ru_before, ru_after;
    uint64_t core_before, core_after;
    int gen_core; /* the generator's core when pinned to one, else -1 */
    uint64_t gen_core_before, gen_core_after;
    rt_buf_t msg;
} g;

static volatile sig_atomic_t stop_hold, interrupted;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        stop_hold = 1;
    else
        interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rt-loadgen [options]\n"
               "  --mode fanout|idle|sse|durable|churn (fanout)\n"
               "  --urls URL[,URL...]        subscribers spread round-robin\n"
               "                             (ws://127.0.0.1:8080/ws,ws://127.0.0.1:8081/ws)\n"
               "  --pub-url URL              publisher's server (the first of --urls)\n"
               "  --conns N                  subscriber connections (1000); at most ~19,980 per\n"
               "                             process with the fd cap of 20,000: split over processes\n"
               "  --channel NAME             (bench)\n"
               "  --channel-per-conn         idle: subscribe connection i to NAME-i instead (no\n"
               "                             join/leave traffic among thousands of members)\n"
               "  --interval S               fanout: also print a JSON line every S s of the run\n"
               "                             (that window's deliveries and latency, the servers' RSS)\n"
               "  --group G                  fanout: connection i subscribes to NAME-(i/G) and\n"
               "                             message k goes to NAME-(k mod channels): many channels\n"
               "  --rate R                   fanout: messages per second (50)\n"
               "  --duration D               fanout: seconds of publishing (10)\n"
               "  --size B                   fanout: bytes of each message's data string (100)\n"
               "  --drain S                  fanout: max seconds to wait for stragglers (3)\n"
               "  --settle S                 seconds between setup and measurement (1)\n"
               "  --hold T                   idle: seconds to hold the connections (10);\n"
               "                             churn: seconds each connection is held\n"
               "                             SIGUSR1 ends the hold early\n"
               "  --open-concurrency K       handshakes in flight during setup (200)\n"
               "  --setup-timeout S          (120)\n"
               "  --pids NAME:PID,...        server processes to sample from /proc (their CPU,\n"
               "                             syscalls and RSS are summed into the server totals)\n"
               "  --aux-pids NAME:PID,...    more processes to sample, reported but not summed\n"
               "  --server-core N            the servers' core: report (and warn about) the CPU\n"
               "                             time other processes took on it during the window\n"
               "  --ready-file PATH          created once every connection is subscribed\n"
               "  --start-file PATH          once subscribed, wait for PATH to exist before the\n"
               "                             settle time (generators of one run start together)\n"
               "  --label STR                copied into the JSON line\n"
               "Output: one JSON line on stdout, a summary on stderr.  Exit 1 if setup failed.\n");
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.mode = "fanout",
                  .urls = "ws://127.0.0.1:8080/ws,ws://127.0.0.1:8081/ws",
                  .channel = "bench",
                  .label = "",
                  .conns = 1000,
                  .rate = 50,
                  .duration = 10,
                  .size = 100,
                  .drain = 3,
                  .settle = 1,
                  .hold = 10,
                  .open_concurrency = 200,
                  .server_core = -1,
                  .setup_timeout = 120};
    static const struct option lo[] = {{"mode", 1, 0, 'm'},        {"urls", 1, 0, 'u'},
                                       {"pub-url", 1, 0, 'P'},     {"conns", 1, 0, 'n'},
                                       {"channel", 1, 0, 'c'},     {"rate", 1, 0, 'r'},
                                       {"duration", 1, 0, 'd'},    {"size", 1, 0, 's'},
                                       {"drain", 1, 0, 'D'},       {"settle", 1, 0, 'S'},
                                       {"hold", 1, 0, 'H'},        {"open-concurrency", 1, 0, 'k'},
                                       {"pids", 1, 0, 'p'},        {"aux-pids", 1, 0, 'a'},
                                       {"server-core", 1, 0, 'C'}, {"channel-per-conn", 0, 0, 'X'},
                                       {"ready-file", 1, 0, 'R'},  {"start-file", 1, 0, 'W'},
                                       {"label", 1, 0, 'l'},       {"setup-timeout", 1, 0, 'T'},
                                       {"group", 1, 0, 'G'},       {"interval", 1, 0, 'I'},
                                       {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': o->mode = optarg; break;
        case 'u': o->urls = optarg; break;
        case 'P': o->pub_url = optarg; break;
        case 'n': o->conns = atol(optarg); break;
        case 'c': o->channel = optarg; break;
        case 'r': o->rate = atof(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 's': o->size = atol(optarg); break;
        case 'D': o->drain = atof(optarg); break;
        case 'S': o->settle = atof(optarg); break;
        case 'H': o->hold = atof(optarg); break;
        case 'k': o->open_concurrency = atol(optarg); break;
        case 'p': o->pids = optarg; break;
        case 'a': o->aux_pids = optarg; break;
        case 'C': o->server_core = atoi(optarg); break;
        case 'X': o->channel_per_conn = true; break;
        case 'R': o->ready_file = optarg; break;
        case 'W': o->start_file = optarg; break;
        case 'l': o->label = optarg; break;
        case 'T': o->setup_timeout = atof(optarg); break;
        case 'G': o->group = atol(optarg); break;
        case 'I': o->interval = atof(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: return RT_EINVAL;
        }
    }
    if (optind != argc || o->conns < 1 || o->open_concurrency < 1 || o->size < 40 || o->size > 60000 ||
        (strcmp(o->mode, "fanout") != 0 && strcmp(o->mode, "idle") != 0 && strcmp(o->mode, "sse") != 0 &&
         strcmp(o->mode, "durable") != 0 && strcmp(o->mode, "churn") != 0) ||
        (strcmp(o->mode, "idle") != 0 && (o->rate <= 0 || o->duration <= 0)) ||
        ((strcmp(o->mode, "fanout") == 0 || strcmp(o->mode, "sse") == 0) && o->channel_per_conn))
        return RT_EINVAL;
    return 0;
}

static int parse_urls(void)
{
    char *list = rt_xstrdup(g.o.urls), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (g.nurls == MAX_URLS || lg_url_parse(tok, &g.urls[g.nurls]) != 0) {
            fprintf(stderr, "rt-loadgen: bad url %s\n", tok);
            rc = RT_EINVAL;
            break;
        }
        g.nurls++;
    }
    free(list);
    if (rc == 0 && g.nurls == 0)
        rc = RT_EINVAL;
    if (rc == 0)
        rc = g.o.pub_url ? lg_url_parse(g.o.pub_url, &g.pub_url) : (g.pub_url = g.urls[0], 0);
    return rc;
}

static int raise_fd_limit(long need)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)need > rl.rlim_cur) {
        fprintf(stderr, "rt-loadgen: %ld fds needed, the limit is %llu: split the connections over processes\n", need,
                (unsigned long long)rl.rlim_cur);
        return RT_ETOOBIG;
    }
    return 0;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void sample_procs(bool after)
{
    for (int i = 0; i < g.nprocs; i++) {
        lg_proc_sample_t *s = after ? &g.procs[i].after : &g.procs[i].before;
        if (lg_proc_sample(g.procs[i].pid, s) != 0)
            fprintf(stderr, "rt-loadgen: cannot sample %s (pid %d)\n", g.procs[i].name, (int)g.procs[i].pid);
    }
    getrusage(RUSAGE_SELF, after ? &g.ru_after : &g.ru_before);
    if (g.o.server_core >= 0)
        lg_core_busy(g.o.server_core, after ? &g.core_after : &g.core_before);
    if (g.gen_core >= 0)
        lg_core_busy(g.gen_core, after ? &g.gen_core_after : &g.gen_core_before);
}

static int pinned_core(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            return i;
    return -1;
}

/* Reports the CPU time that processes other than `own` took on a core during the window. */
static void report_core(rt_buf_t *j, const char *key, int core, uint64_t before, uint64_t after, double own)
{
    double busy = (double)(after - before) / lg_clk_tck(), other = busy - own;
    double window = secs(g.t_end - g.t_phase_run);
    rt_buf_printf(j, "\"%s\":%d,\"%s_busy_s\":%.2f,\"%s_other_s\":%.2f,", key, core, key, busy, key, other);
    if (other > 0.05 * window)
        fprintf(stderr,
                "  WARNING: other processes used %.2f s of core %d (%s) during the %.1f s window: "
                "the figures are perturbed\n",
                other, core, key, window);
}

/* ---- the scenario's side of the connections -------------------------------- */

/* Finds "key" : "value" in a frame we know the shape of (not a general JSON parser). */
static bool json_str(const uint8_t *p, size_t n, const char *key, const uint8_t **v, size_t *vl)
{
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "\"%s\"", key);
    const uint8_t *k = memmem(p, n, pat, (size_t)pl);
    if (k == NULL)
        return false;
    const uint8_t *q = k + pl, *end = p + n;
    while (q < end && (*q == ' ' || *q == ':' || *q == '\t'))
        q++;
    if (q >= end || *q != '"')
        return false;
    q++;
    const uint8_t *quote = memchr(q, '"', (size_t)(end - q));
    if (quote == NULL)
        return false;
    *v = q;
    *vl = (size_t)(quote - q);
    return true;
}

static bool str_is(const uint8_t *v, size_t vl, const char *s)
{
    return vl == strlen(s) && memcmp(v, s, vl) == 0;
}

static uint64_t parse_u64(const uint8_t **p, const uint8_t *end, bool *ok)
{
    uint64_t x = 0;
    const uint8_t *q = *p;
    while (q < end && *q >= '0' && *q <= '9')
        x = x * 10 + (uint64_t)(*q++ - '0');
    *ok = q > *p && q < end && *q == ':';
    *p = q + 1;
    return x;
}

static void on_delivery(lg_conn_t *c, const uint8_t *d, size_t dl, const lg_rx_t *rx)
{
    const uint8_t *p = d, *end = d + dl;
    bool ok1, ok2;
    uint64_t seq = parse_u64(&p, end, &ok1);
    uint64_t ts = parse_u64(&p, end, &ok2);
    if (!ok1 || !ok2 || seq >= g.total_msgs || c->seen == NULL) {
        g.bogus++;
        return;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (c->seen[seq >> 3] & bit) {
        g.dups++;
        return;
    }
    c->seen[seq >> 3] |= bit;
    if (seq + 1 < c->last_seq)
        g.reorders++;
    c->last_seq = seq + 1;
    c->received++;
    g.delivered++;
    g.t_last_recv = rx->read_ns;
    lg_hist_record(&g.hist, rx->arrival_ns > ts ? rx->arrival_ns - ts : 0);
    if (g.o.interval > 0)
        lg_hist_record(&g.whist, rx->arrival_ns > ts ? rx->arrival_ns - ts : 0);
    lg_hist_record(&g.hist_read, rx->read_ns > ts ? rx->read_ns - ts : 0);
}

static void send_durable(lg_conn_t *c);

static void on_durable_ack(lg_conn_t *c, const lg_rx_t *rx)
{
    if (c->t_sent == 0) {
        g.bogus++;
        return;
    }
    g.acks++;
    lg_hist_record(&g.hist, rx->arrival_ns > c->t_sent ? rx->arrival_ns - c->t_sent : 0);
    lg_hist_record(&g.hist_read, rx->read_ns > c->t_sent ? rx->read_ns - c->t_sent : 0);
    g.t_last_recv = rx->read_ns;
    c->t_sent = 0;
    if (g.phase == PH_RUN)
        send_durable(c);
}

/* The observer saw a member join or leave: a join of one of our churning
 * connections gives the subscribe-to-join latency. */
static void on_presence_event(bool join, const uint8_t *data, size_t len, const lg_rx_t *rx)
{
    const uint8_t *v;
    size_t vl;
    if (!join) {
        g.leaves++;
        return;
    }
    if (!json_str(data, len, "conn", &v, &vl) || g.phase == PH_SETUP || g.phase == PH_SETTLE)
        return;
    for (long i = 0; i < g.o.conns; i++) {
        lg_conn_t *c = &g.conns[i];
        if (c->t_sent != 0 && !c->flag && str_is(v, vl, c->connid)) {
            c->flag = true;
            g.joins++;
            lg_hist_record(&g.hist, rx->arrival_ns > c->t_sent ? rx->arrival_ns - c->t_sent : 0);
            lg_hist_record(&g.hist_read, rx->read_ns > c->t_sent ? rx->read_ns - c->t_sent : 0);
            g.t_last_recv = rx->read_ns;
            return;
        }
    }
    g.joins_unmatched++;
}

void lg_on_sse_data(lg_conn_t *c, const uint8_t *data, size_t len, const lg_rx_t *rx)
{
    on_delivery(c, data, len, rx);
}

void lg_on_http_status(lg_conn_t *c, int status)
{
    (void)c;
    if (status == 200)
        g.acks++;
    else if (g.errors++ < 5)
        fprintf(stderr, "rt-loadgen: the publisher got HTTP %d\n", status);
}

static void on_open(lg_conn_t *c);

/* Engine.IO / Socket.IO control packets; returns true if data was one. */
static bool on_eio_packet(lg_conn_t *c, const uint8_t *data, size_t len)
{
    if (len >= 1 && data[0] == '0') { /* Engine.IO open: connect to the main namespace */
        lg_conn_send_text(c, g.epfd, "40", 2);
    } else if (len == 1 && data[0] == '2') { /* ping */
        lg_conn_send_text(c, g.epfd, "3", 1);
    } else if (len >= 2 && data[0] == '4' && data[1] == '0') { /* namespace connected */
        if (c->state == LG_OPEN)
            on_open(c);
    } else if (len >= 2 && data[0] == '4' && data[1] == '2') {
        return false;
    } else {
        g.other++;
    }
    return true;
}

void lg_on_text(lg_conn_t *c, const uint8_t *data, size_t len, const lg_rx_t *rx)
{
    const uint8_t *v;
    size_t vl;
    if (c->url->eio && on_eio_packet(c, data, len))
        return;
    if (!json_str(data, len, "type", &v, &vl)) {
        g.other++;
        return;
    }
    if (g.churn && c == g.pub && (str_is(v, vl, "join") || str_is(v, vl, "leave"))) {
        on_presence_event(str_is(v, vl, "join"), data, len, rx);
    } else if (str_is(v, vl, "welcome")) {
        if (json_str(data, len, "conn", &v, &vl) && vl < sizeof c->connid) {
            memcpy(c->connid, v, vl);
            c->connid[vl] = '\0';
        }
    } else if (str_is(v, vl, "message") && g.durable) {
        g.echoes++;
    } else if (str_is(v, vl, "message")) {
        if (json_str(data, len, "data", &v, &vl))
            on_delivery(c, v, vl, rx);
        else
            g.bogus++;
    } else if (str_is(v, vl, "subscribed")) {
        if (c->state == LG_SUBSCRIBING) {
            c->state = LG_READY;
            c->t_mark = rx->read_ns;
            if (!g.churn || c == g.pub) {
                g.ready++;
                g.inflight--;
            }
        }
    } else if (str_is(v, vl, "ack")) {
        if (g.durable)
            on_durable_ack(c, rx);
        else
            g.acks++;
    } else if (str_is(v, vl, "error")) {
        if (g.errors++ < 5)
            fprintf(stderr, "rt-loadgen: server error: %.*s\n", (int)(len > 300 ? 300 : len), (const char *)data);
    } else {
        g.other++;
    }
}

/* Sends one JSON object of the protocol, wrapped as a Socket.IO event for Socket.IO. */
static void send_json(lg_conn_t *c, const void *json, size_t len)
{
    if (!c->url->eio) {
        lg_conn_send_text(c, g.epfd, json, len);
        return;
    }
    rt_buf_t m = {0};
    rt_buf_append_str(&m, "42[\"rt\",");
    rt_buf_append(&m, json, len);
    rt_buf_append_byte(&m, ']');
    lg_conn_send_text(c, g.epfd, m.data, m.len);
    rt_buf_dispose(&m);
}

/* The channel connection c subscribes to (and, durable, publishes to). */
static void channel_of(const lg_conn_t *c, char *out, size_t cap)
{
    if (g.o.channel_per_conn && c != g.pub)
        snprintf(out, cap, "%s-%ld", g.o.channel, (long)(c - g.conns));
    else if (g.o.group > 0 && c != g.pub)
        snprintf(out, cap, "%s-%ld", g.o.channel, (long)(c - g.conns) / g.o.group);
    else
        snprintf(out, cap, "%s", g.o.channel);
}

/* The connection is open (for Socket.IO: connected to the namespace): a
 * publisher is ready, a subscriber subscribes. */
static void on_open(lg_conn_t *c)
{
    if (c->publisher) {
        c->state = LG_READY;
        return;
    }
    if (c->url->http) { /* an SSE reader: subscribed by its request */
        c->state = LG_READY;
        g.ready++;
        g.inflight--;
        return;
    }
    char sub[240], ch[180];
    channel_of(c, ch, sizeof ch);
    int n = snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"channel\":\"%s\"%s}", ch,
                     g.churn && c == g.pub ? ",\"presence\":true" : "");
    c->state = LG_SUBSCRIBING;
    if (g.churn && c != g.pub)
        c->t_sent = rt_now_mono_ns();
    send_json(c, sub, (size_t)n);
}

void lg_on_state(lg_conn_t *c, lg_state_t old)
{
    if (c->state == LG_OPEN) {
        if (!c->url->eio)
            on_open(c);
    } else if (c->state == LG_CLOSED && g.churn && c != g.pub) {
        if (old != LG_READY && g.phase != PH_DONE)
            g.failed++;
    } else if (c->state == LG_CLOSED && g.phase != PH_DONE) {
        if (c->publisher) {
            if (g.phase != PH_SETUP)
                fprintf(stderr, "rt-loadgen: the publisher's connection closed\n");
        } else if (old == LG_READY) {
            g.closed_late++;
        } else {
            g.failed++;
            g.inflight--;
        }
    }
}

/* ---- phases ----------------------------------------------------------------- */

static void open_more(void)
{
    while (g.opened < g.o.conns && g.inflight < g.o.open_concurrency) {
        lg_conn_t *c = &g.conns[g.opened];
        const lg_url_t *url = &g.urls[g.opened % g.nurls];
        g.opened++;
        g.inflight++;
        if (lg_conn_open(c, g.epfd, url) != 0 && g.failed == 1)
            perror("rt-loadgen: connect");
    }
}

static void arm_timer(double interval_s)
{
    uint64_t ns = (uint64_t)(interval_s * 1e9);
    if (ns == 0)
        ns = 1;
    struct itimerspec its = {.it_interval = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)}};
    its.it_value = its.it_interval;
    timerfd_settime(g.tfd, 0, &its, NULL);
}

/* Appends 'x' to m until the data that started at data_start is g.o.size bytes. */
static void pad_to_size(rt_buf_t *m, size_t data_start)
{
    size_t data_len = m->len - data_start;
    if (data_len < (size_t)g.o.size) {
        memset(rt_buf_reserve(m, (size_t)g.o.size - data_len), 'x', (size_t)g.o.size - data_len);
        m->len += (size_t)g.o.size - data_len;
    }
}

static void send_durable(lg_conn_t *c)
{
    char ch[180];
    channel_of(c, ch, sizeof ch);
    rt_buf_t *m = &g.msg;
    m->len = 0;
    c->last_seq++;
    rt_buf_printf(m, "{\"type\":\"publish\",\"channel\":\"%s\",\"id\":\"%ld-%llu\",\"data\":\"", ch,
                  (long)(c - g.conns), (unsigned long long)c->last_seq);
    pad_to_size(m, m->len);
    rt_buf_append_str(m, "\"}");
    c->t_sent = rt_now_mono_ns();
    if (g.sent == 0)
        g.t_first_send = c->t_sent;
    g.sent++;
    send_json(c, m->data, m->len);
}

/* Durable and churn runs: the timer only checks the clock (durable) or
 * opens and closes connections (churn). */
static void start_closed_loop(uint64_t now)
{
    sample_procs(false);
    g.phase = PH_RUN;
    g.t_phase = now;
    g.t_phase_run = now;
    if (g.durable) {
        arm_timer(0.01);
        for (long i = 0; i < g.o.conns; i++)
            if (g.conns[i].state == LG_READY)
                send_durable(&g.conns[i]);
    } else {
        g.total_msgs = (uint64_t)llround(g.o.rate * g.o.duration);
        arm_timer(1.0 / g.o.rate < 0.01 ? 1.0 / g.o.rate : 0.01);
    }
}

static void start_run(uint64_t now)
{
    if (g.durable || g.churn) {
        start_closed_loop(now);
        return;
    }
    g.total_msgs = (uint64_t)llround(g.o.rate * g.o.duration);
    size_t bytes = (size_t)(g.total_msgs + 7) / 8;
    for (long i = 0; i < g.o.conns; i++)
        if (g.conns[i].state == LG_READY)
            g.conns[i].seen = rt_xcalloc(1, bytes);
    sample_procs(false);
    g.phase = PH_RUN;
    g.t_phase = now;
    g.t_phase_run = now;
    arm_timer(1.0 / g.o.rate);
}

/* An HTTP publisher's POST of one ephemeral token event. */
static void post_one(uint64_t seq, uint64_t ts)
{
    rt_buf_t body = {0};
    rt_buf_printf(&body, "{\"event\":\"token\",\"ephemeral\":true,\"data\":\"%llu:%llu:", (unsigned long long)seq,
                  (unsigned long long)ts);
    pad_to_size(&body, strlen("{\"event\":\"token\",\"ephemeral\":true,\"data\":\""));
    rt_buf_append_str(&body, "\"}");
    rt_buf_t *m = &g.msg;
    m->len = 0;
    rt_buf_printf(m, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                  g.pub_url.path, g.pub_url.hostport, body.len);
    rt_buf_append(m, body.data, body.len);
    rt_buf_dispose(&body);
    lg_conn_send_raw(g.pub, g.epfd, m->data, m->len);
}

static void publish_one(uint64_t seq)
{
    uint64_t ts = rt_now_mono_ns();
    if (g.sent == 0)
        g.t_first_send = ts;
    g.t_last_send = ts;
    g.sent++;
    if (g.pub_url.http) {
        post_one(seq, ts);
        return;
    }
    rt_buf_t *m = &g.msg;
    m->len = 0;
    char ch[180];
    if (g.o.group > 0)
        snprintf(ch, sizeof ch, "%s-%llu", g.o.channel, (unsigned long long)(seq % (uint64_t)g.nchan));
    else
        snprintf(ch, sizeof ch, "%s", g.o.channel);
    rt_buf_printf(m, "{\"type\":\"publish\",\"channel\":\"%s\",\"ephemeral\":true,\"data\":\"%llu:%llu:", ch,
                  (unsigned long long)seq, (unsigned long long)ts);
    pad_to_size(m, strlen("{\"type\":\"publish\",\"channel\":\"\",\"ephemeral\":true,\"data\":\"") + strlen(ch));
    rt_buf_append_str(m, "\"}");
    send_json(g.pub, m->data, m->len);
}

/* Churn: opens the connections due by now (into free slots) and closes those held long enough. */
static void churn_tick(uint64_t now)
{
    uint64_t hold = (uint64_t)(g.o.hold * 1e9);
    for (long i = 0; i < g.o.conns; i++) {
        lg_conn_t *c = &g.conns[i];
        if (c->state == LG_READY && now - c->t_mark >= hold)
            lg_conn_close(c, g.epfd);
    }
    uint64_t due = (uint64_t)((double)(now - g.t_phase) * g.o.rate / 1e9) + 1;
    if (due > g.total_msgs)
        due = g.total_msgs;
    while (g.churns + g.churn_busy < due) {
        lg_conn_t *c = NULL;
        for (long k = 0; k < g.o.conns && c == NULL; k++) {
            lg_conn_t *s = &g.conns[(g.next_slot + (uint64_t)k) % (uint64_t)g.o.conns];
            if (s->state == LG_IDLE || s->state == LG_CLOSED)
                c = s;
        }
        if (c == NULL) {
            g.churn_busy++; /* every slot still in use: the server is behind */
            continue;
        }
        g.next_slot = (uint64_t)(c - g.conns) + 1;
        c->t_sent = 0;
        c->flag = false;
        c->connid[0] = '\0';
        g.churns++;
        lg_conn_open(c, g.epfd, &g.urls[g.churns % (uint64_t)g.nurls]);
    }
    if (g.churns + g.churn_busy >= g.total_msgs) {
        g.phase = PH_DRAIN;
        g.t_phase = now;
    }
}

/* Churn: joins still expected (subscribed or subscribing, not seen yet). */
static long churn_pending(void)
{
    long n = 0;
    for (long i = 0; i < g.o.conns; i++)
        n += g.conns[i].t_sent != 0 && !g.conns[i].flag && g.conns[i].state != LG_CLOSED;
    return n;
}

static long durable_pending(void)
{
    long n = 0;
    for (long i = 0; i < g.o.conns; i++)
        n += g.conns[i].t_sent != 0 && g.conns[i].state == LG_READY;
    return n;
}

/* fanout --interval: one JSON line for the window that just ended (a soak's sample). */
static void report_window(uint64_t now)
{
    uint64_t rss = 0;
    for (int i = 0; i < g.nprocs; i++) {
        lg_proc_sample_t ps;
        if (!g.procs[i].aux && lg_proc_sample(g.procs[i].pid, &ps) == 0)
            rss += ps.rss_kb;
    }
    double span = secs(now - g.t_window);
    printf("{\"window\":true,\"label\":\"%s\",\"t_s\":%.1f,\"ready\":%ld,\"closed_during_run\":%ld,"
           "\"delivered\":%llu,\"deliveries_per_s\":%.0f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,"
           "\"lat_max_us\":%.1f,\"server_rss_kb\":%llu}\n",
           g.o.label, secs(now - g.t_phase_run), g.ready, g.closed_late,
           (unsigned long long)(g.delivered - g.window_delivered),
           span > 0 ? (double)(g.delivered - g.window_delivered) / span : 0, lg_hist_quantile(&g.whist, 0.5) / 1e3,
           lg_hist_quantile(&g.whist, 0.99) / 1e3, g.whist.max / 1e3, (unsigned long long)rss);
    fflush(stdout);
    memset(&g.whist, 0, sizeof g.whist);
    g.window_delivered = g.delivered;
    g.t_window = now;
}

static void on_tick(uint64_t now)
{
    uint64_t exp;
    if (read(g.tfd, &exp, sizeof exp) < 0)
        return;
    if (g.phase != PH_RUN)
        return;
    if (g.churn) {
        churn_tick(now);
        return;
    }
    if (g.o.interval > 0 && g.t_window == 0)
        g.t_window = g.t_phase_run;
    if (g.o.interval > 0 && now - g.t_window >= (uint64_t)(g.o.interval * 1e9))
        report_window(now);
    if (g.durable) {
        if (now - g.t_phase >= (uint64_t)(g.o.duration * 1e9)) {
            g.phase = PH_DRAIN;
            g.t_phase = now;
        }
        return;
    }
    uint64_t due = (uint64_t)((double)(now - g.t_phase) * g.o.rate / 1e9) + 1;
    if (due > g.total_msgs)
        due = g.total_msgs;
    while (g.sent < due)
        publish_one(g.sent);
    if (g.sent == g.total_msgs) {
        g.phase = PH_DRAIN;
        g.t_phase = now;
        arm_timer(0.01);
    }
}

static void finish(uint64_t now)
{
    g.t_end = now;
    sample_procs(true);
    g.phase = PH_DONE;
}

static long live_subscribers(void)
{
    long n = 0;
    for (long i = 0; i < g.o.conns; i++)
        n += g.conns[i].seen != NULL;
    return n;
}

/* Moves the phases on; called after every loop iteration. */
static void advance(uint64_t now)
{
    switch (g.phase) {
    case PH_SETUP:
        if (g.churn) { /* only the observer is set up */
            if (g.pub->state == LG_IDLE)
                lg_conn_open(g.pub, g.epfd, &g.pub_url);
            if (g.pub->state == LG_CLOSED) {
                fprintf(stderr, "rt-loadgen: the observer could not subscribe\n");
                finish(now);
            } else if (g.pub->state == LG_READY) {
                g.t_ready = now;
                g.phase = PH_SETTLE;
                g.t_phase = now;
            }
            break;
        }
        open_more();
        if (g.ready + g.failed < g.o.conns)
            break;
        if (g.ready == 0) {
            fprintf(stderr, "rt-loadgen: no connection could subscribe (%ld failed)\n", g.failed);
            finish(now);
            break;
        }
        if (g.fanout && g.pub->state == LG_IDLE) {
            g.pub->publisher = true;
            lg_conn_open(g.pub, g.epfd, &g.pub_url);
            break;
        }
        if (g.fanout && g.pub->state != LG_READY) {
            if (g.pub->state == LG_CLOSED) {
                fprintf(stderr, "rt-loadgen: the publisher could not connect\n");
                finish(now);
            }
            break;
        }
        g.t_ready = now;
        fprintf(stderr, "rt-loadgen: %ld/%ld subscribed in %.2f s (%ld failed)\n", g.ready, g.o.conns,
                secs(now - g.t_setup0), g.failed);
        if (g.o.ready_file) {
            FILE *f = fopen(g.o.ready_file, "w");
            if (f)
                fclose(f);
        }
        g.phase = PH_SETTLE;
        g.t_phase = now;
        break;
    case PH_SETTLE:
        if (g.o.start_file != NULL && access(g.o.start_file, F_OK) != 0) {
            g.t_phase = now; /* the settle time counts from the start signal */
            break;
        }
        if (now - g.t_phase < (uint64_t)(g.o.settle * 1e9))
            break;
        if (g.fanout || g.durable || g.churn) {
            start_run(now);
        } else {
            g.phase = PH_HOLD;
            g.t_phase = now;
        }
        break;
    case PH_RUN: break;
    case PH_DRAIN:
        if (g.churn || g.durable) {
            if ((g.churn ? churn_pending() : durable_pending()) == 0 || now - g.t_phase > (uint64_t)(g.o.drain * 1e9))
                finish(now);
            break;
        }
        if (g.delivered >= g.total_msgs * (uint64_t)live_subscribers() / (uint64_t)g.nchan ||
            now - g.t_phase > (uint64_t)(g.o.drain * 1e9))
            finish(now);
        break;
    case PH_HOLD:
        if (stop_hold || now - g.t_phase > (uint64_t)(g.o.hold * 1e9))
            finish(now);
        break;
    case PH_DONE: break;
    }
}

static void run_loop(void)
{
    struct epoll_event evs[1024];
    uint64_t last_progress = rt_now_mono_ns();
    while (g.phase != PH_DONE && !interrupted) {
        int n = epoll_wait(g.epfd, evs, RT_ARRAY_SIZE(evs), 20);
        uint64_t now = rt_now_mono_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                on_tick(now);
            else
                lg_conn_on_event(evs[i].data.ptr, g.epfd, evs[i].events);
        }
        advance(now);
        if (g.phase == PH_SETUP) {
            if (now - g.t_setup0 > (uint64_t)(g.o.setup_timeout * 1e9)) {
                fprintf(stderr, "rt-loadgen: setup timed out: %ld ready, %ld failed, %ld in flight\n", g.ready,
                        g.failed, g.inflight);
                finish(now);
            } else if (now - last_progress > 2000000000u) {
                last_progress = now;
                fprintf(stderr, "rt-loadgen: setup: %ld ready, %ld failed of %ld\n", g.ready, g.failed, g.o.conns);
            }
        }
    }
    if (g.phase != PH_DONE)
        finish(rt_now_mono_ns());
}

/* ---- report ------------------------------------------------------------------ */

static double rusage_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
           (double)r->ru_stime.tv_usec / 1e6;
}

/* The latency fields shared by every timed mode. */
static void report_latency(rt_buf_t *j)
{
    rt_buf_printf(j,
                  "\"lat_p50_us\":%.1f,\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,"
                  "\"lat_max_us\":%.1f,\"lat_mean_us\":%.1f,\"lat_read_p50_us\":%.1f,\"lat_read_p99_us\":%.1f,"
                  "\"lat_read_max_us\":%.1f,",
                  lg_hist_quantile(&g.hist, 0.5) / 1e3, lg_hist_quantile(&g.hist, 0.9) / 1e3,
                  lg_hist_quantile(&g.hist, 0.99) / 1e3, lg_hist_quantile(&g.hist, 0.999) / 1e3, g.hist.max / 1e3,
                  g.hist.n ? (double)g.hist.sum / (double)g.hist.n / 1e3 : 0.0,
                  lg_hist_quantile(&g.hist_read, 0.5) / 1e3, lg_hist_quantile(&g.hist_read, 0.99) / 1e3,
                  g.hist_read.max / 1e3);
}

/* Durable: acks/s over the run; churn: churns and joins/s. */
static void report_closed_loop(rt_buf_t *j, double cpu)
{
    double window = secs(g.t_end - g.t_phase_run);
    uint64_t events = g.durable ? g.acks : g.joins;
    /* churn: joins are asked at --rate for --duration; the drain only waits for late ones */
    double span = g.churn ? g.o.duration : window;
    double per_s = span > 0 ? (double)events / span : 0;
    rt_buf_printf(j,
                  "\"rate\":%.1f,\"duration_s\":%.1f,\"window_s\":%.2f,\"size\":%ld,\"sent\":%llu,\"acks\":%llu,"
                  "\"echoes\":%llu,\"churns\":%llu,\"churn_busy\":%llu,\"joins\":%llu,\"joins_unmatched\":%llu,"
                  "\"leaves\":%llu,\"bogus\":%llu,\"errors\":%llu,\"other_frames\":%llu,\"events_per_s\":%.1f,"
                  "\"events_per_server_cpu_s\":%.0f,",
                  g.o.rate, g.o.duration, window, g.o.size, (unsigned long long)g.sent, (unsigned long long)g.acks,
                  (unsigned long long)g.echoes, (unsigned long long)g.churns, (unsigned long long)g.churn_busy,
                  (unsigned long long)g.joins, (unsigned long long)g.joins_unmatched, (unsigned long long)g.leaves,
                  (unsigned long long)g.bogus, (unsigned long long)g.errors, (unsigned long long)g.other, per_s,
                  cpu > 0 ? (double)events / cpu : 0);
    report_latency(j);
    if (g.durable)
        fprintf(stderr,
                "rt-loadgen durable %s: %ld publishers x %.0f s: %llu sent, %llu acked (%.0f/s), %llu echoes, "
                "%llu errors\n  ack latency p50 %.0f us p99 %.0f us max %.0f us; server CPU %.2f s\n",
                g.o.label, g.ready, g.o.duration, (unsigned long long)g.sent, (unsigned long long)g.acks, per_s,
                (unsigned long long)g.echoes, (unsigned long long)g.errors, lg_hist_quantile(&g.hist, 0.5) / 1e3,
                lg_hist_quantile(&g.hist, 0.99) / 1e3, g.hist.max / 1e3, cpu);
    else
        fprintf(stderr,
                "rt-loadgen churn %s: %llu connections churned (%.0f/s asked, %llu skipped: no free slot), "
                "%llu joins seen (%llu unmatched), %llu leaves, %ld failed\n"
                "  subscribe-to-join latency p50 %.0f us p99 %.0f us max %.0f us; server CPU %.2f s\n",
                g.o.label, (unsigned long long)g.churns, g.o.rate, (unsigned long long)g.churn_busy,
                (unsigned long long)g.joins, (unsigned long long)g.joins_unmatched, (unsigned long long)g.leaves,
                g.failed, lg_hist_quantile(&g.hist, 0.5) / 1e3, lg_hist_quantile(&g.hist, 0.99) / 1e3, g.hist.max / 1e3,
                cpu);
}

static void report(void)
{
    double tck = lg_clk_tck(), cpu = 0, cpu_all = 0;
    uint64_t syscw = 0, syscr = 0, rss = 0, rss_before = 0;
    rt_buf_t j = {0}, procs = {0};
    for (int i = 0; i < g.nprocs; i++) {
        const lg_proc_t *p = &g.procs[i];
        double c = (double)(p->after.cpu_ticks - p->before.cpu_ticks) / tck;
        cpu_all += c;
        if (!p->aux) {
            cpu += c;
            syscw += p->after.syscw - p->before.syscw;
            syscr += p->after.syscr - p->before.syscr;
            rss += p->after.rss_kb;
            rss_before += p->before.rss_kb;
        }
        rt_buf_printf(&procs,
                      "%s{\"name\":\"%s\",\"aux\":%s,\"pid\":%d,\"cpu_s\":%.2f,\"syscw\":%llu,\"syscr\":%llu,"
                      "\"rss_before_kb\":%llu,\"rss_kb\":%llu,\"hwm_kb\":%llu}",
                      i ? "," : "", p->name, p->aux ? "true" : "false", (int)p->pid, c,
                      (unsigned long long)(p->after.syscw - p->before.syscw),
                      (unsigned long long)(p->after.syscr - p->before.syscr), (unsigned long long)p->before.rss_kb,
                      (unsigned long long)p->after.rss_kb, (unsigned long long)p->after.hwm_kb);
    }
    rt_buf_append_byte(&procs, 0);
    double gen_cpu = rusage_s(&g.ru_after) - rusage_s(&g.ru_before);
    rt_buf_printf(&j,
                  "{\"mode\":\"%s\",\"label\":\"%s\",\"urls\":\"%s\",\"conns\":%ld,\"ready\":%ld,\"failed\":%ld,"
                  "\"closed_during_run\":%ld,\"setup_s\":%.2f,",
                  g.o.mode, g.o.label, g.o.urls, g.o.conns, g.ready, g.failed, g.closed_late,
                  secs((g.t_ready ? g.t_ready : g.t_end) - g.t_setup0));
    if (g.fanout) {
        uint64_t expected = g.sent * (uint64_t)live_subscribers() / (uint64_t)g.nchan;
        double span = g.t_last_recv > g.t_first_send ? secs(g.t_last_recv - g.t_first_send) : 0;
        double dps = span > 0 ? (double)g.delivered / span : 0;
        rt_buf_printf(&j,
                      "\"rate\":%.1f,\"duration_s\":%.1f,\"size\":%ld,\"sent\":%llu,\"expected\":%llu,"
                      "\"delivered\":%llu,\"lost\":%llu,\"dups\":%llu,\"reorders\":%llu,\"bogus\":%llu,"
                      "\"errors\":%llu,\"acks\":%llu,\"other_frames\":%llu,\"deliveries_per_s\":%.0f,"
                      "\"lat_p50_us\":%.1f,\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,"
                      "\"lat_max_us\":%.1f,\"lat_mean_us\":%.1f,\"lat_read_p50_us\":%.1f,\"lat_read_p99_us\":%.1f,"
                      "\"lat_read_max_us\":%.1f,",
                      g.o.rate, g.o.duration, g.o.size, (unsigned long long)g.sent, (unsigned long long)expected,
                      (unsigned long long)g.delivered, (unsigned long long)(expected - g.delivered),
                      (unsigned long long)g.dups, (unsigned long long)g.reorders, (unsigned long long)g.bogus,
                      (unsigned long long)g.errors, (unsigned long long)g.acks, (unsigned long long)g.other, dps,
                      lg_hist_quantile(&g.hist, 0.5) / 1e3, lg_hist_quantile(&g.hist, 0.9) / 1e3,
                      lg_hist_quantile(&g.hist, 0.99) / 1e3, lg_hist_quantile(&g.hist, 0.999) / 1e3, g.hist.max / 1e3,
                      g.hist.n ? (double)g.hist.sum / (double)g.hist.n / 1e3 : 0.0,
                      lg_hist_quantile(&g.hist_read, 0.5) / 1e3, lg_hist_quantile(&g.hist_read, 0.99) / 1e3,
                      g.hist_read.max / 1e3);
        rt_buf_printf(&j,
                      "\"deliveries_per_server_cpu_s\":%.0f,\"syscw_per_delivery\":%.3f,\"syscr_per_delivery\":%.3f,",
                      cpu > 0 ? (double)g.delivered / cpu : 0, g.delivered ? (double)syscw / (double)g.delivered : 0,
                      g.delivered ? (double)syscr / (double)g.delivered : 0);
        fprintf(
            stderr,
            "rt-loadgen fanout %s: %ld subs x %.0f msg/s x %.0f s: sent %llu, delivered %llu of %llu (lost %llu, "
            "dups %llu, reorders %llu)\n  %.0f deliveries/s; latency p50 %.0f us p99 %.0f us max %.0f us "
            "(until read by the generator: p50 %.0f us p99 %.0f us)\n"
            "  server CPU %.2f s -> %.0f deliveries per CPU-s; write syscalls/delivery %.3f; generator CPU %.2f s\n",
            g.o.label, g.ready, g.o.rate, g.o.duration, (unsigned long long)g.sent, (unsigned long long)g.delivered,
            (unsigned long long)expected, (unsigned long long)(expected - g.delivered), (unsigned long long)g.dups,
            (unsigned long long)g.reorders, dps, lg_hist_quantile(&g.hist, 0.5) / 1e3,
            lg_hist_quantile(&g.hist, 0.99) / 1e3, g.hist.max / 1e3, lg_hist_quantile(&g.hist_read, 0.5) / 1e3,
            lg_hist_quantile(&g.hist_read, 0.99) / 1e3, cpu, cpu > 0 ? (double)g.delivered / cpu : 0,
            g.delivered ? (double)syscw / (double)g.delivered : 0, gen_cpu);
    } else if (g.durable || g.churn) {
        report_closed_loop(&j, cpu);
    } else {
        double per_conn = g.ready ? ((double)rss - (double)rss_before) * 1024.0 / (double)g.ready : 0;
        rt_buf_printf(&j, "\"hold_s\":%.1f,\"rss_per_conn_bytes\":%.0f,\"errors\":%llu,\"other_frames\":%llu,",
                      secs(g.t_end - g.t_phase), per_conn, (unsigned long long)g.errors, (unsigned long long)g.other);
        fprintf(stderr,
                "rt-loadgen idle %s: %ld of %ld connections held (%ld failed, %ld closed while held); "
                "%llu other frames received (welcome, join, ...), %llu errors\n",
                g.o.label, g.ready - g.closed_late, g.o.conns, g.failed, g.closed_late, (unsigned long long)g.other,
                (unsigned long long)g.errors);
        if (g.nprocs > 0)
            fprintf(stderr, "  server RSS %llu -> %llu KiB = %.0f bytes per connection\n",
                    (unsigned long long)rss_before, (unsigned long long)rss, per_conn);
    }
    /* only a fan-out run is timing-sensitive (an idle hold shares its core with a second generator) */
    bool timed = g.fanout || g.durable || g.churn;
    if (timed && g.o.server_core >= 0)
        report_core(&j, "server_core", g.o.server_core, g.core_before, g.core_after, cpu_all);
    if (timed && g.gen_core >= 0)
        report_core(&j, "gen_core", g.gen_core, g.gen_core_before, g.gen_core_after, gen_cpu);
    rt_buf_printf(&j, "\"server_cpu_s\":%.2f,\"server_rss_kb\":%llu,\"generator_cpu_s\":%.2f,\"procs\":[%s]}\n", cpu,
                  (unsigned long long)rss, gen_cpu, (const char *)procs.data);
    fwrite(j.data, 1, j.len, stdout);
    fflush(stdout);
    rt_buf_dispose(&j);
    rt_buf_dispose(&procs);
}

int main(int argc, char **argv)
{
    if (parse_opts(argc, argv, &g.o) != 0) {
        usage(stderr);
        return 2;
    }
    g.fanout = strcmp(g.o.mode, "fanout") == 0 || strcmp(g.o.mode, "sse") == 0;
    g.durable = strcmp(g.o.mode, "durable") == 0;
    g.churn = strcmp(g.o.mode, "churn") == 0;
    g.nchan = g.o.group > 0 ? (g.o.conns + g.o.group - 1) / g.o.group : 1;
    g.gen_core = pinned_core();
    if (g.o.pids)
        g.nprocs = lg_procs_parse(g.o.pids, false, &g.procs, 0);
    if (g.o.aux_pids && g.nprocs >= 0)
        g.nprocs = lg_procs_parse(g.o.aux_pids, true, &g.procs, g.nprocs);
    if (parse_urls() != 0 || g.nprocs < 0) {
        fprintf(stderr, "rt-loadgen: bad --urls, --pub-url or --pids\n");
        return 2;
    }
    if (raise_fd_limit(g.o.conns + 16) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, g.tfd, &ev);
    g.conns = rt_xcalloc((size_t)g.o.conns + 1, sizeof *g.conns);
    g.pub = &g.conns[g.o.conns];
    g.t_setup0 = rt_now_mono_ns();
    if (!g.fanout && !g.durable && !g.churn)
        sample_procs(false);
    run_loop();
    report();
    bool ok = g.ready > 0 && g.failed == 0 && !interrupted;
    for (long i = 0; i <= g.o.conns; i++) {
        lg_conn_close(&g.conns[i], g.epfd);
        free(g.conns[i].seen);
    }
    free(g.conns);
    free(g.procs);
    rt_buf_dispose(&g.msg);
    close(g.tfd);
    close(g.epfd);
    return ok ? 0 : 1;
}
