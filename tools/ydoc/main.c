/*
 * main.c: ydoc, a command-line tool for inspecting stored Yjs documents and for
 * tests.  It applies updates with the rt_ydoc engine and prints what Yjs would
 * (state vector, encoded state, JSON content, merged updates).  See usage().
 */
#include "ydoc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: ydoc [OPTIONS] COMMAND [FILE...]\n"
          "\n"
          "Reads Yjs updates from the FILEs (or stdin when none is given) and applies them,\n"
          "in order, to one document, as a Yjs server would (Y.applyUpdate).\n"
          "\n"
          "Input framing: by default every input is a STREAM of updates, each prefixed by its\n"
          "length as a 4-byte little-endian integer.  With --raw every FILE (or stdin) holds\n"
          "exactly ONE update, as stored by most servers.\n"
          "\n"
          "Commands:\n"
          "  sv          print the state vector (Y.encodeStateVector) as hex\n"
          "  state       write the encoded state (Y.encodeStateAsUpdate, V1) to stdout\n"
          "  json        print the content as JSON, one member per root type\n"
          "  merge       write Y.mergeUpdates of the inputs (nothing is applied)\n"
          "  events      print, per input update, the V1 update Yjs's 'update' event\n"
          "              would carry (hex; '-' when nothing changed)\n"
          "  diff SV     write Y.diffUpdate(mergeUpdates(inputs), SV); SV is hex\n"
          "  svfrom      print Y.encodeStateVectorFromUpdate(mergeUpdates(inputs)) as hex\n"
          "  v1          write each V2 input update converted to V1 (implies --v2)\n"
          "  check       validate every update; print 'ok N updates'\n"
          "  session F.json...   differential-test harness (tests/yjs): one JSON result line\n"
          "              per session file\n"
          "  bench FILE  apply a length-prefixed update stream one by one, encode, reload;\n"
          "              print timings and peak memory as JSON (make bench)\n"
          "\n"
          "Options:\n"
          "  --raw            each input is one raw update instead of a length-prefixed stream\n"
          "  --v2             input updates are in the V2 format (outputs stay V1)\n"
          "  --hex            write binary outputs (state, merge, diff, v1) as hex text\n"
          "  --root NAME=KIND for json: the kind of a root (text, map, array, xml, auto);\n"
          "                   repeatable; when given, only these roots are printed, in order,\n"
          "                   an absent root as its empty value\n"
          "  -h, --help       this text\n"
          "\n"
          "A malformed update is reported as 'update I (file F): REASON' with its 0-based\n"
          "index, and ydoc exits with status 1.  Usage errors exit with status 2.\n",
          f);
}

/* Reports a failed update; the index counts across all inputs. */
static int report(const ydoc_input_t *in, size_t i, int rc, const char *what)
{
    fprintf(stderr, "ydoc: update %zu of %zu (%zu bytes): %s: %s\n", i, in->n, in->updates[i].len, what,
            rt_strerror(rc));
    return 1;
}

/* Why an apply failed, as far as the public API can tell. */
static const char *apply_failure(rt_slice_t u, bool v2)
{
    rt_buf_t v1 = {0};
    int rc = v2 ? rt_yupdate_v2_to_v1(u, &v1) : rt_yupdate_validate(u);
    rt_buf_dispose(&v1);
    if (rc != 0)
        return v2 ? "does not decode as a V2 update" : "does not decode as a V1 update";
    return "well-formed but rejected by the document";
}

