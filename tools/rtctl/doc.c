/*
 * doc.c: `rtctl doc URL DOC`: a Yjs document's whole state from
 * GET /v1/docs/{doc}: the binary V1 update on stdout, or with --json the
 * edge's JSON view (?format=json).
 */
#include "rtctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: rtctl doc [OPTIONS] URL DOC [--json]\n\n"
    "Fetches a document's state (GET /v1/docs/{doc}).\n"
    "  (default)   the state as one Yjs update (V1), written to stdout as is: redirect it to a file\n"
    "  --json      the document's content as JSON (?format=json), one line\n"
    "Exit status 1 if the document never existed (HTTP 404) or the edge refuses.\n\n" CTL_COMMON_HELP;

enum { OPT_JSON = CTL_OPT_FIRST };

int ctl_cmd_doc(int argc, char **argv)
{
    static const struct option options[] = {CTL_COMMON_OPTIONS, {"json", no_argument, NULL, OPT_JSON}, {0}};
    ctl_common_t co;
    ctl_common_init(&co);
    bool as_json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int r = ctl_common_option(&co, opt, optarg, usage);
        if (r < 0)
            return CTL_EXIT_USAGE;
        if (r == 0 && opt != OPT_JSON)
            return ctl_usage_error("doc", "bad option");
        if (opt == OPT_JSON)
            as_json = true;
    }
    if (argc - optind != 2)
        return ctl_usage_error("doc", "expected URL DOC");
    ctl_url_t url;
    if (ctl_url_parse(argv[optind], &url) != 0)
        return ctl_usage_error("doc", "bad URL '%s'", argv[optind]);
    if (!as_json && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "rtctl doc: the state is binary; redirect stdout to a file, or use --json\n");
        return CTL_EXIT_USAGE;
    }
    rt_buf_t path = {0};
    rt_buf_append_str(&path, "/v1/docs/");
    ctl_url_escape(&path, argv[optind + 1]);
    if (as_json)
        rt_buf_append_str(&path, "?format=json");
    ctl_response_t r;
    int rc = ctl_request(&url, &co, "GET", ctl_path_finish(&path, &co), NULL, (rt_slice_t){0}, true, &r);
    rt_buf_dispose(&path);
    if (rc != 0)
        return rc;
    if (as_json) {
        json_error_t jerr;
        json_t *doc = json_loadb((const char *)r.body.data, r.body.len, JSON_DECODE_ANY, &jerr);
        if (doc == NULL) {
            fprintf(stderr, "rtctl: the edge's answer is not JSON: %s\n", jerr.text);
            rc = CTL_EXIT_FAIL;
        } else {
            ctl_print_json(doc);
        }
        json_decref(doc);
    } else if (r.body.len > 0 && fwrite(r.body.data, 1, r.body.len, stdout) != r.body.len) {
        perror("rtctl: stdout");
        rc = CTL_EXIT_FAIL;
    }
    if (fflush(stdout) != 0)
        rc = CTL_EXIT_FAIL;
    ctl_response_dispose(&r);
    return rc;
}
