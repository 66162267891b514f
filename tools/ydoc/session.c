/*
 * session.c: `ydoc session F.json...`, the C half of the differential test
 * against real Yjs (tests/yjs/differential.test.js).  A session file holds the
 * updates a Yjs server received (hex, in delivery order) and a few inputs for
 * the update algebra; for each file this prints one JSON line with everything
 * the engine computes from them, for the Node side to compare with Yjs:
 *
 *   in:  {name, roots:{NAME:KIND}, updates:[hex], sv_mid:hex, state_v2:hex, updates_v2:[hex]}
 *   out: {name, events:[hex|null], sv, state, json_text, state_mid, merge, merge_sv,
 *         diff_mid, merge_pairs:[hex], diff_each:[hex], sv_each:[hex], v2_to_v1,
 *         v2_apply_state, updates_v2_to_v1:[hex], events_v2:[hex|null],
 *         events_nogc:[hex|null], state_nogc, errors:{step: message}}
 *   (the _nogc outputs come from a document with garbage collection off)
 */
#include "ydoc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Decoded inputs of one session; slices point into `bytes`. */
typedef struct session {
    rt_buf_t *bytes;
    rt_slice_t *updates, *updates_v2;
    size_t n, n_v2;
    rt_buf_t sv_mid, state_v2;
    rt_ykind_hint_t *hints;
    size_t n_hints;
    json_t *errors; /* step -> message */
} session_t;

static json_t *hex_json(const uint8_t *data, size_t len)
{
    rt_buf_t h = {0};
    ydoc_hex_append(&h, (rt_slice_t){data, len});
    json_t *s = json_stringn(h.len ? (const char *)h.data : "", h.len);
    rt_buf_dispose(&h);
    return s;
}

static void session_error(session_t *s, const char *step, size_t index, int rc)
{
    char msg[128];
    snprintf(msg, sizeof msg, "update %zu: %s", index, rt_strerror(rc));
    json_object_set_new(s->errors, step, json_string(msg));
}

/* Decodes a JSON array of hex strings into slices backed by bytes[base..]. */
static int hex_list(json_t *arr, rt_buf_t *bytes, rt_slice_t **out, size_t *n)
{
    size_t count = json_array_size(arr);
    *out = rt_xcalloc(count ? count : 1, sizeof **out);
    *n = count;
    for (size_t i = 0; i < count; i++) {
        const char *h = json_string_value(json_array_get(arr, i));
        if (h == NULL || ydoc_hex_decode(h, strlen(h), &bytes[i]) != 0)
            return RT_EINVAL;
        (*out)[i] = (rt_slice_t){bytes[i].data, bytes[i].len};
    }
    return 0;
}

static int hex_field(json_t *root, const char *key, rt_buf_t *out)
{
    const char *h = json_string_value(json_object_get(root, key));
    return h == NULL ? RT_EINVAL : ydoc_hex_decode(h, strlen(h), out);
}

static int session_parse(session_t *s, json_t *root)
{
    json_t *ups = json_object_get(root, "updates"), *ups2 = json_object_get(root, "updates_v2");
    size_t total = json_array_size(ups) + json_array_size(ups2);
    s->bytes = rt_xcalloc(total ? total : 1, sizeof *s->bytes);
    if (hex_list(ups, s->bytes, &s->updates, &s->n) != 0 ||
        hex_list(ups2, s->bytes + s->n, &s->updates_v2, &s->n_v2) != 0 ||
        hex_field(root, "sv_mid", &s->sv_mid) != 0 || hex_field(root, "state_v2", &s->state_v2) != 0)
        return RT_EINVAL;
    json_t *roots = json_object_get(root, "roots");
    s->hints = rt_xcalloc(json_object_size(roots) + 1, sizeof *s->hints);
    const char *name;
    json_t *kind;
    json_object_foreach(roots, name, kind) {
        rt_ykind_t k;
        if (!json_is_string(kind) || ydoc_kind_parse(json_string_value(kind), &k) != 0)
            return RT_EINVAL;
        s->hints[s->n_hints++] = (rt_ykind_hint_t){name, k};
    }
    return 0;
}

