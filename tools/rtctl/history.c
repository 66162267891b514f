/*
 * history.c: `rtctl history URL CHANNEL`: one page of a channel's stored
 * messages (GET /v1/channels/{ch}/messages), one JSON line per message.
 */
#include "rtctl.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "Usage: rtctl history [OPTIONS] URL CHANNEL [--after N | --before N] [--limit M]\n\n"
    "Prints one page of the channel's stored messages, oldest first, one JSON line each:\n"
    "  {\"offset\":N, \"event\":..., \"data\":..., \"from\":..., \"id\":..., \"ts\":ms}\n"
    "  --after N    messages with an offset greater than N (default: from the start)\n"
    "  --before N   the page of messages just before offset N (paging backwards)\n"
    "  --limit M    page size (server default 50, at most 1000)\n\n" CTL_COMMON_HELP;

enum { OPT_AFTER = CTL_OPT_FIRST, OPT_BEFORE, OPT_LIMIT };

int ctl_cmd_history(int argc, char **argv)
{
    static const struct option options[] = {CTL_COMMON_OPTIONS,
                                            {"after", required_argument, NULL, OPT_AFTER},
                                            {"before", required_argument, NULL, OPT_BEFORE},
                                            {"limit", required_argument, NULL, OPT_LIMIT},
                                            {0}};
    ctl_common_t co;
    ctl_common_init(&co);
    const char *after = NULL, *before = NULL, *limit = NULL;
    uint64_t n;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int r = ctl_common_option(&co, opt, optarg, usage);
        if (r < 0)
            return CTL_EXIT_USAGE;
        if (r > 0)
            continue;
        if (opt != OPT_AFTER && opt != OPT_BEFORE && opt != OPT_LIMIT)
            return ctl_usage_error("history", "bad option");
        if (ctl_parse_u64(optarg, &n) != 0)
            return ctl_usage_error("history", "'%s' is not a number", optarg);
        *(opt == OPT_AFTER ? &after : opt == OPT_BEFORE ? &before : &limit) = optarg;
    }
    if (argc - optind != 2)
        return ctl_usage_error("history", "expected URL CHANNEL");
    if (after != NULL && before != NULL)
        return ctl_usage_error("history", "--after and --before exclude each other");
    ctl_url_t url;
    if (ctl_url_parse(argv[optind], &url) != 0)
        return ctl_usage_error("history", "bad URL '%s'", argv[optind]);
    rt_buf_t path = {0};
    rt_buf_append_str(&path, "/v1/channels/");
    ctl_url_escape(&path, argv[optind + 1]);
    rt_buf_append_str(&path, "/messages");
    char sep = '?';
    const char *names[] = {"after", "before", "limit"}, *values[] = {after, before, limit};
    for (size_t i = 0; i < RT_ARRAY_SIZE(names); i++) {
        if (values[i] != NULL) {
            rt_buf_printf(&path, "%c%s=%s", sep, names[i], values[i]);
            sep = '&';
        }
    }
    ctl_response_t r;
    int rc = ctl_request(&url, &co, "GET", ctl_path_finish(&path, &co), NULL, (rt_slice_t){0}, true, &r);
    rt_buf_dispose(&path);
    if (rc != 0)
        return rc;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
    json_t *messages = json_object_get(doc, "messages");
    if (!json_is_array(messages)) {
        fprintf(stderr, "rtctl: unexpected answer: %.200s\n", r.body.len ? (const char *)r.body.data : "");
        rc = CTL_EXIT_FAIL;
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(messages, i, m) ctl_print_json(m);
    }
    json_decref(doc);
    ctl_response_dispose(&r);
    return rc;
}