static int write_out(const rt_buf_t *b, bool hex)
{
    if (hex) {
        rt_buf_t h = {0};
        ydoc_hex_append(&h, (rt_slice_t){b->data, b->len});
        printf("%.*s\n", (int)h.len, (const char *)h.data);
        rt_buf_dispose(&h);
    } else if (b->len > 0 && fwrite(b->data, 1, b->len, stdout) != b->len) {
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Applies every input; `changes` (if not NULL) gets one line per update. */
static int apply_all(rt_ydoc_t *doc, const ydoc_input_t *in, const ydoc_opts_t *opts, rt_buf_t *changes)
{
    rt_buf_t ch = {0};
    for (size_t i = 0; i < in->n; i++) {
        ch.len = 0;
        int rc = ydoc_apply(doc, in->updates[i], opts->v2, changes ? &ch : NULL);
        if (rc != 0) {
            rt_buf_dispose(&ch);
            return report(in, i, rc, apply_failure(in->updates[i], opts->v2));
        }
        if (changes && ch.len == 0)
            rt_buf_append_str(changes, "-\n");
        else if (changes) {
            ydoc_hex_append(changes, (rt_slice_t){ch.data, ch.len});
            rt_buf_append_byte(changes, '\n');
        }
    }
    rt_buf_dispose(&ch);
    return 0;
}

/* Applies every input to a fresh document, then prints what `cmd` asks for. */
static int with_doc(ydoc_input_t *in, const ydoc_opts_t *opts, const char *cmd)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t out = {0};
    bool is_events = strcmp(cmd, "events") == 0;
    int rc = apply_all(doc, in, opts, is_events ? &out : NULL);
    if (rc == 0 && strcmp(cmd, "sv") == 0) {
        rt_ydoc_encode_state_vector(doc, &out);
        rc = write_out(&out, true);
    } else if (rc == 0 && strcmp(cmd, "state") == 0) {
        rc = rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &out) == 0 ? write_out(&out, opts->hex) : 1;
    } else if (rc == 0 && strcmp(cmd, "json") == 0) {
        rc = ydoc_json(doc, opts->hints, opts->n_hints, &out) == 0 ? 0 : 1;
        if (rc == 0) {
            rt_buf_append_byte(&out, '\n');
            rc = write_out(&out, false);
        } else {
            fprintf(stderr, "ydoc: json: the content cannot be rendered\n");
        }
    } else if (rc == 0 && is_events) {
        rc = write_out(&out, false);
    } else if (rc == 0) {
        printf("ok %zu updates%s\n", in->n, rt_ydoc_has_pending(doc) ? ", some pending" : "");
    }
    rt_buf_dispose(&out);
    rt_ydoc_destroy(doc);
    return rc;
}

/* Validates each input so a bad one is reported by index before an algebra call. */
static int validate_all(const ydoc_input_t *in, const ydoc_opts_t *opts, rt_buf_t *v1, rt_slice_t **list)
{
    *list = in->updates;
    if (!opts->v2) {
        for (size_t i = 0; i < in->n; i++) {
            int rc = rt_yupdate_validate(in->updates[i]);
            if (rc != 0)
                return report(in, i, rc, "validate");
        }
        return 0;
    }
    /* V2 inputs are converted first; the V1 copies live in v1[i] */
    *list = rt_xcalloc(in->n ? in->n : 1, sizeof **list);
    for (size_t i = 0; i < in->n; i++) {
        int rc = rt_yupdate_v2_to_v1(in->updates[i], &v1[i]);
        if (rc != 0)
            return report(in, i, rc, "convert V2");
        (*list)[i] = (rt_slice_t){v1[i].data, v1[i].len};
    }
    return 0;
}

/* merge, diff, svfrom, v1: the update algebra, no document. */
static int algebra(ydoc_input_t *in, const ydoc_opts_t *opts, const char *cmd, const char *arg)
{
    rt_buf_t *v1 = rt_xcalloc(in->n ? in->n : 1, sizeof *v1);
    rt_buf_t out = {0}, merged = {0}, sv = {0};
    rt_slice_t *list = NULL;
    int rc = validate_all(in, opts, v1, &list);
    if (rc == 0 && strcmp(cmd, "v1") == 0) {
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            out.len = 0;
            rt_buf_append(&out, list[i].data, list[i].len);
            rc = write_out(&out, opts->hex);
        }
        goto done;
    }
    if (rc == 0 && rt_yupdate_merge(list, in->n, &merged) != 0) {
        fprintf(stderr, "ydoc: merge failed\n");
        rc = 1;
    }
    if (rc != 0 || strcmp(cmd, "merge") == 0) {
        rc = rc ? rc : write_out(&merged, opts->hex);
    } else if (strcmp(cmd, "svfrom") == 0) {
        rc = rt_yupdate_state_vector((rt_slice_t){merged.data, merged.len}, &out) == 0 ? write_out(&out, true) : 1;
    } else if (ydoc_hex_decode(arg, strlen(arg), &sv) != 0) {
        fprintf(stderr, "ydoc: diff: the state vector must be hex\n");
        rc = 2;
    } else {
        rc = rt_yupdate_diff((rt_slice_t){merged.data, merged.len}, (rt_slice_t){sv.data, sv.len}, &out);
        if (rc != 0)
            fprintf(stderr, "ydoc: diff: %s\n", rt_strerror(rc));
        rc = rc ? 1 : write_out(&out, opts->hex);
    }