static void session_dispose(session_t *s)
{
    for (size_t i = 0; i < s->n + s->n_v2; i++)
        rt_buf_dispose(&s->bytes[i]);
    free(s->bytes);
    free(s->updates);
    free(s->updates_v2);
    free(s->hints);
    rt_buf_dispose(&s->sv_mid);
    rt_buf_dispose(&s->state_v2);
}

/* Applies updates one by one, collecting each 'update' event (null when none). */
static json_t *apply_events(session_t *s, rt_ydoc_t *doc, const rt_slice_t *ups, size_t n, bool v2,
                            const char *step)
{
    json_t *events = json_array();
    rt_buf_t ch = {0};
    for (size_t i = 0; i < n; i++) {
        ch.len = 0;
        int rc = ydoc_apply(doc, ups[i], v2, &ch);
        if (rc != 0)
            session_error(s, step, i, rc);
        json_array_append_new(events, rc == 0 && ch.len > 0 ? hex_json(ch.data, ch.len) : json_null());
    }
    rt_buf_dispose(&ch);
    return events;
}

/* Sets key to the hex of `b` if rc == 0, else records the error. */
static void set_hex(session_t *s, json_t *out, const char *key, int rc, const rt_buf_t *b)
{
    if (rc == 0)
        json_object_set_new(out, key, hex_json(b->data, b->len));
    else
        json_object_set_new(s->errors, key, json_string(rt_strerror(rc)));
}

static void server_outputs(session_t *s, json_t *out)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t b = {0};
    json_object_set_new(out, "events", apply_events(s, doc, s->updates, s->n, false, "apply"));
    rt_ydoc_encode_state_vector(doc, &b);
    set_hex(s, out, "sv", 0, &b);
    b.len = 0;
    set_hex(s, out, "state", rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &b), &b);
    b.len = 0;
    set_hex(s, out, "state_mid",
            rt_ydoc_encode_state_as_update(doc, (rt_slice_t){s->sv_mid.data, s->sv_mid.len}, &b), &b);
    b.len = 0;
    /* passed on as text: JavaScript number syntax (e.g. -9223372036854776000) is not jansson's */
    if (ydoc_json(doc, s->hints, s->n_hints, &b) == 0)
        json_object_set_new(out, "json_text", json_stringn(b.len ? (const char *)b.data : "", b.len));
    else
        json_object_set_new(s->errors, "json", json_string("cannot render"));
    rt_buf_dispose(&b);
    rt_ydoc_destroy(doc);
}

/* Per update i: merge(u[i-1], u[i]) (from i = 1), diff(u[i], sv_mid), svFromUpdate(u[i]). */
static void per_update_algebra(session_t *s, json_t *out)
{
    json_t *pairs = json_array(), *diffs = json_array(), *svs = json_array();
    rt_buf_t b = {0};
    rt_slice_t mid = {s->sv_mid.data, s->sv_mid.len};
    for (size_t i = 0; i < s->n; i++) {
        int rc;
        if (i > 0) {
            b.len = 0;
            rc = rt_yupdate_merge(s->updates + i - 1, 2, &b);
            json_array_append_new(pairs, rc == 0 ? hex_json(b.data, b.len) : json_null());
            if (rc != 0)
                session_error(s, "merge_pairs", i, rc);
        }
        b.len = 0;
        rc = rt_yupdate_diff(s->updates[i], mid, &b);
        json_array_append_new(diffs, rc == 0 ? hex_json(b.data, b.len) : json_null());
        if (rc != 0)
            session_error(s, "diff_each", i, rc);
        b.len = 0;
        rc = rt_yupdate_state_vector(s->updates[i], &b);
        json_array_append_new(svs, rc == 0 ? hex_json(b.data, b.len) : json_null());
        if (rc != 0)
            session_error(s, "sv_each", i, rc);
    }
    json_object_set_new(out, "merge_pairs", pairs);
    json_object_set_new(out, "diff_each", diffs);
    json_object_set_new(out, "sv_each", svs);
    rt_buf_dispose(&b);
}

