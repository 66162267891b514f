/*
 * server.c: the edge's threads.  Each runs one h2o evloop (rt_loop) with its
 * own SO_REUSEPORT listener, so the kernel spreads connections over threads.
 * The main thread waits for SIGTERM/SIGINT and asks every loop to drain:
 * stop accepting, close WebSockets with 1001, end SSE streams, then stop.
 */
#include "rt/log.h"
#include "ws.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void on_probe(rt_task_t *task);

#define CLOSE_WAIT_MS 10000
#define GAP_HOLD_MS 50 /* two chat-history replicas' fan-outs are rarely further apart */

static int listen_socket(const char *listen_addr, int *out)
{
    char host[256];
    const char *colon = strrchr(listen_addr, ':');
    if (colon == NULL || (size_t)(colon - listen_addr) >= sizeof(host))
        return RT_EINVAL;
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    if (getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res) != 0)
        return RT_EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    int ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
             setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == 0 &&
             bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 4096) == 0;
    freeaddrinfo(res);
    if (!ok) {
        RT_LOG_ERROR("listen_failed", "addr=%s error=\"%s\"", listen_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RT_EIO;
    }
    *out = fd;
    return RT_OK;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    edge_thread_t *t = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        int on = 1;
        setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        struct timeval now;
        gettimeofday(&now, NULL);
        h2o_accept(&t->accept_ctx, sock);
    }
}

void edge_thread_schedule_flush(edge_thread_t *t)
{
    if (!h2o_timeout_is_linked(&t->flush_entry))
        h2o_timeout_link(t->ctx.loop, &t->flush_timeout, &t->flush_entry);
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    edge_thread_t *t = RT_CONTAINER_OF(entry, edge_thread_t, flush_entry);
    edge_publish_flush(t);
    edge_ws_flush_dirty(t);
}

static void on_expiry_sweep(h2o_timeout_entry_t *entry)
{
    edge_thread_t *t = RT_CONTAINER_OF(entry, edge_thread_t, expiry_entry);
    int64_t now_s = rt_now_wall_ms() / 1000;
    edge_ws_expire_tokens(t, now_s);
    edge_sse_expire_tokens(t, now_s);
    h2o_timeout_link(t->ctx.loop, &t->expiry_timeout, &t->expiry_entry);
}

/* Each tick serves one slot of the interval's connections: pinging all of them
 * in one turn wrote one frame per connection at once (7,500 connections took the
 * core for tens of milliseconds every interval, and their pongs came back
 * together), a stall every deliverer on the core waited out. */
static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    edge_thread_t *t = RT_CONTAINER_OF(entry, edge_thread_t, heartbeat_entry);
    unsigned slot = t->heartbeat_slot;
    t->heartbeat_slot = (slot + 1) % EDGE_HEARTBEAT_SLOTS;
    if (t->index == 0 && slot == 0)
        edge_guard_sweep(t->server->guard, rt_now_wall_ms());
    edge_ws_heartbeat(t, slot);
    edge_sse_heartbeat(t, slot);
    h2o_timeout_link(t->ctx.loop, &t->heartbeat_timeout, &t->heartbeat_entry);
}

unsigned edge_thread_name_client(edge_thread_t *t, edge_client_t *client)
{
    ++t->next_conn;
    snprintf(client->conn_id, sizeof(client->conn_id), "%s-%u-%" PRIu64, t->server->config.edge_id, t->index,
             t->next_conn);
    return (unsigned)(t->next_conn % EDGE_HEARTBEAT_SLOTS);
}

void edge_thread_on_conn_closed(edge_thread_t *t)
{
    if (t->draining && h2o_linklist_is_empty(&t->ws_conns) && h2o_linklist_is_empty(&t->sse_streams))
        t->stopped = 1;
}

static void on_drain_deadline(h2o_timeout_entry_t *entry)
{
    edge_thread_t *t = RT_CONTAINER_OF(entry, edge_thread_t, drain_entry);
    RT_LOG_WARN("drain_deadline", "thread=%u", t->index);
    t->stopped = 1;
}

static void on_drain(rt_task_t *task)
{
    edge_thread_t *t = RT_CONTAINER_OF(task, edge_thread_t, drain_task);
    t->draining = 1;
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    h2o_context_request_shutdown(&t->ctx);
    edge_ws_drain_all(t);
    edge_sse_drain_all(t);
    h2o_timeout_link(t->ctx.loop, &t->drain_timeout, &t->drain_entry);
    edge_thread_on_conn_closed(t);
}

