/*
 * pub.c: `rtctl pub URL CHANNEL [DATA]`: publishes over
 * POST /v1/channels/{ch}/publish, one message per call or per stdin line,
 * printing each acknowledgement ({"offset": N}, or {} when ephemeral).
 */
#include "rtctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: rtctl pub [OPTIONS] URL CHANNEL [DATA]\n\n"
    "Publishes DATA, or each line of stdin when DATA is absent or '-', as one message, and prints\n"
    "what the edge acknowledged, one JSON line per message: {\"offset\":N} ({} when ephemeral).\n"
    "DATA that parses as JSON is sent as JSON (42, {\"a\":1}, \"quoted\"); anything else as a string.\n"
    "  --event E       the event name (default: message)\n"
    "  --id ID         idempotency key: a repeat returns the first offset; with stdin, line n gets ID-n\n"
    "  --ephemeral     no offset, not stored, best effort\n"
    "  --string        send DATA as a string even if it parses as JSON\n"
    "An unreachable edge is retried with backoff; 429 and 503 are too when --id makes a repeat safe.\n\n"
    CTL_COMMON_HELP;

enum { OPT_EVENT = CTL_OPT_FIRST, OPT_ID, OPT_EPHEMERAL, OPT_STRING };

typedef struct pub_opts {
    ctl_url_t url;
    ctl_common_t co;
    const char *event;
    const char *id;
    bool ephemeral;
    bool as_string;
    const char *path;
} pub_opts_t;

/* Publishes one message; prints the ack or the error. */
static int publish(const pub_opts_t *o, const char *data, const char *id)
{
    json_t *value = NULL;
    if (!o->as_string)
        value = json_loads(data, JSON_DECODE_ANY, NULL);
    if (value == NULL)
        value = json_string(data);
    if (value == NULL) {
        fprintf(stderr, "rtctl pub: the data is not valid UTF-8\n");
        return CTL_EXIT_FAIL;
    }
    json_t *body = json_pack("{s:o}", "data", value);
    if (o->event != NULL)
        json_object_set_new(body, "event", json_string(o->event));
    if (id != NULL)
        json_object_set_new(body, "id", json_string(id));
    if (o->ephemeral)
        json_object_set_new(body, "ephemeral", json_true());
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    ctl_response_t r;
    int rc = ctl_request(&o->url, &o->co, "POST", o->path, "application/json",
                         (rt_slice_t){(const uint8_t *)text, strlen(text)}, id != NULL, &r);
    free(text);
    if (rc != 0)
        return rc;
    json_error_t jerr;
    json_t *ack = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
    if (ack == NULL) {
        fprintf(stderr, "rtctl: unexpected answer: %.200s\n", r.body.len ? (const char *)r.body.data : "");
        rc = CTL_EXIT_FAIL;
    } else {
        ctl_print_json(ack);
    }
    json_decref(ack);
    ctl_response_dispose(&r);
    return rc;
}

/* One message per line of stdin; keeps going after a refused line, and fails if any was. */
static int publish_lines(const pub_opts_t *o)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = CTL_EXIT_OK;
    for (uint64_t n = 1; !ctl_stop && (len = getline(&line, &cap, stdin)) >= 0; n++) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        char id[256];
        if (o->id != NULL)
            snprintf(id, sizeof id, "%s-%llu", o->id, (unsigned long long)n);
        if (publish(o, line, o->id != NULL ? id : NULL) != 0)
            rc = CTL_EXIT_FAIL;
    }
    free(line);
    return rc;
}

int ctl_cmd_pub(int argc, char **argv)
{
    static const struct option options[] = {CTL_COMMON_OPTIONS,
                                            {"event", required_argument, NULL, OPT_EVENT},
                                            {"id", required_argument, NULL, OPT_ID},
                                            {"ephemeral", no_argument, NULL, OPT_EPHEMERAL},
                                            {"string", no_argument, NULL, OPT_STRING},
                                            {0}};
    pub_opts_t o = {0};
    ctl_common_init(&o.co);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int r = ctl_common_option(&o.co, opt, optarg, usage);
        if (r < 0)
            return CTL_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case OPT_EVENT:
            o.event = optarg;
            break;
        case OPT_ID:
            o.id = optarg;
            break;
        case OPT_EPHEMERAL:
            o.ephemeral = true;
            break;
        case OPT_STRING:
            o.as_string = true;
            break;
        default:
            return ctl_usage_error("pub", "bad option");
        }
    }
    int nargs = argc - optind;
    if (nargs != 2 && nargs != 3)
        return ctl_usage_error("pub", "expected URL CHANNEL [DATA]");
    if (ctl_url_parse(argv[optind], &o.url) != 0)
        return ctl_usage_error("pub", "bad URL '%s'", argv[optind]);
    rt_buf_t path = {0};
    rt_buf_append_str(&path, "/v1/channels/");
    ctl_url_escape(&path, argv[optind + 1]);
    rt_buf_append_str(&path, "/publish");
    o.path = ctl_path_finish(&path, &o.co);
    int rc;
    if (nargs == 3 && strcmp(argv[optind + 2], "-") != 0)
        rc = publish(&o, argv[optind + 2], o.id);
    else
        rc = publish_lines(&o);
    rt_buf_dispose(&path);
    return rc;
}