static void algebra_outputs(session_t *s, json_t *out)
{
    per_update_algebra(s, out);
    rt_buf_t merged = {0}, b = {0};
    int rc = rt_yupdate_merge(s->updates, s->n, &merged);
    set_hex(s, out, "merge", rc, &merged);
    rt_slice_t m = {merged.data, merged.len};
    set_hex(s, out, "merge_sv", rc ? rc : rt_yupdate_state_vector(m, &b), &b);
    b.len = 0;
    set_hex(s, out, "diff_mid", rc ? rc : rt_yupdate_diff(m, (rt_slice_t){s->sv_mid.data, s->sv_mid.len}, &b), &b);
    b.len = 0;
    set_hex(s, out, "v2_to_v1", rt_yupdate_v2_to_v1((rt_slice_t){s->state_v2.data, s->state_v2.len}, &b), &b);
    json_t *conv = json_array();
    for (size_t i = 0; i < s->n_v2; i++) {
        b.len = 0;
        int r = rt_yupdate_v2_to_v1(s->updates_v2[i], &b);
        if (r != 0)
            session_error(s, "updates_v2_to_v1", i, r);
        json_array_append_new(conv, r == 0 ? hex_json(b.data, b.len) : json_null());
    }
    json_object_set_new(out, "updates_v2_to_v1", conv);
    rt_buf_dispose(&b);
    rt_buf_dispose(&merged);
}

static void v2_outputs(session_t *s, json_t *out)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t b = {0};
    int rc = rt_ydoc_apply_update_v2(doc, (rt_slice_t){s->state_v2.data, s->state_v2.len}, NULL);
    set_hex(s, out, "v2_apply_state", rc ? rc : rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &b), &b);
    rt_ydoc_destroy(doc);
    rt_ydoc_create(&doc);
    json_object_set_new(out, "events_v2", apply_events(s, doc, s->updates_v2, s->n_v2, true, "apply_v2"));
    rt_ydoc_destroy(doc);
    rt_buf_dispose(&b);
}

static void nogc_outputs(session_t *s, json_t *out)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_ydoc_set_gc(doc, false);
    rt_buf_t b = {0};
    json_object_set_new(out, "events_nogc", apply_events(s, doc, s->updates, s->n, false, "apply_nogc"));
    set_hex(s, out, "state_nogc", rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &b), &b);
    rt_ydoc_destroy(doc);
    rt_buf_dispose(&b);
}

/* Runs one session file; prints its line.  Returns 0, or 1 if the file is unusable. */
static int session_run(const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    session_t s = {0};
    s.errors = json_object();
    json_t *out = json_object();
    json_object_set(out, "name", root ? json_object_get(root, "name") : json_null());
    int rc = root && session_parse(&s, root) == 0 ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "ydoc: session %s: malformed (%s)\n", path, root ? "bad field" : jerr.text);
    } else {
        server_outputs(&s, out);
        algebra_outputs(&s, out);
        v2_outputs(&s, out);
        nogc_outputs(&s, out);
        json_object_set(out, "errors", s.errors);
        char *line = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        puts(line);
        free(line);
    }
    json_decref(out);
    json_decref(s.errors);
    session_dispose(&s);
    json_decref(root);
    return rc;
}

int ydoc_cmd_session(int argc, char **argv)
{
    if (argc == 0) {
        fprintf(stderr, "ydoc: session needs one or more session files\n");
        return 2;
    }
    int rc = 0;
    for (int i = 0; i < argc; i++)
        rc |= session_run(argv[i]);
    return fflush(stdout) == 0 ? rc : 1;
}