/* The ring must be made on the thread that submits to it (a single issuer). */
static void start_sender(edge_thread_t *t)
{
    if (!t->server->config.io_uring)
        return;
    int rc = edge_sender_create(edge_ws_on_sent, &t->sender);
    if (rc < 0 && t->index == 0)
        RT_LOG_WARN("io_uring_unavailable", "error=\"%s\" (each socket is written on its own)", strerror(-rc));
}

static void *thread_main(void *arg)
{
    edge_thread_t *t = arg;
    /* h2o keeps per-thread buffer pools (__thread prototypes): a loop and its
     * sockets must be made on the thread that runs them */
    rt_loop_create(&t->loop);
    h2o_evloop_t *loop = rt_loop_evloop(t->loop);
    start_sender(t);
    t->listener = h2o_evloop_socket_create(loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    rt_bus_requester_create(t->bus, t->loop, (uint32_t)t->server->config.request_timeout_ms, &t->requester);
    pthread_barrier_wait(&t->server->started);
    h2o_context_init(&t->ctx, loop, &t->server->globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = t->server->globalconf.hosts;
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    if (t->index == 0)
        edge_presence_start(t->server->presence, t->loop);
    h2o_timeout_init(loop, &t->flush_timeout, 0);
    uint64_t tick_ms = (uint64_t)t->server->config.heartbeat_ms / EDGE_HEARTBEAT_SLOTS;
    h2o_timeout_init(loop, &t->heartbeat_timeout, tick_ms > 0 ? tick_ms : 1);
    h2o_timeout_init(loop, &t->close_timeout, CLOSE_WAIT_MS);
    h2o_timeout_init(loop, &t->drain_timeout, (uint64_t)t->server->config.drain_ms);
    h2o_timeout_init(loop, &t->gap_timeout, GAP_HOLD_MS);
    t->flush_entry.cb = on_flush;
    t->heartbeat_entry.cb = on_heartbeat;
    t->drain_entry.cb = on_drain_deadline;
    h2o_timeout_link(loop, &t->heartbeat_timeout, &t->heartbeat_entry);
    if (*t->server->config.jwt_secret) {
        h2o_timeout_init(loop, &t->expiry_timeout, 1000);
        t->expiry_entry.cb = on_expiry_sweep;
        h2o_timeout_link(loop, &t->expiry_timeout, &t->expiry_entry);
    }
    while (!t->stopped)
        rt_loop_run_once(t->loop, INT32_MAX);
    /* Flush what the last turn queued (close frames) before the process exits. */
    edge_ws_flush_dirty(t);
    rt_loop_run_once(t->loop, 0);
    edge_sender_destroy(t->sender); /* the ring is the thread's own */
    t->sender = NULL;
    return NULL;
}

static void thread_init(edge_server_t *server, edge_thread_t *t, unsigned index, int fd)
{
    t->server = server;
    t->index = index;
    t->listen_fd = fd;
    h2o_linklist_init_anchor(&t->ws_conns);
    h2o_linklist_init_anchor(&t->sse_streams);
    for (unsigned i = 0; i < EDGE_HEARTBEAT_SLOTS; i++) {
        h2o_linklist_init_anchor(&t->ws_heartbeat[i]);
        h2o_linklist_init_anchor(&t->sse_heartbeat[i]);
    }
    h2o_linklist_init_anchor(&t->dirty);
    t->drain_task.cb = on_drain;
    t->probe_task.cb = on_probe;
    atomic_flag_clear(&t->probe_pending);
    t->ping_frame = edge_frame_ws(0x9, "", 0);
    t->sse_retry_frame = edge_frame_raw(H2O_STRLIT("retry: 3000\n\n"));
    t->sse_hb_frame = edge_frame_raw(H2O_STRLIT(": hb\n\n"));
}

int edge_server_create(const edge_config_t *config, edge_server_t **out)
{
    edge_server_t *server = rt_xcalloc(1, sizeof(*server));
    server->config = *config;
    server->nthreads = (size_t)config->threads;
    int err = rt_bus_create(config->nats_url, config->edge_id, 0, &server->bus);
    if (err != RT_OK)
        goto Error;
    edge_presence_create(server, &server->presence);
    edge_guard_create(config, &server->guard);
    h2o_config_init(&server->globalconf);
    server->globalconf.http1.upgrade_to_http2 = 0; /* this h2o lacks later HTTP/2 security fixes */
    server->globalconf.max_request_entity_size = (size_t)config->max_frame * 2;
    server->globalconf.http1.req_timeout = (uint64_t)config->handshake_timeout_ms; /* slow headers are dropped */
    h2o_hostconf_t *host = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = edge_http_on_req;
    server->threads = rt_xcalloc(server->nthreads, sizeof(*server->threads));
    for (size_t i = 0; i < server->nthreads; i++) {
        int fd;
        if ((err = listen_socket(config->listen, &fd)) != RT_OK)
            goto Error;
        thread_init(server, &server->threads[i], (unsigned)i, fd);
        char name[160];
        snprintf(name, sizeof(name), "%s/%zu", config->edge_id, i);
        if ((err = rt_bus_create(config->nats_url, name, RT_BUS_NO_ECHO, &server->threads[i].bus)) != RT_OK)
            goto Error;
    }
    *out = server;
    return RT_OK;
Error:
    edge_server_destroy(server);
    return err;
}

static void on_probe(rt_task_t *task)
{
    edge_thread_t *t = RT_CONTAINER_OF(task, edge_thread_t, probe_task);
    atomic_flag_clear(&t->probe_pending);
    edge_channels_probe(t);
}

/* cnats thread: after a reconnect of its connection, a loop looks for what it may have missed. */
static void on_bus_state(void *ctx, int connected)
{
    edge_thread_t *t = ctx;
    RT_LOG_INFO("nats_state", "connected=%d edge=%s thread=%u", connected, t->server->config.edge_id, t->index);
    if (connected && !atomic_flag_test_and_set(&t->probe_pending))
        rt_loop_post(t->loop, &t->probe_task);
}

int edge_server_bus_connected(edge_server_t *server)
{
    for (size_t i = 0; i < server->nthreads; i++)
        if (!rt_bus_is_connected(server->threads[i].bus))
            return 0;
    return rt_bus_is_connected(server->bus);
}

int edge_server_run(edge_server_t *server)
{
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL); /* inherited by the loop threads */
    for (size_t i = 0; i < server->nthreads; i++)
        rt_bus_set_state_cb(server->threads[i].bus, on_bus_state, &server->threads[i]);
    pthread_barrier_init(&server->started, NULL, (unsigned)server->nthreads + 1);
    for (size_t i = 0; i < server->nthreads; i++)
        pthread_create(&server->threads[i].tid, NULL, thread_main, &server->threads[i]);
    pthread_barrier_wait(&server->started); /* every loop exists: tasks may be posted to them */
    RT_LOG_INFO("listening", "addr=%s threads=%zu edge=%s nats=%s", server->config.listen, server->nthreads,
                server->config.edge_id, server->config.nats_url);
    if (*server->config.jwt_secret == '\0')
        RT_LOG_WARN("auth_open", "RT_JWT_SECRET is unset: no token is required, users name themselves with ?user=");
    int sig;
    sigwait(&signals, &sig);
    RT_LOG_INFO("draining", "signal=%d", sig);
    atomic_store(&server->draining, 1);
    for (size_t i = 0; i < server->nthreads; i++)
        rt_loop_post(server->threads[i].loop, &server->threads[i].drain_task);
    for (size_t i = 0; i < server->nthreads; i++)
        pthread_join(server->threads[i].tid, NULL);
    /* every loop has stopped: the last leaves and heartbeat go from here */
    edge_presence_stop(server->presence);
    for (size_t i = 0; i < server->nthreads; i++)
        rt_bus_flush(server->threads[i].bus, 1000);
    rt_bus_flush(server->bus, 1000);
    RT_LOG_INFO("stopped", "edge=%s", server->config.edge_id);
    return RT_OK;
}

void edge_server_destroy(edge_server_t *server)
{
    if (server == NULL)
        return;
    /* The loop threads have stopped; connections still open die with the process. */
    for (size_t i = 0; i < server->nthreads && server->threads != NULL; i++) {
        edge_thread_t *t = &server->threads[i];
        if (t->loop == NULL && t->listen_fd > 0)
            close(t->listen_fd); /* never started */
        rt_bus_requester_t *requester = t->requester;
        t->requester = NULL; /* a publish batch it fails must not send the next through it */
        rt_bus_requester_destroy(requester);
        edge_publish_dispose(t);
        rt_bus_destroy(t->bus);
        edge_frame_release(t->ping_frame);
        edge_frame_release(t->sse_retry_frame);
        edge_frame_release(t->sse_hb_frame);
    }
    free(server->threads);
    edge_presence_destroy(server->presence);
    edge_guard_destroy(server->guard);
    rt_bus_destroy(server->bus);
    free(server);
}
