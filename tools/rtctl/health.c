/*
 * health.c: `rtctl health URL...`: /healthz, /readyz and a few /metrics
 * figures of each edge, one JSON line per edge; exit 1 if any is not ready.
 */
#include "rtctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: rtctl health [OPTIONS] URL...\n\n"
    "Asks each edge for /healthz, /readyz and /metrics and prints one JSON line per edge:\n"
    "  {\"url\":..., \"healthz\":200, \"readyz\":200, \"ready\":true, \"nats_connected\":1,\n"
    "   \"connections\":N, \"sse_streams\":N, \"messages_in\":N, \"messages_out\":N, \"drops\":N}\n"
    "An edge that cannot be reached gets \"error\" instead of the figures.\n"
    "Exit status 1 if any edge is not ready.\n\n" CTL_COMMON_HELP;

/* The figures shown, by Prometheus name (summed over label sets). */
static const struct {
    const char *metric;
    const char *key;
} figures[] = {
    {"rtsync_edge_nats_connected", "nats_connected"},
    {"rtsync_edge_connections", "connections"},
    {"rtsync_edge_sse_streams", "sse_streams"},
    {"rtsync_edge_messages_in_total", "messages_in"},
    {"rtsync_edge_messages_out_total", "messages_out"},
    {"rtsync_edge_drops_total", "drops"},
};

/* Sums the samples of `name` in a Prometheus text body; false if absent. */
static bool metric_sum(const char *text, const char *name, double *out)
{
    size_t nlen = strlen(name);
    bool found = false;
    double total = 0;
    for (const char *line = text; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n')) {
        if (strncmp(line, name, nlen) != 0 || (line[nlen] != '{' && line[nlen] != ' '))
            continue;
        const char *v = line + nlen;
        if (*v == '{')
            v = strchr(v, '}');
        if (v == NULL)
            continue;
        char *end;
        double d = strtod(v + (*v == '}'), &end);
        if (end == v + (*v == '}'))
            continue;
        total += d;
        found = true;
    }
    if (found)
        *out = total;
    return found;
}

/* GET path; the status, or 0 with `error` set when there is no answer. */
static int get_status(const ctl_url_t *url, const ctl_common_t *co, const char *path, ctl_response_t *keep,
                      char *error)
{
    ctl_response_t r;
    if (ctl_http_fetch(url, "GET", path, co->token, NULL, (rt_slice_t){0}, co->timeout_ms, &r, error) != 0)
        return 0;
    int status = r.status;
    if (keep != NULL)
        *keep = r;
    else
        ctl_response_dispose(&r);
    return status;
}

/* Checks one edge and prints its line; true if it is ready. */
static bool check_edge(const char *text, const ctl_common_t *co)
{
    json_t *line = json_pack("{s:s}", "url", text);
    ctl_url_t url;
    char error[128] = "";
    bool ready = false;
    if (ctl_url_parse(text, &url) != 0) {
        json_object_set_new(line, "error", json_string("bad URL (http://host:port)"));
        goto out;
    }
    int healthz = get_status(&url, co, "/healthz", NULL, error);
    if (healthz == 0) {
        json_object_set_new(line, "error", json_string(error));
        goto out;
    }
    int readyz = get_status(&url, co, "/readyz", NULL, error);
    ready = readyz == 200;
    json_object_set_new(line, "healthz", json_integer(healthz));
    json_object_set_new(line, "readyz", json_integer(readyz));
    json_object_set_new(line, "ready", json_boolean(ready));
    ctl_response_t metrics = {0};
    if (get_status(&url, co, "/metrics", &metrics, error) == 200 && metrics.body.len > 0) {
        for (size_t i = 0; i < RT_ARRAY_SIZE(figures); i++) {
            double v;
            if (metric_sum((const char *)metrics.body.data, figures[i].metric, &v))
                json_object_set_new(line, figures[i].key, json_integer((json_int_t)v));
        }
    }
    ctl_response_dispose(&metrics);
out:
    ctl_print_json(line);
    json_decref(line);
    return ready;
}

int ctl_cmd_health(int argc, char **argv)
{
    static const struct option options[] = {CTL_COMMON_OPTIONS, {0}};
    ctl_common_t co;
    ctl_common_init(&co);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int r = ctl_common_option(&co, opt, optarg, usage);
        if (r <= 0)
            return r < 0 ? CTL_EXIT_USAGE : ctl_usage_error("health", "bad option");
    }
    if (optind == argc)
        return ctl_usage_error("health", "give at least one edge URL");
    bool all_ready = true;
    for (int i = optind; i < argc; i++)
        all_ready &= check_edge(argv[i], &co);
    return all_ready ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
