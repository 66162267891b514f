/* edge: the public face of rtsync (WebSocket, SSE and HTTP), PROTOCOL.md. */
#include "edge.h"
#include "rt/config.h"
#include "rt/log.h"
#include "static.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* the edge's settings plus those main applies itself */
typedef struct edge_main_config {
    edge_config_t edge;
    const char *static_dir;
} edge_main_config_t;

#define CFG(field) RT_CFG_AT(edge_main_config_t, edge.field)

static const rt_config_var_t config_vars[] = {
    {"RT_NATS_URL", RT_CFG_STRING, "nats://127.0.0.1:4222", 0, 0, CFG(nats_url), "NATS server URL"},
    {"RT_EDGE_LISTEN", RT_CFG_STRING, "0.0.0.0:8080", 0, 0, CFG(listen), "address:port to listen on"},
    {"RT_EDGE_ID", RT_CFG_STRING, "", 0, 0, CFG(edge_id), "this edge's id (default: hostname-pid)"},
    {"RT_EDGE_THREADS", RT_CFG_INT, "0", 0, 256, CFG(threads), "event-loop threads (0: one per core)"},
    {"RT_HEARTBEAT", RT_CFG_MILLIS, "25s", 100, 3600000, CFG(heartbeat_ms),
     "WebSocket ping and SSE heartbeat interval; silent connections close after twice that"},
    {"RT_SEND_QUEUE", RT_CFG_BYTES, "4MiB", 1024, 1ll << 32, CFG(send_queue),
     "bytes queued per connection before it is closed as too slow (4008)"},
    {"RT_MAX_FRAME", RT_CFG_BYTES, "65536", 256, 64 << 20, CFG(max_frame),
     "largest JSON frame or HTTP body (1009 / 413 beyond)"},
    {"RT_MAX_DOC_UPDATE", RT_CFG_BYTES, "8MiB", 1024, 15 << 20, CFG(max_doc_update),
     "largest y-websocket message on /yjs (1009 beyond); NATS's max_payload must be above it"},
    {"RT_MAX_CONNS", RT_CFG_INT, "100000", 1, 10000000, CFG(max_conns), "WebSocket connections per edge (503 beyond)"},
    {"RT_MAX_SUBSCRIPTIONS", RT_CFG_INT, "100", 1, 100000, CFG(max_subscriptions), "subscriptions per connection"},
    {"RT_DRAIN_TIMEOUT", RT_CFG_MILLIS, "8s", 0, 600000, CFG(drain_ms), "longest drain on SIGTERM"},
    {"RT_REQUEST_TIMEOUT", RT_CFG_MILLIS, "5s", 10, 600000, CFG(request_timeout_ms),
     "how long the edge waits for a back-end service"},
    {"RT_PRESENCE_TTL", RT_CFG_MILLIS, "30s", 600, 3600000, CFG(presence_ttl_ms),
     "members of an edge silent this long are gone; heartbeats go every sixth of it"},
    {"RT_JWT_SECRET", RT_CFG_STRING, "", 0, 0, CFG(jwt_secret),
     "HS256 secret; unset: the stack runs open (development)"},
    {"RT_ALLOWED_ORIGINS", RT_CFG_STRING, "", 0, 0, CFG(allowed_origins),
     "comma-separated Origins allowed for browser requests (empty: any)"},
    {"RT_RATE_LIMIT", RT_CFG_INT, "100", 1, 100000000, CFG(rate_limit),
     "publishes, states and signals per user per RT_RATE_WINDOW"},
    {"RT_RATE_WINDOW", RT_CFG_MILLIS, "10s", 100, 86400000, CFG(rate_window_ms), "the rate limit's sliding window"},
    {"RT_MAX_USER_CONNS", RT_CFG_INT, "100", 1, 10000000, CFG(max_user_conns),
     "WebSocket connections per user per edge"},
    {"RT_EDGE_IO_URING", RT_CFG_INT, "1", 0, 1, CFG(io_uring),
     "1: write a loop turn's socket writes with one io_uring call per batch; 0: one writev per socket"},
    {"RT_HANDSHAKE_TIMEOUT", RT_CFG_MILLIS, "10s", 100, 600000, CFG(handshake_timeout_ms),
     "longest wait for a request's headers (slow clients are dropped)"},
    {"RT_LOG_LEVEL", RT_CFG_LEVEL, "info", 0, 0, CFG(log_level), "debug, info, warn or error"},
    {"RT_STATIC_DIR", RT_CFG_STRING, "build/demo", 0, 0, RT_CFG_AT(edge_main_config_t, static_dir),
     "files served for GET / and /assets/* (the demo app); none if it is not a directory"},
};

int main(int argc, char **argv)
{
    edge_main_config_t all = {0};
    rt_config_load_or_exit("edge", "The rtsync edge: WebSocket, SSE and HTTP API, linked to the cluster over NATS.",
                           config_vars, RT_ARRAY_SIZE(config_vars), &all, argc, argv, NULL);
    edge_config_t config = all.edge;
    rt_log_init("edge", (rt_log_level_t)config.log_level);
    char default_id[128];
    if (*config.edge_id == '\0') {
        char host[64] = "edge";
        gethostname(host, sizeof(host) - 1);
        snprintf(default_id, sizeof(default_id), "%s-%d", host, (int)getpid());
        config.edge_id = default_id;
    }
    if (config.threads == 0)
        config.threads = sysconf(_SC_NPROCESSORS_ONLN);
    signal(SIGPIPE, SIG_IGN);
    edge_static_init(all.static_dir);

    edge_server_t *server;
    if (edge_server_create(&config, &server) != RT_OK)
        return 1;
    int err = edge_server_run(server);
    edge_server_destroy(server);
    return err == RT_OK ? 0 : 1;
}