done:
    for (size_t i = 0; i < in->n; i++)
        rt_buf_dispose(&v1[i]);
    free(v1);
    if (list != in->updates)
        free(list);
    rt_buf_dispose(&out);
    rt_buf_dispose(&merged);
    rt_buf_dispose(&sv);
    return rc;
}

/* Parses NAME=KIND into the hint list. */
static int add_hint(ydoc_opts_t *opts, char *spec)
{
    char *eq = strrchr(spec, '=');
    rt_ykind_t kind;
    if (eq == NULL || ydoc_kind_parse(eq + 1, &kind) != 0) {
        fprintf(stderr, "ydoc: --root wants NAME=KIND with KIND text, map, array, xml or auto\n");
        return 2;
    }
    *eq = '\0';
    opts->hints = rt_xrealloc(opts->hints, (opts->n_hints + 1) * sizeof *opts->hints);
    opts->hints[opts->n_hints++] = (rt_ykind_hint_t){spec, kind};
    return 0;
}

/* Consumes the options; returns the index of the command or -1 after a usage error. */
static int parse_opts(int argc, char **argv, ydoc_opts_t *opts)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--raw") == 0)
            opts->raw = true;
        else if (strcmp(argv[i], "--v2") == 0)
            opts->v2 = true;
        else if (strcmp(argv[i], "--hex") == 0)
            opts->hex = true;
        else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            if (add_hint(opts, argv[++i]) != 0)
                return -1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "ydoc: unknown option %s (see ydoc --help)\n", argv[i]);
            return -1;
        }
    }
    if (i == argc) {
        usage(stderr);
        return -1;
    }
    return i;
}

static bool is_cmd(const char *cmd, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cmd, list[i]) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    static const char *const doc_cmds[] = {"sv", "state", "json", "events", "check"};
    static const char *const algebra_cmds[] = {"merge", "diff", "svfrom", "v1"};
    ydoc_opts_t opts = {0};
    int at = parse_opts(argc, argv, &opts);
    if (at < 0)
        return 2;
    const char *cmd = argv[at++];
    if (strcmp(cmd, "session") == 0)
        return ydoc_cmd_session(argc - at, argv + at);
    if (strcmp(cmd, "bench") == 0)
        return ydoc_cmd_bench(argc - at, argv + at);
    bool alg = is_cmd(cmd, algebra_cmds, RT_ARRAY_SIZE(algebra_cmds));
    if (!alg && !is_cmd(cmd, doc_cmds, RT_ARRAY_SIZE(doc_cmds))) {
        fprintf(stderr, "ydoc: unknown command %s (see ydoc --help)\n", cmd);
        return 2;
    }
    if (strcmp(cmd, "v1") == 0)
        opts.v2 = true;
    const char *arg = NULL;
    if (strcmp(cmd, "diff") == 0) {
        if (at == argc) {
            fprintf(stderr, "ydoc: diff needs a state vector (hex)\n");
            return 2;
        }
        arg = argv[at++];
    }
    static const char *const binary_cmds[] = {"state", "merge", "diff", "v1"};
    if (isatty(STDOUT_FILENO) && is_cmd(cmd, binary_cmds, RT_ARRAY_SIZE(binary_cmds)))
        opts.hex = true; /* never spray binary on a terminal */
    ydoc_input_t in;
    int rc = ydoc_input_load(&in, argv + at, (size_t)(argc - at), &opts);
    if (rc == 0)
        rc = alg ? algebra(&in, &opts, cmd, arg) : with_doc(&in, &opts, cmd);
    else
        rc = 1;
    ydoc_input_dispose(&in);
    free(opts.hints);
    return rc;
}
