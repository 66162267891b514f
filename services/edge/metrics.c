/* metrics.c: Prometheus text exposition of the threads' counters. */
#include "edge.h"

#include <inttypes.h>

#define NBUCKETS 16

void edge_metrics_observe_latency(edge_thread_t *t, int64_t ts_ms)
{
    int64_t ms = rt_now_wall_ms() - ts_ms;
    if (ms < 0)
        ms = 0;
    size_t b = 0;
    while (b < NBUCKETS - 1 && ms > (1ll << b))
        b++;
    EDGE_COUNT(t, latency_buckets[b], 1);
    EDGE_COUNT(t, latency_sum_us, (uint64_t)ms * 1000);
}

typedef struct metric {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
} metric_t;

#define COUNTER_AT(field) offsetof(edge_counters_t, field)

static const metric_t metrics[] = {
    {"rtsync_edge_connections", "gauge", "Open WebSocket connections.", COUNTER_AT(connections)},
    {"rtsync_edge_sse_streams", "gauge", "Open SSE streams.", COUNTER_AT(sse_streams)},
    {"rtsync_edge_frames_in_total", "counter", "WebSocket messages received from clients.", COUNTER_AT(frames_in)},
    {"rtsync_edge_messages_in_total", "counter", "Publishes accepted (WebSocket and HTTP).", COUNTER_AT(messages_in)},
    {"rtsync_edge_messages_out_total", "counter", "Channel messages queued to clients.", COUNTER_AT(deliveries)},
    {"rtsync_edge_bad_frames_total", "counter", "Client frames refused.", COUNTER_AT(bad_frames)},
    {"rtsync_edge_drops_total", "counter", "Clients closed for being too slow.", COUNTER_AT(slow_closes)},
    {"rtsync_edge_bus_messages_total", "counter", "Channel messages received from NATS.", COUNTER_AT(bus_messages)},
    {"rtsync_edge_bus_bad_messages_total", "counter", "Undecodable NATS messages dropped.", COUNTER_AT(bus_bad)},
    {"rtsync_edge_socket_writes_total", "counter", "Writes to client WebSocket sockets.", COUNTER_AT(writes)},
    {"rtsync_edge_socket_write_batches_total", "counter",
     "System calls that sent a loop turn's socket writes together (io_uring).", COUNTER_AT(write_batches)},
    {"rtsync_edge_presence_updates_total", "counter", "Member changes sent to the presence service (states coalesced).",
     COUNTER_AT(presence_updates)},
};

static uint64_t sum(edge_server_t *server, size_t offset)
{
    uint64_t total = 0;
    for (size_t i = 0; i < server->nthreads; i++) {
        _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)&server->threads[i].counters + offset);
        total += atomic_load_explicit(v, memory_order_relaxed);
    }
    return total;
}

void edge_metrics_render(edge_server_t *server, rt_buf_t *out)
{
    const char *edge = server->config.edge_id;
    for (size_t i = 0; i < RT_ARRAY_SIZE(metrics); i++) {
        const metric_t *m = &metrics[i];
        rt_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s{edge=\"%s\"} %" PRIu64 "\n", m->name, m->help, m->name,
                      m->type, m->name, edge, sum(server, m->offset));
    }
    rt_buf_printf(out,
                  "# HELP rtsync_edge_nats_connected 1 while connected to NATS.\n"
                  "# TYPE rtsync_edge_nats_connected gauge\nrtsync_edge_nats_connected{edge=\"%s\"} %d\n",
                  edge, edge_server_bus_connected(server));
    const char *h = "rtsync_edge_delivery_latency_seconds";
    rt_buf_printf(out, "# HELP %s From acceptance of a publish to its fan-out on this edge.\n# TYPE %s histogram\n", h,
                  h);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        cumulative += sum(server, COUNTER_AT(latency_buckets[b]));
        if (b < NBUCKETS - 1)
            rt_buf_printf(out, "%s_bucket{edge=\"%s\",le=\"%.3f\"} %" PRIu64 "\n", h, edge, (double)(1ll << b) / 1000,
                          cumulative);
    }
    rt_buf_printf(out, "%s_bucket{edge=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", h, edge, cumulative);
    rt_buf_printf(out, "%s_sum{edge=\"%s\"} %.6f\n%s_count{edge=\"%s\"} %" PRIu64 "\n", h, edge,
                  (double)sum(server, COUNTER_AT(latency_sum_us)) / 1e6, h, edge, cumulative);
}
